//! The OIDC provider: tokens from files and values, rotation, expiry, and (with the `oidc`
//! feature) validation against an issuer's discovery document and JWKS served over HTTP
//! by the test. The live tests against a real OIDC provider are in `oidc_live.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use crate::common;

use std::time::Duration;

use common::{jwt, now};
use kest_crypto::SigningKey;
use kest_identity::{IdentityError, IdentityProvider, OidcConfig, OidcIdentity, TokenSource};
use kest_passport::{EntryBuilder, Passport, Verifier};
use kest_trust::WeakestLink;
use serde_json::json;

fn token_key() -> SigningKey {
    SigningKey::from_ed25519_seed(&[3; 32]).unwrap()
}

fn claims(sub: &str, exp: u64) -> serde_json::Value {
    json!({"sub": sub, "iss": "https://ci.example", "aud": "kest", "exp": exp, "iat": now()})
}

#[tokio::test]
async fn workload_id_is_the_token_subject_and_the_key_signs() {
    let key = SigningKey::generate_p256().unwrap();
    let public = key.verifying_key().clone();
    let token = jwt(
        &token_key(),
        "t",
        &claims("repo:kest/kest:ref:refs/heads/main", now() + 600),
    );
    let identity = OidcIdentity::new(
        OidcConfig::new(TokenSource::Value(kest_crypto::SecretString::new(token))).signing_key(key),
    )
    .await
    .unwrap();
    let info = identity.describe().await.unwrap();
    assert_eq!(info.provider, "oidc");
    assert_eq!(info.workload_id, "repo:kest/kest:ref:refs/heads/main");
    assert_eq!(info.issuer.as_deref(), Some("https://ci.example"));
    assert_eq!(info.jwk, public.to_jwk());
    let mut passport = Passport::new();
    kest_identity::append(
        &mut passport,
        EntryBuilder::new("deploy"),
        &identity,
        &WeakestLink,
    )
    .await
    .unwrap();
    let resolver = kest_crypto::StaticKeyResolver::new().with_key(&info.workload_id, public);
    Verifier::new(&resolver)
        .verify_json(&passport.to_json())
        .unwrap();
}

#[tokio::test]
async fn a_rotated_token_file_is_picked_up_and_an_expired_one_stops_signing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, jwt(&token_key(), "t", &claims("first", now() + 600))).unwrap();
    let identity = OidcIdentity::new(
        OidcConfig::new(TokenSource::File(path.clone()))
            .signing_key(SigningKey::generate_ed25519().unwrap())
            .leeway(Duration::ZERO),
    )
    .await
    .unwrap();
    assert_eq!(identity.describe().await.unwrap().workload_id, "first");
    std::fs::write(
        &path,
        format!(
            "{}\n",
            jwt(&token_key(), "t", &claims("second", now() + 600))
        ),
    )
    .unwrap();
    assert_eq!(identity.describe().await.unwrap().workload_id, "second");
    // The token expires while the process runs: nothing more is signed.
    std::fs::write(&path, jwt(&token_key(), "t", &claims("second", now() - 5))).unwrap();
    let error = identity.sign("second", b"input").await.unwrap_err();
    assert!(
        matches!(&error, IdentityError::Token { reason } if reason.contains("expired")),
        "{error}"
    );
    let mut passport = Passport::new();
    assert!(
        kest_identity::append(
            &mut passport,
            EntryBuilder::new("x"),
            &identity,
            &WeakestLink
        )
        .await
        .is_err()
    );
    assert!(passport.is_empty());
    // The file disappears: an I/O error naming it.
    std::fs::remove_file(&path).unwrap();
    let error = identity.describe().await.unwrap_err();
    assert!(
        matches!(&error, IdentityError::Io { path: p, .. } if p.contains("token")),
        "{error}"
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_at_construction() {
    let key = token_key();
    let cases = [
        (
            "expired",
            jwt(&key, "t", &claims("a", now() - 3600)),
            "expired",
        ),
        (
            "no sub",
            jwt(&key, "t", &json!({"exp": now() + 60})),
            "`sub`",
        ),
        (
            "empty sub",
            jwt(&key, "t", &json!({"sub": "", "exp": now() + 60})),
            "`sub`",
        ),
        ("no exp", jwt(&key, "t", &json!({"sub": "a"})), "`exp`"),
        ("not a JWT", "abc.def".to_owned(), "three"),
        (
            "payload not JSON",
            "e30.bm90IGpzb24.c2ln".to_owned(),
            "JSON",
        ),
        ("empty", String::new(), "empty"),
    ];
    for (name, token, expected) in cases {
        let error = OidcIdentity::new(
            OidcConfig::new(TokenSource::Value(kest_crypto::SecretString::new(token)))
                .signing_key(SigningKey::generate_ed25519().unwrap()),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&error, IdentityError::Token { reason } if reason.contains(expected)),
            "{name}: {error}"
        );
    }
    let error = OidcIdentity::new(OidcConfig::new(TokenSource::File(
        "/nonexistent/token".into(),
    )))
    .await
    .unwrap_err();
    assert!(matches!(error, IdentityError::Io { .. }));
}

