//! SPIFFE X.509-SVIDs from the Workload API, and a key resolver built on trust bundles.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use kest_crypto::{CryptoError, KeyQuery, KeyResolver, SigningKey, VerifyingKey};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use spiffe::{SpiffeId, TrustDomain, X509Source};

use crate::provider::check_kid;
use crate::{IdentityError, IdentityInfo, IdentityProvider};

/// Environment variable: the Workload API endpoint (`unix:///path/to/agent.sock` or
/// `tcp://127.0.0.1:port`), set by SPIRE and other SPIFFE implementations.
pub(crate) const ENV_ENDPOINT_SOCKET: &str = "SPIFFE_ENDPOINT_SOCKET";

/// How long the first fetch of an SVID may take before the provider gives up.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The SVID in use, and what was derived from it.
struct Current {
    leaf: Vec<u8>,
    workload_id: String,
    key: SigningKey,
    kid: String,
    x5c: Vec<String>,
    not_after: i64,
}

/// An identity from the SPIFFE Workload API: the SPIFFE id of the X.509-SVID is the
/// workload id, and the SVID's private key signs (ES256 for the P-256 keys SPIRE issues).
///
/// The `kid` is the RFC 7638 thumbprint of the SVID key, and the SVID's certificate chain
/// travels in the JWS header (`x5c`), so a verifier holding the trust bundle
/// ([`TrustBundleResolver`]) can check any workload of the trust domain without being
/// handed its key. The source follows rotations in the background; each signature uses
/// the SVID current at that moment, and an expired SVID signs nothing.
pub struct SpiffeIdentity {
    source: X509Source,
    current: Mutex<Option<Arc<Current>>>,
}

impl fmt::Debug for SpiffeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.lock().ok().and_then(|guard| guard.clone());
        f.debug_struct("SpiffeIdentity")
            .field(
                "workload_id",
                &current.as_ref().map(|c| c.workload_id.clone()),
            )
            .field("kid", &current.as_ref().map(|c| c.kid.clone()))
            .finish_non_exhaustive()
    }
}

fn workload_api(reason: impl fmt::Display) -> IdentityError {
    IdentityError::Service {
        service: "SPIFFE Workload API",
        reason: reason.to_string(),
    }
}

impl SpiffeIdentity {
    /// Connects to the Workload API at `endpoint` and waits up to `timeout` for the
    /// first SVID.
    ///
    /// # Errors
    /// [`IdentityError::Service`] when the endpoint is malformed or unreachable, or no
    /// SVID arrives in time; [`IdentityError::Key`] for an SVID whose key cannot sign.
    pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Self, IdentityError> {
        let source = X509Source::builder()
            .endpoint(endpoint)
            .initial_sync_timeout(timeout)
            .build()
            .await
            .map_err(|error| workload_api(format!("{endpoint}: {error}")))?;
        Self::from_source(source)
    }

    /// As [`SpiffeIdentity::connect`] with `SPIFFE_ENDPOINT_SOCKET`; `None` when it is
    /// not set. A socket that is set but unreachable is an error, not a fallback.
    ///
    /// # Errors
    /// As [`SpiffeIdentity::connect`].
    pub async fn from_env() -> Result<Option<Self>, IdentityError> {
        match std::env::var(ENV_ENDPOINT_SOCKET) {
            Ok(endpoint) => Self::connect(&endpoint, DEFAULT_CONNECT_TIMEOUT)
                .await
                .map(Some),
            Err(_) => Ok(None),
        }
    }

    /// An identity over an existing source.
    ///
    /// # Errors
    /// When the source has no usable SVID.
    pub fn from_source(source: X509Source) -> Result<Self, IdentityError> {
        let identity = Self {
            source,
            current: Mutex::new(None),
        };
        identity.current()?;
        Ok(identity)
    }

    /// A resolver that trusts every workload whose SVID chains to the bundles this
    /// source receives (kept current as they rotate).
    #[must_use]
    pub fn trust_bundle_resolver(&self) -> TrustBundleResolver {
        TrustBundleResolver::from_source(self.source.clone())
    }

