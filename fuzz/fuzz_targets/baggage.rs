//! Fuzz target: baggage parsing and passport selection from it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &str| {
    if let Ok(baggage) = kest_propagation::Baggage::parse(data, &Default::default()) {
        let inbound = kest_propagation::InboundPassport::from_baggage(&baggage);
        let _ = inbound.choose(None, &kest_passport::Limits::default());
        let _ = baggage.to_header();
    }
});
