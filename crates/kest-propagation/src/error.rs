//! The one error type of this crate.

use kest_passport::PassportError;
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
    /// A passport member whose passport is malformed.
    #[error("`{key}` does not hold a valid passport: {source}")]
    Passport {
        /// The member.
        key: &'static str,
        /// Why the passport was rejected.
        source: PassportError,
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
    /// A claim-check store failed.
    #[error("claim-check store failed: {reason}")]
    Store {
        /// What failed.
        reason: String,
    },
    /// The identity layer was asked to run without verifying tokens, and
    /// `KEST_INSECURE_NO_VERIFY` is not `true`.
    #[error(
        "the identity layer needs a JWKS to verify bearer tokens; set KEST_INSECURE_NO_VERIFY=true only for local development"
    )]
    Insecure,
}
