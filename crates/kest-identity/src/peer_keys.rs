//! Trusting a peer's keys as it publishes them: a JWK Set at a URL.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use kest_crypto::{
    CryptoError, Jwks, JwksKeyResolver, KeyQuery, KeyResolver, PrincipalBinding, Refresh,
    VerifyingKey,
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
/// The set speaks only for the peer it is trusted for: a [`PrincipalBinding`], the peer's
/// principal or a SPIFFE ID prefix (see [`JwksKeyResolver::bound`]). A key the set lists
/// for a principal outside the binding is never used; it is logged once and counted in
/// `kest.verification.failures` with cause `key_outside_binding`. So a compromised peer
/// can sign only as itself, never as the services behind it. Keys declared for another
/// use, and sets that carry a degenerate key, are refused. Only `https` URLs are fetched,
/// and plain `http` on this machine.
///
/// ```
/// use kest_identity::RemoteJwks;
///
/// // A peer on this machine (plain `http` is allowed to loopback only; `https` URLs need
/// // the `tls` feature).
/// let gateway = RemoteJwks::for_peer(
///     "spiffe://example.org/gateway".parse()?,
///     "http://127.0.0.1:8443/.well-known/jwks.json",
/// )?;
/// assert_eq!(gateway.binding().to_string(), "spiffe://example.org/gateway");
/// assert!(RemoteJwks::for_peer("spiffe://example.org/x".parse()?, "http://peer.example/jwks").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    binding: PrincipalBinding,
    keys: RwLock<Option<Arc<JwksKeyResolver>>>,
    fetched: tokio::sync::Mutex<Option<Instant>>,
    /// Keys outside the binding already logged (at most [`MAX_REPORTED`]).
    reported: std::sync::Mutex<Vec<String>>,
}

/// Keys outside the binding remembered per set, so that each is logged once.
const MAX_REPORTED: usize = 256;

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .field("binding", &self.binding)
            .field("fetched", &self.current().is_some())
            .finish()
    }
}

impl RemoteJwks {
    /// A resolver for the set the peer `binding` publishes at `url`, not fetched yet.
    ///
    /// # Errors
    /// [`IdentityError::Missing`] when `url` is not a URL, or not `https` (plain `http`
    /// is allowed to this machine only).
    pub fn for_peer(
        binding: PrincipalBinding,
        url: impl Into<String>,
    ) -> Result<Self, IdentityError> {
        let url = url.into();
        require_secure(&url)?;
        Ok(Self {
            url,
            client: client(SERVICE)?,
            binding,
            keys: RwLock::new(None),
            fetched: tokio::sync::Mutex::new(None),
            reported: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The principals the set may speak for.
    #[must_use]
    pub const fn binding(&self) -> &PrincipalBinding {
        &self.binding
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
        let resolver = JwksKeyResolver::from_jwks(&set)
            .and_then(|keys| keys.bound(self.binding.clone()))
            .inspect_err(|error| {
                if let CryptoError::NoKeyInBinding { outside, .. } = error {
                    self.report_outside(outside);
                }
            })
            .map_err(IdentityError::Keys)?;
        self.report_outside(resolver.outside_binding());
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(resolver));
        Ok(())
    }

    /// Logs and counts, once each, the keys the set lists for someone outside its binding.
    fn report_outside(&self, outside: &[String]) {
        if outside.is_empty() {
            return;
        }
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        for kid in outside {
            if reported.contains(kid) || reported.len() >= MAX_REPORTED {
                continue;
            }
            tracing::warn!(
                url = %self.url,
                binding = %self.binding,
                kid = %kid,
                "kest: a peer's JWK Set lists a key for a principal outside its binding; the key is never used"
            );
            kest_passport::metrics::verification_failed("key_outside_binding");
            reported.push(kid.clone());
        }
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
