//! Logging in at the live OIDC provider (`oidc-provider-mock`, started by
//! `cargo xtask services`) to get real ID tokens.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failure here fails the test that called it"
)]

/// The redirect URI the tests register; the provider only has to echo it back.
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// Runs the authorization code flow for `sub` at `issuer` and returns the ID token
/// issued for `client_id`. Panics, failing the test, when any step does not go through.
pub async fn id_token(issuer: &str, client_id: &str, sub: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(format!(
            "{issuer}/oauth2/authorize?client_id={client_id}&redirect_uri={REDIRECT_URI}&response_type=code&scope=openid"
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("sub={sub}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302, "the provider redirects with a code");
    let location = response
        .headers()
        .get("location")
        .expect("a location header")
        .to_str()
        .unwrap();
    let code = location
        .split("code=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("a code in the redirect")
        .to_owned();
    let body: serde_json::Value = client
        .post(format!("{issuer}/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_URI}&client_id={client_id}&client_secret=secret"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body.get("id_token")
        .and_then(serde_json::Value::as_str)
        .expect("an id_token")
        .to_owned()
}