#[test]
fn configuration_from_variables() {
    assert!(OidcConfig::from_vars(|_| None).unwrap().is_none());
    let error = OidcConfig::from_vars(|var| match var {
        "KEST_OIDC_TOKEN" => Some("x".into()),
        "KEST_OIDC_ISSUER" => Some("https://issuer.example".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(
        matches!(&error, IdentityError::Missing { what } if what.contains("KEST_OIDC_AUDIENCE")),
        "{error}"
    );
    let error = OidcConfig::from_vars(|var| match var {
        "KEST_OIDC_TOKEN_PATH" => Some("/t".into()),
        "KEST_OIDC_LEEWAY_SECS" => Some("soon".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(
        matches!(&error, IdentityError::Missing { what } if what.contains("KEST_OIDC_LEEWAY_SECS")),
        "{error}"
    );
    let config = OidcConfig::from_vars(|var| match var {
        "KEST_OIDC_TOKEN_PATH" => Some("/t".into()),
        "KEST_SIGNING_KEY_SEED" => Some("00".repeat(32)),
        _ => None,
    })
    .unwrap()
    .unwrap();
    assert!(format!("{config:?}").contains("File(\"/t\")"));
}

/// Without the `oidc` feature, configuring an issuer is an error: the token is never
/// accepted unvalidated.
#[cfg(not(feature = "oidc"))]
#[tokio::test]
async fn an_issuer_without_the_feature_is_refused() {
    let token = jwt(&token_key(), "t", &claims("a", now() + 600));
    let error = OidcIdentity::new(
        OidcConfig::new(TokenSource::Value(kest_crypto::SecretString::new(token)))
            .issuer("https://ci.example", "kest"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &error,
            IdentityError::Unavailable {
                feature: "oidc",
                ..
            }
        ),
        "{error}"
    );
}

#[cfg(feature = "oidc")]
mod validated {
    use super::*;

    /// An issuer on 127.0.0.1 serving discovery and a JWKS with `keys`.
    async fn issuer(keys: serde_json::Value, claimed_issuer: Option<String>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let discovery = json!({
            "issuer": claimed_issuer.unwrap_or_else(|| url.clone()),
            "jwks_uri": format!("{url}/jwks"),
        });
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || async move { axum::Json(json!({ "keys": keys })) }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    fn public_jwk(key: &SigningKey, kid: &str) -> serde_json::Value {
        let mut jwk = serde_json::to_value(key.verifying_key().to_jwk()).unwrap();
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!("ES256");
        jwk["use"] = json!("sig");
        jwk
    }

    async fn validate(
        url: &str,
        token: String,
        audience: &str,
    ) -> Result<OidcIdentity, IdentityError> {
        OidcIdentity::new(
            OidcConfig::new(TokenSource::Value(kest_crypto::SecretString::new(token)))
                .issuer(url, audience)
                .leeway(Duration::ZERO)
                .signing_key(SigningKey::generate_ed25519().unwrap()),
        )
        .await
    }

    #[tokio::test]
    async fn tokens_are_validated_against_the_issuer_jwks() {
        let issuer_key = SigningKey::generate_p256().unwrap();
        let url = issuer(json!([public_jwk(&issuer_key, "k1")]), None).await;
        let good = json!({"sub": "ci-runner", "iss": url, "aud": "kest", "exp": now() + 600});
        let identity = validate(&url, jwt(&issuer_key, "k1", &good), "kest")
            .await
            .unwrap();
        let info = identity.describe().await.unwrap();
        assert_eq!(info.workload_id, "ci-runner");
        assert_eq!(info.issuer.as_deref(), Some(url.as_str()));

        let reason = |error: IdentityError| match error {
            IdentityError::Token { reason } => reason,
            other => panic!("expected a token error, got {other:?}"),
        };
        // Audience, issuer, expiry, signature, key id and algorithm all matter.
        let wrong_aud = reason(
            validate(&url, jwt(&issuer_key, "k1", &good), "another-service")
                .await
                .unwrap_err(),
        );
        assert!(wrong_aud.contains("audience"), "{wrong_aud}");
        let mut other_iss = good.clone();
        other_iss["iss"] = json!("https://elsewhere.example");
        let wrong_iss = reason(
            validate(&url, jwt(&issuer_key, "k1", &other_iss), "kest")
                .await
                .unwrap_err(),
        );
        assert!(wrong_iss.contains("issued by"), "{wrong_iss}");
        let mut expired = good.clone();
        expired["exp"] = json!(now() - 10);
        let expired = reason(
            validate(&url, jwt(&issuer_key, "k1", &expired), "kest")
                .await
                .unwrap_err(),
        );
        assert!(expired.contains("expired"), "{expired}");
        let forger = SigningKey::generate_p256().unwrap();
        let forged = reason(
            validate(&url, jwt(&forger, "k1", &good), "kest")
                .await
                .unwrap_err(),
        );
        assert!(forged.contains("signature"), "{forged}");
        let unknown = reason(
            validate(&url, jwt(&issuer_key, "k9", &good), "kest")
                .await
                .unwrap_err(),
        );
        assert!(unknown.contains("no key `k9`"), "{unknown}");
        let hmac = reason(
            validate(
                &url,
                common::jwt_with_alg(&issuer_key, "HS256", "k1", &good),
                "kest",
            )
            .await
            .unwrap_err(),
        );
        assert!(hmac.contains("not accepted"), "{hmac}");
        let mut no_sub = good.clone();
        no_sub.as_object_mut().unwrap().remove("sub");
        let no_sub = reason(
            validate(&url, jwt(&issuer_key, "k1", &no_sub), "kest")
                .await
                .unwrap_err(),
        );
        assert!(no_sub.contains("sub"), "{no_sub}");
    }

    #[tokio::test]
    async fn discovery_and_transport_are_checked() {
        let issuer_key = SigningKey::generate_p256().unwrap();
        // Discovery that names another issuer.
        let url = issuer(
            json!([public_jwk(&issuer_key, "k1")]),
            Some("https://impostor.example".into()),
        )
        .await;
        let token = jwt(
            &issuer_key,
            "k1",
            &json!({"sub": "a", "iss": url, "aud": "kest", "exp": now() + 60}),
        );
        let error = validate(&url, token.clone(), "kest").await.unwrap_err();
        assert!(error.to_string().contains("impostor"), "{error}");
        // Plain HTTP to another machine is refused before anything is fetched.
        let error = validate("http://issuer.example", token.clone(), "kest")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, IdentityError::Missing { what } if what.contains("https")),
            "{error}"
        );
        // An issuer that is not there.
        let error = validate("http://127.0.0.1:9", token, "kest")
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                IdentityError::Service {
                    service: "OIDC issuer",
                    ..
                }
            ),
            "{error}"
        );
    }

    /// An issuer serving `keys` at `/jwks` (replaceable through the returned handle), how
    /// often it was fetched, and a validator for audience `kest` reading it.
    async fn rotating_issuer(
        keys: serde_json::Value,
    ) -> (
        String,
        std::sync::Arc<std::sync::Mutex<serde_json::Value>>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        kest_identity::JwtValidator,
    ) {
        let current = std::sync::Arc::new(std::sync::Mutex::new(keys));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (served, counted) = (current.clone(), fetches.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let keys = served.lock().unwrap().clone();
                async move { axum::Json(json!({ "keys": keys })) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let validator = kest_identity::JwtValidator::with_jwks_uri(
            &url,
            "kest",
            format!("{url}/jwks"),
            Duration::ZERO,
        )
        .await
        .unwrap();
        (url, current, fetches, validator)
    }

    /// The issuer replaces its key under the same `kid`, as `oidc-provider-mock` does
    /// each time it starts (`cargo xtask chaos` found the validator refusing every token
    /// from then on): a signature that does not verify with the cached key makes the
    /// validator fetch the set again (at most once a second), and a forged token is still
    /// refused, without a fetch per attempt.
    #[tokio::test]
    async fn a_key_replaced_under_the_same_kid_is_fetched_again() {
        let old_key = SigningKey::generate_p256().unwrap();
        let new_key = SigningKey::generate_p256().unwrap();
        let forger = SigningKey::generate_p256().unwrap();
        let (url, current, fetches, validator) =
            rotating_issuer(json!([public_jwk(&old_key, "k")])).await;
        let fetched = || fetches.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(fetched(), 1);
        let claims = json!({"sub": "svc", "iss": url, "aud": "kest", "exp": now() + 600});
        validator
            .validate(&jwt(&old_key, "k", &claims))
            .await
            .unwrap();

        // Within a second of the last fetch, a bad signature is refused without a fetch.
        let error = validator
            .validate(&jwt(&forger, "k", &claims))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("signature"), "{error}");
        assert_eq!(fetched(), 1);

        *current.lock().unwrap() = json!([public_jwk(&new_key, "k")]);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let validated = validator
            .validate(&jwt(&new_key, "k", &claims))
            .await
            .unwrap();
        assert_eq!(validated["sub"], "svc");
        assert_eq!(fetched(), 2, "one fetch for the replaced key");
        // The old key is gone, and forged tokens right after do not fetch again.
        for key in [&old_key, &forger, &forger] {
            let error = validator
                .validate(&jwt(key, "k", &claims))
                .await
                .unwrap_err();
            assert!(
                matches!(&error, IdentityError::Token { reason } if reason.contains("signature")),
                "{error}"
            );
        }
        assert_eq!(fetched(), 2);
    }

    /// The issuer rotates its key: a token under the new `kid` makes the validator fetch
    /// the JWKS again (at most once a second), and the old key stops working once gone.
    #[tokio::test]
    async fn the_jwks_is_fetched_again_when_the_issuer_rotates() {
        let old_key = SigningKey::generate_p256().unwrap();
        let new_key = SigningKey::generate_p256().unwrap();
        let (url, current, _, validator) =
            rotating_issuer(json!([public_jwk(&old_key, "old")])).await;
        let claims = json!({"sub": "svc", "iss": url, "aud": "kest", "exp": now() + 600});
        validator
            .validate(&jwt(&old_key, "old", &claims))
            .await
            .unwrap();
        *current.lock().unwrap() = json!([public_jwk(&new_key, "new")]);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let validated = validator
            .validate(&jwt(&new_key, "new", &claims))
            .await
            .unwrap();
        assert_eq!(validated["sub"], "svc");
        // The set now holds only the new key.
        let error = validator
            .validate(&jwt(&old_key, "old", &claims))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("no key `old`"), "{error}");
    }
}
