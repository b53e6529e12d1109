//! JWS compact signing and verification, byte-identical with the Python package, and every
//! rejection the verifier promises.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_crypto::{
    Algorithm, CompactJws, CryptoError, KeySigner, SigningKey, encode_header, sign_compact,
};
use serde_json::Value;

fn python_key() -> SigningKey {
    let vectors: Value = kest_testkit::load_json("python/key.json");
    SigningKey::from_ed25519_seed_hex(vectors["seed_hex"].as_str().unwrap()).unwrap()
}

fn attacker_key() -> SigningKey {
    let vectors: Value = kest_testkit::load_json("python/key.json");
    SigningKey::from_ed25519_seed_hex(vectors["attacker_seed_hex"].as_str().unwrap()).unwrap()
}

/// `sign_entry_deterministic.json`: the same key and payload bytes give the same JWS.
#[test]
fn python_deterministic_signatures_reproduce() {
    let vectors: Value = kest_testkit::load_json("python/sign_entry_deterministic.json");
    for case in vectors["cases"].as_array().unwrap() {
        let kid = case["header"]["kid"].as_str().unwrap();
        assert_eq!(encode_header(Algorithm::EdDSA, kid), case["header_json"]);
        let signer = KeySigner::new(python_key(), kid);
        let jws = sign_compact(&signer, case["payload_json"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(jws, case["jws"]);
        let parsed = CompactJws::parse(&jws).unwrap();
        assert_eq!(
            kest_canon::sha256_hex(parsed.signing_input().as_bytes()),
            case["signing_input_sha256"]
        );
        parsed.verify_with(python_key().verifying_key()).unwrap();
    }
}

/// Python's `json.dumps` escapes everything outside printable ASCII; so must we. The
/// expected text was produced by `json.dumps(..., sort_keys=True, separators=(",", ":"))`.
#[test]
fn header_escapes_like_python() {
    assert_eq!(
        encode_header(Algorithm::EdDSA, "spiffe://é/😀\u{7f}\"\\\n"),
        r#"{"alg":"EdDSA","kid":"spiffe://\u00e9/\ud83d\ude00\u007f\"\\\n","typ":"JWS"}"#
    );
}

fn sample() -> (String, SigningKey) {
    let signer = KeySigner::new(python_key(), "spiffe://kest.test/interop-workload");
    (sign_compact(&signer, br#"{"a":1}"#).unwrap(), python_key())
}

fn with_header(jws: &str, header: &str) -> String {
    let rest = jws.split_once('.').unwrap().1;
    format!("{}.{rest}", kest_canon::b64url_encode(header.as_bytes()))
}

#[test]
fn rejects_alg_none_and_unknown_algs() {
    let (jws, key) = sample();
    for (header, expected) in [
        (r#"{"alg":"none"}"#, "none"),
        (r#"{"alg":"NONE","kid":"x"}"#, "none"),
        (r#"{"alg":"HS256"}"#, "unsupported"),
        (r#"{"alg":"RS256"}"#, "unsupported"),
    ] {
        let forged = with_header(&jws, header);
        let error = CompactJws::parse(&forged).and_then(|j| j.verify_with(key.verifying_key()));
        let error = error.unwrap_err();
        assert!(error.to_string().contains(expected), "{header}: {error}");
    }
    // alg none with the signature segment emptied.
    let (head, _) = with_header(&jws, r#"{"alg":"none"}"#)
        .rsplit_once('.')
        .map(|(h, s)| (h.to_owned(), s.to_owned()))
        .unwrap();
    assert_eq!(
        CompactJws::parse(&format!("{head}.")).unwrap_err(),
        CryptoError::AlgNone
    );
}

#[test]
fn rejects_key_confusion_both_ways() {
    let ed = SigningKey::generate_ed25519().unwrap();
    let ec = SigningKey::generate_p256().unwrap();
    let ed_jws = sign_compact(&KeySigner::new(ed, "w"), b"{}").unwrap();
    let ec_jws = sign_compact(&KeySigner::new(ec, "w"), b"{}").unwrap();
    let ec_key = SigningKey::generate_p256().unwrap();
    let ed_key = SigningKey::generate_ed25519().unwrap();
    let error = CompactJws::parse(&ed_jws)
        .unwrap()
        .verify_with(ec_key.verifying_key())
        .unwrap_err();
    assert!(
        matches!(
            error,
            CryptoError::AlgorithmMismatch {
                key: Algorithm::ES256,
                ..
            }
        ),
        "{error}"
    );
    let error = CompactJws::parse(&ec_jws)
        .unwrap()
        .verify_with(ed_key.verifying_key())
        .unwrap_err();
    assert!(
        matches!(
            error,
            CryptoError::AlgorithmMismatch {
                key: Algorithm::EdDSA,
                ..
            }
        ),
        "{error}"
    );
    // Relabelling an Ed25519 signature as ES256 does not help either.
    let relabelled = with_header(&ed_jws, r#"{"alg":"ES256","kid":"w","typ":"JWS"}"#);
    let error = CompactJws::parse(&relabelled)
        .unwrap()
        .verify_with(ec_key.verifying_key())
        .unwrap_err();
    // Its bytes read as (r, s) are refused whichever half of the range s falls in.
    assert!(
        matches!(error, CryptoError::BadSignature | CryptoError::HighS),
        "{error}"
    );
}

#[test]
fn rejects_malformed_shapes() {
    let (jws, key) = sample();
    let parts: Vec<&str> = jws.split('.').collect();
    let cases: Vec<(String, &str)> = vec![
        ("not-a-jws".into(), "3 segments"),
        (format!("{}.{}", parts[0], parts[1]), "3 segments"),
        (format!("{jws}.extra"), "3 segments"),
        (
            format!("{}.{}.pending.{}", parts[0], parts[1], "ab"),
            "3 segments",
        ),
        (
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            "base64url",
        ),
        (
            format!("{}.{}!.{}", parts[0], parts[1], parts[2]),
            "base64url",
        ),
        (
            format!("{}.{}.{}", parts[0], parts[1], &parts[2][..40]),
            "signatures are 64 bytes",
        ),
        (
            format!("{}.{}.{}AAAA", parts[0], parts[1], parts[2]),
            "signatures are 64 bytes",
        ),
        (with_header(&jws, "[]"), "header"),
        (with_header(&jws, r#"{"kid":"x"}"#), "header"),
        (
            with_header(&jws, r#"{"alg":"EdDSA","alg":"none"}"#),
            "duplicate",
        ),
        (
            with_header(&jws, r#"{"alg":"EdDSA","crit":["b64"]}"#),
            "crit",
        ),
    ];
    for (text, expected) in cases {
        let error = CompactJws::parse(&text).and_then(|j| j.verify_with(key.verifying_key()));
        let error = error.expect_err(&text);
        assert!(error.to_string().contains(expected), "{text}: {error}");
    }
}

#[test]
fn rejects_altered_and_foreign_signatures() {
    let (jws, key) = sample();
    let mut bytes = jws.clone().into_bytes();
    let last = bytes.len() - 10;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(bytes).unwrap();
    assert_eq!(
        CompactJws::parse(&altered)
            .unwrap()
            .verify_with(key.verifying_key())
            .unwrap_err(),
        CryptoError::BadSignature
    );
    let forged = sign_compact(
        &KeySigner::new(attacker_key(), "spiffe://kest.test/interop-workload"),
        br#"{"a":1}"#,
    )
    .unwrap();
    assert_eq!(
        CompactJws::parse(&forged)
            .unwrap()
            .verify_with(key.verifying_key())
            .unwrap_err(),
        CryptoError::BadSignature
    );
}

/// RFC 7515 Appendix A.3: an ES256 JWS and the P-256 key that made it. ECDSA signatures
/// are randomized, so the vector is checked, not reproduced. Its signature has a high S,
/// which this crate refuses (see `hostile_keys.rs`, where its low-S twin verifies).
#[test]
fn rfc7515_a3_es256_is_checked() {
    let jwk = kest_crypto::PrivateJwk::from_json(
        r#"{"kty":"EC","crv":"P-256",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#,
    )
    .unwrap();
    let key = SigningKey::from_jwk(&jwk).unwrap();
    let jws = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    let parsed = CompactJws::parse(jws).unwrap();
    assert_eq!(
        parsed.verify_with(key.verifying_key()).unwrap_err(),
        CryptoError::HighS
    );
    // A fresh ES256 signature by the same key verifies.
    let ours = sign_compact(&KeySigner::new(key, "w"), b"{}").unwrap();
    CompactJws::parse(&ours)
        .unwrap()
        .verify_with(&kest_crypto::VerifyingKey::from_jwk(&jwk.public).unwrap())
        .unwrap();
}

/// DER signatures (as AWS KMS returns them) convert to the fixed JWS form, checked against
/// signatures made by OpenSSL for the P-256 fixture key.
#[test]
fn es256_der_signatures_convert() {
    let key = SigningKey::from_pkcs8_pem(
        &std::fs::read_to_string(format!(
            "{}/tests/fixtures/p256.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let message = std::fs::read(format!(
        "{}/tests/fixtures/p256.msg",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let der = std::fs::read(format!(
        "{}/tests/fixtures/p256.sig.der",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let fixed = kest_crypto::es256_signature_from_der(&der).unwrap();
    key.verifying_key().verify(&message, &fixed).unwrap();
    assert!(kest_crypto::es256_signature_from_der(&der[..der.len() - 1]).is_err());
    assert!(kest_crypto::es256_signature_from_der(&[0x30, 0x00]).is_err());
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(kest_crypto::es256_signature_from_der(&trailing).is_err());
}
