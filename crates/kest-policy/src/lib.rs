//! Policy evaluation for Kest: the engine trait and its engines, policy tiers and
//! deviations, the decision cache, and a library of formal access-control models.
//!
//! Nothing runs unless policy allows it. Every engine answers one question: does policy
//! `P` allow this call, given its [`EvaluationContext`]? An engine that cannot answer
//! (unreachable, too slow, garbage back) returns an error, and every caller treats an
//! error as a denial.
//!
//! ```
//! use std::sync::Arc;
//! use kest_policy::{library, EvaluationContext, PolicyConfig, PolicyEngine, TieredPolicies};
//! use kest_trust::TrustScore;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The bundled models, in process.
//! let engine = library::cedar_builder().build()?;
//!
//! // The platform requires `kest/clearance` of every call; this function adds its own.
//! let config = Arc::new(PolicyConfig { platform: vec!["kest/clearance".into()], ..Default::default() });
//! let tiers = TieredPolicies::new(config, Some("ops"), "rotate_keys", vec!["kest/clearance".into()])?;
//!
//! let context = EvaluationContext::builder("spiffe://example.org/ops")
//!     .trust_score(TrustScore::new(90)?)
//!     .value("country", "NL")
//!     .value("restricted_countries", serde_json::json!(["KP"]))
//!     .build()?;
//! let outcome = tiers.evaluate(&engine, &context).await?;
//! assert_eq!(outcome.policy_context.platform_policies, ["kest/clearance"]);
//! # Ok(()) }
//! ```
//!
//! | engine | feature | notes |
//! |---|---|---|
//! | `MockEngine` | `test-util` | allow/deny per policy, counts calls; tests only |
//! | [`CedarEngine`] | `cedar` (default) | action = policy name; context built directly |
//! | [`RegoEngine`] | `rego` (default) | `a/b` is `data.a.b.allow`; input unmodified |
//! | `OpaEngine` | `opa` | `POST /v1/data/<path>`, 1 s timeout |
//! | `CedarAgentEngine` | `cedar-agent` | `POST /v1/is_authorized` |
//! | `VerifiedPermissionsEngine` | `avp` | `IsAuthorized` with the policy name as action id |

#[cfg(feature = "avp")]
mod avp;
mod cache;
#[cfg(feature = "cedar")]
mod cedar;
#[cfg(feature = "cedar-agent")]
mod cedar_agent;
#[cfg(any(feature = "cedar", feature = "cedar-agent", feature = "avp"))]
mod cedar_number;
mod context;
mod engine;
mod error;
#[cfg(any(feature = "opa", feature = "cedar-agent"))]
mod http;
pub mod library;
mod loader;
#[cfg(feature = "test-util")]
mod mock;
#[cfg(feature = "opa")]
mod opa;
#[cfg(feature = "rego")]
mod rego;
mod tiers;

#[cfg(feature = "avp")]
pub use avp::VerifiedPermissionsEngine;
pub use cache::{CacheStats, CachedEngine, DEFAULT_CAPACITY, DEFAULT_TTL, DecisionCache};
#[cfg(feature = "cedar")]
pub use cedar::{CedarEngine, CedarEngineBuilder, to_context};
#[cfg(feature = "cedar-agent")]
pub use cedar_agent::CedarAgentEngine;
pub use context::{ContextBuilder, Enricher, EvaluationContext, RESERVED_KEYS};
pub use engine::{Decision, PolicyEngine, PolicyTier};
pub use error::{AuthorizationError, ConfigError, PolicyError, Seen};
#[cfg(any(feature = "opa", feature = "cedar-agent"))]
pub use http::DEFAULT_TIMEOUT;
pub use loader::{EngineKind, engine_from_sources, load_engine, read_dir};
#[cfg(feature = "test-util")]
pub use mock::MockEngine;
#[cfg(feature = "opa")]
pub use opa::{OpaEngine, OpaEngineBuilder};
#[cfg(feature = "rego")]
pub use rego::{RegoEngine, RegoEngineBuilder};
pub use tiers::{DeviationRule, PolicyConfig, Scope, TierOutcome, TierPlan, TieredPolicies};

/// The environment variables this crate reads.
pub mod env {
    pub use crate::cache::ENV_CACHE_TTL;
    pub use crate::tiers::{
        ENV_APPLICATION, ENV_CONFIG_FILE, ENV_DEVIATIONS, ENV_ENTERPRISE, ENV_PLATFORM,
    };
}
