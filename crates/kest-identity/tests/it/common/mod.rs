//! Helpers shared by the identity tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_canon::b64url_encode;
use kest_crypto::SigningKey;
use serde_json::Value;

/// A compact JWT with `claims`, signed ES256 by `key` under `kid` (or with `alg` forced,
/// for tokens that must be refused).
pub(crate) fn jwt(key: &SigningKey, kid: &str, claims: &Value) -> String {
    jwt_with_alg(key, "ES256", kid, claims)
}

pub(crate) fn jwt_with_alg(key: &SigningKey, alg: &str, kid: &str, claims: &Value) -> String {
    let header = serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(claims.to_string().as_bytes())
    );
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64url_encode(&signature))
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
