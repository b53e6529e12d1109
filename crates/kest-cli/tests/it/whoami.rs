//! `kest whoami` under each environment, and the interop of Ed25519 and KMS ES256 entries
//! in one chain checked by `kest verify`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::process::{Command, Output};

use kest_crypto::SigningKey;
use serde_json::Value;

const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

/// Runs `kest whoami` with only `vars` (and PATH/HOME) in its environment.
fn whoami(args: &[&str], vars: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kest"));
    command.arg("whoami").args(args).env_clear();
    for name in ["PATH", "HOME"] {
        if let Ok(value) = std::env::var(name) {
            command.env(name, value);
        }
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "one object on one line: {text}");
    let value: Value = serde_json::from_str(&text).unwrap();
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["alg", "jwk", "kid", "provider", "workload_id"]);
    value
}

#[test]
fn local_key_when_nothing_is_configured() {
    let output = whoami(&["--json"], &[]);
    let value = json_of(&output);
    assert_eq!(value["provider"], "local");
    assert_eq!(value["alg"], "EdDSA");
    assert!(value["workload_id"].as_str().unwrap().starts_with("local:"));
    assert_eq!(value["jwk"]["kty"], "OKP");
    assert!(value["jwk"].get("d").is_none(), "never the private key");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.matches("this process only").count(),
        1,
        "one warning: {stderr}"
    );
    // Human output names the same things.
    let text = String::from_utf8(whoami(&[], &[]).stdout).unwrap();
    assert!(text.starts_with("provider     local\n"), "{text}");
    assert!(text.contains("algorithm    EdDSA"), "{text}");
}

#[test]
fn static_key_from_the_environment() {
    let key = SigningKey::from_ed25519_seed_hex(SEED).unwrap();
    let value = json_of(&whoami(
        &["--json"],
        &[
            ("KEST_WORKLOAD_ID", "spiffe://kest.test/static".into()),
            ("KEST_SIGNING_KEY_SEED", SEED.into()),
        ],
    ));
    assert_eq!(value["provider"], "static");
    assert_eq!(value["workload_id"], "spiffe://kest.test/static");
    assert_eq!(value["kid"], "spiffe://kest.test/static");
    assert_eq!(
        value["jwk"],
        serde_json::to_value(key.verifying_key().to_jwk()).unwrap()
    );
    // A workload id without a key is an error, not a local key.
    let output = whoami(&["--json"], &[("KEST_WORKLOAD_ID", "w".into())]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("KEST_SIGNING_KEY_FILE"));
    // So is a key without a workload id: configured but not working, never a throwaway
    // local key.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key.jwk");
    std::fs::write(&file, key.to_private_jwk().to_json().as_str()).unwrap();
    for (name, value) in [
        ("KEST_SIGNING_KEY_FILE", file.display().to_string()),
        ("KEST_SIGNING_KEY_SEED", SEED.to_owned()),
    ] {
        let output = whoami(&["--json"], &[(name, value)]);
        assert_eq!(output.status.code(), Some(1), "{name}");
        assert!(output.stdout.is_empty(), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("KEST_WORKLOAD_ID"), "{name}: {stderr}");
        assert!(!stderr.contains("this process only"), "{name}: {stderr}");
    }
}

#[test]
fn mock_and_oidc_identities() {
    let mock = whoami(
        &["--json"],
        &[
            ("KEST_IDENTITY", "mock".into()),
            ("KEST_WORKLOAD_ID", "mock:agent".into()),
        ],
    );
    // The test double exists only in builds with `test-util`; elsewhere asking for it is
    // an error that names the feature, never a silent signer anyone could forge. (The
    // binary's features are this crate's as long as nothing else in the same cargo
    // command turns on kest-identity's `test-util`: `cargo xtask test` runs this crate's
    // default-feature tests on their own for that reason.)
    if cfg!(feature = "test-util") {
        let value = json_of(&mock);
        assert_eq!(value["provider"], "mock");
        assert_eq!(value["workload_id"], "mock:agent");
    } else {
        assert_eq!(mock.status.code(), Some(1));
        assert!(mock.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&mock.stderr);
        assert!(stderr.contains("test-util"), "{stderr}");
    }

    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    let claims = serde_json::json!({"sub": "repo:kest/ci", "iss": "https://token.actions.example", "exp": 4_102_444_800_u64});
    let token = format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
        kest_canon::b64url_encode(claims.to_string().as_bytes())
    );
    std::fs::write(&token_path, &token).unwrap();
    let vars = [
        ("KEST_OIDC_TOKEN_PATH", token_path.display().to_string()),
        ("KEST_SIGNING_KEY_SEED", SEED.into()),
    ];
    let value = json_of(&whoami(&["--json"], &vars));
    assert_eq!(value["provider"], "oidc");
    assert_eq!(value["workload_id"], "repo:kest/ci");
    let text = String::from_utf8(whoami(&[], &vars).stdout).unwrap();
    assert!(
        text.contains("issuer       https://token.actions.example"),
        "{text}"
    );
    // An expired token: no identity.
    let expired = serde_json::json!({"sub": "repo:kest/ci", "exp": 1});
    std::fs::write(
        &token_path,
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            kest_canon::b64url_encode(expired.to_string().as_bytes())
        ),
    )
    .unwrap();
    let output = whoami(&["--json"], &vars);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expired"));
    assert!(output.stdout.is_empty());
}

