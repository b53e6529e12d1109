//! Fuzz target: passport decoding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &str| {
    let _ = kest_passport::Passport::decode(data, &kest_passport::Limits::default());
});
