//! Signing inside AWS KMS, as the STS caller identity or as a Bedrock agent.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use kest_crypto::{Algorithm, VerifyingKey};

use crate::provider::check_kid;
use crate::{IdentityError, IdentityInfo, IdentityProvider};

/// Environment variable: the KMS key that signs (key id, key ARN, alias name or alias
/// ARN). Its key spec must be `ECC_NIST_P256` with usage `SIGN_VERIFY`.
pub(crate) const ENV_KMS_KEY_ID: &str = "KEST_AWS_KMS_KEY_ID";
/// Environment variable: the Bedrock agent this process runs as (an agent id or agent
/// ARN).
pub(crate) const ENV_BEDROCK_AGENT_ID: &str = "AWS_BEDROCK_AGENT_ID";

/// KMS signs a message of at most this many bytes as is (`RAW`); longer signing inputs
/// are hashed here and sent as a `DIGEST`.
const KMS_RAW_LIMIT: usize = 4096;

/// An identity whose workload id is the STS caller identity ARN, signing with an
/// `ECC_NIST_P256` key that never leaves AWS KMS (`ECDSA_SHA_256`, ES256 entries).
///
/// The public key is fetched from KMS when the provider is made; the `kid` is its
/// RFC 7638 thumbprint. Every signature KMS returns is converted from DER to the fixed
/// JWS form and checked against that public key before it is used, so a KMS (or an
/// emulator) that signs the wrong bytes is an error rather than an unverifiable entry.
///
/// The AWS configuration is the SDK's usual one: region and credentials from the
/// environment, profile or instance role, and `AWS_ENDPOINT_URL` to point at an
/// emulator.
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    key_id: String,
    workload_id: String,
    provider: &'static str,
    public: VerifyingKey,
    kid: String,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("provider", &self.provider)
            .field("workload_id", &self.workload_id)
            .field("key_id", &self.key_id)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The AWS configuration of the environment (region, credentials, `AWS_ENDPOINT_URL`),
/// with at most ten seconds per call.
pub async fn load_aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(std::time::Duration::from_secs(10))
                .build(),
        )
        .load()
        .await
}

impl AwsKms {
    /// Signs with KMS key `key_id` as the caller identity of `config`.
    ///
    /// # Errors
    /// [`IdentityError::Service`] when STS or KMS fail, [`IdentityError::Key`] when the
    /// key is not a P-256 signing key.
    pub async fn new(
        config: &aws_config::SdkConfig,
        key_id: impl Into<String>,
    ) -> Result<Self, IdentityError> {
        let identity = caller_identity(config).await?;
        Self::with_workload_id(config, key_id.into(), identity.arn, "aws-kms").await
    }

    /// As [`AwsKms::new`], with the key from `KEST_AWS_KMS_KEY_ID` and the environment's
    /// AWS configuration; `None` when the variable is not set.
    ///
    /// # Errors
    /// As [`AwsKms::new`].
    pub async fn from_env() -> Result<Option<Self>, IdentityError> {
        let Some(key_id) = std::env::var(ENV_KMS_KEY_ID).ok() else {
            return Ok(None);
        };
        Self::new(&load_aws_config().await, key_id).await.map(Some)
    }

    /// A Bedrock agent: the workload id is the agent's ARN (`agent_id` as is when it is
    /// already an ARN, otherwise `arn:aws:bedrock:<region>:<account>:agent/<agent_id>`
    /// with the account from STS), and signing goes through KMS key `key_id`.
    ///
    /// # Errors
    /// As [`AwsKms::new`], and [`IdentityError::Missing`] without a region.
    pub async fn bedrock_agent(
        config: &aws_config::SdkConfig,
        agent_id: &str,
        key_id: impl Into<String>,
    ) -> Result<Self, IdentityError> {
        let agent_id = agent_id.trim();
        if agent_id.is_empty() {
            return Err(IdentityError::Missing {
                what: format!("{ENV_BEDROCK_AGENT_ID} is empty"),
            });
        }
        let workload_id = if agent_id.starts_with("arn:") {
            agent_id.to_owned()
        } else {
            let region = config.region().ok_or_else(|| IdentityError::Missing {
                what: "an AWS region (AWS_REGION) to form the Bedrock agent ARN".into(),
            })?;
            let identity = caller_identity(config).await?;
            format!(
                "arn:{}:bedrock:{region}:{}:agent/{agent_id}",
                identity.partition, identity.account
            )
        };
        Self::with_workload_id(config, key_id.into(), workload_id, "bedrock-agent").await
    }

    /// As [`AwsKms::bedrock_agent`] from `AWS_BEDROCK_AGENT_ID` and
    /// `KEST_AWS_KMS_KEY_ID`; `None` when the agent id is not set. An agent id without
    /// a key id is an error: the agent would have nothing to sign with.
    ///
    /// # Errors
    /// As [`AwsKms::bedrock_agent`].
    pub async fn bedrock_from_env() -> Result<Option<Self>, IdentityError> {
        let Some(agent_id) = std::env::var(ENV_BEDROCK_AGENT_ID).ok() else {
            return Ok(None);
        };
        let key_id = std::env::var(ENV_KMS_KEY_ID).map_err(|_| IdentityError::Missing {
            what: format!("{ENV_BEDROCK_AGENT_ID} is set but {ENV_KMS_KEY_ID} is not; a Bedrock agent signs through KMS"),
        })?;
        Self::bedrock_agent(&load_aws_config().await, &agent_id, key_id)
            .await
            .map(Some)
    }

