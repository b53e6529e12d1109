//! The chain rules, written once: decoding and verification both walk a passport through
//! [`ChainChecker`].
//!
//! - the first entry is a root (`parent_ids` `["0"]`), and no later entry is one;
//! - every parent is an earlier entry;
//! - no entry, and no `entry_id`, appears twice.
//!
//! Every lookup is a hash-map probe, so checking costs O(entries + parent links) whatever
//! the shape of the DAG.

use std::collections::HashMap;

use uuid::Uuid;

use crate::error::EntryFault;
use crate::signed::{EntryHash, SignedEntry};

/// State of one walk over a passport's entries, in order.
#[derive(Debug, Default)]
pub(crate) struct ChainChecker {
    by_hash: HashMap<EntryHash, usize>,
    by_id: HashMap<Uuid, usize>,
    referenced: Vec<bool>,
}

impl ChainChecker {
    pub(crate) fn with_capacity(count: usize) -> Self {
        Self {
            by_hash: HashMap::with_capacity(count),
            by_id: HashMap::with_capacity(count),
            referenced: Vec::with_capacity(count),
        }
    }

    /// Checks the entry at `index` (the next one) and records it. Returns the indices of
    /// its parents, in the order it lists them.
    pub(crate) fn check(
        &mut self,
        index: usize,
        signed: &SignedEntry,
    ) -> Result<Vec<usize>, EntryFault> {
        let entry = signed.entry();
        let hash = signed.hash();
        if let Some(first) = self.by_hash.get(&hash) {
            return Err(EntryFault::DuplicateEntry { first: *first });
        }
        if let Some(first) = self.by_id.get(&entry.entry_id()) {
            return Err(EntryFault::DuplicateEntryId { first: *first });
        }
        let parents = match (index, entry.parents().is_root()) {
            (0, false) => return Err(EntryFault::FirstNotRoot),
            (0, true) => Vec::new(),
            (_, true) => return Err(EntryFault::SplicedRoot),
            _ => entry
                .parents()
                .hashes()
                .iter()
                .map(|parent| {
                    self.by_hash
                        .get(parent)
                        .copied()
                        .ok_or(EntryFault::UnknownParent { parent: *parent })
                })
                .collect::<Result<Vec<usize>, EntryFault>>()?,
        };
        for parent in &parents {
            if let Some(flag) = self.referenced.get_mut(*parent) {
                *flag = true;
            }
        }
        self.record(index, signed);
        Ok(parents)
    }

    fn record(&mut self, index: usize, signed: &SignedEntry) {
        self.by_hash.insert(signed.hash(), index);
        self.by_id.insert(signed.entry_id(), index);
        self.referenced.push(false);
    }

    /// As [`ChainChecker::check`], for showing a passport with its faults: an entry that
    /// breaks a linking rule is still recorded, so the entries built on it link to it
    /// and only the entry at fault is marked. A repeat is not recorded again.
    pub(crate) fn check_marking(
        &mut self,
        index: usize,
        signed: &SignedEntry,
    ) -> Option<EntryFault> {
        match self.check(index, signed) {
            Ok(_) => None,
            Err(
                fault @ (EntryFault::DuplicateEntry { .. } | EntryFault::DuplicateEntryId { .. }),
            ) => {
                self.skip();
                Some(fault)
            }
            Err(fault) => {
                self.record(index, signed);
                Some(fault)
            }
        }
    }

    /// Takes the place of an entry that could not be read, keeping positions aligned.
    pub(crate) fn skip(&mut self) {
        self.referenced.push(true);
    }

    /// The first entry, other than the last, that no later entry builds on: a dangling
    /// branch.
    pub(crate) fn first_dangling(&self) -> Option<usize> {
        let last = self.referenced.len().checked_sub(1)?;
        self.referenced
            .iter()
            .take(last)
            .position(|referenced| !referenced)
    }

    /// The entries no later entry builds on, in passport order: what the next entry
    /// would take as parents.
    pub(crate) fn heads(&self) -> Vec<usize> {
        self.referenced
            .iter()
            .enumerate()
            .filter(|(_, referenced)| !**referenced)
            .map(|(index, _)| index)
            .collect()
    }
}
