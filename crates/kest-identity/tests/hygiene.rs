//! Secret hygiene: no private key or token shows up in `Debug`, `Display` or the logs of
//! any provider, in any form a key is commonly written (hex, base64, base64url, PEM body,
//! byte arrays).
//!
//! A test binary of its own: it asserts on what `tracing` captured, and other tests in the
//! same process that reach the same log statements without a subscriber change which
//! subscribers see them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

#[path = "it/common/mod.rs"]
mod common;

use std::sync::Arc;

use base64::Engine as _;
use kest_crypto::{SecretString, SigningKey};
use kest_identity::{
    IdentityProvider, LazyIdentity, LocalEd25519, MockIdentity, OidcConfig, OidcIdentity,
    StaticIdentity, TokenSource,
};

const SEED_HEX: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

/// The text forms a key is written in: hex, standard base64 and base64url.
fn text_forms(bytes: &[u8]) -> [String; 3] {
    [
        hex::encode(bytes),
        base64::engine::general_purpose::STANDARD.encode(bytes),
        kest_canon::b64url_encode(bytes),
    ]
}

/// Every 16-character window of a text.
fn windows(text: &str) -> impl Iterator<Item = String> + '_ {
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len().saturating_sub(15)).map(move |at| chars[at..at + 16].iter().collect())
}

/// The spellings of a secret that must not appear: its whole text forms, its byte-array
/// form, and every 16-character window of the text forms (partial leaks).
fn spellings(secret: &[u8]) -> Vec<String> {
    let mut forms: Vec<String> = text_forms(secret).into();
    forms.push(format!("{secret:?}"));
    for text in text_forms(secret) {
        forms.extend(windows(&text));
    }
    forms
}

/// The windows that public material (certificates, public keys) may show. A PKCS#8 key
/// carries its public point and the same algorithm identifiers as its certificate, so a
/// window of those bytes in a printed certificate is not a leak. Every byte alignment is
/// covered, since base64 groups bytes in threes.
fn public_windows(public: &[Vec<u8>]) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    for bytes in public {
        for shift in 0..3.min(bytes.len()) {
            for text in text_forms(&bytes[shift..]) {
                seen.extend(windows(&text));
            }
        }
    }
    seen
}

fn assert_clean(what: &str, text: &str, secrets: &[Vec<u8>], tokens: &[&str]) {
    assert_clean_beside(what, text, secrets, &[], tokens);
}

/// As [`assert_clean`], where `public` is material that may be shown and that shares
/// bytes with the secrets.
fn assert_clean_beside(
    what: &str,
    text: &str,
    secrets: &[Vec<u8>],
    public: &[Vec<u8>],
    tokens: &[&str],
) {
    let shown = public_windows(public);
    for secret in secrets {
        let whole: Vec<String> = text_forms(secret).into();
        for form in spellings(secret) {
            if shown.contains(&form) && !whole.contains(&form) {
                continue;
            }
            assert!(
                !text.contains(&form),
                "{what} leaks key material `{form}`:\n{text}"
            );
        }
    }
    for token in tokens {
        for part in token.split('.').filter(|part| part.len() >= 16) {
            assert!(!text.contains(part), "{what} leaks a token part:\n{text}");
        }
    }
}

/// The private scalar or seed of a key, from its private JWK.
fn secret_of(key: &SigningKey) -> Vec<u8> {
    let jwk = key.to_private_jwk();
    kest_canon::b64url_decode_unpadded(jwk.d.expose(), "d").unwrap()
}

#[test]
fn no_provider_shows_its_key_or_token() {
    let (outcome, logs) = kest_testkit::logs::logged(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(build_and_use_everything())
    });
    let (texts, secrets, public, tokens) = outcome;
    let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    assert!(texts.len() >= 10, "every provider was formatted");
    for (what, text) in &texts {
        assert_clean_beside(what, text, &secrets, &public, &token_refs);
    }
    assert!(!logs.is_empty(), "the local key's warning was captured");
    for line in &logs {
        assert_clean_beside("a log line", line, &secrets, &public, &token_refs);
    }
}

/// What was printed, the secrets, the public material they share bytes with, and tokens.
type Printed = (
    Vec<(String, String)>,
    Vec<Vec<u8>>,
    Vec<Vec<u8>>,
    Vec<String>,
);

