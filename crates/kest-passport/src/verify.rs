//! The offline verifier (SPEC §1.3).

use std::collections::HashMap;
use std::fmt;

use kest_crypto::KeyResolver;
use kest_trust::TaintSet;
use rayon::prelude::*;

use crate::entry::Entry;
use crate::error::{EntryFault, PassportError, TipText};
use crate::passport::{Limits, Passport};
use crate::signed::{EntryHash, ParseFailure, SignedEntry};
use crate::wire;

/// Below this many entries, parsing and signature checks run on the calling thread: the
/// hand-off to the thread pool costs more than it saves.
const PARALLEL_THRESHOLD: usize = 4;

/// How an undeclared trust raise is treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strictness {
    /// Strict when every entry was written by Kest for Rust, lenient otherwise. The
    /// Python package never declares its raises (`chain_10` goes from 21 to 95 at hop 5),
    /// so its chains can only be audited leniently.
    #[default]
    Auto,
    /// An undeclared raise is a failure.
    Strict,
    /// An undeclared raise is a finding in the report.
    Lenient,
}

/// Verifies passports against the keys a [`KeyResolver`] trusts.
///
/// It walks the passport once and stops at the first failure, naming the entry's index,
/// its `entry_id` and the cause. It checks, for every entry: the JWS shape and `alg`
/// (never `none`), the canonical payload and its schema, the signature under the key of
/// the principal the entry claims, that each parent is an earlier entry, that only the
/// first entry is a root, that no entry or `entry_id` repeats, that taints vanish only
/// through `removed_taints`, and that trust rises above the parents' minimum only by a
/// declared override. Then it checks that every entry but the last is a parent of a later
/// one, and, when the caller pins it, that the last entry is the expected tip (which
/// detects truncation).
///
/// Signatures are checked on all cores.
///
/// ```
/// use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
/// use kest_passport::{EntryBuilder, Passport, Verifier};
/// use kest_trust::WeakestLink;
///
/// let key = SigningKey::from_ed25519_seed(&[3; 32])?;
/// let resolver = StaticKeyResolver::new().with_key("w", key.verifying_key().clone());
/// let signer = KeySigner::new(key, "w");
/// let mut passport = Passport::new();
/// for op in ["a", "b", "c"] {
///     passport.append(EntryBuilder::new(op).principal("w"), &signer, &WeakestLink)?;
/// }
/// let tip = passport.tip_hash().unwrap();
/// let mut text = passport.to_json();
///
/// // Drop the last entry: still a valid chain, but not the one whose tip we hold.
/// let truncated = {
///     let mut entries: Vec<&str> = serde_json::from_str(&text)?;
///     entries.pop();
///     serde_json::to_string(&entries)?
/// };
/// assert!(Verifier::new(&resolver).verify_json(&truncated).is_ok());
/// let error = Verifier::new(&resolver).expect_tip(tip).verify_json(&truncated).unwrap_err();
/// assert!(error.to_string().contains("truncated"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Verifier<'r> {
    resolver: &'r dyn KeyResolver,
    expected_tip: Option<EntryHash>,
    strictness: Strictness,
    limits: Limits,
}

impl fmt::Debug for Verifier<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("expected_tip", &self.expected_tip)
            .field("strictness", &self.strictness)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Something an auditor should see: who raised trust or removed taints, and by how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Position of the entry.
    pub index: usize,
    /// Its `entry_id`.
    pub entry_id: String,
    /// The workload that signed it.
    pub principal: String,
    /// Its operation.
    pub operation: String,
    /// What happened.
    pub kind: FindingKind,
}

