//! Providers that sign with a key in this process: local, static, mock, and the OIDC
//! provider's key.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use kest_crypto::SigningKey;
use zeroize::Zeroizing;

use crate::provider::check_kid;
use crate::{IdentityError, IdentityInfo, IdentityProvider};

/// A workload id and a key in memory. The header `kid` is the workload id, as in the
/// Python package.
pub(crate) struct KeyedIdentity {
    pub(crate) workload_id: String,
    pub(crate) key: Arc<SigningKey>,
    /// What `describe` answers, worked out once.
    described: IdentityInfo,
}

impl KeyedIdentity {
    pub(crate) fn new(provider: &str, workload_id: String, key: SigningKey) -> Self {
        let described = IdentityInfo {
            provider: provider.to_owned(),
            workload_id: workload_id.clone(),
            alg: key.algorithm(),
            kid: workload_id.clone(),
            jwk: key.verifying_key().to_jwk(),
            issuer: None,
            x5c: None,
        };
        Self {
            workload_id,
            key: Arc::new(key),
            described,
        }
    }

    pub(crate) fn info(&self) -> IdentityInfo {
        self.described.clone()
    }

    pub(crate) fn sign(&self, kid: &str, signing_input: &[u8]) -> Result<Vec<u8>, IdentityError> {
        check_kid(kid, &self.workload_id)?;
        self.key.sign(signing_input).map_err(IdentityError::Signing)
    }
}

impl fmt::Debug for KeyedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedIdentity")
            .field("workload_id", &self.workload_id)
            .field("key", &self.key)
            .finish()
    }
}

/// Implements [`IdentityProvider`] for a type holding a [`KeyedIdentity`] in `inner`.
macro_rules! keyed_provider {
    ($type:ty, $name:literal) => {
        #[async_trait]
        impl IdentityProvider for $type {
            fn name(&self) -> &str {
                $name
            }

            async fn describe(&self) -> Result<IdentityInfo, IdentityError> {
                Ok(self.inner.info())
            }

            async fn sign(
                &self,
                kid: &str,
                signing_input: &[u8],
            ) -> Result<Vec<u8>, IdentityError> {
                self.inner.sign(kid, signing_input)
            }
        }
    };
}

keyed_provider!(LocalEd25519, "local");
#[cfg(feature = "test-util")]
keyed_provider!(MockIdentity, "mock");
keyed_provider!(StaticIdentity, "static");

/// A fresh Ed25519 key, made when the provider is: for development only. Creating one logs
/// a warning, once per provider, because entries it signs cannot be verified after the
/// process exits (the key is gone) or anywhere the public key was not handed out.
#[derive(Debug)]
pub struct LocalEd25519 {
    inner: KeyedIdentity,
}

impl LocalEd25519 {
    /// A fresh key for `workload_id`.
    ///
    /// # Errors
    /// [`IdentityError::Signing`] if the system random number generator fails.
    pub fn new(workload_id: impl Into<String>) -> Result<Self, IdentityError> {
        let workload_id = workload_id.into();
        let key = SigningKey::generate_ed25519().map_err(IdentityError::Signing)?;
        tracing::warn!(
            workload_id = %workload_id,
            thumbprint = %key.verifying_key().thumbprint(),
            "kest: signing with a local Ed25519 key made for this process only; entries cannot be \
             verified once it exits. Configure a static key, OIDC, SPIFFE or AWS KMS for anything \
             but development"
        );
        Ok(Self {
            inner: KeyedIdentity::new("local", workload_id, key),
        })
    }
}

/// A deterministic identity for tests: the key's seed is the SHA-256 of the workload id,
/// so every run and every process signs the same way, and anyone who knows the workload
/// id can sign as it. Only in builds with the `test-util` feature.
#[cfg(feature = "test-util")]
#[derive(Debug)]
pub struct MockIdentity {
    inner: KeyedIdentity,
}

#[cfg(feature = "test-util")]
impl MockIdentity {
    /// The mock identity of `workload_id`.
    ///
    /// # Errors
    /// [`IdentityError::Signing`] if `ring` refuses the derived seed (it does not).
    pub fn new(workload_id: impl Into<String>) -> Result<Self, IdentityError> {
        let workload_id = workload_id.into();
        let seed = kest_canon::sha256(workload_id.as_bytes());
        let key = SigningKey::from_ed25519_seed(seed.as_bytes()).map_err(IdentityError::Signing)?;
        Ok(Self {
            inner: KeyedIdentity::new("mock", workload_id, key),
        })
    }

    /// The public key, for building resolvers in tests.
    #[must_use]
    pub fn verifying_key(&self) -> kest_crypto::VerifyingKey {
        self.inner.key.verifying_key().clone()
    }
}