async fn build_and_use_everything() -> Printed {
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut secrets = Vec::new();
    let mut public: Vec<Vec<u8>> = Vec::new();
    let mut tokens = Vec::new();
    let dir = tempfile::tempdir().unwrap();

    let seed = SigningKey::from_ed25519_seed_hex(SEED_HEX).unwrap();
    secrets.push(secret_of(&seed));
    let ec = SigningKey::generate_p256().unwrap();
    secrets.push(secret_of(&ec));
    let pem = std::fs::read_to_string(format!(
        "{}/../kest-crypto/tests/fixtures/p256.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let pem_key = SigningKey::from_pkcs8_pem(&pem).unwrap();
    secrets.push(secret_of(&pem_key));
    let pem_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    secrets.push(
        base64::engine::general_purpose::STANDARD
            .decode(pem_body)
            .unwrap(),
    );

    let local = LocalEd25519::new("local:hygiene").unwrap();
    let mock = MockIdentity::new("mock:hygiene").unwrap();
    secrets.push(kest_canon::sha256(b"mock:hygiene").as_bytes().to_vec());
    let ec_jwk = ec.to_private_jwk().to_json().to_string();
    let from_jwk = StaticIdentity::from_vars(|v| match v {
        "KEST_WORKLOAD_ID" => Some("w".into()),
        "KEST_SIGNING_KEY_JWK" => Some(ec_jwk.clone()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    let from_seed = StaticIdentity::from_vars(|v| match v {
        "KEST_WORKLOAD_ID" => Some("w".into()),
        "KEST_SIGNING_KEY_SEED" => Some(SEED_HEX.into()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    let pem_path = dir.path().join("key.pem");
    std::fs::write(&pem_path, &pem).unwrap();
    let from_file = StaticIdentity::from_key_file("w", &pem_path).unwrap();

    let token = common::jwt(
        &seed,
        "t",
        &serde_json::json!({"sub": "ci", "iss": "https://i", "exp": common::now() + 600}),
    );
    tokens.push(token.clone());
    let config = OidcConfig::new(TokenSource::Value(SecretString::new(token.clone())))
        .signing_key(SigningKey::from_ed25519_seed_hex(SEED_HEX).unwrap());
    texts.push(("OidcConfig".into(), format!("{config:?}")));
    let oidc = OidcIdentity::new(config).await.unwrap();
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, &token).unwrap();
    let oidc_file = OidcIdentity::new(
        OidcConfig::new(TokenSource::File(token_path)).signing_key(ec.clone_for_test()),
    )
    .await
    .unwrap();
    texts.push((
        "TokenSource".into(),
        format!("{:?}", TokenSource::Value(SecretString::new(token.clone()))),
    ));

    let lazy = LazyIdentity::new(|| async {
        Ok(Arc::new(StaticIdentity::new(
            "w",
            SigningKey::from_ed25519_seed_hex(SEED_HEX).unwrap(),
        )) as Arc<dyn IdentityProvider>)
    });

    let providers: Vec<(&str, &dyn IdentityProvider)> = vec![
        ("local", &local),
        ("mock", &mock),
        ("static jwk", &from_jwk),
        ("static seed", &from_seed),
        ("static file", &from_file),
        ("oidc value", &oidc),
        ("oidc file", &oidc_file),
        ("lazy", &lazy),
    ];
    for (name, provider) in providers {
        let info = provider.describe().await.unwrap();
        provider.sign(&info.kid, b"input").await.unwrap();
        texts.push((format!("{name} Debug"), format!("{provider:?}")));
        texts.push((format!("{name} Debug (pretty)"), format!("{provider:#?}")));
        texts.push((
            format!("{name} info"),
            format!("{info:?} {}", serde_json::to_string(&info).unwrap()),
        ));
        let error = provider.sign("not-the-kid", b"input").await.unwrap_err();
        texts.push((format!("{name} error"), format!("{error} {error:?}")));
    }

    // Errors about bad keys and tokens do not quote them.
    let mut bad_jwk = serde_json::from_str::<serde_json::Value>(&ec_jwk).unwrap();
    bad_jwk["x"] = serde_json::json!(kest_canon::b64url_encode(&[1; 32]));
    let bad_jwk = bad_jwk.to_string();
    let error = StaticIdentity::from_vars(|v| match v {
        "KEST_WORKLOAD_ID" => Some("w".into()),
        "KEST_SIGNING_KEY_JWK" => Some(bad_jwk.clone()),
        _ => None,
    })
    .unwrap_err();
    texts.push(("bad JWK error".into(), format!("{error} {error:?}")));
    let expired = common::jwt(&seed, "t", &serde_json::json!({"sub": "ci", "exp": 1}));
    tokens.push(expired.clone());
    let error = OidcIdentity::new(
        OidcConfig::new(TokenSource::Value(SecretString::new(expired)))
            .signing_key(SigningKey::generate_ed25519().unwrap()),
    )
    .await
    .unwrap_err();
    texts.push(("expired token error".into(), format!("{error} {error:?}")));

    #[cfg(feature = "spiffe")]
    {
        use kest_testkit::workload_api::{TestCa, WorkloadApiServer};
        let ca = TestCa::new("kest.test");
        let svid = ca.mint("/hygiene", -60, 3600);
        secrets.push(secret_of(&SigningKey::from_pkcs8_der(&svid.key).unwrap()));
        secrets.push(svid.key.clone());
        public.push(svid.leaf.clone());
        public.push(ca.der().to_vec());
        let server = WorkloadApiServer::start(dir.path(), ca.response(&svid)).await;
        let spiffe = kest_identity::SpiffeIdentity::connect(
            &server.endpoint(),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
        let info = spiffe.describe().await.unwrap();
        spiffe.sign(&info.kid, b"input").await.unwrap();
        texts.push((
            "spiffe Debug".into(),
            format!("{spiffe:?} {spiffe:#?} {info:?}"),
        ));
        texts.push((
            "trust bundle resolver".into(),
            format!("{:?}", spiffe.trust_bundle_resolver()),
        ));
    }

    (texts, secrets, public, tokens)
}

trait CloneForTest {
    fn clone_for_test(&self) -> SigningKey;
}

impl CloneForTest for SigningKey {
    fn clone_for_test(&self) -> SigningKey {
        SigningKey::from_jwk(&self.to_private_jwk()).unwrap()
    }
}

/// The checker itself finds a key written in any of the usual forms.
#[test]
fn the_checker_catches_leaks() {
    let key = SigningKey::from_ed25519_seed_hex(SEED_HEX).unwrap();
    let secret = secret_of(&key);
    let leaks = [
        SEED_HEX.to_owned(),
        key.to_private_jwk().to_json().to_string(),
        format!("{:?}", secret),
        format!(
            "prefix {} suffix",
            &base64::engine::general_purpose::STANDARD.encode(&secret)[4..24]
        ),
    ];
    for leak in leaks {
        let caught = std::panic::catch_unwind(|| {
            assert_clean("test", &leak, std::slice::from_ref(&secret), &[])
        });
        assert!(caught.is_err(), "not caught: {leak}");
    }
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjaS1ydW5uZXIifQ.c2lnbmF0dXJlc2lnbmF0dXJl";
    assert!(
        std::panic::catch_unwind(|| assert_clean("test", &format!("token={token}"), &[], &[token]))
            .is_err()
    );
    assert_clean("clean", "nothing secret here", &[secret], &[token]);
}

/// A certificate that shares its public point and algorithm identifiers with a PKCS#8 key
/// is not taken for a leak of that key, and the key's private scalar still is.
#[cfg(feature = "spiffe")]
#[test]
fn a_certificate_beside_its_key_is_public_and_the_scalar_is_not() {
    use kest_testkit::workload_api::TestCa;
    let ca = TestCa::new("kest.test");
    for _ in 0..3 {
        let svid = ca.mint("/beside", -60, 3600);
        let scalar = secret_of(&SigningKey::from_pkcs8_der(&svid.key).unwrap());
        let secrets = [scalar.clone(), svid.key.clone()];
        let public = [svid.leaf.clone(), ca.der().to_vec()];
        // The certificate at every byte alignment, so that its public point lines up with
        // the key's in one of them, as it did by chance in a CI run.
        let printed = (0..3)
            .map(|shift| base64::engine::general_purpose::STANDARD.encode(&svid.leaf[shift..]))
            .collect::<Vec<_>>()
            .join(" ");
        assert_clean_beside("certificate", &printed, &secrets, &public, &[]);
        let leaked = format!(
            "{printed} {}",
            &base64::engine::general_purpose::STANDARD.encode(&scalar)[2..20]
        );
        let caught = std::panic::catch_unwind(|| {
            assert_clean_beside("certificate", &leaked, &secrets, &public, &[])
        });
        assert!(
            caught.is_err(),
            "a scalar beside its certificate was not caught"
        );
    }
}
