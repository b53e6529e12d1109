//! Taint sets and their algebra.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A set of taint labels, kept sorted and free of duplicates.
///
/// Serializes as a sorted JSON array, as `taints` in an entry payload. Deserializing
/// accepts any order and duplicates, because the Python package writes `list(set)`.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TaintSet(BTreeSet<String>);

impl TaintSet {
    /// The empty set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a taint; returns whether it was new.
    pub fn insert(&mut self, taint: impl Into<String>) -> bool {
        self.0.insert(taint.into())
    }

    /// Removes a taint; returns whether it was present.
    pub fn remove(&mut self, taint: &str) -> bool {
        self.0.remove(taint)
    }

    /// Whether the set holds `taint`.
    #[must_use]
    pub fn contains(&self, taint: &str) -> bool {
        self.0.contains(taint)
    }

    /// Number of taints.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no taints.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The taints in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Adds every taint of `other`.
    pub fn extend_from(&mut self, other: &Self) {
        self.0.extend(other.0.iter().cloned());
    }

    /// The taints of `self` missing from `other`, in sorted order.
    pub fn missing_from<'a>(&'a self, other: &'a Self) -> impl Iterator<Item = &'a str> {
        self.0.difference(&other.0).map(String::as_str)
    }

    /// Whether every taint of `other` is in `self`.
    #[must_use]
    pub fn is_superset(&self, other: &Self) -> bool {
        self.0.is_superset(&other.0)
    }

    /// The rule of the [trust and taint rules](https://github.com/kest-dev/kest-rust/blob/main/docs/src/wire-format.md#trust-and-taints): `(∪ parents ∪ added) − removed`. Parents carry their whole
    /// history, so a removed taint stays removed downstream unless a later entry adds it
    /// again.
    ///
    /// ```
    /// use kest_trust::TaintSet;
    /// let parent: TaintSet = ["pii", "unverified"].into_iter().collect();
    /// let next = TaintSet::derive([&parent], ["external"], ["pii"]);
    /// assert_eq!(next.iter().collect::<Vec<_>>(), ["external", "unverified"]);
    /// ```
    #[must_use]
    pub fn derive<'a, A, R>(
        parents: impl IntoIterator<Item = &'a Self>,
        added: impl IntoIterator<Item = A>,
        removed: impl IntoIterator<Item = R>,
    ) -> Self
    where
        A: Into<String>,
        R: AsRef<str>,
    {
        let mut set = Self::new();
        for parent in parents {
            set.extend_from(parent);
        }
        for taint in added {
            set.insert(taint);
        }
        for taint in removed {
            set.remove(taint.as_ref());
        }
        set
    }
}

impl fmt::Debug for TaintSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

impl<S: Into<String>> FromIterator<S> for TaintSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self(iter.into_iter().map(Into::into).collect())
    }
}

impl<'a> IntoIterator for &'a TaintSet {
    type Item = &'a String;
    type IntoIter = std::collections::btree_set::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'de> Deserialize<'de> for TaintSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(deserializer).map(|taints| taints.into_iter().collect())
    }
}
