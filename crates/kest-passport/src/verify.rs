//! The offline verifier: signatures, the chain rules and the label audit.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kest_canon::Untrusted;
use kest_crypto::KeyResolver;
use kest_trust::TrustScore;
use rayon::prelude::*;

use crate::cache::{Cached, VerifiedEntries};
use crate::chain::ChainChecker;
use crate::entry::Entry;
use crate::error::{EntryFault, PassportError, TipText};
use crate::limits::Limits;
use crate::passport::Passport;
use crate::signed::{EntryHash, ParseFailure, SignedEntry, UnverifiedEntry};
use crate::unverified::{PARALLEL_THRESHOLD, UnverifiedPassport, on_pool};
use crate::wire;

/// Below this many bytes of JWS text, entry hashes are computed on the calling thread.
const PARALLEL_HASH_BYTES: usize = 262_144; // 256 KiB

/// How an undeclared trust raise is treated.
///
/// Whichever applies, an undeclared raise never counts: the trust a verified passport
/// hands on (to a policy, to the next entry) for an entry that raised without declaring
/// it is its parents' bound, not the score it claims.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strictness {
    /// Decided for each entry by the entry that raises: strict for an entry written by
    /// Kest for Rust (which always declares its raises), lenient for one from another
    /// runtime. The Python package never declares its raises (`chain_10` goes from 21 to
    /// 95 at hop 5), so its entries can only be audited leniently; one such entry does not
    /// relax the audit of the others.
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
/// (never `none`), the canonical payload and its schema, the signature under a key the
/// resolver trusts for the principal the entry claims, that each parent is an earlier
/// entry, that only the first entry is a root, that no entry or `entry_id` repeats, that
/// taints vanish only through `removed_taints`, and that trust rises above the parents'
/// minimum only by a declared override. Then it checks that every entry but the last is a
/// parent of a later one, and, when the caller pins it, that the last entry is the
/// expected tip (which detects truncation).
///
/// Signatures are checked on all cores. With a [`VerifiedEntries`] cache
/// ([`Verifier::cache`]) an entry's signature is checked once per process. The audit's
/// work is bounded by the size of the passport: a DAG built to make it quadratic fails
/// with [`EntryFault::TooComplex`].
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
    cache: Option<&'r VerifiedEntries>,
}

impl fmt::Debug for Verifier<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("expected_tip", &self.expected_tip)
            .field("strictness", &self.strictness)
            .field("limits", &self.limits)
            .field("cache", &self.cache.is_some())
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
        /// Whether `kest.trust_override` declares exactly this value. A declared raise
        /// counts; an undeclared one is let through (lenient audit) but counts as `bound`.
        declared: bool,
    },
    /// Taints the parents carried were cleared here, through `removed_taints`.
    TaintsRemoved {
        /// The taints cleared.
        taints: Vec<String>,
    },
}

impl Finding {
    /// The finding as JSON, the form `kest verify --json` and the Python binding report:
    /// `{"index", "entry_id", "principal", "operation", "kind", "details"}`, where `kind`
    /// is `trust_raised` (details `bound`, `trust`, `declared`) or `taints_removed`
    /// (details `taints`).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let (kind, details) = match &self.kind {
            FindingKind::TrustRaised {
                bound,
                trust,
                declared,
            } => (
                "trust_raised",
                serde_json::json!({"bound": bound, "trust": trust, "declared": declared}),
            ),
            FindingKind::TaintsRemoved { taints } => {
                ("taints_removed", serde_json::json!({"taints": taints}))
            }
        };
        serde_json::json!({
            "index": self.index,
            "entry_id": self.entry_id,
            "principal": self.principal,
            "operation": self.operation,
            "kind": kind,
            "details": details,
        })
    }
}

impl fmt::Display for Finding {
    /// One line; the entry's text is escaped and shortened (it came from outside).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {} (`{}`, {} by {}): ",
            self.index,
            Untrusted::new(&self.entry_id),
            Untrusted::new(&self.operation),
            Untrusted::new(&self.principal)
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
                "trust raised from {bound} to {trust} without a declared override (counted as {bound})"
            ),
            FindingKind::TaintsRemoved { taints } => {
                f.write_str("removed taints ")?;
                for (index, taint) in taints.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", Untrusted::new(taint))?;
                }
                Ok(())
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

    /// Takes the verified passport: the one that new entries may be appended to.
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

    /// Whether every entry was audited strictly (an undeclared trust raise anywhere would
    /// have failed).
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

