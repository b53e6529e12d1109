//! OIDC discovery, the issuer's JWKS, and token validation with `jsonwebtoken`.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::IdentityError;

use crate::fetch::{REFETCH_INTERVAL, require_secure};
/// Algorithms accepted on identity tokens: asymmetric only. An HMAC token would be
/// "signed" with a secret the verifier has to hold, which no issuer JWKS provides.
const ACCEPTED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

struct Keys {
    set: JwkSet,
    fetched: Instant,
}

/// Where the issuer's keys come from.
enum KeySource {
    /// Fetched over HTTP, and fetched again for an unknown `kid`.
    Remote {
        uri: String,
        client: reqwest::Client,
        keys: RwLock<Keys>,
    },
    /// A fixed set, given in configuration.
    Fixed(JwkSet),
}

/// Validates JWTs of one issuer for one audience against the issuer's JWKS, with
/// `jsonwebtoken`: the signature (asymmetric algorithms only), `exp` and `nbf` (with a
/// leeway), `iss` and `aud`, all required.
///
/// The OIDC identity provider uses it for its own token; the identity layer of
/// `kest-propagation` uses it for callers' bearer tokens.
pub struct JwtValidator {
    issuer: String,
    audience: String,
    leeway: Duration,
    keys: KeySource,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match &self.keys {
            KeySource::Remote { uri, .. } => uri.clone(),
            KeySource::Fixed(set) => format!("{} fixed key(s)", set.keys.len()),
        };
        f.debug_struct("JwtValidator")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &keys)
            .finish()
    }
}

impl JwtValidator {
    /// Finds the issuer's JWKS by OIDC discovery and fetches it.
    ///
    /// # Errors
    /// [`IdentityError::Service`] when the issuer cannot be reached,
    /// [`IdentityError::Token`] when its discovery document names another issuer,
    /// [`IdentityError::Missing`] for a plain-HTTP issuer off this machine.
    pub async fn discover(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        leeway: Duration,
    ) -> Result<Self, IdentityError> {
        Self::remote(issuer.into(), audience.into(), None, leeway).await
    }

    /// Fetches the JWKS from `jwks_uri` (no discovery).
    ///
    /// # Errors
    /// As [`JwtValidator::discover`].
    pub async fn with_jwks_uri(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks_uri: impl Into<String>,
        leeway: Duration,
    ) -> Result<Self, IdentityError> {
        Self::remote(
            issuer.into(),
            audience.into(),
            Some(jwks_uri.into()),
            leeway,
        )
        .await
    }

