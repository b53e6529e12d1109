//! The OIDC provider against a real OIDC provider (`oidc-provider-mock` from PyPI, started
//! by `cargo xtask services`): tokens are fetched from it with the authorization code
//! flow and validated against its discovery document and JWKS (RS256).
#![cfg(feature = "oidc")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::time::Duration;

use kest_crypto::{SecretString, SigningKey};
use kest_identity::{IdentityError, IdentityProvider, OidcConfig, OidcIdentity, TokenSource};
use kest_passport::{EntryBuilder, Passport, Verifier};
use kest_trust::WeakestLink;

fn config(token: String, issuer: &str, audience: &str) -> OidcConfig {
    OidcConfig::new(TokenSource::Value(SecretString::new(token)))
        .issuer(issuer, audience)
        .signing_key(SigningKey::generate_ed25519().unwrap())
}

#[tokio::test]
async fn tokens_from_a_real_provider_are_validated() {
    if !kest_testkit::live() {
        return;
    }
    let issuer = kest_testkit::live_env("KEST_OIDC_PROVIDER_URL");
    let token =
        kest_testkit::oidc_provider::id_token(&issuer, "kest-agent", "repo:kest/agent").await;

    let identity = OidcIdentity::new(config(token.clone(), &issuer, "kest-agent"))
        .await
        .unwrap();
    let info = identity.describe().await.unwrap();
    assert_eq!(info.workload_id, "repo:kest/agent");
    assert_eq!(info.issuer.as_deref(), Some(issuer.as_str()));
    let mut passport = Passport::new();
    kest_identity::append(
        &mut passport,
        EntryBuilder::new("build"),
        &identity,
        &WeakestLink,
    )
    .await
    .unwrap();
    let resolver = kest_crypto::StaticKeyResolver::new().with_key(
        &info.workload_id,
        kest_crypto::VerifyingKey::from_jwk(&info.jwk).unwrap(),
    );
    Verifier::new(&resolver)
        .verify_json(&passport.to_json())
        .unwrap();

    // A token minted for another client is not an identity for this one.
    let error = OidcIdentity::new(config(token.clone(), &issuer, "some-other-service"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, IdentityError::Token { reason } if reason.contains("audience")),
        "{error}"
    );

    // A token whose payload was edited no longer verifies with the provider's key.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&kest_canon::b64url_decode_unpadded(parts[1], "claims").unwrap())
            .unwrap();
    claims["sub"] = serde_json::json!("repo:kest/admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        kest_canon::b64url_encode(claims.to_string().as_bytes()),
        parts[2]
    );
    let error = OidcIdentity::new(config(forged, &issuer, "kest-agent"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, IdentityError::Token { reason } if reason.contains("signature")),
        "{error}"
    );
}

/// The provider's tokens live six seconds. One that has expired is refused at
/// construction, and an identity built while it was valid stops signing when it expires.
#[tokio::test]
async fn expired_tokens_from_a_real_provider_are_refused() {
    if !kest_testkit::live() {
        return;
    }
    let issuer = kest_testkit::live_env("KEST_OIDC_PROVIDER_URL");
    let token =
        kest_testkit::oidc_provider::id_token(&issuer, "kest-agent", "repo:kest/agent").await;
    let identity =
        OidcIdentity::new(config(token.clone(), &issuer, "kest-agent").leeway(Duration::ZERO))
            .await
            .unwrap();
    let kid = identity.describe().await.unwrap().kid;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let error = identity.sign(&kid, b"input").await.unwrap_err();
    assert!(
        matches!(&error, IdentityError::Token { reason } if reason.contains("expired")),
        "{error}"
    );
    let error = OidcIdentity::new(config(token, &issuer, "kest-agent").leeway(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, IdentityError::Token { reason } if reason.contains("expired")),
        "{error}"
    );
}
