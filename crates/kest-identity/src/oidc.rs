//! An identity asserted by an OIDC token (a CI runner's, a Kubernetes projected service
//! account token, a cloud workload identity), signing with a local key.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kest_crypto::{SecretString, SigningKey};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::keyed::{ENV_KEY_FILE, ENV_KEY_JWK, ENV_KEY_PEM, ENV_KEY_SEED, parse_key};
use crate::provider::check_kid;
use crate::{IdentityError, IdentityInfo, IdentityProvider};

/// Environment variable: the file holding the token (re-read when it changes).
pub const ENV_TOKEN_PATH: &str = "KEST_OIDC_TOKEN_PATH";
/// Environment variable: the token itself, when there is no file.
pub const ENV_TOKEN: &str = "KEST_OIDC_TOKEN";
/// Environment variable: the issuer to validate the token against (enables validation).
pub const ENV_ISSUER: &str = "KEST_OIDC_ISSUER";
/// Environment variable: the audience the token must carry (required with an issuer).
pub const ENV_AUDIENCE: &str = "KEST_OIDC_AUDIENCE";
/// Environment variable: the allowed clock skew for `exp`, in seconds (default 30).
pub const ENV_LEEWAY: &str = "KEST_OIDC_LEEWAY_SECS";

/// The largest token accepted, in bytes.
const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// The default clock skew allowed on `exp`.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Where the token comes from.
pub enum TokenSource {
    /// A file, re-read whenever the identity is used, so a rotated token is picked up.
    File(PathBuf),
    /// A fixed token.
    Value(SecretString),
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Value(_) => f.write_str("Value([token elided])"),
        }
    }
}

/// How to build an [`OidcIdentity`].
#[derive(Debug)]
pub struct OidcConfig {
    token: TokenSource,
    issuer: Option<String>,
    audience: Option<String>,
    jwks_uri: Option<String>,
    leeway: Duration,
    key: Option<SigningKey>,
}

impl OidcConfig {
    /// A token from `source`, not validated against an issuer until
    /// [`OidcConfig::issuer`] is set.
    #[must_use]
    pub fn new(token: TokenSource) -> Self {
        Self {
            token,
            issuer: None,
            audience: None,
            jwks_uri: None,
            leeway: DEFAULT_LEEWAY,
            key: None,
        }
    }

    /// Validates the token's signature, `exp`, `iss` and `aud` against `issuer`'s JWKS,
    /// found by OIDC discovery. `audience` is required: a token minted for another
    /// service must not identify this one.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self.audience = Some(audience.into());
        self
    }

    /// Fetches the JWKS from `uri` instead of the one discovery names.
    #[must_use]
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// The clock skew allowed on `exp` (default 30 s).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Signs entries with `key`. Without one, a fresh Ed25519 key is made per process
    /// (with the same warning as [`crate::LocalEd25519`]).
    #[must_use]
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The configuration in `KEST_OIDC_TOKEN_PATH` or `KEST_OIDC_TOKEN`, with
    /// `KEST_OIDC_ISSUER`, `KEST_OIDC_AUDIENCE`, `KEST_OIDC_LEEWAY_SECS` and the signing
    /// key variables of [`crate::StaticIdentity`]. `None` when no token is configured.
    ///
    /// # Errors
    /// [`IdentityError::Missing`] for an issuer without an audience or a bad leeway, or a
    /// key error.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, IdentityError> {
        let token = if let Some(path) = var(ENV_TOKEN_PATH) {
            TokenSource::File(PathBuf::from(path))
        } else if let Some(value) = var(ENV_TOKEN) {
            TokenSource::Value(SecretString::new(value))
        } else {
            return Ok(None);
        };
        let mut config = Self::new(token);
        match (var(ENV_ISSUER), var(ENV_AUDIENCE)) {
            (Some(issuer), Some(audience)) => config = config.issuer(issuer, audience),
            (Some(_), None) => {
                return Err(IdentityError::Missing {
                    what: format!(
                        "{ENV_ISSUER} is set but {ENV_AUDIENCE} is not; the token's audience must be checked"
                    ),
                });
            }
            (None, _) => {}
        }
        if let Some(leeway) = var(ENV_LEEWAY) {
            let seconds = leeway
                .trim()
                .parse::<u64>()
                .map_err(|_| IdentityError::Missing {
                    what: format!("{ENV_LEEWAY} must be a whole number of seconds, not `{leeway}`"),
                })?;
            config = config.leeway(Duration::from_secs(seconds));
        }
        config.key = signing_key_from_vars(&var)?;
        Ok(Some(config))
    }
}