    async fn with_workload_id(
        config: &aws_config::SdkConfig,
        key_id: String,
        workload_id: String,
        provider: &'static str,
    ) -> Result<Self, IdentityError> {
        let client = aws_sdk_kms::Client::new(config);
        let output = client
            .get_public_key()
            .key_id(&key_id)
            .send()
            .await
            .map_err(|error| kms(format!("GetPublicKey {key_id}"), &error))?;
        let bad_key = |reason: String| IdentityError::Key {
            source_name: format!("KMS key {key_id}"),
            error: kest_crypto::CryptoError::InvalidKey {
                format: "KMS key",
                reason,
            },
        };
        // KMS reports the spec in `KeySpec` and, deprecated, in `CustomerMasterKeySpec`
        // (all some emulators send). Either must say P-256; the public key is checked for
        // the curve below in any case.
        #[allow(deprecated, reason = "moto sends only the deprecated member")]
        let spec = output
            .key_spec()
            .map(|spec| spec.as_str().to_owned())
            .or_else(|| {
                output
                    .customer_master_key_spec()
                    .map(|spec| spec.as_str().to_owned())
            });
        if let Some(spec) = spec.filter(|spec| spec != KeySpec::EccNistP256.as_str()) {
            return Err(bad_key(format!(
                "key spec {spec}; Kest signs ES256 and needs ECC_NIST_P256"
            )));
        }
        if output.key_usage() != Some(&KeyUsageType::SignVerify) {
            return Err(bad_key(format!(
                "key usage {:?}; needs SIGN_VERIFY",
                output.key_usage()
            )));
        }
        if !output
            .signing_algorithms()
            .contains(&SigningAlgorithmSpec::EcdsaSha256)
        {
            return Err(bad_key("the key does not offer ECDSA_SHA_256".into()));
        }
        let der = output
            .public_key()
            .ok_or_else(|| bad_key("GetPublicKey returned no public key".into()))?;
        let public =
            VerifyingKey::from_spki_der(der.as_ref()).map_err(|error| IdentityError::Key {
                source_name: format!("KMS key {key_id}"),
                error,
            })?;
        let kid = public.thumbprint();
        Ok(Self {
            client,
            key_id,
            workload_id,
            provider,
            public,
            kid,
        })
    }

    /// The public key KMS holds, for resolvers.
    #[must_use]
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }
}

struct Caller {
    arn: String,
    account: String,
    partition: String,
}

async fn caller_identity(config: &aws_config::SdkConfig) -> Result<Caller, IdentityError> {
    let output = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|error| IdentityError::Service {
            service: "AWS STS",
            reason: format!(
                "GetCallerIdentity: {}",
                aws_sdk_sts::error::DisplayErrorContext(&error)
            ),
        })?;
    let missing = |what: &str| IdentityError::Service {
        service: "AWS STS",
        reason: format!("GetCallerIdentity returned no {what}"),
    };
    let arn = output.arn().ok_or_else(|| missing("ARN"))?.to_owned();
    let account = output
        .account()
        .ok_or_else(|| missing("account"))?
        .to_owned();
    let partition = arn.split(':').nth(1).unwrap_or("aws").to_owned();
    Ok(Caller {
        arn,
        account,
        partition,
    })
}

fn kms<E: std::error::Error + 'static>(what: String, error: &E) -> IdentityError {
    IdentityError::Service {
        service: "AWS KMS",
        reason: format!("{what}: {}", aws_sdk_kms::error::DisplayErrorContext(error)),
    }
}

#[async_trait]
impl IdentityProvider for AwsKms {
    fn name(&self) -> &str {
        self.provider
    }

    async fn describe(&self) -> Result<IdentityInfo, IdentityError> {
        Ok(IdentityInfo {
            provider: self.provider.to_owned(),
            workload_id: self.workload_id.clone(),
            alg: Algorithm::ES256,
            kid: self.kid.clone(),
            jwk: self.public.to_jwk(),
            issuer: None,
            x5c: None,
        })
    }

    async fn sign(&self, kid: &str, signing_input: &[u8]) -> Result<Vec<u8>, IdentityError> {
        check_kid(kid, &self.kid)?;
        let (message, message_type) = if signing_input.len() <= KMS_RAW_LIMIT {
            (signing_input.to_vec(), MessageType::Raw)
        } else {
            (
                kest_canon::sha256(signing_input).as_bytes().to_vec(),
                MessageType::Digest,
            )
        };
        let output = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(message_type)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|error| kms(format!("Sign with {}", self.key_id), &error))?;
        let der = output.signature().ok_or_else(|| IdentityError::Service {
            service: "AWS KMS",
            reason: "Sign returned no signature".into(),
        })?;
        let fixed =
            kest_crypto::es256_signature_from_der(der.as_ref()).map_err(IdentityError::Signing)?;
        // Never hand out a signature that does not verify.
        self.public
            .verify(signing_input, &fixed)
            .map_err(|_| IdentityError::Service {
                service: "AWS KMS",
                reason: format!(
                    "KMS key {} returned a signature that does not verify over the signing input",
                    self.key_id
                ),
            })?;
        Ok(fixed.to_vec())
    }
}
