//! Choosing a provider from the environment.

use std::str::FromStr;
use std::sync::Arc;

use crate::{IdentityError, IdentityProvider, LocalEd25519, StaticIdentity};

/// Environment variable: forces one provider (`local`, `static`, `oidc`, `spiffe`,
/// `aws-kms`, `bedrock-agent`, and `mock` in `test-util` builds) instead of detecting one.
/// A forced provider whose configuration is missing is an error.
pub const ENV_PROVIDER: &str = "KEST_IDENTITY";

/// Which provider the environment calls for, before anything is contacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Detected {
    /// `KEST_WORKLOAD_ID` is set: an explicit workload id and key.
    Static,
    /// `SPIFFE_ENDPOINT_SOCKET` is set.
    Spiffe,
    /// `AWS_BEDROCK_AGENT_ID` is set.
    BedrockAgent,
    /// `KEST_AWS_KMS_KEY_ID` is set.
    AwsKms,
    /// `KEST_OIDC_TOKEN_PATH` or `KEST_OIDC_TOKEN` is set.
    Oidc,
    /// `KEST_IDENTITY=mock`: a test double, made only in builds with `test-util`.
    Mock,
    /// Nothing is configured: a local key made for this process.
    Local,
}

impl Detected {
    /// The provider's name, as `kest whoami` prints it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Spiffe => "spiffe",
            Self::BedrockAgent => "bedrock-agent",
            Self::AwsKms => "aws-kms",
            Self::Oidc => "oidc",
            Self::Mock => "mock",
            Self::Local => "local",
        }
    }

    /// Picks a provider from the variables `var` returns, in this order:
    ///
    /// 1. `KEST_IDENTITY`, when set, names the provider outright;
    /// 2. `KEST_WORKLOAD_ID`: explicit configuration wins over anything detected (it
    ///    needs a `KEST_SIGNING_KEY_*` beside it);
    /// 3. `SPIFFE_ENDPOINT_SOCKET`;
    /// 4. `AWS_BEDROCK_AGENT_ID`;
    /// 5. `KEST_AWS_KMS_KEY_ID` (the AWS role or execution environment supplies the
    ///    credentials);
    /// 6. `KEST_OIDC_TOKEN_PATH` or `KEST_OIDC_TOKEN` (a `KEST_SIGNING_KEY_*` is then the
    ///    key the token vouches for);
    /// 7. a `KEST_SIGNING_KEY_*` on its own: a static identity, which fails for want of
    ///    `KEST_WORKLOAD_ID` when it is made, never a quiet fall back to a throwaway key;
    /// 8. otherwise a local key, with a warning.
    ///
    /// # Errors
    /// [`IdentityError::Missing`] for an unknown `KEST_IDENTITY`, and
    /// [`IdentityError::Unavailable`] for one this build cannot make.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, IdentityError> {
        let set = |name: &str| var(name).is_some_and(|value| !value.trim().is_empty());
        if let Some(forced) = var(ENV_PROVIDER).filter(|value| !value.trim().is_empty()) {
            return forced.parse();
        }
        let key_set = [
            crate::keyed::ENV_KEY_FILE,
            crate::keyed::ENV_KEY_JWK,
            crate::keyed::ENV_KEY_PEM,
            crate::keyed::ENV_KEY_SEED,
        ]
        .into_iter()
        .any(set);
        Ok(if set(crate::keyed::ENV_WORKLOAD_ID) {
            Self::Static
        } else if set("SPIFFE_ENDPOINT_SOCKET") {
            Self::Spiffe
        } else if set("AWS_BEDROCK_AGENT_ID") {
            Self::BedrockAgent
        } else if set("KEST_AWS_KMS_KEY_ID") {
            Self::AwsKms
        } else if set(crate::oidc::ENV_TOKEN_PATH) || set(crate::oidc::ENV_TOKEN) {
            Self::Oidc
        } else if key_set {
            Self::Static
        } else {
            Self::Local
        })
    }
}

impl FromStr for Detected {
    type Err = IdentityError;

