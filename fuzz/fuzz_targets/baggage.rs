//! Fuzz target: baggage parsing and passport selection from it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &str| {
    if let Ok(baggage) = kest_propagation::Baggage::parse(data, &Default::default()) {
        let inbound = kest_propagation::InboundPassport::from_baggage(&baggage);
        let limits = kest_passport::Limits::default();
        let _ = inbound.choose_unverified(None, &limits);
        let nobody = kest_crypto::StaticKeyResolver::new();
        let _ = inbound.choose_verified(None, &kest_passport::Verifier::new(&nobody), &limits);
        let _ = baggage.to_header();
    }
});
