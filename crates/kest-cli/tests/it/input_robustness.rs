//! The CLI's input detection and loading take arbitrary bytes without panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_cli::input::{Input, classify, load_unverified};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn classify_and_load_never_panic(text in ".{0,400}") {
        if let Ok(input) = classify(&text) {
            let _ = load_unverified(input);
        }
    }

    #[test]
    fn near_misses_never_panic(
        prefix in prop_oneof![Just(""), Just("baggage: "), Just("kest.passport="), Just("kest.passport_z="), Just("kest.chain_tip="), Just("[")],
        body in "[A-Za-z0-9_=.,;%\" -]{0,200}",
    ) {
        if let Ok(input) = classify(&format!("{prefix}{body}")) {
            let _ = load_unverified(input);
        }
    }
}

#[test]
fn classification() {
    assert!(matches!(classify("  [\"a.b.c\"] "), Ok(Input::Passport(_))));
    assert!(matches!(
        classify("Baggage: kest.chain_tip=0"),
        Ok(Input::Baggage(_))
    ));
    assert!(matches!(
        classify("kest.passport_z=eAE="),
        Ok(Input::Baggage(_))
    ));
    assert!(matches!(classify("eyJ.eyJ.abc"), Ok(Input::Jws(_))));
    for text in ["", "hello", "a.b", "a.b.c.d", "{}", "kest.user"] {
        assert!(classify(text).is_err(), "{text}");
    }
}
