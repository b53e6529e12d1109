//! The passport: an append-only, hash-linked list of signed entries.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use kest_crypto::Signer;
use kest_trust::{TaintSet, TrustEvaluator, TrustScore};

use crate::builder::EntryBuilder;
use crate::error::{EntryFault, PassportError};
use crate::signed::{EntryHash, SignedEntry};
use crate::wire;

/// Bounds on what [`Passport::decode`] and the verifier accept, so that hostile input
/// cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest passport text, in bytes. Default 16 MiB.
    pub max_bytes: usize,
    /// Most entries. Default 10,000.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            max_entries: 10_000,
        }
    }
}

/// A passport: the signed entries of a lineage, oldest first.
///
/// It is a persistent list. Cloning is O(1) and gives an independent passport that shares
/// its history: that is how a concurrent branch forks. [`Passport::push`] and
/// [`Passport::append`] are O(1) on a linear chain; the tip hash, the tip's taints and the
/// minimum trust over all entries are cached. Branches come back together with
/// [`Passport::join`], after which the next appended entry records every branch tip as a
/// parent.
///
/// ```
/// use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
/// use kest_passport::{EntryBuilder, Passport, Verifier};
/// use kest_trust::WeakestLink;
///
/// let key = SigningKey::from_ed25519_seed(&[1; 32])?;
/// let resolver = StaticKeyResolver::new().with_key("spiffe://x/w", key.verifying_key().clone());
/// let signer = KeySigner::new(key, "spiffe://x/w");
///
/// let mut passport = Passport::new();
/// passport.append(EntryBuilder::new("fetch").principal("spiffe://x/w"), &signer, &WeakestLink)?;
/// let mut branch = passport.clone(); // fork
/// branch.append(EntryBuilder::new("enrich").principal("spiffe://x/w"), &signer, &WeakestLink)?;
/// passport.append(EntryBuilder::new("score").principal("spiffe://x/w"), &signer, &WeakestLink)?;
///
/// let mut joined = Passport::join(&[&passport, &branch])?;
/// joined.append(EntryBuilder::new("merge").principal("spiffe://x/w"), &signer, &WeakestLink)?;
/// assert_eq!(joined.tip().unwrap().entry().parents().hashes().len(), 2);
///
/// let text = joined.to_json();
/// let report = Verifier::new(&resolver).verify_json(&text)?;
/// assert_eq!(report.len(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct Passport {
    head: Option<Arc<Node>>,
}

struct Node {
    entry: Arc<SignedEntry>,
    prev: Option<Arc<Node>>,
    len: usize,
    min_trust: TrustScore,
    /// Entries no later entry builds on yet: the tip, or every branch tip after a join.
    heads: Arc<[EntryHash]>,
}

impl Drop for Passport {
    /// Unlinks nodes one at a time, so dropping a long passport cannot overflow the stack.
    fn drop(&mut self) {
        let mut next = self.head.take();
        while let Some(node) = next {
            match Arc::try_unwrap(node) {
                Ok(mut node) => next = node.prev.take(),
                Err(_) => break,
            }
        }
    }
}

impl fmt::Debug for Passport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passport")
            .field("len", &self.len())
            .field("tip", &self.tip_hash())
            .finish()
    }
}

impl PartialEq for Passport {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.entries() == other.entries()
    }
}

impl Eq for Passport {}

impl Passport {
    /// The empty passport, `[]` on the wire.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.head.as_ref().map_or(0, |node| node.len)
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// The last entry.
    #[must_use]
    pub fn tip(&self) -> Option<&SignedEntry> {
        self.head.as_deref().map(|node| &*node.entry)
    }

    /// The hash of the last entry: the `kest.chain_tip`.
    #[must_use]
    pub fn tip_hash(&self) -> Option<EntryHash> {
        self.tip().map(SignedEntry::hash)
    }

    /// The lowest trust score of any entry.
    #[must_use]
    pub fn min_trust(&self) -> Option<TrustScore> {
        self.head.as_ref().map(|node| node.min_trust)
    }

