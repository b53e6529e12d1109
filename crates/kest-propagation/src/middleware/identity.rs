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

/// Values for the caller when the validated token lacks the claim: a service whose tokens
/// carry no `scope` may name the task it serves, say. Never taken from baggage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimDefaults {
    /// `kest.user` when the token has no user claim.
    pub user: Option<String>,
    /// `kest.agent` when the token has no agent claim.
    pub agent: Option<String>,
    /// `kest.task` when the token has no task claim.
    pub task: Option<String>,
}

#[derive(Debug)]
enum Verification {
    #[cfg(feature = "oidc")]
    Jwks(kest_identity::JwtValidator),
    Insecure,
}

/// Validates the caller's bearer token and sets who the request's flow acts for: the
/// mapped claims become `kest.user`, `kest.agent` and `kest.task` and the token
/// `kest.jwt`.
///
/// The caller comes from the validated token alone. `kest.user`, `kest.agent` and
/// `kest.task` in baggage are unauthenticated: they are kept only where they equal what
/// the token says. A claim the token lacks is absent (or its [`ClaimDefaults`] value); it
/// is never taken from baggage. Baggage that names another caller than the token (a
/// different value, or one the token does not have) is refused with 401 naming the
/// claim, before anything runs.
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
    defaults: ClaimDefaults,
}

impl IdentityLayer {
    /// A layer validating tokens with `validator`.
    #[cfg(feature = "oidc")]
    #[must_use]
    pub fn new(validator: kest_identity::JwtValidator) -> Self {
        Self {
            verification: Arc::new(Verification::Jwks(validator)),
            claims: ClaimNames::default(),
            defaults: ClaimDefaults::default(),
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
            defaults: ClaimDefaults::default(),
        })
    }

    /// Maps other claims to user, agent and task.
    #[must_use]
    pub fn claims(mut self, claims: ClaimNames) -> Self {
        self.claims = claims;
        self
    }

    /// The caller's values when the token lacks a claim (none by default).
    #[must_use]
    pub fn defaults(mut self, defaults: ClaimDefaults) -> Self {
        self.defaults = defaults;
        self
    }
}

impl IdentityLayer {
    /// Validates the bearer token in `headers` as the layer does, and returns who it acts
    /// for: the mapped claims of the validated token, and nothing else. For transports
    /// that are not a tower stack (an MCP proxy's HTTP side, say).
    ///
    /// # Errors
    /// The refusal's message (`missing bearer token`, `invalid bearer token: …`), the
    /// text the layer answers 401 with.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Caller, String> {
        authenticate(&self.verification, &self.claims, &self.defaults, headers).await
    }
}

/// The caller a request's bearer token names, validated.
async fn authenticate(
    verification: &Verification,
    names: &ClaimNames,
    defaults: &ClaimDefaults,
    headers: &http::HeaderMap,
) -> Result<Caller, String> {
    let token = bearer(headers).ok_or_else(|| "missing bearer token".to_owned())?;
    let claims = verify(verification, &token).await.map_err(|reason| {
        tracing::warn!(%reason, "kest: refusing a request with an invalid bearer token");
        format!("invalid bearer token: {reason}")
    })?;
    Ok(caller_from_claims(&claims, names, defaults, token))
}

impl<S> tower::Layer<S> for IdentityLayer {
    type Service = Identity<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Identity {
            inner,
            verification: Arc::clone(&self.verification),
            claims: Arc::new((self.claims.clone(), self.defaults.clone())),
        }
    }
}

/// The service [`IdentityLayer`] makes.
#[derive(Debug, Clone)]
pub struct Identity<S> {
    inner: S,
    verification: Arc<Verification>,
    claims: Arc<(ClaimNames, ClaimDefaults)>,
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
        let claims_config = Arc::clone(&self.claims);
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
            let (names, defaults) = claims_config.as_ref();
            let verified =
                match authenticate(&verification, names, defaults, request.headers()).await {
                    Ok(verified) => verified,
                    Err(reason) => return Ok(refuse(StatusCode::UNAUTHORIZED, reason)),
                };
            if let Err(disagreement) = agrees(&flow.caller(), &verified, names) {
                tracing::warn!(
                    %disagreement,
                    "kest: refusing a request whose baggage names another caller than its bearer token"
                );
                return Ok(refuse(StatusCode::UNAUTHORIZED, disagreement));
            }
            flow.set_caller(verified);
            inner.call(request).await
        })
    }
}

/// A claim as text: a non-empty string, or the strings of an array joined by spaces
/// (`scope` is sometimes a list). Anything else is absent.
fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
        Some(Value::Array(items)) => {
            let joined: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            (!joined.is_empty()).then(|| joined.join(" "))
        }
        _ => None,
    }
}

/// Who the request acts for, from the validated token's claims (and the defaults for
/// claims it lacks), and nothing else.
fn caller_from_claims(
    claims: &Map<String, Value>,
    names: &ClaimNames,
    defaults: &ClaimDefaults,
    token: String,
) -> Caller {
    Caller {
        user: claim_text(claims, &names.user).or_else(|| defaults.user.clone()),
        agent: claim_text(claims, &names.agent).or_else(|| defaults.agent.clone()),
        task: claim_text(claims, &names.task).or_else(|| defaults.task.clone()),
        jwt: Some(token),
    }
}

/// Checks that what baggage claims about the caller is what the token says: a member the
/// baggage carries must equal the token's value. The message names the member and the
/// claim, not the values.
fn agrees(from_baggage: &Caller, verified: &Caller, names: &ClaimNames) -> Result<(), String> {
    let pairs = [
        (
            crate::keys::USER,
            &names.user,
            &from_baggage.user,
            &verified.user,
        ),
        (
            crate::keys::AGENT,
            &names.agent,
            &from_baggage.agent,
            &verified.agent,
        ),
        (
            crate::keys::TASK,
            &names.task,
            &from_baggage.task,
            &verified.task,
        ),
    ];
    for (member, claim, claimed, known) in pairs {
        if let Some(claimed) = claimed
            && Some(claimed) != known.as_ref()
        {
            let claim = kest_canon::escape_untrusted(claim, 40);
            return Err(match known {
                Some(_) => {
                    format!("baggage `{member}` disagrees with the bearer token's `{claim}` claim")
                }
                None => format!(
                    "baggage `{member}` names a caller, but the bearer token has no `{claim}` claim"
                ),
            });
        }
    }
    Ok(())
}

fn bearer(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
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

/// What the identity layer decides for a token read without verification (as under
/// `KEST_INSECURE_NO_VERIFY`) and the caller baggage claims: the caller the flow acts for,
/// or the refusal's message. For the fuzz targets; not part of the API.
#[doc(hidden)]
pub fn decide_caller(
    token: &str,
    from_baggage: &Caller,
    names: &ClaimNames,
    defaults: &ClaimDefaults,
) -> Result<Caller, String> {
    let claims = unverified_claims(token)?;
    let verified = caller_from_claims(&claims, names, defaults, token.to_owned());
    agrees(from_baggage, &verified, names)?;
    Ok(verified)
}