    /// The SVID now selected by the source, re-derived only when it changed.
    fn current(&self) -> Result<Arc<Current>, IdentityError> {
        let svid = self.source.svid().map_err(workload_api)?;
        let leaf = svid.leaf().as_bytes();
        let cached = self
            .current
            .lock()
            .map_err(|_| workload_api("the SVID cache is poisoned"))?
            .clone();
        let current = match cached {
            Some(current) if current.leaf == leaf => current,
            _ => {
                let fresh = Arc::new(derive(&svid)?);
                *self
                    .current
                    .lock()
                    .map_err(|_| workload_api("the SVID cache is poisoned"))? =
                    Some(Arc::clone(&fresh));
                fresh
            }
        };
        let now = i64::try_from(crate::oidc::now_secs()).unwrap_or(i64::MAX);
        if now >= current.not_after {
            return Err(workload_api(format!(
                "the X.509-SVID of {} expired at {} and no newer one has arrived",
                current.workload_id, current.not_after
            )));
        }
        Ok(current)
    }
}

/// Reads the key, checks it is the one the leaf certifies, and prepares the header chain.
fn derive(svid: &spiffe::X509Svid) -> Result<Current, IdentityError> {
    let workload_id = svid.spiffe_id().to_string();
    let key_error = |error: CryptoError| IdentityError::Key {
        source_name: format!("the X.509-SVID of {workload_id}"),
        error,
    };
    let key = SigningKey::from_pkcs8_der(svid.private_key().as_bytes()).map_err(key_error)?;
    let leaf = svid.leaf().as_bytes();
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|error| workload_api(format!("unreadable SVID: {error}")))?;
    let certified = VerifyingKey::from_spki_der(certificate.public_key().raw).map_err(key_error)?;
    if &certified != key.verifying_key() {
        return Err(key_error(CryptoError::InvalidKey {
            format: "X.509-SVID",
            reason: "the private key is not the key the certificate certifies".into(),
        }));
    }
    let x5c = svid
        .cert_chain()
        .iter()
        .map(|cert| base64::engine::general_purpose::STANDARD.encode(cert.as_bytes()))
        .collect();
    Ok(Current {
        leaf: leaf.to_vec(),
        kid: key.verifying_key().thumbprint(),
        workload_id,
        key,
        x5c,
        not_after: certificate.validity().not_after.timestamp(),
    })
}

#[async_trait]
impl IdentityProvider for SpiffeIdentity {
    fn name(&self) -> &str {
        "spiffe"
    }

    async fn describe(&self) -> Result<IdentityInfo, IdentityError> {
        let current = self.current()?;
        Ok(IdentityInfo {
            provider: self.name().to_owned(),
            workload_id: current.workload_id.clone(),
            alg: current.key.algorithm(),
            kid: current.kid.clone(),
            jwk: current.key.verifying_key().to_jwk(),
            issuer: None,
            x5c: Some(current.x5c.clone()),
        })
    }

    async fn sign(&self, kid: &str, signing_input: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let current = self.current()?;
        check_kid(kid, &current.kid)?;
        current
            .key
            .sign(signing_input)
            .map_err(IdentityError::Signing)
    }
}

/// Where the trusted CA certificates come from.
#[derive(Clone)]
enum Anchors {
    /// Fixed bundles, by trust domain name.
    Fixed(HashMap<String, Vec<Vec<u8>>>),
    /// The bundles a Workload API source currently holds.
    Source(X509Source),
}

/// Resolves keys of SPIFFE workloads from the certificate chain each entry carries
/// (`x5c`), trusting it only when:
///
/// - the chain verifies to a CA of the trust bundle of the principal's trust domain, at
///   the time the entry says it was signed (so entries stay verifiable after short-lived
///   SVIDs expire);
/// - the leaf's SPIFFE id (its URI SAN) is the entry's principal;
/// - a `kid` other than the principal is the thumbprint of the leaf's key.
///
/// The signing time is the entry's own claim. A workload whose key leaked can sign
/// back-dated entries until its certificate is revoked; like every X.509 scheme without a
/// timestamp authority, this resolver cannot tell.
#[derive(Clone)]
pub struct TrustBundleResolver {
    anchors: Anchors,
}

impl fmt::Debug for TrustBundleResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.anchors {
            Anchors::Fixed(bundles) => f
                .debug_struct("TrustBundleResolver")
                .field("trust_domains", &bundles.keys().collect::<Vec<_>>())
                .finish(),
            Anchors::Source(_) => f
                .debug_struct("TrustBundleResolver")
                .field("source", &"workload API")
                .finish(),
        }
    }
}

impl Default for TrustBundleResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl TrustBundleResolver {
    /// A resolver that trusts nothing until bundles are added.
    #[must_use]
    pub fn new() -> Self {
        Self {
            anchors: Anchors::Fixed(HashMap::new()),
        }
    }