    /// The taints in effect at the tip. Each entry's taints fold in its whole history.
    #[must_use]
    pub fn current_taints(&self) -> TaintSet {
        self.tip()
            .map(|tip| tip.entry().taints())
            .unwrap_or_default()
    }

    /// The entries no later entry builds on: the tip, or every branch tip after
    /// [`Passport::join`]. The next appended entry takes them all as parents.
    #[must_use]
    pub fn heads(&self) -> &[EntryHash] {
        self.head.as_deref().map_or(&[], |node| &node.heads)
    }

    /// The entries, oldest first. O(n).
    #[must_use]
    pub fn entries(&self) -> Vec<&SignedEntry> {
        let mut out = Vec::with_capacity(self.len());
        let mut current = self.head.as_deref();
        while let Some(node) = current {
            out.push(&*node.entry);
            current = node.prev.as_deref();
        }
        out.reverse();
        out
    }

    /// The entry with `hash`, searching from the tip. O(distance from the tip).
    #[must_use]
    pub fn find(&self, hash: &EntryHash) -> Option<&SignedEntry> {
        let mut current = self.head.as_deref();
        while let Some(node) = current {
            if node.entry.hash() == *hash {
                return Some(&node.entry);
            }
            current = node.prev.as_deref();
        }
        None
    }

    /// The head entries, which the next entry builds on.
    #[must_use]
    pub fn head_entries(&self) -> Vec<&SignedEntry> {
        match (self.tip(), self.heads()) {
            (Some(tip), [only]) if *only == tip.hash() => vec![tip],
            (_, heads) => heads.iter().filter_map(|hash| self.find(hash)).collect(),
        }
    }

    /// Adds a signed entry after checking its place: the first entry must be a root, no
    /// later entry may be one, every parent must already be here, and the entry must not
    /// be here already. O(1) when the parents are the current heads.
    ///
    /// The signature is not checked: entries are signed by the caller's own signer or come
    /// from [`Passport::decode`]; [`crate::Verifier`] checks signatures.
    ///
    /// # Errors
    /// [`PassportError::Entry`] naming the fault.
    pub fn push(&mut self, entry: SignedEntry) -> Result<(), PassportError> {
        let index = self.len();
        let fault = |fault| PassportError::Entry {
            index,
            entry_id: Some(entry.entry().entry_id().to_string()),
            fault,
        };
        let parents = entry.entry().parents().hashes();
        match (&self.head, entry.entry().parents().is_root()) {
            (None, false) => return Err(fault(EntryFault::FirstNotRoot)),
            (Some(_), true) => return Err(fault(EntryFault::SplicedRoot)),
            _ => {}
        }
        let heads = self.heads();
        if heads.contains(&entry.hash()) {
            return Err(fault(EntryFault::DuplicateEntry {
                first: self.index_of(&entry.hash()).unwrap_or_default(),
            }));
        }
        let distant: Vec<&EntryHash> = parents.iter().filter(|p| !heads.contains(p)).collect();
        if !distant.is_empty() {
            self.check_distant_parents(&entry, &distant)
                .map_err(fault)?;
        }
        let mut new_heads: Vec<EntryHash> = heads
            .iter()
            .filter(|h| !parents.contains(h))
            .copied()
            .collect();
        new_heads.push(entry.hash());
        let min_trust = self.min_trust().map_or(entry.entry().trust_score(), |min| {
            min.min(entry.entry().trust_score())
        });
        self.head = Some(Arc::new(Node {
            entry: Arc::new(entry),
            prev: self.head.take(),
            len: index + 1,
            min_trust,
            heads: new_heads.into(),
        }));
        Ok(())
    }

    /// One backwards scan that finds every non-head parent and spots a duplicate.
    fn check_distant_parents(
        &self,
        entry: &SignedEntry,
        distant: &[&EntryHash],
    ) -> Result<(), EntryFault> {
        let mut missing: HashSet<&EntryHash> = distant.iter().copied().collect();
        let mut current = self.head.as_deref();
        while let Some(node) = current {
            let hash = node.entry.hash();
            if hash == entry.hash() {
                return Err(EntryFault::DuplicateEntry {
                    first: node.len - 1,
                });
            }
            missing.remove(&hash);
            current = node.prev.as_deref();
        }
        match missing.into_iter().next() {
            Some(parent) => Err(EntryFault::UnknownParent { parent: *parent }),
            None => Ok(()),
        }
    }

