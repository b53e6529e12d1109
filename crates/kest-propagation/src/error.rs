//! The one error type of this crate.

use kest_crypto::CryptoError;
use kest_passport::{EntryFault, PassportError};
use thiserror::Error;

/// Why baggage could not be read or written, or a passport not carried.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PropagationError {
    /// The header is longer than the limit.
    #[error("baggage is {len} bytes, over the limit of {limit}")]
    BaggageTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// More list members than the limit.
    #[error("baggage has more than {limit} members")]
    TooManyMembers {
        /// The limit.
        limit: usize,
    },
    /// A list member that is not `key=value[;properties]`.
    #[error("baggage member {index} is malformed: {reason}")]
    MalformedMember {
        /// Position of the member, from 0.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A `kest.passport_z` value that is not base64url of zlib data, or inflates past the
    /// size limit.
    #[error("`kest.passport_z` does not decode: {reason}")]
    Compressed {
        /// What is wrong.
        reason: String,
    },
    /// A passport member that is refused: it does not decode, or it does not verify
    /// against the trusted keys (the cause names the entry's index, its `entry_id` and
    /// what failed, exactly as `kest verify` reports it).
    #[error("`{key}` is refused: {source}")]
    Passport {
        /// The member.
        key: &'static str,
        /// Why the passport was rejected.
        source: PassportError,
    },
    /// `kest.chain_tip` is neither `0` nor the 64 hex digits of an entry hash.
    #[error("`kest.chain_tip` `{value}` is not an entry hash")]
    MalformedTip {
        /// The value sent, escaped and shortened.
        value: String,
    },
    /// Two passport members verify but tell different stories, and nothing says which
    /// one is meant.
    #[error("baggage members `{first}` and `{second}` conflict: {reason}")]
    ConflictingMembers {
        /// One member.
        first: &'static str,
        /// The other.
        second: &'static str,
        /// How they differ.
        reason: String,
    },
    /// `kest.chain_tip` is present but no passport member could be read: the chain cannot
    /// be continued, and must not restart as a fresh root.
    #[error("`kest.chain_tip` {tip} is present but no readable passport travels with it")]
    TipWithoutPassport {
        /// The tip that was announced.
        tip: String,
    },
    /// No passport member matches `kest.chain_tip`.
    #[error("no passport in the baggage ends at `kest.chain_tip` {tip}")]
    TipMismatch {
        /// The announced tip.
        tip: String,
    },
    /// A claim check arrived and there is no store to redeem it from.
    #[error("`kest.claim_check` {id} needs a claim-check store, and none is configured")]
    NoClaimStore {
        /// The claim id.
        id: String,
    },
    /// A claim check whose passport is not in the store (expired or never stored).
    #[error("claim check {id} was not found in the store")]
    ClaimNotFound {
        /// The claim id.
        id: String,
    },
    /// A claim check whose stored value is larger than a passport may be. It was
    /// measured in the store and never read.
    #[error("claim `{claim}` holds {size} bytes, over the limit of {limit}; it was not read")]
    ClaimTooLarge {
        /// The claim's store key, escaped.
        claim: String,
        /// The stored value's size in bytes.
        size: u64,
        /// The largest passport accepted.
        limit: usize,
    },
    /// A claim check whose stored value cannot be a passport's text: not a string, or not
    /// UTF-8.
    #[error("claim `{claim}` does not hold a passport: {reason}")]
    ClaimUnreadable {
        /// The claim's store key, escaped.
        claim: String,
        /// What it holds instead.
        reason: String,
    },
    /// An internal service received a request that carries no passport: it is refused
    /// before anything runs (see [`crate::Boundary::Internal`]).
    #[error(
        "no lineage: this service is internal and accepts only requests that carry a verified passport"
    )]
    NoLineage,
    /// A `baggage` header whose value is not visible ASCII (W3C baggage percent-encodes
    /// everything else).
    #[error("`baggage` header {index} is not visible ASCII text")]
    HeaderNotText {
        /// Which `baggage` header (0 for the first).
        index: usize,
    },
    /// A claim-check store failed.
    #[error("claim-check store failed: {reason}")]
    Store {
        /// What failed.
        reason: String,
    },
    /// A setting (a claim store, say) that names nothing this build can make.
    #[error("{what} `{value}`: {reason}")]
    InvalidSetting {
        /// What the setting configures.
        what: &'static str,
        /// The value given, escaped and shortened.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// Inbound lineage was to be accepted without verification, and
    /// `KEST_INSECURE_UNVERIFIED_LINEAGE` is not `true`.
    #[error(
        "inbound passports are verified against trusted keys; set KEST_INSECURE_UNVERIFIED_LINEAGE=true only for local development"
    )]
    InsecureIngress,
    /// The identity layer was asked to run without verifying tokens, and
    /// `KEST_INSECURE_NO_VERIFY` is not `true`.
    #[error(
        "the identity layer needs a JWKS to verify bearer tokens; set KEST_INSECURE_NO_VERIFY=true only for local development"
    )]
    Insecure,
}

impl PropagationError {
    /// A short, fixed name for the cause: the `kest.cause` attribute of the
    /// `kest.verification.failures` metric (a passport's own cause when it is one).
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::BaggageTooLarge { .. } => "baggage_too_large",
            Self::TooManyMembers { .. } => "too_many_members",
            Self::MalformedMember { .. } => "malformed_member",
            Self::Compressed { .. } => "compressed_member",
            Self::Passport { source, .. } => source.kind(),
            Self::MalformedTip { .. } => "malformed_tip",
            Self::ConflictingMembers { .. } => "conflicting_members",
            Self::TipWithoutPassport { .. } => "tip_without_passport",
            Self::TipMismatch { .. } => "tip_mismatch",
            Self::NoClaimStore { .. } => "no_claim_store",
            Self::ClaimNotFound { .. } => "claim_not_found",
            Self::Store { .. } => "claim_store",
            Self::ClaimTooLarge { .. } => "claim_too_large",
            Self::ClaimUnreadable { .. } => "claim_unreadable",
            Self::NoLineage => "no_lineage",
            Self::HeaderNotText { .. } => "header_not_text",
            Self::InvalidSetting { .. } => "invalid_setting",
            Self::InsecureIngress | Self::Insecure => "insecure",
        }
    }

    /// Whether the lineage was refused as untrustworthy (a forged, tampered, truncated
    /// or conflicting passport): HTTP 403. Otherwise it could not be read (400) or a store
    /// failed (503).
    #[must_use]
    pub const fn is_untrusted(&self) -> bool {
        matches!(
            self,
            Self::Passport { .. }
                | Self::TipMismatch { .. }
                | Self::ConflictingMembers { .. }
                | Self::NoLineage
        )
    }

    /// Whether a member may have failed only because its signer's key is not known yet:
    /// an unknown principal or key id, a source that holds too many keys to choose from
    /// (another source, not fetched yet, may hold the one), or a signature that none of the
    /// principal's known keys verifies (it may have rotated to a new one). A resolver that fetches keys
    /// from elsewhere may know better after a refresh, which it rate-limits.
    #[must_use]
    pub const fn wants_keys(&self) -> bool {
        matches!(
            self,
            Self::Passport {
                source: PassportError::Entry {
                    fault: EntryFault::Key(
                        CryptoError::UnknownPrincipal { .. }
                            | CryptoError::UnknownKeyId { .. }
                            | CryptoError::AmbiguousKey { .. }
                    ) | EntryFault::Signature(
                        CryptoError::BadSignature | CryptoError::AlgorithmMismatch { .. }
                    ),
                    ..
                },
                ..
            }
        )
    }
}
