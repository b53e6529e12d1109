//! Fuzz target: JWS compact parsing and the entry parser on top of it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &str| {
    let _ = kest_crypto::CompactJws::parse(data);
    let _ = kest_passport::UnverifiedEntry::parse(data);
});
