//! Trusting a peer's keys as it publishes them: a JWK Set at a URL.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use kest_crypto::{
    CryptoError, Jwks, JwksKeyResolver, KeyQuery, KeyResolver, Refresh, VerifyingKey,
};

use crate::IdentityError;
use crate::fetch::{REFETCH_INTERVAL, client, get_json, require_secure};

const SERVICE: &str = "peer JWK Set";

/// The keys a peer service publishes as a JWK Set (`GET /.well-known/jwks.json`), as a
/// [`KeyResolver`] for verifying the entries it signs.
///
/// The set is fetched when first needed, kept, and fetched again when an entry names a
/// principal or key it does not hold (a peer that rotated its key), at most once a
/// second, so made-up names cannot make a service hammer its peers. Until a fetch
/// succeeds the resolver knows no key, and entries are refused: a peer that cannot be
/// reached is never trusted by default.
///
/// As with [`JwksKeyResolver`], a key belongs to the principal its `kid` names (Kest
/// publishes keys that way), or to one principal for every key with
/// [`RemoteJwks::bound_to`]. Keys declared for another use, and sets that carry a
/// degenerate key, are refused. Only `https` URLs are fetched, and plain `http` on this
/// machine.
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    bound: Option<String>,
    keys: RwLock<Option<Arc<JwksKeyResolver>>>,
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .field("bound", &self.bound)
            .field("fetched", &self.current().is_some())
            .finish()
    }
}

impl RemoteJwks {
    /// A resolver for the set at `url`, not fetched yet.
    ///
    /// # Errors
    /// [`IdentityError::Missing`] when `url` is not a URL, or not `https` (plain `http`
    /// is allowed to this machine only).
    pub fn new(url: impl Into<String>) -> Result<Self, IdentityError> {
        let url = url.into();
        require_secure(&url)?;
        Ok(Self {
            url,
            client: client(SERVICE)?,
            bound: None,
            keys: RwLock::new(None),
            fetched: tokio::sync::Mutex::new(None),
        })
    }

    /// Trusts every key of the set for `principal`, and for no one else.
    #[must_use]
    pub fn bound_to(mut self, principal: impl Into<String>) -> Self {
        self.bound = Some(principal.into());
        self
    }

    /// The URL the set is fetched from.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    fn current(&self) -> Option<Arc<JwksKeyResolver>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Fetches the set now, replacing the keys held.
    ///
    /// # Errors
    /// [`IdentityError::Service`] when the set cannot be fetched, or
    /// [`IdentityError::Keys`] when it holds no usable signing key or a degenerate one.
    /// The keys held before are kept.
    pub async fn fetch(&self) -> Result<(), IdentityError> {
        let mut fetched = self.fetched.lock().await;
        *fetched = Some(Instant::now());
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<(), IdentityError> {
        let set: Jwks = get_json(&self.client, &self.url, SERVICE).await?;
        let mut resolver = JwksKeyResolver::from_jwks(&set).map_err(IdentityError::Keys)?;
        if let Some(principal) = &self.bound {
            resolver = resolver.bound_to(principal.clone());
        }
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(resolver));
        Ok(())
    }

    /// Fetches again unless a fetch happened less than a second ago. Returns whether the
    /// keys may have changed since the caller looked: after a fetch, or when another
    /// caller's fetch finished a moment ago (concurrent requests that all missed a key
    /// wait for one fetch, then all try again). A failure is logged and leaves the keys
    /// as they were.
    async fn refresh_limited(&self) -> bool {
        let mut fetched = self.fetched.lock().await;
        if fetched.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
            return self.current().is_some();
        }
        *fetched = Some(Instant::now());
        match self.fetch_locked().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "kest: cannot fetch a peer's keys");
                false
            }
        }
    }
}

impl KeyResolver for RemoteJwks {
    fn resolve(&self, query: &KeyQuery<'_>) -> Result<VerifyingKey, CryptoError> {
        match self.current() {
            Some(keys) => keys.resolve(query),
            None => Err(not_fetched(query)),
        }
    }

    fn candidates(&self, query: &KeyQuery<'_>) -> Result<Vec<VerifyingKey>, CryptoError> {
        match self.current() {
            Some(keys) => keys.candidates(query),
            None => Err(not_fetched(query)),
        }
    }

    fn refresh(&self) -> Refresh<'_> {
        Box::pin(self.refresh_limited())
    }
}

fn not_fetched(query: &KeyQuery<'_>) -> CryptoError {
    CryptoError::UnknownPrincipal {
        principal: kest_canon::escape_untrusted(query.principal, 64),
    }
}
