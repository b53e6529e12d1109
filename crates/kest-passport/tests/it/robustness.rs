//! Arbitrary input to the passport parsers gives an error or a value, never a panic; and
//! entries of arbitrary content canonicalize exactly as `serde_jcs` would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use crate::common;

use kest_passport::{
    Entry, EntryBuilder, Head, Limits, Passport, SignedEntry, UnverifiedEntry, UnverifiedPassport,
    Verifier,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn decoders_never_panic(text in ".{0,400}") {
        let _ = UnverifiedPassport::decode(&text, &Limits::default());
        let _ = UnverifiedEntry::parse(&text);
        let resolver = common::python_resolver();
        let _ = Verifier::new(&resolver).verify_json(&text);
        let _ = Verifier::new(&resolver).verify_entry(&text);
    }

    #[test]
    fn arrays_of_near_jws_never_panic(parts in prop::collection::vec("[A-Za-z0-9_.-]{0,120}", 0..6)) {
        let text = serde_json::to_string(&parts).unwrap();
        let _ = UnverifiedPassport::decode(&text, &Limits::default());
    }

    #[test]
    fn payload_parser_never_panics(value in json_value()) {
        if let Ok(entry) = Entry::from_value(value) {
            let _ = entry.canonical_bytes();
        }
    }

    /// The fast path is taken or not depending on content; either way the bytes are
    /// exactly `serde_jcs`'s for the same payload.
    #[test]
    fn entry_canonical_bytes_equal_serde_jcs(
        labels in prop::collection::btree_map(key(), "[ -~é😀]{0,6}", 0..4),
        env in prop::collection::vec((key(), leaf()), 0..4),
        metadata in leaf(),
        taints in prop::collection::btree_set("[a-z]{1,4}", 0..3),
    ) {
        let mut builder = EntryBuilder::new("op").principal("w").added_taints(taints).metadata(metadata);
        for (k, v) in labels {
            builder = builder.label(k, v);
        }
        builder = builder.environment(env.into_iter().collect::<Map<_, _>>());
        if let Ok(entry) = builder.build_on(&[], &kest_trust::WeakestLink) {
            let fast = entry.canonical_bytes().unwrap();
            let reference: Value = serde_json::from_slice(&fast).unwrap();
            prop_assert_eq!(&fast, &kest_canon::jcs_bytes(&entry).unwrap());
            prop_assert_eq!(&fast, &kest_canon::canonicalize(&reference).unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A passport holds its entries packed; whatever their text looks like (hex and UUIDs
    /// in either case, member names inside values, escaped control characters), it
    /// writes back the JWS each was signed as, and the result verifies.
    #[test]
    fn held_entries_write_back_the_jws_they_were_signed_as(
        steps in prop::collection::vec(
            (tricky_text(), prop::collection::btree_map(key(), tricky_text(), 0..4), json_value()),
            1..4,
        )
    ) {
        let signer = common::python_signer();
        let resolver = common::python_resolver();
        let mut passport = Passport::new();
        let mut texts = Vec::new();
        for (operation, labels, metadata) in steps {
            let mut builder = EntryBuilder::new(operation)
                .principal(common::PRINCIPAL)
                .metadata(metadata);
            for (name, value) in labels {
                builder = builder.label(name, value);
            }
            let built = {
                let heads: Vec<Head<'_>> = passport.tip().into_iter().map(Head::from).collect();
                builder.build_on(&heads, &kest_trust::WeakestLink)
            };
            let Ok(entry) = built else { continue };
            let signed = SignedEntry::sign(entry, &signer).unwrap();
            texts.push(signed.jws().into_owned());
            passport.push(signed).unwrap();
        }
        let held: Vec<String> = passport.entries().iter().map(|e| e.jws().into_owned()).collect();
        prop_assert_eq!(&held, &texts);
        if !texts.is_empty() {
            let report = Verifier::new(&resolver).verify_json(&passport.to_json()).unwrap();
            prop_assert_eq!(report.len(), texts.len());
        }
    }
}

/// Text that a packed form must not mistake for what it replaces.
fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~é\u{1}\u{1e}\u{1f}\u{7f}]{0,12}",
        "[0-9a-fA-F]{64}",
        any::<u128>().prop_map(|u| uuid::Uuid::from_u128(u).to_string()),
        any::<u128>().prop_map(|u| uuid::Uuid::from_u128(u).to_string().to_uppercase()),
        Just("\"taints\":".to_owned()),
        Just("trust_score".to_owned()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_.]{1,6}",
        "[A-Z0-9]{1,3}",
        Just("é".to_owned()),
        Just("\u{1f600}".to_owned()),
        Just("\u{e000}".to_owned())
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        (-1e6_f64..1e6).prop_map(Value::from),
        "[ -~]{0,5}".prop_map(Value::String),
        prop::collection::btree_map(key(), any::<u16>().prop_map(Value::from), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        key(),
                        Just("trust_score".to_owned()),
                        Just("labels".to_owned()),
                        Just("parent_ids".to_owned())
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}
