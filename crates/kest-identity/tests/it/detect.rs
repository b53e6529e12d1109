//! Which provider the environment calls for.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_identity::{Detected, IdentityError};

fn detect(vars: &[(&str, &str)]) -> Result<Detected, IdentityError> {
    Detected::from_vars(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

#[test]
fn the_documented_order_holds() {
    let all = [
        ("KEST_WORKLOAD_ID", "w"),
        ("SPIFFE_ENDPOINT_SOCKET", "unix:///run/spire/agent.sock"),
        ("AWS_BEDROCK_AGENT_ID", "AGENT123"),
        ("KEST_AWS_KMS_KEY_ID", "alias/kest"),
        ("KEST_OIDC_TOKEN_PATH", "/var/run/token"),
    ];
    let expected = [
        Detected::Static,
        Detected::Spiffe,
        Detected::BedrockAgent,
        Detected::AwsKms,
        Detected::Oidc,
        Detected::Local,
    ];
    // Dropping the winner each time reveals the next in line.
    for (skip, want) in expected.iter().enumerate() {
        assert_eq!(
            detect(&all[skip..]).unwrap(),
            *want,
            "with {:?}",
            &all[skip..]
        );
    }
    assert_eq!(
        detect(&[("KEST_OIDC_TOKEN", "eyJ")]).unwrap(),
        Detected::Oidc
    );
    // A signing key on its own is a static identity (that fails for want of a workload
    // id), never a quiet local key; beside an OIDC token it is the key the token vouches
    // for.
    for key in [
        "KEST_SIGNING_KEY_FILE",
        "KEST_SIGNING_KEY_JWK",
        "KEST_SIGNING_KEY_PEM",
        "KEST_SIGNING_KEY_SEED",
    ] {
        assert_eq!(detect(&[(key, "x")]).unwrap(), Detected::Static, "{key}");
        assert_eq!(
            detect(&[(key, "x"), ("KEST_OIDC_TOKEN_PATH", "/t")]).unwrap(),
            Detected::Oidc,
            "{key}"
        );
    }
    // Empty values count as unset.
    assert_eq!(
        detect(&[("SPIFFE_ENDPOINT_SOCKET", " ")]).unwrap(),
        Detected::Local
    );
}

#[test]
fn kest_identity_forces_a_provider() {
    let socket = ("SPIFFE_ENDPOINT_SOCKET", "unix:///run/spire/agent.sock");
    for (name, want) in [
        ("local", Detected::Local),
        ("static", Detected::Static),
        ("mock", Detected::Mock),
        ("oidc", Detected::Oidc),
        ("spiffe", Detected::Spiffe),
        ("aws-kms", Detected::AwsKms),
        ("bedrock-agent", Detected::BedrockAgent),
    ] {
        assert_eq!(detect(&[("KEST_IDENTITY", name), socket]).unwrap(), want);
        assert_eq!(want.as_str(), name);
    }
    let error = detect(&[("KEST_IDENTITY", "vault")]).unwrap_err();
    assert!(error.to_string().contains("vault"), "{error}");
}

/// A provider that is configured but cannot work is an error, never a fall back to a
/// local key.
#[tokio::test]
async fn a_configured_provider_that_fails_is_an_error() {
    let error = kest_identity::make(Detected::Static).await;
    assert!(
        matches!(error, Err(IdentityError::Missing { .. })),
        "{error:?}"
    );
    let error = kest_identity::make(Detected::Oidc).await;
    assert!(
        matches!(error, Err(IdentityError::Missing { .. })),
        "{error:?}"
    );
    let local = kest_identity::make(Detected::Local).await.unwrap();
    assert_eq!(local.describe().await.unwrap().provider, "local");
}