/// The kinds of [`Finding`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// Trust rose above the parents' minimum. `declared` says whether the entry declared
    /// the override; an undeclared raise is only a finding in lenient mode.
    TrustRaised {
        /// The weakest-link bound from the parents.
        bound: u8,
        /// The entry's trust.
        trust: u8,
        /// Whether `kest.trust_override` declares exactly this value.
        declared: bool,
    },
    /// Taints the parents carried were cleared here, through `removed_taints`.
    TaintsRemoved {
        /// The taints cleared.
        taints: Vec<String>,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {} (`{}`, {} by {}): ",
            self.index, self.entry_id, self.operation, self.principal
        )?;
        match &self.kind {
            FindingKind::TrustRaised {
                bound,
                trust,
                declared: true,
            } => write!(
                f,
                "trust raised from {bound} to {trust} by a declared override"
            ),
            FindingKind::TrustRaised {
                bound,
                trust,
                declared: false,
            } => write!(
                f,
                "trust raised from {bound} to {trust} without a declared override"
            ),
            FindingKind::TaintsRemoved { taints } => {
                write!(f, "removed taints {}", taints.join(", "))
            }
        }
    }
}

/// A verified passport and what the audit found.
#[derive(Debug, Clone)]
pub struct VerificationReport {
    passport: Passport,
    strict: bool,
    findings: Vec<Finding>,
}

impl VerificationReport {
    /// The verified passport.
    #[must_use]
    pub const fn passport(&self) -> &Passport {
        &self.passport
    }

    /// Takes the verified passport.
    #[must_use]
    pub fn into_passport(self) -> Passport {
        self.passport
    }

    /// Number of entries verified.
    #[must_use]
    pub fn len(&self) -> usize {
        self.passport.len()
    }

    /// Whether the passport was empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.passport.is_empty()
    }

    /// The tip hash, if any.
    #[must_use]
    pub fn tip(&self) -> Option<EntryHash> {
        self.passport.tip_hash()
    }

    /// Whether undeclared trust raises were failures.
    #[must_use]
    pub const fn is_strict(&self) -> bool {
        self.strict
    }

    /// Every finding, in entry order.
    #[must_use]
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }
}

impl<'r> Verifier<'r> {
    /// A verifier that trusts exactly the keys `resolver` knows.
    #[must_use]
    pub fn new(resolver: &'r dyn KeyResolver) -> Self {
        Self {
            resolver,
            expected_tip: None,
            strictness: Strictness::Auto,
            limits: Limits::default(),
        }
    }

    /// Requires the last entry to have this hash (from `kest.chain_tip` or an audit
    /// record). Without it, a passport cut short at the end still verifies.
    #[must_use]
    pub const fn expect_tip(mut self, tip: EntryHash) -> Self {
        self.expected_tip = Some(tip);
        self
    }

    /// Sets how undeclared trust raises are treated.
    #[must_use]
    pub const fn strictness(mut self, strictness: Strictness) -> Self {
        self.strictness = strictness;
        self
    }

    /// Sets the size limits for [`Verifier::verify_json`].
    #[must_use]
    pub const fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Verifies a passport in its wire form.
    ///
    /// # Errors
    /// The first failure, as a [`PassportError`] naming the entry and cause.
    pub fn verify_json(&self, text: &str) -> Result<VerificationReport, PassportError> {
        let jws_list = wire::parse_list(text, &self.limits)?;
        let parsed = parse_all(&jws_list, Some(self.resolver));
        let strict = self.is_strict(parsed.iter().filter_map(|r| r.as_ref().ok()));
        let findings = self.audit(strict, parsed.iter().map(|r| r.as_ref()))?;
        let mut passport = Passport::new();
        for entry in parsed.into_iter().flatten() {
            passport.push(entry)?;
        }
        self.finish(passport, strict, findings)
    }

    /// Verifies a passport already decoded.
    ///
    /// # Errors
    /// The first failure, as a [`PassportError`] naming the entry and cause.
    pub fn verify(&self, passport: &Passport) -> Result<VerificationReport, PassportError> {
        let entries = passport.entries();
        let check = |entry: &&SignedEntry| {
            entry
                .verify_signature(self.resolver)
                .map_err(|fault| ParseFailure {
                    entry_id: Some(entry.entry().entry_id().to_string()),
                    fault,
                })
        };
        let checked: Vec<Result<(), ParseFailure>> = if entries.len() < PARALLEL_THRESHOLD {
            entries.iter().map(check).collect()
        } else {
            entries.par_iter().map(check).collect()
        };
        let strict = self.is_strict(entries.iter().copied());
        let results = entries
            .iter()
            .zip(&checked)
            .map(|(entry, check)| check.as_ref().map(|()| *entry));
        let findings = self.audit(strict, results)?;
        self.finish(passport.clone(), strict, findings)
    }