/// A signing key from the static identity's key variables, if one is set.
fn signing_key_from_vars(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<Option<SigningKey>, IdentityError> {
    if let Some(path) = var(ENV_KEY_FILE) {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|error| {
            IdentityError::Io {
                path: path.clone(),
                reason: error.to_string(),
            }
        })?);
        return parse_key(&text, &path).map(Some);
    }
    for name in [ENV_KEY_JWK, ENV_KEY_PEM] {
        if let Some(text) = var(name).map(zeroize::Zeroizing::new) {
            return parse_key(&text, name).map(Some);
        }
    }
    if let Some(seed) = var(ENV_KEY_SEED).map(zeroize::Zeroizing::new) {
        return SigningKey::from_ed25519_seed_hex(&seed)
            .map(Some)
            .map_err(|error| IdentityError::Key {
                source_name: ENV_KEY_SEED.into(),
                error,
            });
    }
    Ok(None)
}

/// The claims this provider reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Claims {
    pub(crate) sub: Option<String>,
    pub(crate) iss: Option<String>,
    pub(crate) exp: Option<u64>,
}

/// The token in use and what it says.
struct Current {
    digest: [u8; 32],
    sub: String,
    iss: Option<String>,
    exp: u64,
}

/// An identity whose workload id is the `sub` of an OIDC token, and whose issuer (`iss`)
/// is reported so the hook can record it. The token asserts who the workload is; it is
/// not a key. Entries are signed with the configured key.
///
/// The token is read again each time the identity is used, so a rotated token file is
/// picked up, and an expired token stops signing (fail closed). With an issuer
/// configured, every new token is validated against the issuer's JWKS (signature, `exp`,
/// `iss`, `aud`); that needs the `oidc` feature, and without it configuring an issuer is
/// an error rather than a silent downgrade.
pub struct OidcIdentity {
    token: TokenSource,
    audience: Option<String>,
    leeway: Duration,
    key: Arc<SigningKey>,
    current: Mutex<Option<Current>>,
    #[cfg(feature = "oidc")]
    validator: Option<crate::oidc_jwks::JwtValidator>,
    #[cfg(not(feature = "oidc"))]
    validator: Option<std::convert::Infallible>,
}

impl fmt::Debug for OidcIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcIdentity")
            .field("token", &self.token)
            .field("audience", &self.audience)
            .field("validated", &self.validator.is_some())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl OidcIdentity {
    /// Reads and (with an issuer) validates the token.
    ///
    /// # Errors
    /// [`IdentityError::Token`] for a missing, malformed, expired or invalid token,
    /// [`IdentityError::Service`] when the issuer cannot be reached, and
    /// [`IdentityError::Unavailable`] for an issuer configured without the `oidc` feature.
    pub async fn new(config: OidcConfig) -> Result<Self, IdentityError> {
        let OidcConfig {
            token,
            issuer,
            audience,
            jwks_uri,
            leeway,
            key,
        } = config;
        let (validator, audience) = match (issuer, audience) {
            (Some(issuer), Some(audience)) => (
                Some(make_validator(issuer, audience.clone(), jwks_uri, leeway).await?),
                Some(audience),
            ),
            (Some(issuer), None) => {
                return Err(IdentityError::Missing {
                    what: format!("issuer `{issuer}` is configured without an audience"),
                });
            }
            (None, _) => (None, None),
        };
        let key = match key {
            Some(key) => key,
            None => {
                let key = SigningKey::generate_ed25519().map_err(IdentityError::Signing)?;
                tracing::warn!(
                    thumbprint = %key.verifying_key().thumbprint(),
                    "kest: the OIDC identity signs with a key made for this process only; set a signing key \
                     ({ENV_KEY_FILE}, {ENV_KEY_JWK}, {ENV_KEY_PEM} or {ENV_KEY_SEED}) so entries stay verifiable"
                );
                key
            }
        };
        let identity = Self {
            token,
            audience,
            leeway,
            key: Arc::new(key),
            current: Mutex::new(None),
            validator,
        };
        identity.refresh().await?;
        Ok(identity)
    }

    /// From the environment (see [`OidcConfig::from_vars`]); `None` when no token is
    /// configured.
    ///
    /// # Errors
    /// As [`OidcConfig::from_vars`] and [`OidcIdentity::new`].
    pub async fn from_env() -> Result<Option<Self>, IdentityError> {
        match OidcConfig::from_vars(|name| std::env::var(name).ok())? {
            Some(config) => Self::new(config).await.map(Some),
            None => Ok(None),
        }
    }

    /// Reads the token again, validates it if it changed, and checks it has not expired.
    /// Returns `(sub, iss)`.
    async fn refresh(&self) -> Result<(String, Option<String>), IdentityError> {
        let text = self.read_token().await?;
        let digest = *kest_canon::sha256(text.expose().as_bytes()).as_bytes();
        let mut current = self.current.lock().await;
        let fresh = match current.as_ref() {
            Some(known) if known.digest == digest => None,
            _ => Some(self.check_token(&text, digest).await?),
        };
        if let Some(fresh) = fresh {
            *current = Some(fresh);
        }
        let known = current.as_ref().ok_or_else(|| IdentityError::Token {
            reason: "no token has been read".into(),
        })?;
        let now = now_secs();
        if now > known.exp.saturating_add(self.leeway.as_secs()) {
            return Err(IdentityError::Token {
                reason: format!("the token expired at {} (now {now})", known.exp),
            });
        }
        Ok((known.sub.clone(), known.iss.clone()))
    }

    async fn read_token(&self) -> Result<SecretString, IdentityError> {
        let text = match &self.token {
            // A deliberate copy, wiped like the original: the token is checked each use.
            TokenSource::Value(value) => SecretString::new(value.expose().to_owned()),
            TokenSource::File(path) => {
                let bytes =
                    zeroize::Zeroizing::new(tokio::fs::read(path).await.map_err(|error| {
                        IdentityError::Io {
                            path: path.display().to_string(),
                            reason: error.to_string(),
                        }
                    })?);
                let text = std::str::from_utf8(&bytes).map_err(|_| IdentityError::Token {
                    reason: format!("{} is not UTF-8", path.display()),
                })?;
                SecretString::new(text.trim().to_owned())
            }
        };
        if text.expose().is_empty() {
            return Err(IdentityError::Token {
                reason: "the token is empty".into(),
            });
        }
        if text.expose().len() > MAX_TOKEN_BYTES {
            return Err(IdentityError::Token {
                reason: format!("the token is longer than {MAX_TOKEN_BYTES} bytes"),
            });
        }
        Ok(text)
    }

    async fn check_token(
        &self,
        token: &SecretString,
        digest: [u8; 32],
    ) -> Result<Current, IdentityError> {
        let claims = match &self.validator {
            #[cfg(feature = "oidc")]
            Some(validator) => {
                validator
                    .decode(token.expose(), &["exp", "iss", "aud", "sub"])
                    .await?
            }
            #[cfg(not(feature = "oidc"))]
            Some(never) => match *never {},
            None => unverified_claims(token.expose())?,
        };
        let sub = claims
            .sub
            .filter(|sub| !sub.is_empty())
            .ok_or_else(|| IdentityError::Token {
                reason: "the token has no `sub` claim".into(),
            })?;
        let exp = claims.exp.ok_or_else(|| IdentityError::Token {
            reason: "the token has no `exp` claim".into(),
        })?;
        Ok(Current {
            digest,
            sub,
            iss: claims.iss,
            exp,
        })
    }
}

