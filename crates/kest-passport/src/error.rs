//! Errors: building entries, decoding passports and verifying them.

use std::fmt;

use kest_canon::Sha256Digest;
use kest_crypto::CryptoError;
use thiserror::Error;

/// Why an entry, or a passport, was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PassportError {
    /// The passport text is larger than the configured limit.
    #[error("passport is {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The passport has more entries than the configured limit.
    #[error("passport has more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// The passport text is not a JSON array of strings.
    #[error("passport is not a JSON array of JWS strings: {reason}")]
    NotAnArray {
        /// What the parser said.
        reason: String,
    },
    /// One entry is at fault. The message names its index, its `entry_id` where it could
    /// be read, and the cause.
    #[error("entry {index}{}: {fault}", EntryIdSuffix(entry_id.as_deref()))]
    Entry {
        /// Position in the passport, from 0.
        index: usize,
        /// The entry's `entry_id`, when the payload could be read.
        entry_id: Option<String>,
        /// What is wrong.
        fault: EntryFault,
    },
    /// The passport's last entry is not the expected chain tip: entries were dropped from
    /// the end (truncation) or added to it.
    #[error("chain tip is {found}, expected {expected}: the passport was truncated or extended")]
    TipMismatch {
        /// The tip that was expected (`kest.chain_tip`, or an audit record).
        expected: Sha256Digest,
        /// The hash of the last entry, or `none` for an empty passport.
        found: TipText,
    },
    /// An entry could not be built: a required field is missing or invalid.
    #[error("cannot build entry: {reason}")]
    Build {
        /// What is missing or invalid.
        reason: String,
    },
    /// Signing failed. No entry is produced.
    #[error("cannot sign entry: {0}")]
    Signing(CryptoError),
}

impl PassportError {
    /// A short, fixed name for the cause, for metrics and logs that must not carry text
    /// from outside: the entry's fault kind, or the passport-level failure.
    ///
    /// ```
    /// use kest_passport::Verifier;
    /// let keys = kest_crypto::StaticKeyResolver::new();
    /// let error = Verifier::new(&keys).verify_json("{}").unwrap_err();
    /// assert_eq!(error.kind(), "not_a_passport");
    /// ```
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::TooManyEntries { .. } => "too_many_entries",
            Self::NotAnArray { .. } => "not_a_passport",
            Self::Entry { fault, .. } => fault.kind(),
            Self::TipMismatch { .. } => "tip_mismatch",
            Self::Build { .. } => "build",
            Self::Signing(_) => "signing",
        }
    }

    /// The index of the entry at fault, if the error concerns one entry.
    #[must_use]
    pub const fn index(&self) -> Option<usize> {
        match self {
            Self::Entry { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The fault, if the error concerns one entry.
    #[must_use]
    pub const fn fault(&self) -> Option<&EntryFault> {
        match self {
            Self::Entry { fault, .. } => Some(fault),
            _ => None,
        }
    }
}

/// A chain tip as text, or `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipText(pub Option<Sha256Digest>);

impl fmt::Display for TipText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(hash) => write!(f, "{hash}"),
            None => f.write_str("none (empty passport)"),
        }
    }
}

struct EntryIdSuffix<'a>(Option<&'a str>);

impl fmt::Display for EntryIdSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (`{id}`)"),
            None => Ok(()),
        }
    }
}

impl EntryFault {
    /// A short, fixed name for the fault (see [`PassportError::kind`]).
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Jws(_) => "malformed_jws",
            Self::PayloadNotJson { .. } => "payload_not_json",
            Self::Schema { .. } => "schema",
            Self::NotCanonical => "not_canonical",
            Self::Key(_) => "unknown_key",
            Self::Signature(_) => "bad_signature",
            Self::DuplicateEntry { .. } => "duplicate_entry",
            Self::DuplicateEntryId { .. } => "duplicate_entry_id",
            Self::FirstNotRoot => "first_not_root",
            Self::SplicedRoot => "spliced_root",
            Self::UnknownParent { .. } => "unknown_parent",
            Self::Dangling => "dangling",
            Self::TaintDropped { .. } => "taint_dropped",
            Self::TooComplex => "too_complex",
            Self::UndeclaredTrustRaise { .. } => "undeclared_trust_raise",
        }
    }
}

/// What is wrong with one entry of a passport.
///
/// Not `#[non_exhaustive]`: code that maps verification failures to decisions should be
/// told by the compiler when a new cause appears.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryFault {
    /// The JWS is malformed (segments, base64url, header, `alg`).
    #[error("{0}")]
    Jws(CryptoError),
    /// The payload is not a JSON object.
    #[error("payload is not a JSON object: {reason}")]
    PayloadNotJson {
        /// What the parser said.
        reason: String,
    },
    /// The payload violates the entry schema (the [entry schema](https://github.com/kest-dev/kest-rust/blob/main/docs/src/wire-format.md#entry-payload)).
    #[error("payload field `{field}` {reason}")]
    Schema {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The payload is valid JSON but not in RFC 8785 canonical form, so its bytes are not
    /// the bytes any Kest runtime would have signed.
    #[error("payload is not in RFC 8785 canonical form")]
    NotCanonical,
    /// No key could be found for the entry's principal (or `kid`).
    #[error("{0}")]
    Key(CryptoError),
    /// The signature does not verify under the principal's key, or its `alg` is not the
    /// key's.
    #[error("{0}")]
    Signature(CryptoError),
    /// The same entry appears twice.
    #[error("duplicate of entry {first}")]
    DuplicateEntry {
        /// Where it first appeared.
        first: usize,
    },
    /// Two entries share an `entry_id`.
    #[error("`entry_id` already used by entry {first}")]
    DuplicateEntryId {
        /// Where it first appeared.
        first: usize,
    },
    /// The first entry is not a root (`parent_ids` `["0"]`).
    #[error("the first entry must be a root (`parent_ids` [\"0\"])")]
    FirstNotRoot,
    /// A root after the first entry: a foreign chain spliced in.
    #[error("a second root: only the first entry may have `parent_ids` [\"0\"]")]
    SplicedRoot,
    /// A parent hash that names no earlier entry: an entry was dropped or reordered.
    #[error("parent {parent} is not an earlier entry of this passport")]
    UnknownParent {
        /// The missing parent.
        parent: Sha256Digest,
    },
    /// An entry that no later entry builds on, other than the last: a passport is the
    /// ancestry of its tip, with no loose branches.
    #[error("no later entry has this entry as a parent: a dangling branch")]
    Dangling,
    /// A taint vanished without being listed in `removed_taints`.
    #[error("taint `{taint}` from a parent vanished without being listed in `removed_taints`")]
    TaintDropped {
        /// The taint.
        taint: String,
    },
    /// Checking this entry's labels would cost more than the passport's size allows: a
    /// DAG shaped to make the audit quadratic (many parents with many distinct taints).
    /// No honest passport comes near the budget, which grows with the passport's size.
    #[error("auditing this entry exceeds the work budget for a passport of this size")]
    TooComplex,
    /// Trust rose above the parents' minimum without a declared override (strict mode).
    #[error("trust rose from {bound} to {trust} without a declared `kest.trust_override`")]
    UndeclaredTrustRaise {
        /// The weakest-link bound from the parents.
        bound: u8,
        /// The entry's trust score.
        trust: u8,
    },
}
