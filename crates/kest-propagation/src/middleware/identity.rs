//! The identity layer: `Authorization: Bearer` in, who the flow acts for.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::refuse;
use crate::{Caller, Flow, PropagationError};

/// Environment variable: `true` lets the identity layer run without a JWKS, trusting
/// tokens unverified. For local development only.
pub const ENV_INSECURE_NO_VERIFY: &str = "KEST_INSECURE_NO_VERIFY";

/// Which claims become `kest.user`, `kest.agent` and `kest.task`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// The claim for the end user (`sub` by default).
    pub user: String,
    /// The claim for the agent (`client_id` by default).
    pub agent: String,
    /// The claim for the task (`scope` by default).
    pub task: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            user: "sub".into(),
            agent: "client_id".into(),
            task: "scope".into(),
        }
    }
}

#[derive(Debug)]
enum Verification {
    #[cfg(feature = "oidc")]
    Jwks(kest_identity::JwtValidator),
    Insecure,
}

/// Validates the caller's bearer token and sets who the request's flow acts for: the
/// mapped claims become `kest.user`, `kest.agent` and `kest.task` and the token
/// `kest.jwt`, overriding whatever came in baggage from upstream.
///
/// Tokens are checked against the issuer's JWKS (signature, expiry, issuer, audience;
/// keys fetched, cached and fetched again for an unknown `kid`) with `jsonwebtoken`
/// (feature `oidc`). A missing or invalid token gets 401. The layer cannot be built
/// without a JWKS unless `KEST_INSECURE_NO_VERIFY=true`.
///
/// It must run inside [`super::LineageLayer`]; a request that did not pass through it is
/// refused with 500.
#[derive(Debug, Clone)]
pub struct IdentityLayer {
    verification: Arc<Verification>,
    claims: ClaimNames,
}

impl IdentityLayer {
    /// A layer validating tokens with `validator`.
    #[cfg(feature = "oidc")]
    #[must_use]
    pub fn new(validator: kest_identity::JwtValidator) -> Self {
        Self {
            verification: Arc::new(Verification::Jwks(validator)),
            claims: ClaimNames::default(),
        }
    }

    /// A layer that reads tokens without verifying them, allowed only when
    /// `KEST_INSECURE_NO_VERIFY=true`.
    ///
    /// # Errors
    /// [`PropagationError::Insecure`] when the variable is not set to `true`.
    pub fn insecure_from_env() -> Result<Self, PropagationError> {
        Self::insecure(std::env::var(ENV_INSECURE_NO_VERIFY).ok().as_deref())
    }

    /// As [`IdentityLayer::insecure_from_env`], given the variable's value.
    ///
    /// # Errors
    /// As [`IdentityLayer::insecure_from_env`].
    pub fn insecure(setting: Option<&str>) -> Result<Self, PropagationError> {
        if setting.map(str::trim) != Some("true") {
            return Err(PropagationError::Insecure);
        }
        tracing::warn!(
            "kest: the identity layer accepts bearer tokens WITHOUT verifying them ({ENV_INSECURE_NO_VERIFY}=true)"
        );
        Ok(Self {
            verification: Arc::new(Verification::Insecure),
            claims: ClaimNames::default(),
        })
    }

    /// Maps other claims to user, agent and task.
    #[must_use]
    pub fn claims(mut self, claims: ClaimNames) -> Self {
        self.claims = claims;
        self
    }
}

impl<S> tower::Layer<S> for IdentityLayer {
    type Service = Identity<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Identity {
            inner,
            verification: Arc::clone(&self.verification),
            claims: self.claims.clone(),
        }
    }
}

/// The service [`IdentityLayer`] makes.
#[derive(Debug, Clone)]
pub struct Identity<S> {
    inner: S,
    verification: Arc<Verification>,
    claims: ClaimNames,
}

impl<S, B, R> tower::Service<Request<B>> for Identity<S>
where
    S: tower::Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: From<String>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verification = Arc::clone(&self.verification);
        let names = self.claims.clone();
        Box::pin(async move {
            let Some(flow) = request.extensions().get::<Flow>().cloned() else {
                tracing::error!(
                    "kest: the identity layer ran outside the lineage layer; check the layer order"
                );
                return Ok(refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "kest: the identity layer must run inside the lineage layer".into(),
                ));
            };
            let token = match bearer(&request) {
                Some(token) => token,
                None => {
                    return Ok(refuse(
                        StatusCode::UNAUTHORIZED,
                        "missing bearer token".into(),
                    ));
                }
            };
            let claims = match verify(&verification, &token).await {
                Ok(claims) => claims,
                Err(reason) => {
                    tracing::warn!(%reason, "kest: refusing a request with an invalid bearer token");
                    return Ok(refuse(
                        StatusCode::UNAUTHORIZED,
                        format!("invalid bearer token: {reason}"),
                    ));
                }
            };
            let text = |name: &str| match claims.get(name) {
                Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
                Some(Value::Array(items)) => {
                    let joined: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                    (!joined.is_empty()).then(|| joined.join(" "))
                }
                _ => None,
            };
            let verified = Caller {
                user: text(&names.user),
                agent: text(&names.agent),
                task: text(&names.task),
                jwt: Some(token),
            };
            flow.set_caller(flow.caller().overridden_by(&verified));
            inner.call(request).await
        })
    }
}

fn bearer<B>(request: &Request<B>) -> Option<String> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

async fn verify(verification: &Verification, token: &str) -> Result<Map<String, Value>, String> {
    match verification {
        #[cfg(feature = "oidc")]
        Verification::Jwks(validator) => validator
            .validate(token)
            .await
            .map_err(|error| error.to_string()),
        Verification::Insecure => unverified_claims(token),
    }
}

fn unverified_claims(token: &str) -> Result<Map<String, Value>, String> {
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    let bytes =
        kest_canon::b64url_decode_unpadded(payload, "token payload").map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("claims are not a JSON object: {e}"))
}
