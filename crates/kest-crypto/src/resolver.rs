//! Key resolvers: who may sign for which principal.
//!
//! A verifier never takes a key from the JWS itself. It asks a [`KeyResolver`] for the key
//! of the principal the entry claims, and the resolver answers only from keys the auditor
//! trusts. That is what makes a forged entry with a valid signature by the wrong key fail.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{Algorithm, CryptoError, Jwk, Jwks, VerifyingKey};

/// The most keys tried for one signature when a principal holds several keys of the
/// header's algorithm and the header does not name one (key rotation). More is refused as
/// ambiguous, so a resolver cannot be made to cost many verifications per entry.
pub const MAX_CANDIDATE_KEYS: usize = 8;

/// What [`KeyResolver::refresh`] returns: a future telling whether the keys changed.
pub type Refresh<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// What a verifier knows when it needs a key.
#[derive(Debug, Clone, Copy)]
pub struct KeyQuery<'a> {
    /// The principal (workload id) the entry claims: its `labels.principal`.
    pub principal: &'a str,
    /// The header's `kid`, if any. Kest and the Python package write the principal here;
    /// other signers write a key thumbprint.
    pub kid: Option<&'a str>,
    /// The header's algorithm.
    pub alg: Algorithm,
    /// The header's `x5c` certificate chain (base64 DER, leaf first), if any: entries
    /// signed with SPIFFE X.509-SVID keys carry it so that a trust bundle can vouch for the
    /// key.
    pub x5c: Option<&'a [String]>,
    /// When the entry says it was signed (`timestamp_ms`), for resolvers that check
    /// certificate validity at signing time.
    pub signed_at_ms: Option<u64>,
}

impl<'a> KeyQuery<'a> {
    /// A query for `principal`'s key, named by `kid` in an `alg` header.
    #[must_use]
    pub const fn new(principal: &'a str, kid: Option<&'a str>, alg: Algorithm) -> Self {
        Self {
            principal,
            kid,
            alg,
            x5c: None,
            signed_at_ms: None,
        }
    }
}

/// Maps a principal (and `kid`) to the key that must have signed for it.
pub trait KeyResolver: Send + Sync {
    /// The key for this query.
    ///
    /// # Errors
    /// [`CryptoError::UnknownPrincipal`], [`CryptoError::UnknownKeyId`] or
    /// [`CryptoError::AmbiguousKey`].
    fn resolve(&self, query: &KeyQuery<'_>) -> Result<VerifyingKey, CryptoError>;

    /// Every key that may have signed for this query, most likely first: one, unless the
    /// principal holds several keys of the header's algorithm and the header does not
    /// name one (rotation). A signature is accepted when one of them verifies it. At most
    /// [`MAX_CANDIDATE_KEYS`].
    ///
    /// # Errors
    /// As [`KeyResolver::resolve`].
    fn candidates(&self, query: &KeyQuery<'_>) -> Result<Vec<VerifyingKey>, CryptoError> {
        self.resolve(query).map(|key| vec![key])
    }

    /// Fetches the keys again, for resolvers whose keys live elsewhere (a peer's JWK Set
    /// URL): verifiers call it once when an entry names a principal or key the resolver
    /// does not know, then try again. Resolves to whether anything changed. Fixed
    /// resolvers do nothing.
    fn refresh(&self) -> Refresh<'_> {
        Box::pin(std::future::ready(false))
    }
}

impl<R: KeyResolver + ?Sized> KeyResolver for &R {
    fn resolve(&self, query: &KeyQuery<'_>) -> Result<VerifyingKey, CryptoError> {
        (**self).resolve(query)
    }
    fn candidates(&self, query: &KeyQuery<'_>) -> Result<Vec<VerifyingKey>, CryptoError> {
        (**self).candidates(query)
    }
    fn refresh(&self) -> Refresh<'_> {
        (**self).refresh()
    }
}

impl<R: KeyResolver + ?Sized> KeyResolver for Arc<R> {
    fn resolve(&self, query: &KeyQuery<'_>) -> Result<VerifyingKey, CryptoError> {
        (**self).resolve(query)
    }
    fn candidates(&self, query: &KeyQuery<'_>) -> Result<Vec<VerifyingKey>, CryptoError> {
        (**self).candidates(query)
    }
    fn refresh(&self) -> Refresh<'_> {
        (**self).refresh()
    }
}