    /// A provider by the name `KEST_IDENTITY` and configuration files use: `local`,
    /// `static`, `oidc`, `spiffe`, `aws-kms`, `bedrock-agent`, and `mock` in builds with
    /// the `test-util` feature.
    fn from_str(name: &str) -> Result<Self, IdentityError> {
        match name.trim() {
            "static" => Ok(Self::Static),
            "spiffe" => Ok(Self::Spiffe),
            "bedrock-agent" => Ok(Self::BedrockAgent),
            "aws-kms" => Ok(Self::AwsKms),
            "oidc" => Ok(Self::Oidc),
            "local" => Ok(Self::Local),
            #[cfg(feature = "test-util")]
            "mock" => Ok(Self::Mock),
            #[cfg(not(feature = "test-util"))]
            "mock" => Err(IdentityError::Unavailable {
                provider: "the `mock` identity",
                feature: "test-util",
                why: "it is a test double whose key anyone can derive from the workload id",
            }),
            other => Err(IdentityError::Missing {
                what: format!(
                    "a known identity provider, not `{}` (local, static, oidc, spiffe, aws-kms, bedrock-agent)",
                    kest_canon::escape_untrusted(other, 40)
                ),
            }),
        }
    }
}

/// How an identity is chosen in configuration: detected from the environment, or named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityChoice {
    /// Detected from the environment ([`Detected::from_vars`]).
    Detect,
    /// A named provider.
    Named(Detected),
}

impl FromStr for IdentityChoice {
    type Err = IdentityError;

    /// `detect`, or a provider name as [`Detected`] reads it.
    fn from_str(name: &str) -> Result<Self, IdentityError> {
        match name.trim() {
            "detect" => Ok(Self::Detect),
            other => other.parse().map(Self::Named),
        }
    }
}

/// The identity a configuration names: a choice, and for `static` (and `local`) the
/// workload id and key file given beside it. Providers that read the environment are
/// resolved on first use ([`crate::LazyIdentity`]), so a service can start before its
/// identity source is up; until it resolves, nothing is signed and nothing runs.
///
/// # Errors
/// [`IdentityError::Missing`] when `static` lacks its workload id or key file, or a key
/// error.
pub fn configured(
    choice: IdentityChoice,
    workload_id: Option<String>,
    key_file: Option<&std::path::Path>,
) -> Result<Arc<dyn IdentityProvider>, IdentityError> {
    match choice {
        IdentityChoice::Detect => Ok(Arc::new(crate::LazyIdentity::new(detect))),
        IdentityChoice::Named(Detected::Static) => match (workload_id, key_file) {
            (Some(workload_id), Some(key_file)) => Ok(Arc::new(StaticIdentity::from_key_file(
                workload_id,
                key_file,
            )?)),
            _ => Err(IdentityError::Missing {
                what: "a static identity needs both a workload id and a key file".into(),
            }),
        },
        IdentityChoice::Named(Detected::Local) => Ok(Arc::new(LocalEd25519::new(
            workload_id.unwrap_or_else(default_local_id),
        )?)),
        #[cfg(feature = "test-util")]
        IdentityChoice::Named(Detected::Mock) => Ok(Arc::new(crate::MockIdentity::new(
            workload_id.unwrap_or_else(|| "mock://kest".into()),
        )?)),
        IdentityChoice::Named(detected) => {
            Ok(Arc::new(crate::LazyIdentity::new(move || make(detected))))
        }
    }
}

/// The provider the process environment calls for (see [`Detected::from_vars`]), made
/// and checked: a configured source that does not work is an error, never a fall back
/// to a weaker identity.
///
/// # Errors
/// Whatever the chosen provider returns, or [`IdentityError::Missing`] when it needs a
/// feature this build lacks.
pub async fn detect() -> Result<Arc<dyn IdentityProvider>, IdentityError> {
    let detected = Detected::from_vars(|name| std::env::var(name).ok())?;
    make(detected).await
}

