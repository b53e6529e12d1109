//! The one error type of this crate.

use kest_crypto::CryptoError;
use kest_passport::PassportError;
use thiserror::Error;

/// Why an identity could not be established, or could not sign.
///
/// Every variant means: no signature, so no entry, so the operation does not run. No
/// provider ever returns an empty or placeholder signature.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A provider (or, for `https`, a transport) this build does not have: it needs a
    /// feature.
    #[error("{provider} needs kest-identity's `{feature}` feature: {why}")]
    Unavailable {
        /// What is missing: "the `mock` identity", "fetching keys over https".
        provider: &'static str,
        /// The feature that adds it.
        feature: &'static str,
        /// Why it is not in every build.
        why: &'static str,
    },
    /// Required configuration is missing: what, and how to provide it.
    #[error("missing configuration: {what}")]
    Missing {
        /// What is missing and how to set it.
        what: String,
    },
    /// Key material that does not load.
    #[error("invalid signing key from {source_name}: {error}")]
    Key {
        /// Where the key came from.
        source_name: String,
        /// Why it was refused.
        error: CryptoError,
    },
    /// A file that cannot be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// An identity token that is malformed, expired, or fails validation.
    #[error("identity token rejected: {reason}")]
    Token {
        /// Why.
        reason: String,
    },
    /// An identity service (OIDC issuer, SPIFFE Workload API, AWS) that cannot be reached or
    /// refused the request.
    #[error("{service} failed: {reason}")]
    Service {
        /// The service.
        service: &'static str,
        /// What failed.
        reason: String,
    },
    /// The signing key changed (an SVID rotated) between describing the identity and
    /// signing; the caller should describe it again.
    #[error("the signing key changed from `{expected}` to `{current}`")]
    KeyChanged {
        /// The key id the caller expected.
        expected: String,
        /// The key id now in use.
        current: String,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(CryptoError),
    /// A peer's published keys that cannot be trusted: no usable signing key, or a
    /// degenerate one.
    #[error("untrusted key set: {0}")]
    Keys(CryptoError),
    /// The entry could not be assembled.
    #[error("cannot sign entry: {0}")]
    Entry(PassportError),
}

impl From<PassportError> for IdentityError {
    fn from(error: PassportError) -> Self {
        Self::Entry(error)
    }
}
