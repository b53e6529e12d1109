//! Fuzz target: passport decoding, and verification against a key nobody signed with.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &str| {
    let _ = kest_passport::UnverifiedPassport::decode(data, &kest_passport::Limits::default());
    let nobody = kest_crypto::StaticKeyResolver::new();
    let _ = kest_passport::Verifier::new(&nobody).verify_json(data);
});
