//! Live tier: the identity layer validating real tokens from a real OIDC provider
//! (`oidc-provider-mock`, started by `cargo xtask services`) through discovery and its
//! JWKS.
#![cfg(all(feature = "tower", feature = "oidc"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::time::Duration;

use kest_propagation::{Flow, IdentityLayer, LineageLayer, PassportCodec};

#[tokio::test]
async fn the_identity_layer_accepts_real_tokens_for_its_audience_only() {
    if !kest_testkit::live() {
        return;
    }
    let issuer = kest_testkit::live_env("KEST_OIDC_PROVIDER_URL");
    let validator =
        kest_identity::JwtValidator::discover(&issuer, "kest-services", Duration::from_secs(5))
            .await
            .unwrap();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async {
                Flow::current().unwrap().caller().user.unwrap_or_default()
            }),
        )
        .layer(IdentityLayer::new(validator))
        .layer(LineageLayer::new(PassportCodec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = reqwest::Client::new();
    let good = kest_testkit::oidc_provider::id_token(&issuer, "kest-services", "carol").await;
    let response = client.get(&url).bearer_auth(&good).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "carol");
    let other = kest_testkit::oidc_provider::id_token(&issuer, "another-client", "carol").await;
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&other)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}