    /// Verifies a single JWS entry on its own: shape, payload, schema and signature. No
    /// chain rules apply, since there is no chain.
    ///
    /// # Errors
    /// [`PassportError::Entry`] with index 0.
    pub fn verify_entry(&self, jws: &str) -> Result<SignedEntry, PassportError> {
        let mut parsed = parse_all(&[jws.to_owned()], Some(self.resolver));
        match parsed.pop() {
            Some(Ok(entry)) => Ok(entry),
            Some(Err(failure)) => Err(PassportError::Entry {
                index: 0,
                entry_id: failure.entry_id,
                fault: failure.fault,
            }),
            None => Err(PassportError::NotAnArray {
                reason: "no entry".into(),
            }),
        }
    }

    fn is_strict<'a>(&self, mut entries: impl Iterator<Item = &'a SignedEntry>) -> bool {
        match self.strictness {
            Strictness::Strict => true,
            Strictness::Lenient => false,
            Strictness::Auto => entries.all(|e| e.entry().is_kest_rust()),
        }
    }

    /// The sequential pass: structure and labels, entry by entry, stopping at the first
    /// failure, whether it came from parsing, the signature, or this pass.
    fn audit<'a>(
        &self,
        strict: bool,
        results: impl ExactSizeIterator<Item = Result<&'a SignedEntry, &'a ParseFailure>>,
    ) -> Result<Vec<Finding>, PassportError> {
        let mut audit = Audit::with_capacity(results.len(), strict);
        let mut ids = Vec::with_capacity(results.len());
        for (index, result) in results.enumerate() {
            let entry = result.map_err(|failure| PassportError::Entry {
                index,
                entry_id: failure.entry_id.clone(),
                fault: failure.fault.clone(),
            })?;
            let entry_id = entry.entry().entry_id();
            audit
                .check(index, entry)
                .map_err(|fault| PassportError::Entry {
                    index,
                    entry_id: Some(entry_id.to_string()),
                    fault,
                })?;
            ids.push(entry_id);
        }
        if let Some(index) = audit.first_dangling() {
            return Err(PassportError::Entry {
                index,
                entry_id: ids.get(index).map(ToString::to_string),
                fault: EntryFault::Dangling,
            });
        }
        Ok(audit.findings)
    }

    fn finish(
        &self,
        passport: Passport,
        strict: bool,
        findings: Vec<Finding>,
    ) -> Result<VerificationReport, PassportError> {
        if let Some(expected) = self.expected_tip
            && passport.tip_hash() != Some(expected)
        {
            return Err(PassportError::TipMismatch {
                expected,
                found: TipText(passport.tip_hash()),
            });
        }
        Ok(VerificationReport {
            passport,
            strict,
            findings,
        })
    }
}

/// Parses every JWS, and checks its signature when a resolver is given, on all cores for
/// longer passports. Results stay in passport order.
pub(crate) fn parse_all(
    jws_list: &[String],
    resolver: Option<&dyn KeyResolver>,
) -> Vec<Result<SignedEntry, ParseFailure>> {
    let one = |jws: &String| {
        let entry = SignedEntry::parse_reporting_id(jws)?;
        if let Some(resolver) = resolver {
            entry
                .verify_signature(resolver)
                .map_err(|fault| ParseFailure {
                    entry_id: Some(entry.entry().entry_id().to_string()),
                    fault,
                })?;
        }
        Ok(entry)
    };
    if jws_list.len() < PARALLEL_THRESHOLD {
        jws_list.iter().map(one).collect()
    } else {
        jws_list.par_iter().map(one).collect()
    }
}

/// State of the sequential pass.
struct Audit {
    strict: bool,
    by_hash: HashMap<EntryHash, usize>,
    by_id: HashMap<uuid::Uuid, usize>,
    trust: Vec<u8>,
    taints: Vec<TaintSet>,
    referenced: Vec<bool>,
    findings: Vec<Finding>,
}

