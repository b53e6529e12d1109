//! The entries a new entry builds on.

use kest_trust::{TaintSet, TrustScore};

use crate::signed::{EntryHash, SignedEntry};

/// An entry the next entry builds on, with the trust its passport allows it.
///
/// For entries signed here that is their own `trust_score`. For entries received from
/// elsewhere it is what the verifier derived: a raise that the entry did not declare
/// (allowed, as a finding, for runtimes that do not declare their raises) does not count.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub(crate) entry: &'a SignedEntry,
    pub(crate) trust: TrustScore,
}

impl<'a> Head<'a> {
    /// The entry.
    #[must_use]
    pub const fn entry(&self) -> &'a SignedEntry {
        self.entry
    }

    /// Its hash, the next entry's parent id.
    #[must_use]
    pub const fn hash(&self) -> EntryHash {
        self.entry.hash()
    }

    /// The trust the next entry derives from.
    #[must_use]
    pub const fn trust(&self) -> TrustScore {
        self.trust
    }

    /// The taints the next entry inherits.
    #[must_use]
    pub fn taints(&self) -> TaintSet {
        self.entry.taints().clone()
    }
}

impl<'a> From<&'a SignedEntry> for Head<'a> {
    /// A head at the trust the entry claims: for entries signed here, or checked alone.
    fn from(entry: &'a SignedEntry) -> Self {
        Self {
            entry,
            trust: entry.trust_score(),
        }
    }
}
