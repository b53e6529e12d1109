//! Fuzz target: public and private JWK and JWK Set parsing and key import.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &str| {
    if let Ok(jwk) = kest_crypto::Jwk::from_json(data) {
        let _ = kest_crypto::VerifyingKey::from_jwk(&jwk);
    }
    if let Ok(private) = kest_crypto::PrivateJwk::from_json(data) {
        let _ = kest_crypto::SigningKey::from_jwk(&private);
    }
    let _ = kest_crypto::JwksKeyResolver::from_json(data);
});
