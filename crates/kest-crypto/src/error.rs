//! The one error type of this crate.

use kest_canon::CanonError;
use thiserror::Error;

use crate::Algorithm;

/// What makes a public key unusable although it decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDefect {
    /// The bytes are not a point on the curve.
    NotOnCurve,
    /// The point is spelled in a non-canonical way (an unreduced coordinate, or a sign bit
    /// on x = 0): the same key would have two encodings.
    NonCanonical,
    /// The point has small order (one of the eight torsion points): signatures under it
    /// can be forged for any message.
    SmallOrder,
    /// The point has a torsion component: it is not in the prime-order subgroup that every
    /// honestly generated key lies in.
    TorsionComponent,
}

impl std::fmt::Display for KeyDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotOnCurve => "the point is not on the curve",
            Self::NonCanonical => "the point is not canonically encoded",
            Self::SmallOrder => "the point has small order (universal forgery)",
            Self::TorsionComponent => "the point is not in the prime-order subgroup",
        })
    }
}

/// Why a key could not be loaded, a JWS could not be produced, or a JWS did not verify.
///
/// Verification errors are deliberately not `#[non_exhaustive]` within their group: code
/// that decides what a verification failure means should notice when a cause is added.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Key material that does not form a valid key.
    #[error("invalid {format} key: {reason}")]
    InvalidKey {
        /// The format being read: `seed`, `PKCS#8`, `JWK`, `public key`.
        format: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// A public key that is well formed but must never be trusted: see [`KeyDefect`].
    #[error("refused {alg} public key: {defect}")]
    DegenerateKey {
        /// The key's algorithm.
        alg: Algorithm,
        /// What is wrong with it.
        defect: KeyDefect,
    },
    /// A JWK that declares it is not for verifying signatures (`use` other than `sig`,
    /// `key_ops` without `verify`, or an `alg` other than the key's signature algorithm).
    #[error("JWK{} is not a signing key: {reason}", kid.as_deref().map(|k| format!(" `{k}`")).unwrap_or_default())]
    NotASigningKey {
        /// The JWK's `kid`, shortened and escaped.
        kid: Option<String>,
        /// What it declares instead.
        reason: String,
    },
    /// A JWK whose `kty`/`crv` names a key type this crate does not handle.
    #[error("unsupported key type `{kty}` with curve `{crv}`")]
    UnsupportedKeyType {
        /// The JWK `kty`.
        kty: String,
        /// The JWK `crv`, or `-` when absent.
        crv: String,
    },
    /// A JWK that is missing a member or is not JSON.
    #[error("invalid JWK: {reason}")]
    InvalidJwk {
        /// What was wrong with it.
        reason: String,
    },
    /// Base64url or hex that does not decode.
    #[error(transparent)]
    Encoding(#[from] CanonError),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A JWS compact serialization without exactly three `.`-separated segments.
    #[error("a JWS has 3 segments separated by `.`, found {found}")]
    Segments {
        /// How many segments were found.
        found: usize,
    },
    /// A JWS protected header that is not a JSON object with a string `alg`.
    #[error("invalid JWS header: {reason}")]
    Header {
        /// What was wrong with it.
        reason: String,
    },
    /// `alg` is `none`: an unsigned JWS is never accepted.
    #[error("`alg` is `none`: unsigned entries are never accepted")]
    AlgNone,
    /// An `alg` this crate does not implement.
    #[error("unsupported `alg` `{alg}`")]
    UnsupportedAlgorithm {
        /// The header's `alg`.
        alg: String,
    },
    /// The header's `alg` is not the algorithm of the key that must verify it.
    #[error("`alg` `{header}` does not match the key, which is {key}")]
    AlgorithmMismatch {
        /// The header's `alg`.
        header: String,
        /// The key's algorithm.
        key: Algorithm,
    },
    /// A signature of the wrong length for its algorithm.
    #[error("{alg} signatures are {expected} bytes, found {found}")]
    SignatureLength {
        /// The algorithm.
        alg: Algorithm,
        /// Its signature length.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// The signature does not verify under the key.
    #[error("signature does not verify")]
    BadSignature,
    /// An ES256 signature with the high S value. Both `(r, s)` and `(r, n − s)` verify;
    /// only the low-S form is accepted, so a signed entry has one spelling and one hash.
    #[error("ES256 signature has a high S value: only the low-S form is accepted")]
    HighS,
    /// No key is known for this principal.
    #[error("no key is known for principal `{principal}`")]
    UnknownPrincipal {
        /// The principal (workload id).
        principal: String,
    },
    /// The principal has keys, but none with this key id.
    #[error("principal `{principal}` has no key with id `{kid}`")]
    UnknownKeyId {
        /// The principal.
        principal: String,
        /// The header's `kid`.
        kid: String,
    },
    /// The principal has several keys and the header does not say which one signed.
    #[error("principal `{principal}` has {count} keys and the JWS does not name one by `kid`")]
    AmbiguousKey {
        /// The principal.
        principal: String,
        /// How many keys it has.
        count: usize,
    },
    /// The certificate chain in the header (`x5c`) does not prove the key belongs to the
    /// principal: it does not chain to a trusted bundle, was not valid when the entry was
    /// signed, names another identity, or certifies another key.
    #[error("the certificate chain for `{principal}` is not trusted: {reason}")]
    UntrustedChain {
        /// The principal.
        principal: String,
        /// Why.
        reason: String,
    },
    /// A [`crate::PrincipalBinding`] that cannot be read.
    #[error("invalid principal binding `{binding}`: {reason}")]
    InvalidBinding {
        /// The binding's text, shortened and escaped.
        binding: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A bound source of keys holds no key it may use for the principals it is bound to.
    #[error("the key source bound to `{binding}` holds no usable key for it{}", if outside.is_empty() { String::new() } else { format!(" (keys listed for principals outside the binding: {})", outside.join(", ")) })]
    NoKeyInBinding {
        /// The binding, escaped.
        binding: String,
        /// The `kid`s of the keys it listed for someone else, escaped.
        outside: Vec<String>,
    },
}
