//! Carrying Kest lineage between services: the W3C `baggage` codec and the passport tiers.
//!
//! ```
//! use kest_propagation::{Baggage, InboundPassport, KEY_CHAIN_TIP, KEY_PASSPORT_Z, compress_passport};
//!
//! // What a caller sends for a mid-sized passport: the compressed tier and the tip.
//! let json = "[]";
//! let mut baggage = Baggage::new();
//! baggage.set(KEY_PASSPORT_Z, compress_passport(json))?;
//! let header = baggage.to_header();
//! assert!(header.starts_with("kest.passport_z=eA"));
//!
//! // What a receiver does with it.
//! let inbound = InboundPassport::from_baggage(&Baggage::parse(&header, &Default::default())?);
//! let passport = inbound.choose(None, &Default::default())?.unwrap();
//! assert!(passport.is_empty());
//! # Ok::<(), kest_propagation::PropagationError>(())
//! ```

mod ambient;
mod baggage;
mod claims;
mod codec;
mod error;
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
pub use claims::{ClaimStore, DEFAULT_CLAIM_TTL, MemoryClaimStore};
pub use codec::{KEST_KEYS, PassportCodec, Tier};
pub use error::PropagationError;
#[cfg(feature = "reqwest")]
pub use middleware::PropagateLineage;
#[cfg(feature = "tower")]
pub use middleware::{ClaimNames, IdentityLayer, LineageLayer};
pub use tiers::{
    CLAIM_KEY_PREFIX, DEFAULT_INLINE_THRESHOLD, InboundPassport, KEY_AGENT, KEY_CHAIN_TIP,
    KEY_CLAIM_CHECK, KEY_JWT, KEY_PASSPORT, KEY_PASSPORT_Z, KEY_TASK, KEY_USER, claim_store_key,
    compress_passport, decompress_passport,
};
