//! Logging in at the live OIDC provider (`oidc-provider-mock`, started by
//! `cargo xtask services`) to get real ID tokens.

use std::time::Duration;

/// The redirect URI the tests register; the provider only has to echo it back.
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// Runs the authorization code flow for `sub` at `issuer` and returns the ID token
/// issued for `client_id`. Panics, failing the test, when any step does not go through.
///
/// # Panics
/// When the provider cannot be reached or does not issue a token.
#[allow(clippy::panic, reason = "test support: a failure fails the test that called it")]
pub async fn id_token(issuer: &str, client_id: &str, sub: &str) -> String {
    match try_id_token(issuer, client_id, sub, Duration::from_secs(10)).await {
        Ok(token) => token,
        Err(error) => panic!("no ID token from {issuer}: {error}"),
    }
}

/// As [`id_token`], with every request bounded by `timeout`, and an error saying which
/// step failed instead of a panic: for load drivers that keep going while the provider
/// is down.
///
/// # Errors
/// Which step of the flow failed, and why.
pub async fn try_id_token(
    issuer: &str,
    client_id: &str,
    sub: &str,
    timeout: Duration,
) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .map_err(|error| format!("HTTP client: {error}"))?;
    let response = client
        .post(format!(
            "{issuer}/oauth2/authorize?client_id={client_id}&redirect_uri={REDIRECT_URI}&response_type=code&scope=openid"
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("sub={sub}"))
        .send()
        .await
        .map_err(|error| format!("authorize: {error}"))?;
    if response.status() != 302 {
        return Err(format!(
            "authorize answered {} instead of a redirect with a code",
            response.status()
        ));
    }
    let code = response
        .headers()
        .get("location")
        .and_then(|location| location.to_str().ok())
        .and_then(|location| location.split("code=").nth(1))
        .and_then(|rest| rest.split('&').next())
        .ok_or("authorize redirected without a code")?
        .to_owned();
    let body: serde_json::Value = client
        .post(format!("{issuer}/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_URI}&client_id={client_id}&client_secret=secret"
        ))
        .send()
        .await
        .map_err(|error| format!("token: {error}"))?
        .json()
        .await
        .map_err(|error| format!("token answer: {error}"))?;
    body.get("id_token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the token answer holds no id_token".to_owned())
}
