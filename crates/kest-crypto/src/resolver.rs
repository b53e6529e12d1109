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

use crate::binding::names_a_principal;
use crate::{Algorithm, CryptoError, Jwk, Jwks, PrincipalBinding, VerifyingKey};

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
        // The header's algorithm first, then its `kid`: two keys of different algorithms
        // may share a `kid`.
        let named = || keys.iter().filter(|known| known.answers_to(kid));
        return named()
            .find(|known| known.key.algorithm() == query.alg)
            .or_else(|| named().next())
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
/// Read as it is ([`JwksKeyResolver::from_jwks`]), a JWK belongs to the principal its `kid`
/// names: that is how Kest publishes workload keys, and it matches the Python package,
/// whose header `kid` is the workload id. Use that form only for a set the operator wrote
/// (a local file of trusted keys): whoever wrote the set decides whom each key speaks for.
///
/// A set that someone else publishes must be bound first ([`JwksKeyResolver::bound`]): a
/// key then speaks only for principals inside the [`PrincipalBinding`]. Bound to one
/// principal, every key of the set is that principal's (named by its `kid` or
/// thumbprint); bound to a SPIFFE ID prefix, a key speaks for the principal its `kid`
/// names when that is under the prefix. A key the set lists for anyone else is dropped and
/// reported by [`JwksKeyResolver::outside_binding`]; it is never used.
///
/// ```
/// use kest_crypto::{Jwks, JwksKeyResolver, KeyQuery, KeyResolver, SigningKey, Algorithm};
///
/// let peer = SigningKey::from_ed25519_seed(&[1; 32])?;
/// let other = SigningKey::from_ed25519_seed(&[2; 32])?;
/// let mut own = peer.verifying_key().to_jwk();
/// own.kid = Some("spiffe://example.org/gateway".into());
/// let mut impostor = other.verifying_key().to_jwk();
/// impostor.kid = Some("spiffe://example.org/hop1".into());
/// let set = Jwks { keys: vec![own, impostor] };
///
/// let keys = JwksKeyResolver::from_jwks(&set)?.bound("spiffe://example.org/gateway".parse()?)?;
/// assert_eq!(keys.outside_binding(), ["spiffe://example.org/hop1"]);
/// let hop1 = KeyQuery::new("spiffe://example.org/hop1", None, Algorithm::EdDSA);
/// assert!(keys.resolve(&hop1).is_err());
/// let gateway = KeyQuery::new("spiffe://example.org/gateway", None, Algorithm::EdDSA);
/// assert_eq!(&keys.resolve(&gateway)?, peer.verifying_key());
/// # Ok::<(), kest_crypto::CryptoError>(())
/// ```
#[derive(Clone, Debug)]
pub struct JwksKeyResolver {
    keys: Vec<KnownKey>,
    binding: Option<PrincipalBinding>,
    outside: Vec<String>,
}

