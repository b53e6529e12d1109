//! A passport read from outside, before anyone checked its signatures.

use std::fmt;
use std::sync::Arc;

use rayon::prelude::*;

use crate::chain::ChainChecker;
use crate::error::{EntryFault, PassportError};
use crate::limits::Limits;
use crate::passport::Passport;
use crate::signed::{EntryHash, ParseFailure, UnverifiedEntry};
use crate::wire;

/// Below this many entries, parsing runs on the calling thread: the hand-off to the
/// thread pool costs more than it saves.
pub(crate) const PARALLEL_THRESHOLD: usize = 4;

/// Whether `amount` of work (entries, bytes) is worth handing to the thread pool: at
/// least `threshold`. Either way the results are the same and in the same order; only
/// the time differs.
pub(crate) const fn on_pool(amount: usize, threshold: usize) -> bool {
    amount >= threshold
}

/// A passport decoded from its wire form: every entry well formed and the chain rules
/// met (one root, first; parents earlier; nothing twice), but no signature checked and
/// no label audited.
///
/// It can be shown ([`crate::render`], [`UnverifiedPassport::entries`]) but not continued:
/// only [`crate::Verifier::verify`] turns it into a [`Passport`] that new entries can be
/// appended to, so code that holds a `Passport` cannot forget to verify what came from
/// elsewhere.
///
/// ```
/// use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
/// use kest_passport::{EntryBuilder, Passport, UnverifiedPassport, Verifier};
/// use kest_trust::WeakestLink;
///
/// let key = SigningKey::from_ed25519_seed(&[5; 32])?;
/// let trusted = StaticKeyResolver::new().with_key("w", key.verifying_key().clone());
/// let mut passport = Passport::new();
/// passport.append(EntryBuilder::new("fetch").principal("w"), &KeySigner::new(key, "w"), &WeakestLink)?;
///
/// let received = UnverifiedPassport::decode(&passport.to_json(), &Default::default())?;
/// assert_eq!(received.len(), 1);
/// let verified: Passport = Verifier::new(&trusted).verify(&received)?.into_passport();
/// assert_eq!(verified, passport);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UnverifiedPassport {
    entries: Vec<UnverifiedEntry>,
    heads: Vec<usize>,
}

impl fmt::Debug for UnverifiedPassport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedPassport")
            .field("len", &self.len())
            .field("tip", &self.tip_hash())
            .finish()
    }
}

impl UnverifiedPassport {
    /// Reads a passport from its wire form (any JSON whitespace, as the Python package
    /// writes `", "`), within `limits`.
    ///
    /// Checks every entry's shape, canonical payload and schema, and the chain rules. It
    /// does **not** check signatures or labels: that is [`crate::Verifier`]'s job.
    ///
    /// # Errors
    /// [`PassportError`] naming the index and cause of the first problem.
    pub fn decode(text: &str, limits: &Limits) -> Result<Self, PassportError> {
        let list = wire::parse_entry_list(text, limits)?;
        let parsed: Vec<Result<UnverifiedEntry, ParseFailure>> =
            if !on_pool(list.len(), PARALLEL_THRESHOLD) {
                list.iter()
                    .map(|jws| UnverifiedEntry::parse_reporting_id(jws))
                    .collect()
            } else {
                list.par_iter()
                    .map(|jws| UnverifiedEntry::parse_reporting_id(jws))
                    .collect()
            };
        let mut entries = Vec::with_capacity(parsed.len());
        for (index, result) in parsed.into_iter().enumerate() {
            entries.push(result.map_err(|failure| failure.at(index))?);
        }
        Self::from_entries(entries)
    }

