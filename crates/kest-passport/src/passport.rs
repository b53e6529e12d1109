//! The passport: an append-only, hash-linked list of signed entries.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use kest_crypto::Signer;
use kest_trust::{TaintSet, TrustEvaluator, TrustScore};

use crate::builder::EntryBuilder;
use crate::entry::{Entry, Parents};
use crate::error::{EntryFault, PassportError};
use crate::head::Head;
use crate::signed::{EntryHash, SignedEntry};

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
#[derive(Clone)]
pub struct Passport {
    head: Option<Arc<Node>>,
    /// Entries no later entry builds on yet: the tip, or every branch tip after a join.
    /// Held once per passport (not per entry), so a wide DAG costs linear memory.
    heads: Arc<[EntryHash]>,
}

struct Node {
    /// Shared with the verified-entry cache when it came through the verifier.
    entry: Arc<SignedEntry>,
    prev: Option<Arc<Node>>,
    len: usize,
    /// The trust this passport allows the entry: its own score, except for an
    /// undeclared raise that the audit let through (from another runtime), which counts
    /// at the parents' bound.
    trust: TrustScore,
    min_trust: TrustScore,
}

impl Default for Passport {
    fn default() -> Self {
        Self {
            head: None,
            heads: Arc::from([]),
        }
    }
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
            .map(|tip| tip.taints().clone())
            .unwrap_or_default()
    }

    /// The entries no later entry builds on: the tip, or every branch tip after
    /// [`Passport::join`]. The next appended entry takes them all as parents.
    #[must_use]
    pub fn heads(&self) -> &[EntryHash] {
        &self.heads
    }

    /// The entries, oldest first. O(n).
    #[must_use]
    pub fn entries(&self) -> Vec<&SignedEntry> {
        self.nodes().into_iter().map(|node| &*node.entry).collect()
    }

    fn nodes(&self) -> Vec<&Node> {
        let mut out = Vec::with_capacity(self.len());
        let mut current = self.head.as_deref();
        while let Some(node) = current {
            out.push(node);
            current = node.prev.as_deref();
        }
        out.reverse();
        out
    }

    fn find_node(&self, hash: &EntryHash) -> Option<&Node> {
        let mut current = self.head.as_deref();
        while let Some(node) = current {
            if node.entry.hash() == *hash {
                return Some(node);
            }
            current = node.prev.as_deref();
        }
        None
    }

    /// The entry with `hash`, searching from the tip. O(distance from the tip).
    #[must_use]
    pub fn find(&self, hash: &EntryHash) -> Option<&SignedEntry> {
        self.find_node(hash).map(|node| &*node.entry)
    }

    /// The head entries, which the next entry builds on, with the trust this passport
    /// allows each of them.
    #[must_use]
    pub fn head_entries(&self) -> Vec<Head<'_>> {
        fn as_head(node: &Node) -> Head<'_> {
            Head {
                entry: &node.entry,
                trust: node.trust,
            }
        }
        match (self.head.as_deref(), self.heads()) {
            (Some(tip), [only]) if *only == tip.entry.hash() => vec![as_head(tip)],
            (_, heads) => heads
                .iter()
                .filter_map(|hash| self.find_node(hash).map(as_head))
                .collect(),
        }
    }

    /// Adds a signed entry after checking its place: the first entry must be a root, no
    /// later entry may be one, every parent must already be here, and the entry must not
    /// be here already. O(1) when the parents are the current heads.
    ///
    /// Entries are [`SignedEntry`] values: signed here, or verified. Entries read from
    /// elsewhere come in through [`crate::Verifier`] instead.
    ///
    /// # Errors
    /// [`PassportError::Entry`] naming the fault.
    ///
    /// The passport keeps the entry's JWS and what chaining reads, not its parsed payload
    /// (see [`SignedEntry::entry`]). Passports the [`crate::Verifier`] returns keep the
    /// parsed form it read, since their entries are usually read next.
    pub fn push(&mut self, entry: SignedEntry) -> Result<(), PassportError> {
        let trust = entry.trust_score();
        let heads = self.place(&entry, entry.entry().parents())?;
        let held = entry.into_held(self.tip());
        self.attach(Arc::new(held), heads, trust);
        Ok(())
    }

    /// Checks the place of `entry`, whose parents are `parents`: returns the heads after
    /// it, or the fault.
    fn place(
        &self,
        entry: &SignedEntry,
        parents: &Parents,
    ) -> Result<Vec<EntryHash>, PassportError> {
        let fault = |fault| PassportError::Entry {
            index: self.len(),
            entry_id: Some(entry.entry_id().to_string()),
            fault,
        };
        match (&self.head, parents.is_root()) {
            (None, false) => return Err(fault(EntryFault::FirstNotRoot)),
            (Some(_), true) => return Err(fault(EntryFault::SplicedRoot)),
            _ => {}
        }
        let parents = parents.hashes();
        let heads = self.heads();
        if heads.contains(&entry.hash()) {
            return Err(fault(EntryFault::DuplicateEntry {
                first: self.index_of(&entry.hash()).unwrap_or_default(),
            }));
        }
        let distant: Vec<&EntryHash> = parents.iter().filter(|p| !heads.contains(p)).collect();
        if !distant.is_empty() {
            self.check_distant_parents(entry, &distant).map_err(fault)?;
        }
        let mut new_heads: Vec<EntryHash> = heads
            .iter()
            .filter(|h| !parents.contains(h))
            .copied()
            .collect();
        new_heads.push(entry.hash());
        Ok(new_heads)
    }

    /// Adds an entry whose place [`Passport::place`] checked.
    fn attach(&mut self, entry: Arc<SignedEntry>, heads: Vec<EntryHash>, trust: TrustScore) {
        let min_trust = self.min_trust().map_or(trust, |min| min.min(trust));
        let len = self.len() + 1;
        self.head = Some(Arc::new(Node {
            entry,
            prev: self.head.take(),
            len,
            trust,
            min_trust,
        }));
        self.heads = heads.into();
    }

    /// A passport of entries whose chain rules were already checked, in order, each with
    /// the trust the audit allows it, and its heads. Linear, whatever the DAG's shape.
    pub(crate) fn from_checked(
        entries: impl IntoIterator<Item = (Arc<SignedEntry>, TrustScore)>,
        heads: Vec<EntryHash>,
    ) -> Self {
        let mut head: Option<Arc<Node>> = None;
        for (entry, trust) in entries {
            let (len, min_trust) = head
                .as_deref()
                .map_or((1, trust), |node| (node.len + 1, node.min_trust.min(trust)));
            head = Some(Arc::new(Node {
                entry,
                prev: head,
                len,
                trust,
                min_trust,
            }));
        }
        Self {
            head,
            heads: heads.into(),
        }
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

    /// Builds the next entry on the heads (trust and taints derived by `evaluator`) and
    /// has `sign` sign it: the one place entries are made, whether the signer is a local
    /// key ([`Passport::append`]), an identity provider, or the verification hook. The
    /// entry is returned, not appended: push it with [`Passport::push`] (or
    /// [`Passport::append_with`] does both).
    ///
    /// # Errors
    /// [`PassportError::Build`] when the entry cannot be built, or `sign`'s error.
    pub async fn sign_next<S, F, E>(
        &self,
        builder: EntryBuilder,
        evaluator: &dyn TrustEvaluator,
        sign: S,
    ) -> Result<SignedEntry, E>
    where
        S: FnOnce(Entry) -> F,
        F: Future<Output = Result<SignedEntry, E>>,
        E: From<PassportError>,
    {
        let entry = builder.build_on(&self.head_entries(), evaluator)?;
        sign(entry).await
    }

    /// [`Passport::sign_next`], then [`Passport::push`]. Returns the new tip; on an error
    /// the passport is unchanged.
    ///
    /// # Errors
    /// As [`Passport::sign_next`] and [`Passport::push`].
    pub async fn append_with<S, F, E>(
        &mut self,
        builder: EntryBuilder,
        evaluator: &dyn TrustEvaluator,
        sign: S,
    ) -> Result<&SignedEntry, E>
    where
        S: FnOnce(Entry) -> F,
        F: Future<Output = Result<SignedEntry, E>>,
        E: From<PassportError>,
    {
        let signed = self.sign_next(builder, evaluator, sign).await?;
        self.push(signed)?;
        self.tip().ok_or_else(|| {
            E::from(PassportError::Build {
                reason: "passport is empty after append".into(),
            })
        })
    }

    /// Builds the next entry on the heads (trust and taints derived by `evaluator`), signs
    /// it with a local signer and appends it. Returns the new tip.
    ///
    /// # Errors
    /// [`PassportError::Build`] or [`PassportError::Signing`]; the passport is unchanged.
    pub fn append(
        &mut self,
        builder: EntryBuilder,
        signer: &dyn Signer,
        evaluator: &dyn TrustEvaluator,
    ) -> Result<&SignedEntry, PassportError> {
        let signing = self.append_with(builder, evaluator, |entry| {
            std::future::ready(SignedEntry::sign(entry, signer))
        });
        // Signing with a local key never waits: the future is ready on its first poll.
        let mut signing = std::pin::pin!(signing);
        match signing
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => Err(PassportError::Build {
                reason: "a local signature did not complete".into(),
            }),
        }
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
            for node in branch.nodes() {
                if known.insert(node.entry.hash()) {
                    let heads = joined.place(&node.entry, node.entry.entry().parents())?;
                    joined.attach(Arc::clone(&node.entry), heads, node.trust);
                }
            }
        }
        Ok(joined)
    }

    /// The wire form: a compact JSON array of the JWS strings, oldest first.
    #[must_use]
    pub fn to_json(&self) -> String {
        crate::wire::write_list(self.entries().into_iter())
    }
}