    fn index_of(&self, hash: &EntryHash) -> Option<usize> {
        let mut current = self.head.as_deref();
        while let Some(node) = current {
            if node.entry.hash() == *hash {
                return Some(node.len - 1);
            }
            current = node.prev.as_deref();
        }
        None
    }

    /// Builds the next entry on the heads (trust and taints derived by `evaluator`), signs
    /// it and appends it. Returns the new tip.
    ///
    /// # Errors
    /// [`PassportError::Build`] or [`PassportError::Signing`]; the passport is unchanged.
    pub fn append(
        &mut self,
        builder: EntryBuilder,
        signer: &dyn Signer,
        evaluator: &dyn TrustEvaluator,
    ) -> Result<&SignedEntry, PassportError> {
        let entry = builder.build_on(&self.head_entries(), evaluator)?;
        let signed = SignedEntry::sign(entry, signer)?;
        self.push(signed)?;
        self.tip().ok_or_else(|| PassportError::Build {
            reason: "passport is empty after append".into(),
        })
    }

    /// Merges branches that forked from one passport. Entries are kept once, each branch's
    /// in its own order, so every parent still precedes its children. The heads of the
    /// result are the branch tips; append the joining entry next.
    ///
    /// # Errors
    /// [`PassportError::Entry`] when the branches do not share their root.
    pub fn join(branches: &[&Self]) -> Result<Self, PassportError> {
        let Some((first, rest)) = branches.split_first() else {
            return Ok(Self::new());
        };
        let mut joined = (*first).clone();
        let mut known: HashSet<EntryHash> = joined.entries().iter().map(|e| e.hash()).collect();
        for branch in rest {
            for entry in branch.entries() {
                if known.insert(entry.hash()) {
                    joined.push(entry.clone())?;
                }
            }
        }
        Ok(joined)
    }

    /// The wire form: a compact JSON array of the JWS strings, oldest first.
    #[must_use]
    pub fn to_json(&self) -> String {
        let entries = self.entries();
        let size: usize = entries.iter().map(|e| e.jws().len() + 3).sum();
        let mut out = String::with_capacity(size + 2);
        out.push('[');
        for (index, entry) in entries.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            // A JWS holds only base64url characters and dots: nothing to escape.
            out.push('"');
            out.push_str(entry.jws());
            out.push('"');
        }
        out.push(']');
        out
    }

    /// Reads a passport from its wire form (any JSON whitespace, as the Python package
    /// writes `", "`), within `limits`.
    ///
    /// Checks every entry's shape, canonical payload and schema, the parent links, and
    /// duplicates. It does **not** check signatures or labels: use [`crate::Verifier`]
    /// for anything received from elsewhere.
    ///
    /// # Errors
    /// [`PassportError`] naming the index and cause of the first problem.
    pub fn decode(text: &str, limits: &Limits) -> Result<Self, PassportError> {
        let jws_list = wire::parse_list(text, limits)?;
        let parsed = crate::verify::parse_all(&jws_list, None);
        let mut passport = Self::new();
        let mut seen_ids: HashMap<uuid::Uuid, usize> = HashMap::new();
        for (index, result) in parsed.into_iter().enumerate() {
            let entry = result.map_err(|failure| PassportError::Entry {
                index,
                entry_id: failure.entry_id,
                fault: failure.fault,
            })?;
            if let Some(first) = seen_ids.insert(entry.entry().entry_id(), index) {
                return Err(PassportError::Entry {
                    index,
                    entry_id: Some(entry.entry().entry_id().to_string()),
                    fault: EntryFault::DuplicateEntryId { first },
                });
            }
            passport.push(entry)?;
        }
        Ok(passport)
    }
}
