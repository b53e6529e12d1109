//! Key loading from seeds, PKCS#8 PEM and JWK; JWK export and thumbprints; secret hygiene.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_crypto::{Algorithm, CryptoError, Jwk, PrivateJwk, SigningKey, VerifyingKey};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// RFC 8037 Appendix A.1–A.3: the Ed25519 key as a JWK, and its RFC 7638 thumbprint.
#[test]
fn rfc8037_key_and_thumbprint() {
    let text = r#"{"kty":"OKP","crv":"Ed25519",
            "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
            "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    let private = PrivateJwk::from_json(text).unwrap();
    let key = SigningKey::from_jwk(&private).unwrap();
    // Read as a public key, the same text drops `d`.
    let jwk = Jwk::from_json(text).unwrap();
    assert_eq!(jwk, private.public);
    assert!(!jwk.to_json().contains("nWGxne"), "{}", jwk.to_json());
    assert_eq!(key.algorithm(), Algorithm::EdDSA);
    assert_eq!(
        key.verifying_key().thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    assert_eq!(jwk.thumbprint().unwrap(), key.verifying_key().thumbprint());
    // RFC 8037 A.4: the signature over "Example of Ed25519 signing".
    let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let signature = key.sign(input.as_bytes()).unwrap();
    assert_eq!(
        kest_canon::b64url_encode(&signature),
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
}

/// The Python vectors' key: seed hex, public hex and public JWK all name one key.
#[test]
fn python_vector_key_loads_every_way() {
    let vectors: serde_json::Value = kest_testkit::load_json("python/key.json");
    let from_seed =
        SigningKey::from_ed25519_seed_hex(vectors["seed_hex"].as_str().unwrap()).unwrap();
    let public_hex = vectors["public_key_hex"].as_str().unwrap();
    assert_eq!(
        hex::encode(from_seed.verifying_key().as_bytes()),
        public_hex
    );
    let jwk: Jwk = serde_json::from_value(vectors["public_key_jwk"].clone()).unwrap();
    assert_eq!(
        &VerifyingKey::from_jwk(&jwk).unwrap(),
        from_seed.verifying_key()
    );
    // Export and re-import the private JWK.
    let private = from_seed.to_private_jwk();
    assert!(private.to_json().contains("\"d\""));
    let again = SigningKey::from_jwk_json(&private.to_json()).unwrap();
    assert_eq!(again.verifying_key(), from_seed.verifying_key());
    assert_eq!(
        private.public.kid.as_deref(),
        Some(from_seed.verifying_key().thumbprint().as_str())
    );
}

#[test]
fn pkcs8_pem_from_openssl() {
    let ed = SigningKey::from_pkcs8_pem(&fixture("ed25519.pem")).unwrap();
    assert_eq!(ed.algorithm(), Algorithm::EdDSA);
    assert_eq!(
        hex::encode(ed.verifying_key().as_bytes()),
        fixture("ed25519.pub.hex").trim()
    );
    // The seed survives: exporting to JWK and back gives the same key.
    let again = SigningKey::from_jwk(&ed.to_private_jwk()).unwrap();
    assert_eq!(again.verifying_key(), ed.verifying_key());

    let ec = SigningKey::from_pkcs8_pem(&fixture("p256.pem")).unwrap();
    assert_eq!(ec.algorithm(), Algorithm::ES256);
    assert_eq!(
        hex::encode(ec.verifying_key().as_bytes()),
        fixture("p256.pub.hex").trim()
    );
    let again = SigningKey::from_jwk(&ec.to_private_jwk()).unwrap();
    assert_eq!(again.verifying_key(), ec.verifying_key());
}

#[test]
fn pkcs8_rejects_what_it_should() {
    let sec1 = SigningKey::from_pkcs8_pem(&fixture("p256.sec1.pem")).unwrap_err();
    assert!(sec1.to_string().contains("EC PRIVATE KEY"), "{sec1}");
    assert!(SigningKey::from_pkcs8_pem("not a pem").is_err());
    assert!(SigningKey::from_pkcs8_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
    assert!(matches!(
        SigningKey::from_ed25519_seed(&[0; 31]),
        Err(CryptoError::InvalidKey { .. })
    ));
    assert!(SigningKey::from_ed25519_seed_hex("zz").is_err());
}

#[test]
fn jwk_import_errors_are_typed() {
    let public_only =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    assert!(matches!(
        PrivateJwk::from_json(public_only),
        Err(CryptoError::InvalidJwk { .. })
    ));
    assert!(matches!(
        SigningKey::from_jwk_json(public_only),
        Err(CryptoError::InvalidJwk { .. })
    ));
    let rsa = Jwk::from_json(r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#).unwrap();
    assert!(matches!(
        VerifyingKey::from_jwk(&rsa),
        Err(CryptoError::UnsupportedKeyType { .. })
    ));
    let short = Jwk::from_json(r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#).unwrap();
    assert!(matches!(
        VerifyingKey::from_jwk(&short),
        Err(CryptoError::InvalidKey { .. })
    ));
    // A private JWK whose `x` belongs to another key.
    let mismatched = PrivateJwk::from_json(
        r#"{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
            "x":"PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw"}"#,
    )
    .unwrap();
    assert!(SigningKey::from_jwk(&mismatched).is_err());
    assert!(Jwk::from_json(&" ".repeat(300_000)).is_err());
}

/// No `Debug` output of anything holding a private key shows the key, in any encoding.
#[test]
fn secrets_never_appear_in_debug() {
    let seed = [0x5a_u8; 32];
    let key = SigningKey::from_ed25519_seed(&seed).unwrap();
    let jwk = key.to_private_jwk();
    let signer = kest_crypto::KeySigner::new(SigningKey::from_ed25519_seed(&seed).unwrap(), "w");
    let ec = SigningKey::from_pkcs8_pem(&fixture("p256.pem")).unwrap();
    let ec_d = ec.to_private_jwk().d.expose().to_owned();
    let secrets = [
        hex::encode(seed),
        kest_canon::b64url_encode(&seed),
        jwk.d.expose().to_owned(),
        ec_d,
    ];
    let rendered = [
        format!("{key:?}"),
        format!("{key:#?}"),
        format!("{jwk:?}"),
        format!("{signer:?}"),
        format!("{ec:?}"),
        format!("{:?}", jwk.d),
    ];
    for text in &rendered {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "secret leaked in {text}");
        }
        assert!(text.contains("elided"), "{text}");
    }
}

#[test]
fn p256_keys_sign_and_verify() {
    let key = SigningKey::generate_p256().unwrap();
    let signature = key.sign(b"message").unwrap();
    assert_eq!(signature.len(), 64);
    key.verifying_key().verify(b"message", &signature).unwrap();
    assert!(key.verifying_key().verify(b"massage", &signature).is_err());
    let jwk = key.verifying_key().to_jwk();
    assert_eq!(jwk.kty, "EC");
    assert_eq!(&VerifyingKey::from_jwk(&jwk).unwrap(), key.verifying_key());
    assert_eq!(jwk.thumbprint().unwrap(), key.verifying_key().thumbprint());
}

#[test]
fn generated_keys_differ() {
    let a = SigningKey::generate_ed25519().unwrap();
    let b = SigningKey::generate_ed25519().unwrap();
    assert_ne!(a.verifying_key(), b.verifying_key());
}

/// Public keys in SubjectPublicKeyInfo DER (made by OpenSSL) load as the same keys as
/// their PKCS#8 private halves; other curves and garbage are refused.
#[test]
fn spki_public_keys_load() {
    let read = |name: &str| {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let ed = SigningKey::from_pkcs8_pem(&fixture("ed25519.pem")).unwrap();
    let ec = SigningKey::from_pkcs8_pem(&fixture("p256.pem")).unwrap();
    assert_eq!(
        &VerifyingKey::from_spki_der(&read("ed25519.spki.der")).unwrap(),
        ed.verifying_key()
    );
    assert_eq!(
        &VerifyingKey::from_spki_der(&read("p256.spki.der")).unwrap(),
        ec.verifying_key()
    );
    let p384 = VerifyingKey::from_spki_der(&read("p384.spki.der")).unwrap_err();
    assert!(p384.to_string().contains("expected P-256"), "{p384}");
    let spki = read("p256.spki.der");
    assert!(VerifyingKey::from_spki_der(&spki[..spki.len() - 1]).is_err());
    assert!(VerifyingKey::from_spki_der(&[]).is_err());
}
