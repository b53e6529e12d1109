//! Publishing a service's public keys: `GET /.well-known/jwks.json`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response, StatusCode};
use kest_crypto::{Algorithm, Jwks, VerifyingKey};

/// The path a service publishes its keys at.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Answers `GET` (and `HEAD`) `/.well-known/jwks.json` with the service's public keys as
/// a JWK Set; every other request goes through to the service.
///
/// Peers that verify this service's entries fetch the set (with
/// `kest_identity::RemoteJwks`). Each key's `kid` is the workload id it signs for, the
/// way Kest's resolvers bind keys to principals, with `use` `sig` and the key's `alg`.
/// Private keys cannot be published: a [`Jwks`] holds public keys only.
///
/// ```
/// use kest_crypto::SigningKey;
/// use kest_propagation::PublishKeysLayer;
///
/// let key = SigningKey::generate_ed25519()?;
/// let layer = PublishKeysLayer::for_workload("spiffe://example.org/billing", [key.verifying_key().clone()]);
/// assert!(layer.body().contains("spiffe://example.org/billing"));
/// assert!(!layer.body().contains("\"d\""));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PublishKeysLayer {
    body: Arc<str>,
}

impl PublishKeysLayer {
    /// Publishes `keys` (a [`Jwks`] holds public keys only).
    #[must_use]
    pub fn new(keys: &Jwks) -> Self {
        // Serializing strings cannot fail.
        let body = serde_json::to_string(keys).unwrap_or_default();
        Self { body: body.into() }
    }

    /// Publishes `keys` as the keys of `workload_id`. During a rotation, give the new key
    /// and the old one, so peers accept entries signed with either.
    #[must_use]
    pub fn for_workload(workload_id: &str, keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self::new(&workload_jwks(workload_id, keys))
    }

    /// The JSON text served.
    #[must_use]
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// The JWK Set Kest publishes for a workload: each key with `kid` = the workload id,
/// `use` `sig` and its `alg`.
#[must_use]
pub fn workload_jwks(workload_id: &str, keys: impl IntoIterator<Item = VerifyingKey>) -> Jwks {
    Jwks {
        keys: keys
            .into_iter()
            .map(|key| {
                let mut jwk = key.to_jwk();
                jwk.kid = Some(workload_id.to_owned());
                jwk.key_use = Some("sig".into());
                jwk.alg = Some(
                    match key.algorithm() {
                        Algorithm::EdDSA => "EdDSA",
                        Algorithm::ES256 => "ES256",
                    }
                    .into(),
                );
                jwk
            })
            .collect(),
    }
}

impl<S> tower::Layer<S> for PublishKeysLayer {
    type Service = PublishKeys<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PublishKeys {
            inner,
            body: Arc::clone(&self.body),
        }
    }
}

/// The service [`PublishKeysLayer`] makes.
#[derive(Debug, Clone)]
pub struct PublishKeys<S> {
    inner: S,
    body: Arc<str>,
}

impl<S, B, R> tower::Service<Request<B>> for PublishKeys<S>
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
        let publish = request.uri().path() == JWKS_PATH
            && (request.method() == Method::GET || request.method() == Method::HEAD);
        if publish {
            let body = Arc::clone(&self.body);
            // Built inside the future: only the body (which is `Send`) is held by it.
            return Box::pin(async move {
                let mut response = Response::new(R::from(body.to_string()));
                *response.status_mut() = StatusCode::OK;
                let headers = response.headers_mut();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/jwk-set+json"),
                );
                headers.insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("max-age=60"),
                );
                Ok(response)
            });
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(request).await })
    }
}
