//! Arbitrary bytes and strings fed to every parser give an error or a value, never a panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_crypto::{CompactJws, Jwk, Jwks, JwsHeader, PrivateJwk, SigningKey};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn jws_parser_never_panics(text in ".{0,300}") {
        let _ = CompactJws::parse(&text);
    }

    #[test]
    fn jws_parser_never_panics_on_near_misses(a in "[A-Za-z0-9_=-]{0,80}", b in "[A-Za-z0-9_=-]{0,80}", c in "[A-Za-z0-9_=-]{0,100}") {
        let _ = CompactJws::parse(&format!("{a}.{b}.{c}"));
        let _ = CompactJws::parse(&format!("eyJhbGciOiJFZERTQSJ9.{b}.{c}"));
    }

    #[test]
    fn header_and_jwk_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = JwsHeader::from_json(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(jwk) = Jwk::from_json(&text) {
            let _ = kest_crypto::VerifyingKey::from_jwk(&jwk);
            let _ = jwk.thumbprint();
        }
        if let Ok(jwk) = PrivateJwk::from_json(&text) {
            let _ = SigningKey::from_jwk(&jwk);
        }
        let _ = Jwks::from_json(&text);
        let _ = SigningKey::from_pkcs8_der(&bytes);
        let _ = SigningKey::from_pkcs8_pem(&text);
    }

    #[test]
    fn jwk_members_never_panic(kty in "OKP|EC|RSA|x", crv in "Ed25519|P-256|X25519|", x in "[A-Za-z0-9_-]{0,90}", y in "[A-Za-z0-9_-]{0,90}", d in "[A-Za-z0-9_-]{0,90}") {
        let jwk = serde_json::json!({"kty": kty, "crv": crv, "x": x, "y": y, "d": d});
        let text = jwk.to_string();
        let public = Jwk::from_json(&text).unwrap();
        let _ = kest_crypto::VerifyingKey::from_jwk(&public);
        if let Ok(private) = PrivateJwk::from_json(&text) {
            let _ = SigningKey::from_jwk(&private);
        }
    }
}