/// Environment variable: the workload id of a static identity.
pub const ENV_WORKLOAD_ID: &str = "KEST_WORKLOAD_ID";
/// Environment variable: a file holding the private key (PKCS#8 PEM or a JWK).
pub const ENV_KEY_FILE: &str = "KEST_SIGNING_KEY_FILE";
/// Environment variable: the private key as a JWK (JSON text).
pub const ENV_KEY_JWK: &str = "KEST_SIGNING_KEY_JWK";
/// Environment variable: the private key as PKCS#8 PEM text.
pub const ENV_KEY_PEM: &str = "KEST_SIGNING_KEY_PEM";
/// Environment variable: an Ed25519 seed as 64 hex characters.
pub const ENV_KEY_SEED: &str = "KEST_SIGNING_KEY_SEED";

/// An explicit workload id and key: from a seed, PKCS#8 PEM or JWK, in a file, in memory,
/// or in environment variables (`KEST_WORKLOAD_ID` with one of `KEST_SIGNING_KEY_FILE`,
/// `KEST_SIGNING_KEY_JWK`, `KEST_SIGNING_KEY_PEM`, `KEST_SIGNING_KEY_SEED`).
#[derive(Debug)]
pub struct StaticIdentity {
    inner: KeyedIdentity,
}

impl StaticIdentity {
    /// `workload_id` signing with `key`.
    pub fn new(workload_id: impl Into<String>, key: SigningKey) -> Self {
        Self {
            inner: KeyedIdentity::new("static", workload_id.into(), key),
        }
    }

    /// The key in `path`: PKCS#8 PEM, or a private JWK.
    ///
    /// # Errors
    /// [`IdentityError::Io`] or [`IdentityError::Key`].
    pub fn from_key_file(
        workload_id: impl Into<String>,
        path: &Path,
    ) -> Result<Self, IdentityError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|error| IdentityError::Io {
                    path: path.display().to_string(),
                    reason: error.to_string(),
                })?,
            );
        let key = parse_key(&text, &path.display().to_string())?;
        Ok(Self::new(workload_id, key))
    }

    /// Reads `KEST_WORKLOAD_ID` and a key variable through `var`; `None` when neither is
    /// set.
    ///
    /// # Errors
    /// [`IdentityError::Missing`] when only one of the two is set, or a key error.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, IdentityError> {
        let workload_id = var(ENV_WORKLOAD_ID);
        let key = if let Some(path) = var(ENV_KEY_FILE) {
            let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|error| {
                IdentityError::Io {
                    path: path.clone(),
                    reason: error.to_string(),
                }
            })?);
            Some(parse_key(&text, &path)?)
        } else if let Some(jwk) = var(ENV_KEY_JWK).map(Zeroizing::new) {
            Some(parse_key(&jwk, ENV_KEY_JWK)?)
        } else if let Some(pem) = var(ENV_KEY_PEM).map(Zeroizing::new) {
            Some(parse_key(&pem, ENV_KEY_PEM)?)
        } else if let Some(seed) = var(ENV_KEY_SEED).map(Zeroizing::new) {
            Some(
                SigningKey::from_ed25519_seed_hex(&seed).map_err(|error| IdentityError::Key {
                    source_name: ENV_KEY_SEED.into(),
                    error,
                })?,
            )
        } else {
            None
        };
        match (workload_id, key) {
            (None, None) => Ok(None),
            (Some(id), Some(key)) => Ok(Some(Self::new(id, key))),
            (None, Some(_)) => Err(IdentityError::Missing {
                what: format!("a signing key is configured but {ENV_WORKLOAD_ID} is not"),
            }),
            (Some(_), None) => Err(IdentityError::Missing {
                what: format!(
                    "{ENV_WORKLOAD_ID} is set but no key: set {ENV_KEY_FILE}, {ENV_KEY_JWK}, {ENV_KEY_PEM} or {ENV_KEY_SEED}"
                ),
            }),
        }
    }

    /// As [`StaticIdentity::from_vars`], from the process environment.
    ///
    /// # Errors
    /// As [`StaticIdentity::from_vars`].
    pub fn from_env() -> Result<Option<Self>, IdentityError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

/// A private key from PEM or JWK text.
pub(crate) fn parse_key(text: &str, source: &str) -> Result<SigningKey, IdentityError> {
    let trimmed = text.trim_start();
    let result = if trimmed.starts_with('{') {
        SigningKey::from_jwk_json(trimmed)
    } else {
        SigningKey::from_pkcs8_pem(trimmed)
    };
    result.map_err(|error| IdentityError::Key {
        source_name: source.to_owned(),
        error,
    })
}

/// Writes a private key as a JWK to `path`, created with mode 0600 (on Unix) and never
/// over an existing file unless `overwrite`.
///
/// # Errors
/// [`IdentityError::Io`].
pub fn write_private_jwk(
    path: &Path,
    key: &SigningKey,
    overwrite: bool,
) -> Result<(), IdentityError> {
    use std::io::Write as _;
    let io = |error: std::io::Error| IdentityError::Io {
        path: path.display().to_string(),
        reason: error.to_string(),
    };
    if overwrite {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(error)),
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    let text = key.to_private_jwk().to_json();
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(io)
}