/// Counts a failure in `kest.verification.failures` ([`crate::metrics`]).
fn counted<T>(result: Result<T, PassportError>) -> Result<T, PassportError> {
    result.inspect_err(|error| crate::metrics::verification_failed(error.kind()))
}

/// One item to check: a JWS still to parse, or an entry parsed already.
#[derive(Clone, Copy)]
enum Item<'a> {
    Text(&'a str),
    Parsed(&'a UnverifiedEntry),
}

/// The signature stage's verdict on one entry.
enum Checked {
    Good(Arc<SignedEntry>),
    Bad(ParseFailure),
    /// Not looked at: an earlier entry already failed, so the walk stops before this one.
    Skipped,
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
            cache: None,
        }
    }

    /// Requires the last entry to have this hash (from `kest.chain_tip` or an audit
    /// record). Without it, a passport cut short at the end still verifies. For
    /// [`Verifier::verify_entry`], the entry must have this hash.
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

    /// Remembers verified entries in `cache` and skips the signature check for entries
    /// found there (whose key the resolver still trusts).
    #[must_use]
    pub const fn cache(mut self, cache: &'r VerifiedEntries) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Verifies a passport in its wire form.
    ///
    /// # Errors
    /// The first failure, as a [`PassportError`] naming the entry and cause.
    pub fn verify_json(&self, text: &str) -> Result<VerificationReport, PassportError> {
        counted(wire::parse_entry_list(text, &self.limits).and_then(|list| {
            let items: Vec<Item<'_>> = list.iter().map(|jws| Item::Text(jws)).collect();
            self.verify_items(&items)
        }))
    }

    /// Verifies a decoded passport, turning it into one new entries may be appended to.
    ///
    /// # Errors
    /// The first failure, as a [`PassportError`] naming the entry and cause.
    pub fn verify(
        &self,
        passport: &UnverifiedPassport,
    ) -> Result<VerificationReport, PassportError> {
        let items: Vec<Item<'_>> = passport.entries().iter().map(Item::Parsed).collect();
        counted(self.verify_items(&items))
    }

    /// Verifies a single JWS entry on its own: shape, payload, schema and signature, and
    /// its hash when a tip is expected. No chain rules apply, since there is no chain.
    ///
    /// # Errors
    /// [`PassportError::Entry`] with index 0, or [`PassportError::TipMismatch`].
    pub fn verify_entry(&self, jws: &str) -> Result<SignedEntry, PassportError> {
        counted(self.verify_one(jws))
    }

    fn verify_one(&self, jws: &str) -> Result<SignedEntry, PassportError> {
        let hash = kest_canon::sha256(jws.as_bytes());
        let entry = match self.check_all(&[Item::Text(jws)], &[hash]).pop() {
            Some(Checked::Good(entry)) => Arc::unwrap_or_clone(entry),
            Some(Checked::Bad(failure)) => return Err(failure.at(0)),
            Some(Checked::Skipped) | None => {
                return Err(PassportError::NotAnArray {
                    reason: "no entry".into(),
                });
            }
        };
        if let Some(expected) = self.expected_tip
            && entry.hash() != expected
        {
            return Err(PassportError::TipMismatch {
                expected,
                found: TipText(Some(entry.hash())),
            });
        }
        Ok(entry)
    }

    fn verify_items(&self, items: &[Item<'_>]) -> Result<VerificationReport, PassportError> {
        // Hashing is cheap (SHA-256 runs at gigabytes a second); only large passports are
        // worth handing to the thread pool.
        let bytes: usize = items.iter().map(|item| item.jws().len()).sum();
        let hashes: Vec<EntryHash> = if !on_pool(bytes, PARALLEL_HASH_BYTES) {
            items.iter().map(Item::hash).collect()
        } else {
            items.par_iter().map(Item::hash).collect()
        };
        let checked = self.check_all(items, &hashes);
        let mut audit = Audit::new(self.strictness, &checked);
        let mut entries = Vec::with_capacity(checked.len());
        for (index, result) in checked.into_iter().enumerate() {
            let entry = match result {
                Checked::Good(entry) => entry,
                Checked::Bad(failure) => return Err(failure.at(index)),
                Checked::Skipped => {
                    return Err(PassportError::Entry {
                        index,
                        entry_id: None,
                        fault: EntryFault::TooComplex,
                    });
                }
            };
            let trust = audit
                .check(index, &entry)
                .map_err(|fault| PassportError::Entry {
                    index,
                    entry_id: Some(entry.entry_id().to_string()),
                    fault,
                })?;
            entries.push((entry, trust));
        }
        if let Some(index) = audit.chain.first_dangling() {
            return Err(PassportError::Entry {
                index,
                entry_id: entries
                    .get(index)
                    .map(|(entry, _)| entry.entry_id().to_string()),
                fault: EntryFault::Dangling,
            });
        }
        let heads = audit
            .chain
            .heads()
            .into_iter()
            .filter_map(|index| entries.get(index).map(|(entry, _)| entry.hash()))
            .collect();
        let passport = Passport::from_checked(entries, heads);
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
            strict: audit.all_strict,
            findings: audit.findings,
        })
    }

    /// Parses (where needed) and checks the signature of every item, using and filling
    /// the cache. Runs on all cores for longer passports; once an entry fails, later ones
    /// are not checked (the walk stops at the first failure anyway).
    fn check_all(&self, items: &[Item<'_>], hashes: &[EntryHash]) -> Vec<Checked> {
        let cached = self
            .cache
            .map_or_else(|| vec![None; items.len()], |cache| cache.get_all(hashes));
        let first_failure = AtomicUsize::new(usize::MAX);
        let one = |(index, (item, cached)): (usize, (&Item<'_>, &Option<Cached>))| {
            if index > first_failure.load(Ordering::Relaxed) {
                return (Checked::Skipped, None);
            }
            if let Some(hit) = cached
                && hit.entry.jws() == item.jws()
                && hit.entry.still_trusted(&hit.key, self.resolver)
            {
                return (Checked::Good(Arc::clone(&hit.entry)), None);
            }
            let outcome = item.parse(hashes.get(index).copied()).and_then(|entry| {
                let entry_id = entry.entry().entry_id().to_string();
                entry
                    .verify_returning_key(self.resolver)
                    .map_err(|fault| ParseFailure {
                        entry_id: Some(entry_id),
                        fault,
                    })
            });
            match outcome {
                Ok((entry, key)) => {
                    let entry = Arc::new(entry);
                    let fresh = Cached {
                        entry: Arc::clone(&entry),
                        key,
                    };
                    (Checked::Good(entry), Some(fresh))
                }
                Err(failure) => {
                    first_failure.fetch_min(index, Ordering::Relaxed);
                    (Checked::Bad(failure), None)
                }
            }
        };
        let pairs = items.iter().zip(cached.iter()).enumerate();
        // The thread pool only pays for itself when there are signatures to check.
        let misses = cached.iter().filter(|hit| hit.is_none()).count();
        let results: Vec<(Checked, Option<Cached>)> = if !on_pool(misses, PARALLEL_THRESHOLD) {
            pairs.map(one).collect()
        } else {
            pairs.collect::<Vec<_>>().into_par_iter().map(one).collect()
        };
        let mut checked = Vec::with_capacity(results.len());
        let mut fresh = Vec::new();
        for (verdict, new) in results {
            checked.push(verdict);
            fresh.extend(new);
        }
        if let Some(cache) = self.cache {
            let misses = u64::try_from(fresh.len()).unwrap_or(u64::MAX);
            let hits = checked
                .iter()
                .filter(|c| matches!(c, Checked::Good(_)))
                .count();
            let hits = u64::try_from(hits)
                .unwrap_or(u64::MAX)
                .saturating_sub(misses);
            cache.count(hits, misses);
            cache.insert_all(fresh);
        }
        checked
    }
}

impl Item<'_> {
    fn hash(&self) -> EntryHash {
        match self {
            Self::Text(jws) => kest_canon::sha256(jws.as_bytes()),
            Self::Parsed(entry) => entry.hash(),
        }
    }

    fn jws(&self) -> Cow<'_, str> {
        match self {
            Self::Text(jws) => Cow::Borrowed(jws),
            Self::Parsed(entry) => entry.jws(),
        }
    }

    fn parse(&self, hash: Option<EntryHash>) -> Result<UnverifiedEntry, ParseFailure> {
        match (self, hash) {
            (Self::Text(jws), Some(hash)) => UnverifiedEntry::parse_hashed(jws, hash),
            (Self::Text(jws), None) => UnverifiedEntry::parse_reporting_id(jws),
            (Self::Parsed(entry), _) => Ok((*entry).clone()),
        }
    }
}

