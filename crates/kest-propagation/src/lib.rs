//! Carrying Kest lineage between services: the W3C `baggage` codec, the passport tiers,
//! and verified ingress.
//!
//! Nothing that arrives in `baggage` is trusted before it is verified: an inbound passport
//! (any tier) is checked against the keys the service trusts ([`Ingress`]) before a flow
//! can continue from it.
//!
//! ```
//! use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
//! use kest_passport::{EntryBuilder, Passport, Verifier};
//! use kest_propagation::{Baggage, InboundPassport, compress_passport, keys};
//! use kest_trust::WeakestLink;
//!
//! // What a caller sends for a mid-sized passport: the compressed tier and the tip.
//! let key = SigningKey::from_ed25519_seed(&[1; 32])?;
//! let trusted = StaticKeyResolver::new().with_key("spiffe://example.org/caller", key.verifying_key().clone());
//! let mut passport = Passport::new();
//! let signer = KeySigner::new(key, "spiffe://example.org/caller");
//! passport.append(EntryBuilder::new("fetch").principal("spiffe://example.org/caller"), &signer, &WeakestLink)?;
//! let mut baggage = Baggage::new();
//! baggage.set(keys::PASSPORT_Z, compress_passport(&passport.to_json()))?;
//! baggage.set(keys::CHAIN_TIP, passport.tip_hash().unwrap().to_hex())?;
//! let header = baggage.to_header();
//! assert!(header.starts_with("kest.passport_z=eA"));
//!
//! // What a receiver does with it: verify, then continue from what verified.
//! let inbound = InboundPassport::from_baggage(&Baggage::parse(&header, &Default::default())?);
//! let report = inbound.choose_verified(None, &Verifier::new(&trusted), &Default::default())?.unwrap();
//! assert_eq!(report.passport(), &passport);
//! // A receiver that does not trust the caller's key refuses it.
//! let nobody = StaticKeyResolver::new();
//! assert!(inbound.choose_verified(None, &Verifier::new(&nobody), &Default::default()).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ambient;
mod baggage;
mod claims;
mod codec;
mod error;
mod ingress;
pub mod keys;
pub mod metrics;
#[cfg(any(feature = "tower", feature = "reqwest"))]
pub mod middleware;
mod tiers;

pub use ambient::{
    Caller, Flow, current_agent, current_jwt, current_passport, current_task, current_user,
    fork_current,
};
pub use baggage::{Baggage, BaggageLimits, Member};
#[cfg(feature = "redis")]
pub use claims::RedisClaimStore;
pub use claims::{ClaimStore, DEFAULT_CLAIM_TTL, MemoryClaimStore, claim_store_from_setting};
pub use codec::{BaggageTier, PassportCodec};
pub use error::PropagationError;
pub use ingress::{Boundary, DEFAULT_EDGE_ORIGIN, Ingress};

/// The environment variables this crate reads.
pub mod env {
    pub use crate::ingress::ENV_INSECURE_UNVERIFIED_LINEAGE;
    #[cfg(feature = "tower")]
    pub use crate::middleware::ENV_INSECURE_NO_VERIFY;
}
#[cfg(feature = "reqwest")]
pub use middleware::PropagateLineage;
#[cfg(feature = "tower")]
pub use middleware::{
    ClaimDefaults, ClaimNames, IdentityLayer, JWKS_PATH, LineageLayer, PublishKeysLayer,
    workload_jwks,
};
pub use tiers::{
    AnnouncedTip, DEFAULT_INLINE_THRESHOLD, InboundPassport, RawPassport, TierChoice, choose_tier,
    choose_tier_past_inline, claim_store_key, compress_passport, decompress_passport,
};
