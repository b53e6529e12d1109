//! HTTP middleware: the tower lineage and identity layers (feature `tower`) and the
//! reqwest outbound propagator (feature `reqwest`).
//!
//! On the server, the **lineage layer** must be the outermost of the two: it restores the
//! passport from `baggage` and opens the request's [`crate::Flow`]; the **identity
//! layer** inside it validates the bearer token and sets who the flow acts for. The
//! identity layer refuses (500) a request that did not pass the lineage layer, so a wrong
//! order fails loudly instead of losing lineage.
//!
//! ```text
//! request → LineageLayer (baggage → verified Flow) → IdentityLayer (Bearer → kest.user/agent/task/jwt) → handler
//! ```
//!
//! [`PublishKeysLayer`] answers `GET /.well-known/jwks.json` with the service's public
//! keys, so that its peers can verify what it signs.
//!
//! On the client, [`PropagateLineage`] writes the current flow into `baggage` of every
//! outgoing request.

#[cfg(feature = "tower")]
mod identity;
#[cfg(feature = "tower")]
mod jwks;
#[cfg(feature = "tower")]
mod lineage;
#[cfg(feature = "reqwest")]
mod outbound;

#[cfg(feature = "tower")]
#[doc(hidden)]
pub use identity::decide_caller;
#[cfg(feature = "tower")]
pub use identity::{ClaimDefaults, ClaimNames, ENV_INSECURE_NO_VERIFY, Identity, IdentityLayer};
#[cfg(feature = "tower")]
pub use jwks::{JWKS_PATH, PublishKeys, PublishKeysLayer, workload_jwks};
#[cfg(feature = "tower")]
pub use lineage::{Lineage, LineageLayer};
#[cfg(feature = "reqwest")]
pub use outbound::PropagateLineage;

/// A response with `status` and a one-line plain-text `message`.
#[cfg(feature = "tower")]
fn refuse<B: From<String>>(status: http::StatusCode, message: String) -> http::Response<B> {
    let mut response = http::Response::new(B::from(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