impl Audit {
    fn with_capacity(count: usize, strict: bool) -> Self {
        Self {
            strict,
            by_hash: HashMap::with_capacity(count),
            by_id: HashMap::with_capacity(count),
            trust: Vec::with_capacity(count),
            taints: Vec::with_capacity(count),
            referenced: Vec::with_capacity(count),
            findings: Vec::new(),
        }
    }

    fn check(&mut self, index: usize, signed: &SignedEntry) -> Result<(), EntryFault> {
        let entry = signed.entry();
        if let Some(first) = self.by_hash.get(&signed.hash()) {
            return Err(EntryFault::DuplicateEntry { first: *first });
        }
        if let Some(first) = self.by_id.get(&entry.entry_id()) {
            return Err(EntryFault::DuplicateEntryId { first: *first });
        }
        let parent_indices = self.parent_indices(index, entry)?;

        // Taints: the entry must hold (∪ parents ∪ added) − removed. More is allowed.
        let taints = entry.taints();
        let mut inherited = TaintSet::new();
        for parent in &parent_indices {
            if let Some(parent_taints) = self.taints.get(*parent) {
                inherited.extend_from(parent_taints);
            }
        }
        let required = TaintSet::derive(
            [&inherited],
            entry.added_taints().iter().cloned(),
            entry.removed_taints(),
        );
        if let Some(taint) = required.missing_from(&taints).next() {
            return Err(EntryFault::TaintDropped {
                taint: taint.to_owned(),
            });
        }
        let cleared: Vec<String> = entry
            .removed_taints()
            .iter()
            .filter(|t| inherited.contains(t))
            .cloned()
            .collect();
        if !cleared.is_empty() {
            self.note(index, entry, FindingKind::TaintsRemoved { taints: cleared });
        }

        // Trust: above the weakest parent only by a declared override.
        let bound = parent_indices
            .iter()
            .filter_map(|p| self.trust.get(*p).copied())
            .min();
        let trust = entry.trust_score().get();
        if let Some(bound) = bound.filter(|bound| trust > *bound) {
            let declared = entry.declared_override().map(|o| o.get()) == Some(trust);
            if !declared && self.strict {
                return Err(EntryFault::UndeclaredTrustRaise { bound, trust });
            }
            self.note(
                index,
                entry,
                FindingKind::TrustRaised {
                    bound,
                    trust,
                    declared,
                },
            );
        }

        for parent in parent_indices {
            if let Some(flag) = self.referenced.get_mut(parent) {
                *flag = true;
            }
        }
        self.by_hash.insert(signed.hash(), index);
        self.by_id.insert(entry.entry_id(), index);
        self.trust.push(trust);
        self.taints.push(taints);
        self.referenced.push(false);
        Ok(())
    }

    fn parent_indices(&self, index: usize, entry: &Entry) -> Result<Vec<usize>, EntryFault> {
        match (index, entry.parents().is_root()) {
            (0, false) => return Err(EntryFault::FirstNotRoot),
            (0, true) => return Ok(Vec::new()),
            (_, true) => return Err(EntryFault::SplicedRoot),
            _ => {}
        }
        entry
            .parents()
            .hashes()
            .iter()
            .map(|parent| {
                self.by_hash
                    .get(parent)
                    .copied()
                    .ok_or(EntryFault::UnknownParent { parent: *parent })
            })
            .collect()
    }

    fn note(&mut self, index: usize, entry: &Entry, kind: FindingKind) {
        self.findings.push(Finding {
            index,
            entry_id: entry.entry_id().to_string(),
            principal: entry.principal().unwrap_or_default().to_owned(),
            operation: entry.operation().to_owned(),
            kind,
        });
    }

    /// The first entry, other than the last, that no later entry builds on.
    fn first_dangling(&self) -> Option<usize> {
        let last = self.referenced.len().checked_sub(1)?;
        self.referenced
            .iter()
            .take(last)
            .position(|referenced| !referenced)
    }
}
