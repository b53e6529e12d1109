//! Kest: zero-trust execution lineage.
//!
//! Every protected call is authorized by policy before it runs, then recorded as a signed
//! entry chained by SHA-256 to the entries before it. The chain, the passport, follows the
//! work across tasks and services, and anyone with the public keys can verify it offline.
//!
//! ```
//! use kest::identity::LocalEd25519;
//! use kest::policy::CedarEngine;
//! use kest::{Call, Flow, Kest, Values};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = CedarEngine::builder()
//!     .policy_source("invoke", r#"permit(principal, action, resource) when { context.subject.trust_score >= 50 };"#)
//!     .build()?;
//! let kest = Kest::builder()
//!     .identity(LocalEd25519::new("spiffe://example.org/agent")?)
//!     .engine(engine)
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
//! Everything an application needs is reachable from this crate: each layer is a module
//! ([`canon`], [`crypto`], [`trust`], [`passport`], [`policy`], [`identity`],
//! [`propagation`]), and the environment variables the runtime reads are named in
//! [`env`](mod@env) and the layers' own `env` modules. Warnings (a throwaway local key, an
//! insecure ingress setting, a refused passport) are `tracing` events: install a
//! subscriber, such as `tracing_subscriber::fmt::init()`, to see them.
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

/// The README's and the book's pages whose examples run as tests: every Rust block the
/// project publishes is compiled, so none can drift from the API.
#[cfg(doctest)]
mod book {
    #[doc = include_str!("../../../README.md")]
    struct Readme;
    #[doc = include_str!("../../../docs/src/quickstart.md")]
    struct Quickstart;
    #[doc = include_str!("../../../docs/src/using.md")]
    struct Using;
    #[doc = include_str!("../../../docs/src/hook.md")]
    struct Hook;
    #[doc = include_str!("../../../docs/src/configuration.md")]
    struct Configuration;
    #[doc = include_str!("../../../docs/src/identity/local.md")]
    struct IdentityLocal;
    #[doc = include_str!("../../../docs/src/identity/static.md")]
    struct IdentityStatic;
    #[doc = include_str!("../../../docs/src/crates/kest-canon.md")]
    struct CrateCanon;
    #[doc = include_str!("../../../docs/src/crates/kest-crypto.md")]
    struct CrateCrypto;
    #[doc = include_str!("../../../docs/src/crates/kest-trust.md")]
    struct CrateTrust;
    #[doc = include_str!("../../../docs/src/crates/kest-propagation.md")]
    struct CratePropagation;
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

mod builder;
mod error;
mod file;
mod hook;
mod metrics;
#[doc(hidden)]
pub mod private;
mod runtime;
mod signer_gate;
pub mod telemetry;

pub use builder::KestBuilder;
pub use error::{KestError, Missing, RecordError};
pub use hook::{Call, Protected, Values, hash_serialized, protect};
#[cfg(feature = "macros")]
pub use kest_macros::verified;
pub use kest_propagation::{
    Caller, Flow, current_agent, current_jwt, current_passport, current_task, current_user,
    fork_current,
};
pub use runtime::Kest;

/// The environment variables the runtime reads ([`Kest::from_env`]), besides those of
/// the layers ([`policy::env`], [`identity::env`], [`propagation::env`]).
pub mod env {
    /// The service name spans carry (`service.name`).
    pub const ENV_SERVICE_NAME: &str = "KEST_SERVICE_NAME";
    /// The application this process belongs to (deviation scope).
    pub const ENV_APP: &str = "KEST_APP";
    /// The policy engine, `cedar` or `rego`.
    pub const ENV_ENGINE: &str = "KEST_POLICY_ENGINE";
    /// The directory of `.cedar` or `.rego` files the engine loads.
    pub const ENV_POLICY_DIR: &str = "KEST_POLICY_DIR";
    /// The claim-check store, `memory` or a `redis://` URL.
    pub const ENV_CLAIM_STORE: &str = "KEST_CLAIM_STORE";
    /// The largest passport sent inline or compressed, in bytes.
    pub const ENV_INLINE_THRESHOLD: &str = "KEST_BAGGAGE_THRESHOLD";
    /// A TOML file with the whole configuration.
    pub const ENV_CONFIG: &str = "KEST_CONFIG";
    /// The operator's own key files inbound passports are verified against: a
    /// comma-separated list of JWK Set files, each key trusted for the principal its `kid`
    /// names. A URL is refused: a peer's published set is trusted through
    /// [`ENV_TRUSTED_PEERS`], for that peer only.
    pub const ENV_TRUSTED_JWKS: &str = "KEST_TRUSTED_JWKS";
    /// Peers whose published keys inbound passports are verified against, each bound to
    /// the principals it may speak for: a comma-separated list of `PRINCIPAL=URL` (or
    /// `spiffe://domain/path/*=URL`, or `PRINCIPAL=FILE`), split at the first `=`.
    pub const ENV_TRUSTED_PEERS: &str = "KEST_TRUSTED_PEERS";
    /// What a request without lineage means: `edge` (a new chain, held to the edge
    /// origin's trust) or `internal` (refused with 403).
    pub const ENV_BOUNDARY: &str = "KEST_BOUNDARY";
    /// The origin an edge service's new chains start from (`user_input` by default).
    pub const ENV_EDGE_ORIGIN: &str = "KEST_EDGE_ORIGIN";
}

// The layers, each the public API of its crate: a user of `kest` never names them.

/// RFC 8785 canonical JSON, SHA-256, base64url, and showing untrusted text
/// (`kest-canon`).
pub mod canon {
    pub use kest_canon::*;
}

/// Keys, JWS, JWK and key resolvers (`kest-crypto`).
pub mod crypto {
    pub use kest_crypto::*;
}

/// Trust scores, origins, trust evaluators and taint sets (`kest-trust`).
pub mod trust {
    pub use kest_trust::*;
}

/// Entries, passports and the verifier (`kest-passport`).
pub mod passport {
    pub use kest_passport::*;
}

/// Policy engines, tiers, the decision cache and the model library (`kest-policy`).
pub mod policy {
    pub use kest_policy::*;
}

/// Workload identities (`kest-identity`).
pub mod identity {
    pub use kest_identity::*;
}

/// Baggage, passport tiers, verified ingress, the ambient flow and the HTTP middleware
/// (`kest-propagation`).
pub mod propagation {
    pub use kest_propagation::*;
}