#[cfg(feature = "spiffe")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spiffe_identity_from_the_workload_api() {
    use kest_testkit::workload_api::{TestCa, WorkloadApiServer};
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("kest.test");
    let svid = ca.mint("/checkout", -60, 3600);
    let server = WorkloadApiServer::start(dir.path(), ca.response(&svid)).await;
    let endpoint = server.endpoint();
    let output = tokio::task::spawn_blocking(move || {
        whoami(&["--json"], &[("SPIFFE_ENDPOINT_SOCKET", endpoint)])
    })
    .await
    .unwrap();
    let value = json_of(&output);
    let key = SigningKey::from_pkcs8_der(&svid.key).unwrap();
    assert_eq!(value["provider"], "spiffe");
    assert_eq!(value["workload_id"], "spiffe://kest.test/checkout");
    assert_eq!(value["alg"], "ES256");
    assert_eq!(value["kid"], key.verifying_key().thumbprint());
    assert_eq!(
        value["jwk"],
        serde_json::to_value(key.verifying_key().to_jwk()).unwrap()
    );
    // A socket that is configured but dead is an error, not a fall back to a local key.
    let dead = format!("unix://{}", dir.path().join("dead.sock").display());
    let output = tokio::task::spawn_blocking(move || {
        whoami(&["--json"], &[("SPIFFE_ENDPOINT_SOCKET", dead)])
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SPIFFE Workload API"));
}

#[cfg(not(feature = "spiffe"))]
#[test]
fn spiffe_needs_its_feature() {
    let output = whoami(
        &["--json"],
        &[(
            "SPIFFE_ENDPOINT_SOCKET",
            "unix:///run/spire/agent.sock".into(),
        )],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("`spiffe` feature"));
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};

    async fn moto() -> (String, aws_config::SdkConfig) {
        let url = kest_testkit::live_env("KEST_MOTO_URL");
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "AKIDKEST",
                "kest-secret",
                None,
                None,
                "test",
            ))
            .load()
            .await;
        (url, config)
    }

    async fn p256_key(config: &aws_config::SdkConfig) -> String {
        aws_sdk_kms::Client::new(config)
            .create_key()
            .key_spec(KeySpec::EccNistP256)
            .key_usage(KeyUsageType::SignVerify)
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_id()
            .to_owned()
    }

    fn aws_vars(url: &str, key_id: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", url.to_owned()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "AKIDKEST".into()),
            ("AWS_SECRET_ACCESS_KEY", "kest-secret".into()),
            ("KEST_AWS_KMS_KEY_ID", key_id.to_owned()),
        ]
    }

    #[tokio::test]
    async fn aws_kms_and_bedrock_identities() {
        if !kest_testkit::live() {
            return;
        }
        let (url, config) = moto().await;
        let key_id = p256_key(&config).await;
        let public = aws_sdk_kms::Client::new(&config)
            .get_public_key()
            .key_id(&key_id)
            .send()
            .await
            .unwrap();
        let public =
            kest_crypto::VerifyingKey::from_spki_der(public.public_key().unwrap().as_ref())
                .unwrap();
        let vars = aws_vars(&url, &key_id);
        let value = json_of(
            &tokio::task::spawn_blocking(move || whoami(&["--json"], &vars))
                .await
                .unwrap(),
        );
        assert_eq!(value["provider"], "aws-kms");
        assert!(
            value["workload_id"]
                .as_str()
                .unwrap()
                .starts_with("arn:aws:"),
            "{value}"
        );
        assert_eq!(value["alg"], "ES256");
        assert_eq!(value["kid"], public.thumbprint());
        assert_eq!(value["jwk"], serde_json::to_value(public.to_jwk()).unwrap());

        let mut vars = aws_vars(&url, &key_id);
        vars.push(("AWS_BEDROCK_AGENT_ID", "KESTAGENT2".into()));
        let value = json_of(
            &tokio::task::spawn_blocking(move || whoami(&["--json"], &vars))
                .await
                .unwrap(),
        );
        assert_eq!(value["provider"], "bedrock-agent");
        assert!(
            value["workload_id"]
                .as_str()
                .unwrap()
                .ends_with(":agent/KESTAGENT2"),
            "{value}"
        );

        // A key id KMS does not know: an error, not a local key.
        let vars = aws_vars(&url, "11111111-2222-3333-4444-555555555555");
        let output = tokio::task::spawn_blocking(move || whoami(&["--json"], &vars))
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&output.stderr).contains("AWS KMS"));
    }

    /// One chain, two algorithms: a local Ed25519 workload hands over to one that signs
    /// inside KMS (ES256). `kest verify` accepts it with both public keys, and rejects it
    /// when either is wrong or an entry is altered.
    #[tokio::test]
    async fn a_mixed_ed25519_and_kms_chain_verifies_with_kest_verify() {
        if !kest_testkit::live() {
            return;
        }
        use kest_identity::{AwsKms, IdentityProvider, StaticIdentity};
        use kest_passport::{EntryBuilder, Passport};
        let (_, config) = moto().await;
        let key_id = p256_key(&config).await;
        let kms = AwsKms::new(&config, &key_id).await.unwrap();
        let local = StaticIdentity::new(
            "spiffe://kest.test/ingest",
            SigningKey::from_ed25519_seed_hex(SEED).unwrap(),
        );
        let mut passport = Passport::new();
        let evaluator = kest_trust::WeakestLink;
        kest_identity::append(
            &mut passport,
            EntryBuilder::new("ingest"),
            &local,
            &evaluator,
        )
        .await
        .unwrap();
        kest_identity::append(
            &mut passport,
            EntryBuilder::new("classify"),
            &kms,
            &evaluator,
        )
        .await
        .unwrap();
        kest_identity::append(
            &mut passport,
            EntryBuilder::new("store"),
            &local,
            &evaluator,
        )
        .await
        .unwrap();
        let algs: Vec<_> = passport
            .entries()
            .iter()
            .map(|e| e.header().alg.as_str())
            .collect();
        assert_eq!(algs, ["EdDSA", "ES256", "EdDSA"]);

        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let chain = write("passport.json", &passport.to_json());
        let local_info = local.describe().await.unwrap();
        let kms_info = kms.describe().await.unwrap();
        let local_jwk = write("local.jwk", local_info.jwk.to_json().as_str());
        let kms_jwk = write("kms.jwk", kms_info.jwk.to_json().as_str());
        let verify = |chain: String, kms_key: String| {
            Command::new(env!("CARGO_BIN_EXE_kest"))
                .args(["verify", &chain, "--key"])
                .arg(format!("{}={local_jwk}", local_info.workload_id))
                .arg("--key")
                .arg(format!("{}={kms_key}", kms_info.workload_id))
                .output()
                .unwrap()
        };
        let ok = verify(chain.clone(), kms_jwk.clone());
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stdout)
        );
        // The KMS principal with another P-256 key: the ES256 entry fails.
        let other = write(
            "other.jwk",
            SigningKey::generate_p256()
                .unwrap()
                .verifying_key()
                .to_jwk()
                .to_json()
                .as_str(),
        );
        let wrong = verify(chain.clone(), other);
        assert_eq!(wrong.status.code(), Some(1));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&wrong.stdout),
            String::from_utf8_lossy(&wrong.stderr)
        );
        assert!(said.contains("entry 1"), "{said}");
        // An altered KMS entry.
        let mut entries: Vec<String> = serde_json::from_str(&passport.to_json()).unwrap();
        let parts: Vec<&str> = entries[1].split('.').collect();
        let mut sig = kest_canon::b64url_decode_unpadded(parts[2], "sig").unwrap();
        sig[10] ^= 1;
        entries[1] = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            kest_canon::b64url_encode(&sig)
        );
        let tampered = write("tampered.json", &serde_json::to_string(&entries).unwrap());
        assert_eq!(verify(tampered, kms_jwk).status.code(), Some(1));
    }
}
