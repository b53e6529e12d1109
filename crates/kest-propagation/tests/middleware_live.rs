//! Live tier: the identity layer validating real tokens from a real OIDC provider
//! (`oidc-provider-mock`, started by `cargo xtask services`) through discovery and its
//! JWKS.
#![cfg(all(feature = "tower", feature = "oidc"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use kest_propagation::{Flow, IdentityLayer, LineageLayer, PassportCodec};

const REDIRECT: &str = "http://127.0.0.1/callback";

async fn token(issuer: &str, client_id: &str, sub: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(format!(
            "{issuer}/oauth2/authorize?client_id={client_id}&redirect_uri={REDIRECT}&response_type=code&scope=openid"
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("sub={sub}"))
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = client
        .post(format!("{issuer}/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT}&client_id={client_id}&client_secret=s"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["id_token"].as_str().unwrap().to_owned()
}

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
    let good = token(&issuer, "kest-services", "carol").await;
    let response = client.get(&url).bearer_auth(&good).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "carol");
    let other = token(&issuer, "another-client", "carol").await;
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
