//! AWS KMS and the Bedrock agent identity against moto (`moto[server]` from PyPI, started
//! by `cargo xtask services`), which emulates STS and KMS including ECC_NIST_P256 keys.
#![cfg(feature = "aws")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kest_crypto::{StaticKeyResolver, VerifyingKey};
use kest_identity::{AwsKms, IdentityError, IdentityProvider};
use kest_passport::{EntryBuilder, Passport, Verifier};
use kest_trust::WeakestLink;

const SECRET: &str = "kest-test-secret-access-key-0123456789";

async fn config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "AKIDKESTTEST",
            SECRET,
            None,
            None,
            "test",
        ))
        .load()
        .await
}

async fn create_key(config: &aws_config::SdkConfig, spec: KeySpec, usage: KeyUsageType) -> String {
    aws_sdk_kms::Client::new(config)
        .create_key()
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned()
}

/// The public key as KMS reports it, fetched independently of the provider.
async fn kms_public_key(config: &aws_config::SdkConfig, key_id: &str) -> VerifyingKey {
    let output = aws_sdk_kms::Client::new(config)
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .unwrap();
    VerifyingKey::from_spki_der(output.public_key().unwrap().as_ref()).unwrap()
}

#[tokio::test]
async fn entries_signed_inside_kms_verify_with_the_kms_public_key() {
    if !kest_testkit::live() {
        return;
    }
    let config = config(&kest_testkit::live_env("KEST_MOTO_URL")).await;
    let key_id = create_key(&config, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let identity = AwsKms::new(&config, &key_id).await.unwrap();
    let info = identity.describe().await.unwrap();
    let public = kms_public_key(&config, &key_id).await;
    assert_eq!(info.provider, "aws-kms");
    assert!(
        info.workload_id.starts_with("arn:aws:"),
        "the STS caller ARN: {}",
        info.workload_id
    );
    assert_eq!(info.alg, kest_crypto::Algorithm::ES256);
    assert_eq!(info.jwk, public.to_jwk());
    assert_eq!(info.kid, public.thumbprint());

    let mut passport = Passport::new();
    for operation in ["fetch", "summarize", "send"] {
        kest_identity::append(
            &mut passport,
            EntryBuilder::new(operation),
            &identity,
            &WeakestLink,
        )
        .await
        .unwrap();
    }
    let resolver = StaticKeyResolver::new().with_key(&info.workload_id, public);
    assert_eq!(
        Verifier::new(&resolver)
            .verify_json(&passport.to_json())
            .unwrap()
            .len(),
        3
    );

    // No credential shows in Debug.
    let debug = format!("{identity:?} {identity:#?}");
    assert!(
        !debug.contains(SECRET) && debug.contains(&key_id),
        "{debug}"
    );
}

#[tokio::test]
async fn a_bedrock_agent_signs_as_its_agent_arn() {
    if !kest_testkit::live() {
        return;
    }
    let config = config(&kest_testkit::live_env("KEST_MOTO_URL")).await;
    let key_id = create_key(&config, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let agent = AwsKms::bedrock_agent(&config, "KESTAGENT1", &key_id)
        .await
        .unwrap();
    let info = agent.describe().await.unwrap();
    assert_eq!(info.provider, "bedrock-agent");
    assert!(
        info.workload_id.starts_with("arn:aws:bedrock:us-east-1:")
            && info.workload_id.ends_with(":agent/KESTAGENT1"),
        "{}",
        info.workload_id
    );
    let arn = "arn:aws:bedrock:eu-west-1:111122223333:agent/OTHER";
    assert_eq!(
        AwsKms::bedrock_agent(&config, arn, &key_id)
            .await
            .unwrap()
            .describe()
            .await
            .unwrap()
            .workload_id,
        arn
    );
    let mut passport = Passport::new();
    kest_identity::append(
        &mut passport,
        EntryBuilder::new("invoke"),
        &agent,
        &WeakestLink,
    )
    .await
    .unwrap();
    let resolver = StaticKeyResolver::new()
        .with_key(&info.workload_id, kms_public_key(&config, &key_id).await);
    Verifier::new(&resolver)
        .verify_json(&passport.to_json())
        .unwrap();
    let empty = AwsKms::bedrock_agent(&config, " ", &key_id)
        .await
        .unwrap_err();
    assert!(matches!(empty, IdentityError::Missing { .. }));
}

#[tokio::test]
async fn kms_failures_are_typed_errors() {
    if !kest_testkit::live() {
        return;
    }
    let config = config(&kest_testkit::live_env("KEST_MOTO_URL")).await;
    let missing = AwsKms::new(&config, "00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            IdentityError::Service {
                service: "AWS KMS",
                ..
            }
        ),
        "{missing}"
    );
    let rsa = create_key(&config, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let error = AwsKms::new(&config, &rsa).await.unwrap_err();
    assert!(
        matches!(&error, IdentityError::Key { .. }) && error.to_string().contains("ECC_NIST_P256"),
        "{error}"
    );
    let symmetric = create_key(
        &config,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    assert!(matches!(
        AwsKms::new(&config, &symmetric).await.unwrap_err(),
        IdentityError::Key { .. }
    ));
    let nowhere = config_for_unreachable().await;
    let error = AwsKms::new(&nowhere, "alias/kest").await.unwrap_err();
    assert!(
        matches!(
            error,
            IdentityError::Service {
                service: "AWS STS",
                ..
            }
        ),
        "{error}"
    );

    // Signing inputs over 4 KiB go to KMS as a SHA-256 digest (MessageType DIGEST).
    // moto 5.2.5 ignores MessageType and signs the digest as if it were the message, so
    // its signature does not verify: the provider checks every signature KMS returns and
    // refuses it instead of writing an entry nobody can verify.
    let key_id = create_key(&config, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let identity = AwsKms::new(&config, &key_id).await.unwrap();
    let kid = identity.describe().await.unwrap().kid;
    let error = identity.sign(&kid, &vec![b'a'; 5000]).await.unwrap_err();
    assert!(error.to_string().contains("does not verify"), "{error}");
    identity.sign(&kid, &vec![b'a'; 4096]).await.unwrap();
}

async fn config_for_unreachable() -> aws_config::SdkConfig {
    config("http://127.0.0.1:9").await
}
