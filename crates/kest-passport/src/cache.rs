//! Entries whose signatures this process has already checked.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use kest_crypto::VerifyingKey;
use lru::LruCache;

use crate::signed::{EntryHash, SignedEntry};

/// How many verified entries a [`VerifiedEntries`] keeps by default.
pub const DEFAULT_VERIFIED_ENTRIES: usize = 4096;

/// A bounded cache of entries whose signatures were verified, keyed by entry hash (the
/// SHA-256 of the whole JWS), with the key that verified each.
///
/// Services along a pipeline receive the same prefix over and over: each hop adds one
/// entry to a passport the next hop has mostly seen. With a cache, a [`crate::Verifier`]
/// checks the signature of each entry once per process; an entry seen before costs a
/// hash, a lookup, and a check that the key that verified it is still trusted for its
/// principal (so removing a key from the resolver takes effect at once). The label audit
/// and the chain rules still run over the whole passport every time.
///
/// Least recently used entries are dropped past the capacity. Cheap to share (`Arc`).
///
/// ```
/// use kest_passport::VerifiedEntries;
/// let cache = VerifiedEntries::new(1024);
/// assert_eq!(cache.len(), 0);
/// assert_eq!(cache.hits(), 0);
/// ```
pub struct VerifiedEntries {
    entries: Mutex<LruCache<EntryHash, Cached>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) entry: Arc<SignedEntry>,
    pub(crate) key: VerifyingKey,
}

impl fmt::Debug for VerifiedEntries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedEntries")
            .field("len", &self.len())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

impl Default for VerifiedEntries {
    fn default() -> Self {
        Self::new(DEFAULT_VERIFIED_ENTRIES)
    }
}

impl VerifiedEntries {
    /// A cache holding at most `capacity` entries (at least one).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<EntryHash, Cached>> {
        // Every operation leaves the map consistent, so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of entries held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries found in the cache so far (their signatures were not checked again).
    #[must_use]
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Entries not found, whose signatures were checked.
    #[must_use]
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Forgets every entry (after a key was revoked, say; removing the key from the
    /// resolver is enough, since each hit is checked against it).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Looks up every hash under one lock.
    pub(crate) fn get_all(&self, hashes: &[EntryHash]) -> Vec<Option<Cached>> {
        let mut entries = self.lock();
        hashes
            .iter()
            .map(|hash| entries.get(hash).cloned())
            .collect()
    }

    /// Records entries just verified, under one lock.
    pub(crate) fn insert_all(&self, verified: impl IntoIterator<Item = Cached>) {
        let mut entries = self.lock();
        for cached in verified {
            entries.put(cached.entry.hash(), cached);
        }
    }

    pub(crate) fn count(&self, hits: u64, misses: u64) {
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses.fetch_add(misses, Ordering::Relaxed);
    }
}