/// State of the sequential pass: the chain rules, then the labels.
struct Audit {
    strictness: Strictness,
    chain: ChainChecker,
    /// The trust each entry counts at (see [`crate::Head::trust`]).
    trust: Vec<TrustScore>,
    taints: TaintAudit,
    findings: Vec<Finding>,
    all_strict: bool,
}

impl Audit {
    fn new(strictness: Strictness, checked: &[Checked]) -> Self {
        let good = || {
            checked.iter().filter_map(|c| match c {
                Checked::Good(entry) => Some(entry.entry()),
                _ => None,
            })
        };
        // The audit may spend a few steps per taint, parent and entry listed, and no
        // more: honest DAGs need about one; a DAG built to make the audit quadratic (many
        // parents, each with many distinct taints) runs out.
        let listed: u64 = good()
            .map(|entry| {
                let count = entry.taints_as_written().len()
                    + entry.added_taints().len()
                    + entry.removed_taints().len()
                    + entry.parents().hashes().len()
                    + 1;
                u64::try_from(count).unwrap_or(u64::MAX)
            })
            .fold(0, u64::saturating_add);
        let all_strict = match strictness {
            Strictness::Strict => true,
            Strictness::Lenient => false,
            Strictness::Auto => good().all(|entry| entry.is_kest_rust()),
        };
        Self {
            strictness,
            chain: ChainChecker::with_capacity(checked.len()),
            trust: Vec::with_capacity(checked.len()),
            taints: TaintAudit::new(listed.saturating_mul(4).saturating_add(65_536)),
            findings: Vec::new(),
            all_strict,
        }
    }