    /// Trusts `authorities` (DER CA certificates) for `trust_domain`.
    ///
    /// # Errors
    /// [`IdentityError::Missing`] for a malformed trust domain name.
    pub fn with_bundle(
        mut self,
        trust_domain: &str,
        authorities: Vec<Vec<u8>>,
    ) -> Result<Self, IdentityError> {
        let name = TrustDomain::new(trust_domain)
            .map_err(|error| IdentityError::Missing {
                what: format!("a valid trust domain, not `{trust_domain}`: {error}"),
            })?
            .to_string();
        match &mut self.anchors {
            Anchors::Fixed(bundles) => {
                bundles.entry(name).or_default().extend(authorities);
            }
            Anchors::Source(_) => {
                let mut bundles = HashMap::new();
                bundles.insert(name, authorities);
                self.anchors = Anchors::Fixed(bundles);
            }
        }
        Ok(self)
    }

    /// Trusts the bundles `source` holds, following their rotation.
    #[must_use]
    pub fn from_source(source: X509Source) -> Self {
        Self {
            anchors: Anchors::Source(source),
        }
    }

    fn authorities(&self, trust_domain: &TrustDomain) -> Result<Vec<Vec<u8>>, String> {
        match &self.anchors {
            Anchors::Fixed(bundles) => Ok(bundles
                .get(&trust_domain.to_string())
                .cloned()
                .unwrap_or_default()),
            Anchors::Source(source) => {
                let bundles = source.bundle_set().map_err(|error| error.to_string())?;
                Ok(bundles
                    .get(trust_domain)
                    .map(|bundle| {
                        bundle
                            .authorities()
                            .iter()
                            .map(|c| c.as_bytes().to_vec())
                            .collect()
                    })
                    .unwrap_or_default())
            }
        }
    }
}

impl KeyResolver for TrustBundleResolver {
    fn resolve(&self, query: &KeyQuery<'_>) -> Result<VerifyingKey, CryptoError> {
        let untrusted = |reason: String| CryptoError::UntrustedChain {
            principal: query.principal.chars().take(256).collect(),
            reason,
        };
        let Some(x5c) = query.x5c else {
            return Err(CryptoError::UnknownPrincipal {
                principal: query.principal.chars().take(256).collect(),
            });
        };
        let id = SpiffeId::new(query.principal)
            .map_err(|error| untrusted(format!("the principal is not a SPIFFE id: {error}")))?;
        let authorities = self.authorities(id.trust_domain()).map_err(untrusted)?;
        if authorities.is_empty() {
            return Err(untrusted(format!(
                "no trust bundle for trust domain `{}`",
                id.trust_domain_name()
            )));
        }
        let chain = x5c
            .iter()
            .map(|cert| base64::engine::general_purpose::STANDARD.decode(cert))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| untrusted(format!("x5c is not base64 DER: {error}")))?;
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| untrusted("x5c is empty".into()))?;
        let anchors = authorities
            .iter()
            .map(|der| {
                webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
                    .map(|a| a.to_owned())
            })
            .collect::<Result<Vec<TrustAnchor<'static>>, _>>()
            .map_err(|error| untrusted(format!("a bundle certificate is unusable: {error}")))?;
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|der| CertificateDer::from(der.as_slice()))
            .collect();
        let leaf_der = CertificateDer::from(leaf.as_slice());
        let end_entity = webpki::EndEntityCert::try_from(&leaf_der)
            .map_err(|error| untrusted(format!("unreadable leaf certificate: {error}")))?;
        let at_ms = query
            .signed_at_ms
            .unwrap_or_else(|| crate::oidc::now_secs().saturating_mul(1000));
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &intermediates,
                UnixTime::since_unix_epoch(Duration::from_millis(at_ms)),
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(|error| {
                untrusted(format!("the chain does not verify at {at_ms} ms: {error}"))
            })?;
        let certified = spiffe::cert::spiffe_id_from_der(leaf)
            .map_err(|error| untrusted(format!("the leaf has no SPIFFE id: {error}")))?;
        if certified != id {
            return Err(untrusted(format!(
                "the leaf certifies `{certified}`, not the principal"
            )));
        }
        let (_, certificate) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|error| untrusted(format!("unreadable leaf certificate: {error}")))?;
        let key = VerifyingKey::from_spki_der(certificate.public_key().raw)?;
        if let Some(kid) = query.kid.filter(|kid| *kid != query.principal)
            && kid != key.thumbprint()
        {
            return Err(CryptoError::UnknownKeyId {
                principal: query.principal.chars().take(256).collect(),
                kid: kid.chars().take(256).collect(),
            });
        }
        Ok(key)
    }
}
