//! Kest: zero-trust execution lineage.
//!
//! Every protected call is authorized by policy before it runs, then recorded as a signed
//! entry chained by SHA-256 to the entries before it. The chain, the passport, follows the
//! work across tasks and services, and anyone with the public keys can verify it offline.
//!
//! ```
//! use std::sync::Arc;
//! use kest::{Call, Flow, Kest, Values};
//! use kest_policy::CedarEngine;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = CedarEngine::builder()
//!     .policy_source("invoke", r#"permit(principal, action, resource) when { context.subject.trust_score >= 50 };"#)
//!     .build()?;
//! let kest = Kest::builder()
//!     .identity(Arc::new(kest_identity::MockIdentity::new("spiffe://example.org/agent")?))
//!     .engine(Arc::new(engine))
//!     .build()?;
//!
//! let fetch = kest.protect(Call::new("fetch").policy("invoke").origin("verified_rag"))?;
//! let answer = kest.protect(Call::new("answer").policy("invoke").origin("llm"))?;
//!
//! let flow = Flow::new();
//! flow.scope(async {
//!     fetch.run(Values::new(), async { "documents" }).await?;
//!     // The model's output has trust 0: the policy refuses, and the closure never runs.
//!     let refused = answer.run(Values::new(), async { unreachable!() }).await;
//!     assert!(refused.unwrap_err().is_denied());
//!     Ok::<_, kest::KestError>(())
//! }).await?;
//!
//! let passport = flow.passport();
//! assert_eq!(passport.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # The attribute
//!
//! `#[kest::verified(...)]` (feature `macros`, on by default) puts a function, sync or
//! async, under the installed runtime ([`Kest::install`]). The function must return
//! `Result<T, E>` with `E: From<KestError>`: a refused call comes back as `Err` and the
//! body does not run. Parameters:
//!
//! | parameter | value |
//! |---|---|
//! | `policy` | one name or an array; at least one (checked at compile time) |
//! | `name` | the operation name (default: the function's name) |
//! | `origin`, `added_taints`, `removed_taints`, `trust_override`, `classification` | as on [`Call`] |
//! | `engine`, `identity`, `trust_evaluator` | per-call overrides (`Arc`s), made once per call site |
//! | `user`, `agent`, `task`, `resource_id` | an expression over the arguments, or a closure given a reference to every argument in order |
//! | `resource_attr` | `[("name", expression or closure), ...]` |
//!
//! The input hash is the SHA-256 of the canonical JSON array of the arguments, when all
//! of them serialize; the output hash is that of the `Ok` value, when it serializes.
//!
//! ```
//! #[derive(Debug)]
//! struct AppError(kest::KestError);
//! impl From<kest::KestError> for AppError {
//!     fn from(error: kest::KestError) -> Self { Self(error) }
//! }
//!
//! #[kest::verified(policy = "read_ticket", origin = "user_input", added_taints = ["unverified"],
//!                  user = |id: &String| format!("owner-of-{id}"), resource_id = id.clone())]
//! async fn read_ticket(id: String) -> Result<String, AppError> {
//!     Ok(format!("ticket {id}"))
//! }
//! ```
//!
//! A function without a policy does not compile:
//!
//! ```compile_fail
//! # struct E; impl From<kest::KestError> for E { fn from(_: kest::KestError) -> Self { E } }
//! #[kest::verified(origin = "user_input")]
//! fn unchecked() -> Result<(), E> { Ok(()) }
//! ```
//!
//! Nor does one that cannot report a refusal:
//!
//! ```compile_fail
//! #[kest::verified(policy = "p")]
//! fn infallible() -> u32 { 7 }
//! ```

/// The book's pages whose examples run as tests.
#[cfg(doctest)]
mod book {
    #[doc = include_str!("../../../docs/src/hook.md")]
    struct Hook;
    #[doc = include_str!("../../../docs/src/configuration.md")]
    struct Configuration;
    #[cfg(feature = "telemetry")]
    #[doc = include_str!("../../../docs/src/telemetry.md")]
    struct Telemetry;
    #[cfg(all(feature = "tower", feature = "reqwest", feature = "oidc"))]
    #[doc = include_str!("../../../docs/src/middleware.md")]
    struct Middleware;
    #[cfg(feature = "jwks")]
    #[doc = include_str!("../../../docs/src/zero-trust.md")]
    struct ZeroTrust;
}

mod config;
mod error;
mod hook;
#[doc(hidden)]
pub mod private;
pub mod telemetry;

pub use config::{
    ENV_APP, ENV_CLAIM_STORE, ENV_CONFIG, ENV_ENGINE, ENV_INLINE_THRESHOLD, ENV_POLICY_DIR,
    ENV_SERVICE_NAME, ENV_TRUSTED_JWKS, Kest, KestBuilder,
};
pub use error::KestError;
pub use hook::{Call, Protected, Values, hash_serialized, protect};
#[cfg(feature = "macros")]
pub use kest_macros::verified;
pub use kest_propagation::{
    Caller, Flow, current_agent, current_jwt, current_passport, current_task, current_user,
    fork_current,
};

pub use {
    kest_canon, kest_crypto, kest_identity, kest_passport, kest_policy, kest_propagation,
    kest_trust,
};