    /// Checks the entry at `index` and returns the trust it counts at.
    fn check(&mut self, index: usize, signed: &SignedEntry) -> Result<TrustScore, EntryFault> {
        let entry = signed.entry();
        let parents = self.chain.check(index, signed)?;

        // Taints: the entry must hold (∪ parents ∪ added) − removed. More is allowed.
        let cleared = self.taints.check(&entry, &parents)?;
        if !cleared.is_empty() {
            self.note(
                index,
                &entry,
                FindingKind::TaintsRemoved { taints: cleared },
            );
        }

        // Trust: above the weakest parent only by a declared override. Strictness is the
        // raising entry's own, never its neighbours'.
        let claimed = entry.trust_score();
        let bound = parents
            .iter()
            .filter_map(|p| self.trust.get(*p).copied())
            .min();
        let mut counted = claimed;
        if let Some(bound) = bound.filter(|bound| claimed > *bound) {
            let declared = entry.declared_override() == Some(claimed);
            let strict = match self.strictness {
                Strictness::Strict => true,
                Strictness::Lenient => false,
                Strictness::Auto => entry.is_kest_rust(),
            };
            if !declared && strict {
                return Err(EntryFault::UndeclaredTrustRaise {
                    bound: bound.get(),
                    trust: claimed.get(),
                });
            }
            if !declared {
                counted = bound;
            }
            self.note(
                index,
                &entry,
                FindingKind::TrustRaised {
                    bound: bound.get(),
                    trust: claimed.get(),
                    declared,
                },
            );
        }
        self.trust.push(counted);
        Ok(counted)
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
}

/// The taint rule, in time linear in the passport: taint names are interned to numbers,
/// each entry's set is interned too, and a parent set is compared with its child once
/// however many parents share it. What is left of the work is counted against a budget.
struct TaintAudit {
    names: HashMap<Arc<str>, u32>,
    by_id: Vec<Arc<str>>,
    sets: HashMap<Arc<[u32]>, usize>,
    /// The interned set of each entry, by index.
    of_entry: Vec<Arc<[u32]>>,
    budget: u64,
    spent: u64,
}

impl TaintAudit {
    fn new(budget: u64) -> Self {
        Self {
            names: HashMap::new(),
            by_id: Vec::new(),
            sets: HashMap::new(),
            of_entry: Vec::new(),
            budget,
            spent: 0,
        }
    }