    /// Uses a fixed JWKS (JSON text).
    ///
    /// # Errors
    /// [`IdentityError::Token`] when the text is not a JWK Set.
    pub fn with_jwks(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks_json: &str,
        leeway: Duration,
    ) -> Result<Self, IdentityError> {
        let set: JwkSet =
            serde_json::from_str(jwks_json).map_err(|error| IdentityError::Token {
                reason: format!("not a JWK Set: {error}"),
            })?;
        Ok(Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway,
            keys: KeySource::Fixed(set),
        })
    }

    async fn remote(
        issuer: String,
        audience: String,
        jwks_uri: Option<String>,
        leeway: Duration,
    ) -> Result<Self, IdentityError> {
        require_secure(&issuer)?;
        let client = crate::fetch::client("OIDC issuer")?;
        let uri = match jwks_uri {
            Some(uri) => uri,
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let discovery: Discovery = get_json(&client, &url).await?;
                if discovery.issuer != issuer {
                    return Err(IdentityError::Token {
                        reason: format!(
                            "discovery at {url} names issuer `{}`, not the configured `{issuer}`",
                            discovery.issuer
                        ),
                    });
                }
                discovery.jwks_uri
            }
        };
        require_secure(&uri)?;
        let set = get_json(&client, &uri).await?;
        Ok(Self {
            issuer,
            audience,
            leeway,
            keys: KeySource::Remote {
                uri,
                client,
                keys: RwLock::new(Keys {
                    set,
                    fetched: Instant::now(),
                }),
            },
        })
    }

    /// The issuer tokens must come from.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Validates `token` and returns its claims.
    ///
    /// # Errors
    /// [`IdentityError::Token`] saying what is wrong (signature, expiry, issuer, audience,
    /// algorithm, unknown key), or [`IdentityError::Service`] when the JWKS cannot be
    /// fetched again.
    pub async fn validate(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, IdentityError> {
        self.decode(token, &["exp", "iss", "aud"]).await
    }

    pub(crate) async fn decode<T: serde::de::DeserializeOwned + Clone>(
        &self,
        token: &str,
        required: &[&str],
    ) -> Result<T, IdentityError> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| IdentityError::Token {
            reason: format!("unreadable token header: {error}"),
        })?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(IdentityError::Token {
                reason: format!(
                    "token algorithm {:?} is not accepted (asymmetric algorithms only)",
                    header.alg
                ),
            });
        }
        let kid = header.kid.as_deref();
        let key = self.key_for(kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(required);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        let decoded = match jsonwebtoken::decode::<T>(token, &key, &validation) {
            // The issuer may have replaced the key under the same `kid` (or its only,
            // unnamed key), as a provider that makes a new key when it restarts does:
            // fetch the set again (at most once a second) and try the key it holds now.
            Err(error) if *error.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                match self.refetched_key(kid).await? {
                    Some(fresh) => jsonwebtoken::decode::<T>(token, &fresh, &validation),
                    None => Err(error),
                }
            }
            other => other,
        };
        decoded
            .map(|data| data.claims)
            .map_err(|error| IdentityError::Token {
                reason: describe(&error, &self.issuer, &self.audience),
            })
    }

    /// The key for `kid` in a freshly fetched set, when the set may be fetched again (a
    /// remote one, last fetched at least [`REFETCH_INTERVAL`] ago); `None` otherwise.
    async fn refetched_key(&self, kid: Option<&str>) -> Result<Option<DecodingKey>, IdentityError> {
        let KeySource::Remote { uri, client, keys } = &self.keys else {
            return Ok(None);
        };
        let mut keys = keys.write().await;
        if keys.fetched.elapsed() < REFETCH_INTERVAL {
            return Ok(None);
        }
        keys.set = get_json(client, uri).await?;
        keys.fetched = Instant::now();
        find(&keys.set, kid)
    }

    /// The key named `kid`, fetching the JWKS again (rate-limited) if it is unknown: the
    /// issuer may have rotated its keys.
    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, IdentityError> {
        let missing = |source: &str| IdentityError::Token {
            reason: format!(
                "no key {} in the issuer's JWKS ({source})",
                kid.map_or_else(
                    || "(the token names none)".to_owned(),
                    |kid| format!("`{kid}`")
                ),
            ),
        };
        match &self.keys {
            KeySource::Fixed(set) => find(set, kid)?.ok_or_else(|| missing("fixed")),
            KeySource::Remote { uri, client, keys } => {
                if let Some(key) = find(&keys.read().await.set, kid)? {
                    return Ok(key);
                }
                let mut keys = keys.write().await;
                if keys.fetched.elapsed() >= REFETCH_INTERVAL {
                    keys.set = get_json(client, uri).await?;
                    keys.fetched = Instant::now();
                }
                find(&keys.set, kid)?.ok_or_else(|| missing(uri))
            }
        }
    }
}

/// The key for `kid`; a token without a `kid` is accepted only when the set has one key.
fn find(set: &JwkSet, kid: Option<&str>) -> Result<Option<DecodingKey>, IdentityError> {
    let jwk = match kid {
        Some(kid) => set.find(kid),
        None => match set.keys.as_slice() {
            [only] => Some(only),
            _ => None,
        },
    };
    jwk.map(|jwk| {
        DecodingKey::from_jwk(jwk).map_err(|error| IdentityError::Token {
            reason: format!("the issuer's key cannot be used: {error}"),
        })
    })
    .transpose()
}

fn describe(error: &jsonwebtoken::errors::Error, issuer: &str, audience: &str) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => format!("the token is not for audience `{audience}`"),
        ErrorKind::InvalidIssuer => format!("the token was not issued by `{issuer}`"),
        ErrorKind::InvalidSignature => {
            "the token's signature does not verify with the issuer's key".into()
        }
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        _ => format!("invalid token: {error}"),
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, IdentityError> {
    crate::fetch::get_json(client, url, "OIDC issuer").await
}