    /// Checks the chain rules over parsed entries.
    pub(crate) fn from_entries(entries: Vec<UnverifiedEntry>) -> Result<Self, PassportError> {
        let mut chain = ChainChecker::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            chain
                .check(index, entry.as_unchecked())
                .map_err(|fault| PassportError::Entry {
                    index,
                    entry_id: Some(entry.entry().entry_id().to_string()),
                    fault,
                })?;
        }
        Ok(Self {
            heads: chain.heads(),
            entries,
        })
    }

    /// The entries, oldest first.
    #[must_use]
    pub fn entries(&self) -> &[UnverifiedEntry] {
        &self.entries
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last entry.
    #[must_use]
    pub fn tip(&self) -> Option<&UnverifiedEntry> {
        self.entries.last()
    }

    /// The hash of the last entry.
    #[must_use]
    pub fn tip_hash(&self) -> Option<EntryHash> {
        self.tip().map(UnverifiedEntry::hash)
    }

    /// Whether an entry with `hash` is here.
    #[must_use]
    pub fn contains(&self, hash: &EntryHash) -> bool {
        self.entries.iter().any(|entry| entry.hash() == *hash)
    }

    /// The entries no later entry builds on.
    #[must_use]
    pub fn heads(&self) -> Vec<EntryHash> {
        self.heads
            .iter()
            .filter_map(|index| self.entries.get(*index).map(UnverifiedEntry::hash))
            .collect()
    }

    /// The wire form: a compact JSON array of the JWS strings, oldest first.
    #[must_use]
    pub fn to_json(&self) -> String {
        wire::write_list(self.entries.iter().map(UnverifiedEntry::as_unchecked))
    }

    /// Continues from this passport without checking a signature or auditing a label:
    /// every claim in it is taken at its word. For callers that verified it by other
    /// means, and for the explicitly insecure ingress setting; never for input that
    /// decides anything.
    #[must_use]
    pub fn dangerous_assume_verified(self) -> Passport {
        let heads = self.heads();
        Passport::from_checked(
            self.entries.into_iter().map(|entry| {
                let entry = entry.dangerous_assume_verified();
                let trust = entry.trust_score();
                (Arc::new(entry), trust)
            }),
            heads,
        )
    }
}

/// One position of a passport read for display, faults and all ([`examine`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExaminedEntry {
    /// Its position.
    pub index: usize,
    /// SHA-256 of its JWS text, as later entries name it.
    pub hash: EntryHash,
    /// The entry, when its JWS and payload could be read.
    pub entry: Option<UnverifiedEntry>,
    /// What is wrong with it: an unreadable JWS or payload, or a chain rule it breaks
    /// (a parent not before it, a second root, a repeat). `None` for an entry that reads
    /// and links; its signature is not checked here.
    pub fault: Option<EntryFault>,
}

impl ExaminedEntry {
    /// An entry that reads and links, at `index`.
    #[must_use]
    pub fn readable(index: usize, entry: UnverifiedEntry) -> Self {
        Self {
            index,
            hash: entry.hash(),
            entry: Some(entry),
            fault: None,
        }
    }
}

/// Reads a passport for inspection, without stopping at the first problem: each entry
/// that can be read is returned, and every problem is marked on the entry it belongs to.
/// This is what a tool shows an auditor looking at a passport that does not verify; it
/// decides nothing, and checks no signature. Only a text that is not a list of strings
/// at all (or is beyond `limits`) is an error.
///
/// ```
/// use kest_passport::{Limits, examine};
///
/// let rows = examine(r#"["not.a.jws"]"#, &Limits::default())?;
/// assert!(rows[0].entry.is_none());
/// assert!(rows[0].fault.is_some());
/// # Ok::<(), kest_passport::PassportError>(())
/// ```
///
/// # Errors
/// [`PassportError::TooLarge`], [`PassportError::TooManyEntries`] or
/// [`PassportError::NotAnArray`].
pub fn examine(text: &str, limits: &Limits) -> Result<Vec<ExaminedEntry>, PassportError> {
    let list = wire::parse_entry_list(text, limits)?;
    let mut chain = ChainChecker::with_capacity(list.len());
    Ok(list
        .iter()
        .enumerate()
        .map(|(index, jws)| {
            let hash = kest_canon::sha256(jws.as_bytes());
            match UnverifiedEntry::parse_hashed(jws, hash) {
                Ok(entry) => {
                    let fault = chain.check_marking(index, entry.as_unchecked());
                    ExaminedEntry {
                        index,
                        hash,
                        entry: Some(entry),
                        fault,
                    }
                }
                Err(failure) => {
                    chain.skip();
                    ExaminedEntry {
                        index,
                        hash,
                        entry: None,
                        fault: Some(failure.fault),
                    }
                }
            }
        })
        .collect())
}