    fn intern_name(&mut self, name: &str) -> u32 {
        if let Some(id) = self.names.get(name) {
            return *id;
        }
        let id = u32::try_from(self.by_id.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&name), id);
        self.by_id.push(name);
        id
    }

    fn name(&self, id: u32) -> String {
        usize::try_from(id)
            .ok()
            .and_then(|index| self.by_id.get(index))
            .map(|name| name.to_string())
            .unwrap_or_default()
    }

    fn spend(&mut self, steps: usize) -> Result<(), EntryFault> {
        self.spent = self
            .spent
            .saturating_add(u64::try_from(steps).unwrap_or(u64::MAX));
        if self.spent > self.budget {
            return Err(EntryFault::TooComplex);
        }
        Ok(())
    }

    /// Checks `entry` against its parents (indices of entries already checked) and
    /// records its set. Returns the inherited taints it clears.
    fn check(&mut self, entry: &Entry, parents: &[usize]) -> Result<Vec<String>, EntryFault> {
        let mut own: Vec<u32> = entry
            .taints_as_written()
            .iter()
            .map(|name| self.intern_name(name))
            .collect();
        own.sort_unstable();
        own.dedup();
        let own: Arc<[u32]> = match self.sets.get_key_value(own.as_slice()) {
            Some((shared, _)) => Arc::clone(shared),
            None => {
                let set: Arc<[u32]> = own.into();
                self.sets.insert(Arc::clone(&set), self.sets.len());
                set
            }
        };
        // In written order (for the finding), and sorted (for lookups).
        let removed: Vec<u32> = entry
            .removed_taints()
            .iter()
            .filter_map(|name| self.names.get(name.as_str()).copied())
            .collect();
        let mut removed_sorted = removed.clone();
        removed_sorted.sort_unstable();
        let mut distinct: Vec<&Arc<[u32]>> = parents
            .iter()
            .filter_map(|parent| self.of_entry.get(*parent))
            .collect();
        distinct.sort_unstable_by_key(|set| Arc::as_ptr(set).cast::<u32>());
        distinct.dedup_by(|a, b| Arc::ptr_eq(a, b));
        let mut dropped = None;
        let mut cleared = Vec::new();
        let mut steps = entry.added_taints().len();
        // What the entry adds must be in its taints (unless it also removes it).
        for name in entry.added_taints() {
            let kept = self.names.get(name.as_str()).is_some_and(|id| {
                own.binary_search(id).is_ok() || removed_sorted.binary_search(id).is_ok()
            });
            if !kept && !entry.removed_taints().contains(name) {
                return Err(EntryFault::TaintDropped {
                    taint: kest_canon::escape_untrusted(name, 64),
                });
            }
        }
        for set in &distinct {
            if Arc::ptr_eq(set, &own) {
                continue;
            }
            steps = steps.saturating_add(set.len());
            if let Some(missing) = set.iter().find(|id| {
                own.binary_search(id).is_err() && removed_sorted.binary_search(id).is_err()
            }) {
                dropped = Some(*missing);
                break;
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(removed.len());
        for id in &removed {
            steps = steps.saturating_add(distinct.len());
            if seen.insert(*id) && distinct.iter().any(|set| set.binary_search(id).is_ok()) {
                cleared.push(*id);
            }
        }
        self.spend(steps)?;
        if let Some(id) = dropped {
            return Err(EntryFault::TaintDropped {
                taint: kest_canon::escape_untrusted(&self.name(id), 64),
            });
        }
        self.of_entry.push(own);
        Ok(cleared.into_iter().map(|id| self.name(id)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit may do as much work as its budget, and no more: a passport that needs
    /// exactly the budget verifies, one step more is `TooComplex`.
    #[test]
    fn the_taint_budget_is_a_maximum() {
        let mut audit = TaintAudit::new(10);
        assert_eq!(audit.spend(4), Ok(()));
        assert_eq!(audit.spend(6), Ok(()));
        assert_eq!(audit.spend(1), Err(EntryFault::TooComplex));
        let mut audit = TaintAudit::new(0);
        assert_eq!(audit.spend(0), Ok(()));
        assert_eq!(audit.spend(1), Err(EntryFault::TooComplex));
    }
}