#[cfg(feature = "oidc")]
async fn make_validator(
    issuer: String,
    audience: String,
    jwks_uri: Option<String>,
    leeway: Duration,
) -> Result<crate::oidc_jwks::JwtValidator, IdentityError> {
    match jwks_uri {
        Some(uri) => {
            crate::oidc_jwks::JwtValidator::with_jwks_uri(issuer, audience, uri, leeway).await
        }
        None => crate::oidc_jwks::JwtValidator::discover(issuer, audience, leeway).await,
    }
}

#[cfg(not(feature = "oidc"))]
#[allow(
    clippy::unused_async,
    reason = "the same signature as the feature's version"
)]
async fn make_validator(
    _issuer: String,
    _audience: String,
    _jwks_uri: Option<String>,
    _leeway: Duration,
) -> Result<std::convert::Infallible, IdentityError> {
    Err(IdentityError::Unavailable {
        provider: "validating tokens against an issuer",
        feature: "oidc",
        why: "an issuer is configured, and its tokens are never accepted unvalidated",
    })
}

/// The claims of a token whose signature is not checked (no issuer configured).
fn unverified_claims(token: &str) -> Result<Claims, IdentityError> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdentityError::Token {
            reason: "not a JWT (expected three dot-separated parts)".into(),
        });
    };
    let bytes = kest_canon::b64url_decode_unpadded(payload, "token payload").map_err(|error| {
        IdentityError::Token {
            reason: error.to_string(),
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|error| IdentityError::Token {
        reason: format!("the token payload is not a JSON claims object: {error}"),
    })
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[async_trait]
impl IdentityProvider for OidcIdentity {
    fn name(&self) -> &str {
        "oidc"
    }

    async fn describe(&self) -> Result<IdentityInfo, IdentityError> {
        let (sub, iss) = self.refresh().await?;
        Ok(IdentityInfo {
            provider: self.name().to_owned(),
            workload_id: sub.clone(),
            alg: self.key.algorithm(),
            kid: sub,
            jwk: self.key.verifying_key().to_jwk(),
            issuer: iss,
            x5c: None,
        })
    }

    async fn sign(&self, kid: &str, signing_input: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let (sub, _) = self.refresh().await?;
        check_kid(kid, &sub)?;
        self.key.sign(signing_input).map_err(IdentityError::Signing)
    }
}