impl<R: KeyResolver + ?Sized> KeyResolver for Box<R> {
    fn resolve(&self, query: &KeyQuery<'_>) -> Result<VerifyingKey, CryptoError> {
        (**self).resolve(query)
    }
    fn candidates(&self, query: &KeyQuery<'_>) -> Result<Vec<VerifyingKey>, CryptoError> {
        (**self).candidates(query)
    }
    fn refresh(&self) -> Refresh<'_> {
        (**self).refresh()
    }
}

/// One trusted key and the names it answers to.
#[derive(Clone, Debug)]
struct KnownKey {
    key: VerifyingKey,
    thumbprint: String,
    kid: Option<String>,
}

impl KnownKey {
    fn new(key: VerifyingKey, kid: Option<String>) -> Self {
        Self {
            thumbprint: key.thumbprint(),
            key,
            kid,
        }
    }

    fn answers_to(&self, kid: &str) -> bool {
        self.thumbprint == kid || self.kid.as_deref() == Some(kid)
    }
}

/// The keys among a principal's keys that may have signed. A `kid` equal to the principal
/// names no key in particular (the Kest and Python convention, and what the `kid` of a
/// published key says); any other `kid` must name one, by thumbprint or JWK `kid`.
fn choose(keys: &[KnownKey], query: &KeyQuery<'_>) -> Result<Vec<VerifyingKey>, CryptoError> {
    if let Some(kid) = query.kid.filter(|kid| *kid != query.principal) {
        return keys
            .iter()
            .find(|known| known.answers_to(kid))
            .map(|known| vec![known.key.clone()])
            .ok_or_else(|| CryptoError::UnknownKeyId {
                principal: crate::alg::kest_shorten(query.principal),
                kid: crate::alg::kest_shorten(kid),
            });
    }
    // Without a naming kid, the keys of the header's algorithm: a principal may hold an
    // Ed25519 and a P-256 key, and several of one during a rotation.
    let matching: Vec<VerifyingKey> = keys
        .iter()
        .filter(|known| known.key.algorithm() == query.alg)
        .map(|known| known.key.clone())
        .collect();
    match (matching.len(), keys) {
        (0, []) => Err(CryptoError::UnknownPrincipal {
            principal: crate::alg::kest_shorten(query.principal),
        }),
        // No key of the header's algorithm: hand back one so that verification reports the
        // algorithm mismatch, which says more than "unknown key".
        (0, [first, ..]) => Ok(vec![first.key.clone()]),
        (count, _) if count > MAX_CANDIDATE_KEYS => Err(CryptoError::AmbiguousKey {
            principal: crate::alg::kest_shorten(query.principal),
            count,
        }),
        _ => Ok(matching),
    }
}

/// The one candidate, or [`CryptoError::AmbiguousKey`], for [`KeyResolver::resolve`].
fn only(
    candidates: Result<Vec<VerifyingKey>, CryptoError>,
    principal: &str,
) -> Result<VerifyingKey, CryptoError> {
    let mut candidates = candidates?;
    match candidates.len() {
        1 => candidates.pop().ok_or(CryptoError::UnknownPrincipal {
            principal: crate::alg::kest_shorten(principal),
        }),
        count => Err(CryptoError::AmbiguousKey {
            principal: crate::alg::kest_shorten(principal),
            count,
        }),
    }
}

/// A fixed map from principal to its trusted keys.
///
/// ```
/// use kest_crypto::{KeyQuery, KeyResolver, SigningKey, StaticKeyResolver, Algorithm};
///
/// let key = SigningKey::from_ed25519_seed(&[7; 32])?;
/// let resolver = StaticKeyResolver::new().with_key("spiffe://a/b", key.verifying_key().clone());
/// let query = KeyQuery::new("spiffe://a/b", Some("spiffe://a/b"), Algorithm::EdDSA);
/// assert_eq!(&resolver.resolve(&query)?, key.verifying_key());
/// let stranger = KeyQuery { principal: "spiffe://evil/x", ..query };
/// assert!(resolver.resolve(&stranger).is_err());
/// # Ok::<(), kest_crypto::CryptoError>(())
/// ```
#[derive(Clone, Default)]
pub struct StaticKeyResolver {
    principals: HashMap<String, Vec<KnownKey>>,
}

