//! OIDC discovery, the issuer's JWKS, and token validation with `jsonwebtoken`.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::IdentityError;
use crate::oidc::Claims;

/// The largest discovery document or JWKS read, in bytes.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// How long a request to the issuer may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The JWKS is fetched again for an unknown `kid` at most this often.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
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

/// Validates tokens of one issuer for one audience.
pub(crate) struct Validator {
    issuer: String,
    audience: String,
    jwks_uri: String,
    leeway: Duration,
    client: reqwest::Client,
    keys: RwLock<Keys>,
}

impl Validator {
    /// Finds the issuer's JWKS by discovery (unless `jwks_uri` is given) and fetches it.
    pub(crate) async fn discover(
        issuer: String,
        audience: String,
        jwks_uri: Option<String>,
        leeway: Duration,
    ) -> Result<Self, IdentityError> {
        require_secure(&issuer)?;
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| service(format!("cannot build an HTTP client: {error}")))?;
        let jwks_uri = match jwks_uri {
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
        require_secure(&jwks_uri)?;
        let set = get_json(&client, &jwks_uri).await?;
        Ok(Self {
            issuer,
            audience,
            jwks_uri,
            leeway,
            client,
            keys: RwLock::new(Keys {
                set,
                fetched: Instant::now(),
            }),
        })
    }

    /// Checks the token's signature against the issuer's keys, and its `exp`, `iss`,
    /// `aud` and `sub`.
    pub(crate) async fn validate(&self, token: &str) -> Result<Claims, IdentityError> {
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
        let key = self.key_for(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|error| IdentityError::Token {
                reason: describe(&error, &self.issuer, &self.audience),
            })
    }

    /// The key named `kid`, fetching the JWKS again (rate-limited) if it is unknown: the
    /// issuer may have rotated its keys.
    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, IdentityError> {
        if let Some(key) = find(&self.keys.read().await.set, kid)? {
            return Ok(key);
        }
        let mut keys = self.keys.write().await;
        if keys.fetched.elapsed() >= REFETCH_INTERVAL {
            keys.set = get_json(&self.client, &self.jwks_uri).await?;
            keys.fetched = Instant::now();
        }
        find(&keys.set, kid)?.ok_or_else(|| IdentityError::Token {
            reason: format!(
                "no key {} in the issuer's JWKS at {}",
                kid.map_or_else(
                    || "(the token names none)".to_owned(),
                    |kid| format!("`{kid}`")
                ),
                self.jwks_uri
            ),
        })
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

/// Plain HTTP only to this machine: a token validated against keys fetched in clear text
/// from elsewhere proves nothing.
fn require_secure(url: &str) -> Result<(), IdentityError> {
    let parsed = reqwest::Url::parse(url).map_err(|error| IdentityError::Missing {
        what: format!("`{url}` is not a URL: {error}"),
    })?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        scheme => Err(IdentityError::Missing {
            what: format!(
                "`{url}`: the issuer and its JWKS must be fetched over https, not {scheme}"
            ),
        }),
    }
}

fn service(reason: String) -> IdentityError {
    IdentityError::Service {
        service: "OIDC issuer",
        reason,
    }
}

/// GETs a JSON document of bounded size.
async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, IdentityError> {
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|error| service(format!("GET {url}: {error}")))?;
    if !response.status().is_success() {
        return Err(service(format!("GET {url}: HTTP {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| service(format!("GET {url}: {error}")))?
    {
        if body.len().saturating_add(chunk.len()) > MAX_DOCUMENT_BYTES {
            return Err(service(format!(
                "GET {url}: the response is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|error| service(format!("GET {url}: not the expected JSON: {error}")))
}