/// Makes the provider `detected` names, from the process environment.
///
/// # Errors
/// As [`detect`].
pub async fn make(detected: Detected) -> Result<Arc<dyn IdentityProvider>, IdentityError> {
    let missing = |what: String| IdentityError::Missing { what };
    match detected {
        Detected::Static => StaticIdentity::from_env()?
            .map(|identity| Arc::new(identity) as Arc<dyn IdentityProvider>)
            .ok_or_else(|| {
                missing(format!(
                    "{} and a signing key",
                    crate::keyed::ENV_WORKLOAD_ID
                ))
            }),
        #[cfg(feature = "test-util")]
        Detected::Mock => Ok(Arc::new(crate::MockIdentity::new(
            std::env::var(crate::keyed::ENV_WORKLOAD_ID).unwrap_or_else(|_| "mock://kest".into()),
        )?)),
        #[cfg(not(feature = "test-util"))]
        Detected::Mock => Err(IdentityError::Unavailable {
            provider: "the `mock` identity",
            feature: "test-util",
            why: "it is a test double whose key anyone can derive from the workload id",
        }),
        Detected::Local => Ok(Arc::new(LocalEd25519::new(default_local_id())?)),
        Detected::Oidc => crate::OidcIdentity::from_env()
            .await?
            .map(|identity| Arc::new(identity) as Arc<dyn IdentityProvider>)
            .ok_or_else(|| {
                missing(format!(
                    "{} or {}",
                    crate::oidc::ENV_TOKEN_PATH,
                    crate::oidc::ENV_TOKEN
                ))
            }),
        Detected::Spiffe => spiffe().await,
        Detected::AwsKms => aws_kms().await,
        Detected::BedrockAgent => bedrock().await,
    }
}

/// The workload id of a local key: `local:` and the program's name.
pub(crate) fn default_local_id() -> String {
    let program = std::env::current_exe()
        .ok()
        .and_then(|path| {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "kest".into());
    format!("local:{program}")
}

#[cfg(feature = "spiffe")]
async fn spiffe() -> Result<Arc<dyn IdentityProvider>, IdentityError> {
    crate::SpiffeIdentity::from_env()
        .await?
        .map(|identity| Arc::new(identity) as Arc<dyn IdentityProvider>)
        .ok_or_else(|| IdentityError::Missing {
            what: "SPIFFE_ENDPOINT_SOCKET".into(),
        })
}

#[cfg(not(feature = "spiffe"))]
#[allow(
    clippy::unused_async,
    reason = "the same signature as the feature's version"
)]
async fn spiffe() -> Result<Arc<dyn IdentityProvider>, IdentityError> {
    Err(IdentityError::Unavailable {
        provider: "the `spiffe` identity",
        feature: "spiffe",
        why: "SPIFFE_ENDPOINT_SOCKET is set, but the Workload API client is left out of this build",
    })
}

#[cfg(feature = "aws")]
async fn aws_kms() -> Result<Arc<dyn IdentityProvider>, IdentityError> {
    crate::AwsKms::from_env()
        .await?
        .map(|identity| Arc::new(identity) as Arc<dyn IdentityProvider>)
        .ok_or_else(|| IdentityError::Missing {
            what: "KEST_AWS_KMS_KEY_ID".into(),
        })
}

#[cfg(feature = "aws")]
async fn bedrock() -> Result<Arc<dyn IdentityProvider>, IdentityError> {
    crate::AwsKms::bedrock_from_env()
        .await?
        .map(|identity| Arc::new(identity) as Arc<dyn IdentityProvider>)
        .ok_or_else(|| IdentityError::Missing {
            what: "AWS_BEDROCK_AGENT_ID".into(),
        })
}

#[cfg(not(feature = "aws"))]
#[allow(
    clippy::unused_async,
    reason = "the same signature as the feature's version"
)]
async fn aws_kms() -> Result<Arc<dyn IdentityProvider>, IdentityError> {
    Err(IdentityError::Unavailable {
        provider: "the `aws-kms` identity",
        feature: "aws",
        why: "KEST_AWS_KMS_KEY_ID is set, but the AWS SDK is left out of this build",
    })
}

#[cfg(not(feature = "aws"))]
#[allow(
    clippy::unused_async,
    reason = "the same signature as the feature's version"
)]
async fn bedrock() -> Result<Arc<dyn IdentityProvider>, IdentityError> {
    Err(IdentityError::Unavailable {
        provider: "the `bedrock-agent` identity",
        feature: "aws",
        why: "AWS_BEDROCK_AGENT_ID is set, but the AWS SDK is left out of this build",
    })
}