impl fmt::Debug for StaticKeyResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.principals.keys().collect();
        names.sort();
        f.debug_struct("StaticKeyResolver")
            .field("principals", &names)
            .finish()
    }
}

impl StaticKeyResolver {
    /// An empty resolver: it knows no one.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key` for `principal`. A principal may have several keys (rotation); headers
    /// then name the key by its thumbprint.
    pub fn insert(&mut self, principal: impl Into<String>, key: VerifyingKey) {
        self.insert_known(principal.into(), KnownKey::new(key, None));
    }

    /// Builder form of [`StaticKeyResolver::insert`].
    #[must_use]
    pub fn with_key(mut self, principal: impl Into<String>, key: VerifyingKey) -> Self {
        self.insert(principal, key);
        self
    }

    /// Trusts a public JWK for `principal`; its `kid`, if any, also names it.
    ///
    /// # Errors
    /// When the JWK is not a supported public key, the key is degenerate
    /// ([`CryptoError::DegenerateKey`]), or the JWK is declared for something other than
    /// verifying signatures ([`CryptoError::NotASigningKey`]).
    pub fn insert_jwk(
        &mut self,
        principal: impl Into<String>,
        jwk: &Jwk,
    ) -> Result<(), CryptoError> {
        let key = VerifyingKey::from_jwk(jwk)?;
        jwk.check_signing_use(key.algorithm())?;
        self.insert_known(principal.into(), KnownKey::new(key, jwk.kid.clone()));
        Ok(())
    }

    fn insert_known(&mut self, principal: String, known: KnownKey) {
        let keys = self.principals.entry(principal).or_default();
        if !keys.iter().any(|existing| existing.key == known.key) {
            keys.push(known);
        }
    }

    /// Whether any key is known for `principal`.
    #[must_use]
    pub fn knows(&self, principal: &str) -> bool {
        self.principals.contains_key(principal)
    }
}

impl KeyResolver for StaticKeyResolver {
    fn resolve(&self, query: &KeyQuery<'_>) -> Result<VerifyingKey, CryptoError> {
        only(self.candidates(query), query.principal)
    }

    fn candidates(&self, query: &KeyQuery<'_>) -> Result<Vec<VerifyingKey>, CryptoError> {
        let keys =
            self.principals
                .get(query.principal)
                .ok_or_else(|| CryptoError::UnknownPrincipal {
                    principal: crate::alg::kest_shorten(query.principal),
                })?;
        choose(keys, query)
    }
}

/// Keys from a JWK Set document.
///
/// By default a JWK belongs to the principal its `kid` names: that is how Kest publishes
/// workload keys, and it matches the Python package, whose header `kid` is the workload
/// id. [`JwksKeyResolver::bound_to`] instead trusts every key in the set for one principal,
/// for issuers that publish one set per workload and name keys by thumbprint.
#[derive(Clone, Debug)]
pub struct JwksKeyResolver {
    keys: Vec<KnownKey>,
    bound_principal: Option<String>,
}