impl JwksKeyResolver {
    /// Reads a JWK Set, each key belonging to the principal its `kid` names.
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
            binding: None,
            outside: Vec::new(),
        })
    }

    /// Reads a JWK Set from JSON text.
    ///
    /// # Errors
    /// As [`JwksKeyResolver::from_jwks`].
    pub fn from_json(text: &str) -> Result<Self, CryptoError> {
        Self::from_jwks(&Jwks::from_json(text)?)
    }

    /// Trusts the set only for the principals of `binding`. Keys listed for a principal
    /// outside it (by a `kid` that names a principal: one holding a `:`, as URIs do) are
    /// dropped, and named by [`JwksKeyResolver::outside_binding`].
    ///
    /// # Errors
    /// [`CryptoError::NoKeyInBinding`] when no key is left for the binding.
    pub fn bound(mut self, binding: PrincipalBinding) -> Result<Self, CryptoError> {
        let (inside, outside): (Vec<KnownKey>, Vec<KnownKey>) =
            self.keys.into_iter().partition(|known| match &binding {
                PrincipalBinding::Principal(principal) => known.kid.as_deref().is_none_or(|kid| {
                    kid == principal || kid == known.thumbprint || !names_a_principal(kid)
                }),
                PrincipalBinding::SpiffePrefix(_) => {
                    known.kid.as_deref().is_some_and(|kid| binding.permits(kid))
                }
            });
        let outside: Vec<String> = outside
            .iter()
            .map(|known| {
                known.kid.as_deref().map_or_else(
                    || format!("(no kid, thumbprint {})", known.thumbprint),
                    |kid| kest_canon::escape_untrusted(kid, 128),
                )
            })
            .collect();
        if inside.is_empty() {
            return Err(CryptoError::NoKeyInBinding {
                binding: binding.to_string(),
                outside,
            });
        }
        self.keys = inside;
        self.outside = outside;
        self.binding = Some(binding);
        Ok(self)
    }

    /// Trusts every key of the set for `principal`, and for no one else: the same as
    /// [`JwksKeyResolver::bound`] with [`PrincipalBinding::principal`].
    ///
    /// # Errors
    /// As [`PrincipalBinding::principal`] and [`JwksKeyResolver::bound`].
    pub fn bound_to(self, principal: impl Into<String>) -> Result<Self, CryptoError> {
        self.bound(PrincipalBinding::principal(principal)?)
    }

    /// The binding, when the set is bound.
    #[must_use]
    pub const fn binding(&self) -> Option<&PrincipalBinding> {
        self.binding.as_ref()
    }

    /// The keys the set listed for principals outside its binding (their `kid`s, escaped),
    /// which are never used.
    #[must_use]
    pub fn outside_binding(&self) -> &[String] {
        &self.outside
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
        match &self.binding {
            Some(PrincipalBinding::Principal(bound)) if bound == query.principal => {
                choose(&self.keys, query)
            }
            Some(PrincipalBinding::Principal(_)) => Err(unknown()),
            Some(binding @ PrincipalBinding::SpiffePrefix(_))
                if !binding.permits(query.principal) =>
            {
                Err(unknown())
            }
            // A prefix-bound set, or an operator's set: each key is the principal's its
            // `kid` names.
            Some(PrincipalBinding::SpiffePrefix(_)) | None => {
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

/// Several sources of keys, united: every source is asked, and a signature is accepted
/// when a key any of them trusts for the principal verifies it.
///
/// No source can shadow or lock out another: a source that does not know the principal,
/// or knows it without the key the header names, or holds more keys than it may offer
/// ([`MAX_CANDIDATE_KEYS`]), simply adds nothing. Keys of the header's algorithm come
/// first; only when no source has one is a key of another algorithm handed back, so that
/// verification reports the mismatch. Bind each source to the principals it may speak
/// for ([`JwksKeyResolver::bound`], [`StaticKeyResolver`]), since the union trusts each of
/// them for whatever it answers.
///
/// ```
/// use kest_crypto::{Algorithm, KeyQuery, KeyResolver, KeySources, SigningKey, StaticKeyResolver};
///
/// let ed = SigningKey::from_ed25519_seed(&[3; 32])?;
/// let p256 = SigningKey::generate_p256()?;
/// let sources = KeySources::new()
///     .with(StaticKeyResolver::new().with_key("w", ed.verifying_key().clone()))
///     .with(StaticKeyResolver::new().with_key("w", p256.verifying_key().clone()));
/// // The P-256 key answers an ES256 entry, though the first source knows `w` too.
/// let query = KeyQuery::new("w", None, Algorithm::ES256);
/// assert_eq!(&sources.resolve(&query)?, p256.verifying_key());
/// # Ok::<(), kest_crypto::CryptoError>(())
/// ```
#[derive(Default)]
pub struct KeySources {
    resolvers: Vec<Box<dyn KeyResolver>>,
}

impl fmt::Debug for KeySources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySources")
            .field("sources", &self.resolvers.len())
            .finish()
    }
}

impl KeySources {
    /// No source: it knows no one.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source.
    #[must_use]
    pub fn with(mut self, resolver: impl KeyResolver + 'static) -> Self {
        self.push(resolver);
        self
    }

    /// Adds a source, in place.
    pub fn push(&mut self, resolver: impl KeyResolver + 'static) {
        self.resolvers.push(Box::new(resolver));
    }

    /// How many sources there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.resolvers.len()
    }

    /// Whether there is no source.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.resolvers.is_empty()
    }
}

/// How much an error says about the principal: a source that knows it says more than one
/// that does not.
const fn says_more(error: &CryptoError) -> bool {
    !matches!(error, CryptoError::UnknownPrincipal { .. })
}

impl KeyResolver for KeySources {
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
        let mut matching: Vec<VerifyingKey> = Vec::new();
        let mut other_alg: Option<VerifyingKey> = None;
        let mut error = None;
        for resolver in &self.resolvers {
            match resolver.candidates(query) {
                Ok(keys) => {
                    for key in keys {
                        if key.algorithm() != query.alg {
                            other_alg.get_or_insert(key);
                        } else if !matching.contains(&key) {
                            matching.push(key);
                        }
                    }
                }
                Err(found) => {
                    if error
                        .as_ref()
                        .is_none_or(|held| !says_more(held) && says_more(&found))
                    {
                        error = Some(found);
                    }
                }
            }
        }
        if !matching.is_empty() {
            return Ok(matching);
        }
        if let Some(key) = other_alg {
            return Ok(vec![key]);
        }
        Err(error.unwrap_or_else(|| CryptoError::UnknownPrincipal {
            principal: crate::alg::kest_shorten(query.principal),
        }))
    }
}
