//! Keys, JWS compact signatures and key resolvers for Kest lineage entries.
//!
//! Every Kest entry is a JWS compact serialization signed with Ed25519 (or ES256 for keys
//! from SPIFFE and AWS KMS). This crate loads keys, signs and verifies JWS, and answers the
//! verifier's question "which key may sign for this principal?".
//!
//! ```
//! use kest_crypto::{CompactJws, KeySigner, SigningKey, sign_compact};
//!
//! let key = SigningKey::from_ed25519_seed(&[42; 32])?;
//! let public = key.verifying_key().clone();
//! let signer = KeySigner::new(key, "spiffe://example.org/worker");
//!
//! let jws = sign_compact(&signer, br#"{"operation":"ingest"}"#)?;
//! let parsed = CompactJws::parse(&jws)?;
//! assert_eq!(parsed.header().kid.as_deref(), Some("spiffe://example.org/worker"));
//! parsed.verify_with(&public)?;
//!
//! // One flipped payload byte and the signature no longer verifies.
//! let mut forged = jws.clone().into_bytes();
//! forged[60] ^= 1;
//! let forged = String::from_utf8(forged).unwrap();
//! assert!(CompactJws::parse(&forged).and_then(|jws| jws.verify_with(&public)).is_err());
//! # Ok::<(), kest_crypto::CryptoError>(())
//! ```
//!
//! What verification rejects: `alg: none` (always, whatever the key), an `alg` that is not
//! the key's algorithm (an ES256 header against an Ed25519 key and the reverse), segments
//! that are not exactly three, base64url that is padded, malformed or carries stray bits,
//! signatures of the wrong length, duplicate header members, a `crit` header, and any
//! signature that does not verify. Ed25519 verification is `ring`'s, which accepts exactly
//! the signatures the Wycheproof vectors mark valid.
//!
//! Private keys ([`SigningKey`]) are not `Clone`, print as `[secret key elided]` and wipe the
//! key bytes they hold when dropped; see [`SigningKey`] for the one copy `ring` keeps.

mod alg;
mod binding;
mod error;
mod jwk;
mod jws;
mod keys;
mod resolver;

pub use alg::Algorithm;
pub use binding::PrincipalBinding;
pub use error::{CryptoError, KeyDefect};
pub use jwk::{Jwk, Jwks, MAX_JWK_BYTES, PrivateJwk, SecretString};
pub use jws::{
    CompactJws, JwsHeader, KeySigner, MAX_JWS_BYTES, Signer, encode_header,
    encode_header_with_chain, es256_signature_from_der, sign_compact, signing_input, verify_parts,
};
pub use keys::{SigningKey, VerifyingKey};
pub use resolver::{
    JwksKeyResolver, KeyQuery, KeyResolver, KeySources, MAX_CANDIDATE_KEYS, Refresh,
    StaticKeyResolver,
};