impl JwksKeyResolver {
    /// Reads a JWK Set.
    ///
    /// Keys of types this crate does not verify with (RSA, say) and keys declared for
    /// another purpose (`use` `enc`, `key_ops` without `verify`, a non-signing `alg`) are
    /// skipped, so a set that also serves other keys still works. A key of a supported
    /// type that is malformed or degenerate (a small-order Ed25519 point, a P-256 point off
    /// the curve) makes the whole set an error: a set that carries one cannot be trusted.
    ///
    /// # Errors
    /// [`CryptoError::InvalidJwk`] when the set holds no usable signing key or a key is
    /// malformed, [`CryptoError::DegenerateKey`] for a degenerate key.
    pub fn from_jwks(jwks: &Jwks) -> Result<Self, CryptoError> {
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (index, jwk) in jwks.keys.iter().enumerate() {
            let key = match VerifyingKey::from_jwk(jwk) {
                Ok(key) => key,
                Err(CryptoError::UnsupportedKeyType { kty, crv }) => {
                    skipped.push(format!("key {index}: unsupported `{kty}`/`{crv}`"));
                    continue;
                }
                Err(error @ CryptoError::DegenerateKey { .. }) => return Err(error),
                Err(error) => {
                    return Err(CryptoError::InvalidJwk {
                        reason: format!("JWK Set key {index}: {error}"),
                    });
                }
            };
            if let Err(error) = jwk.check_signing_use(key.algorithm()) {
                skipped.push(format!("key {index}: {error}"));
                continue;
            }
            keys.push(KnownKey::new(key, jwk.kid.clone()));
        }
        if keys.is_empty() {
            let why = if skipped.is_empty() {
                "it is empty".to_owned()
            } else {
                skipped.join("; ")
            };
            return Err(CryptoError::InvalidJwk {
                reason: format!("the JWK Set holds no Ed25519 or P-256 signing key ({why})"),
            });
        }
        Ok(Self {
            keys,
            bound_principal: None,
        })
    }

    /// Reads a JWK Set from JSON text.
    ///
    /// # Errors
    /// As [`JwksKeyResolver::from_jwks`].
    pub fn from_json(text: &str) -> Result<Self, CryptoError> {
        Self::from_jwks(&Jwks::from_json(text)?)
    }

    /// Trusts every key of the set for `principal`, and for no one else.
    #[must_use]
    pub fn bound_to(mut self, principal: impl Into<String>) -> Self {
        self.bound_principal = Some(principal.into());
        self
    }
}

impl KeyResolver for JwksKeyResolver {
    fn resolve(&self, query: &KeyQuery<'_>) -> Result<VerifyingKey, CryptoError> {
        only(self.candidates(query), query.principal)
    }

    fn candidates(&self, query: &KeyQuery<'_>) -> Result<Vec<VerifyingKey>, CryptoError> {
        let unknown = || CryptoError::UnknownPrincipal {
            principal: crate::alg::kest_shorten(query.principal),
        };
        match &self.bound_principal {
            Some(bound) if bound == query.principal => choose(&self.keys, query),
            Some(_) => Err(unknown()),
            None => {
                let owned: Vec<KnownKey> = self
                    .keys
                    .iter()
                    .filter(|known| known.kid.as_deref() == Some(query.principal))
                    .cloned()
                    .collect();
                if owned.is_empty() {
                    return Err(unknown());
                }
                choose(&owned, query)
            }
        }
    }
}

/// Tries several resolvers in order; the first that knows the principal answers.
#[derive(Default)]
pub struct ResolverChain {
    resolvers: Vec<Box<dyn KeyResolver>>,
}

impl fmt::Debug for ResolverChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolverChain")
            .field("resolvers", &self.resolvers.len())
            .finish()
    }
}

impl ResolverChain {
    /// An empty chain: it knows no one.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a resolver, tried after those already added.
    #[must_use]
    pub fn then(mut self, resolver: impl KeyResolver + 'static) -> Self {
        self.resolvers.push(Box::new(resolver));
        self
    }
}

impl KeyResolver for ResolverChain {
    fn resolve(&self, query: &KeyQuery<'_>) -> Result<VerifyingKey, CryptoError> {
        only(self.candidates(query), query.principal)
    }

    fn refresh(&self) -> Refresh<'_> {
        Box::pin(async move {
            let mut changed = false;
            for resolver in &self.resolvers {
                changed |= resolver.refresh().await;
            }
            changed
        })
    }

    fn candidates(&self, query: &KeyQuery<'_>) -> Result<Vec<VerifyingKey>, CryptoError> {
        let mut last = CryptoError::UnknownPrincipal {
            principal: crate::alg::kest_shorten(query.principal),
        };
        for resolver in &self.resolvers {
            match resolver.candidates(query) {
                Ok(keys) => return Ok(keys),
                // A resolver that knows the principal but not this key has the final word:
                // a later resolver must not widen what that principal may sign with.
                Err(
                    error @ (CryptoError::UnknownKeyId { .. } | CryptoError::AmbiguousKey { .. }),
                ) => {
                    return Err(error);
                }
                Err(error) => last = error,
            }
        }
        Err(last)
    }
}
