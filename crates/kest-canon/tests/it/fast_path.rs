//! The fast path is only taken when it gives the same bytes as `serde_jcs`. These property
//! tests generate arbitrary JSON values, including unsorted and non-ASCII keys, floats and
//! out-of-range integers, and check both directions of that claim. Run with and without
//! `--features test-preserve-order` (`cargo xtask test` does both).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_canon::{compact_bytes, is_canonical_as_is, jcs_bytes};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_.]{0,8}",
        1 => "[ -~]{0,6}",
        1 => any::<String>().prop_map(|s| s.chars().take(6).collect()),
        1 => Just("\u{e000}".to_owned()),
        1 => Just("\u{1f600}".to_owned()),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(Value::from),
        (-9_007_199_254_740_991_i64..=9_007_199_254_740_991).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
        Just(Value::Number(Number::from_f64(1.0).unwrap())),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<String>().prop_map(Value::String),
        "[\\x00-\\x1f\"\\\\/\\x7f]{0,4}".prop_map(Value::String),
        number(),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whenever the fast path says yes, its bytes equal serde_jcs's.
    #[test]
    fn fast_path_agrees_with_serde_jcs(value in json_value()) {
        if is_canonical_as_is(&value) {
            prop_assert_eq!(compact_bytes(&value).unwrap(), jcs_bytes(&value).unwrap());
        }
    }

    /// And it says yes often enough to matter: every value with ASCII keys and safe
    /// integers, once sorted, qualifies.
    #[test]
    fn sorted_ascii_values_take_the_fast_path(value in json_value()) {
        let canonical = jcs_bytes(&value).unwrap();
        let reparsed: Value = serde_json::from_slice(&canonical).unwrap();
        let ascii_keys_and_ints = !String::from_utf8_lossy(&canonical).contains('.')
            && all_keys_ascii(&reparsed)
            && kest_canon::canonicalize(&reparsed).is_ok();
        if ascii_keys_and_ints && !has_float(&reparsed) {
            let rebuilt = sorted(&reparsed);
            prop_assert!(is_canonical_as_is(&rebuilt));
            prop_assert_eq!(compact_bytes(&rebuilt).unwrap(), canonical);
        }
    }
}

fn all_keys_ascii(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().all(all_keys_ascii),
        Value::Object(map) => map.iter().all(|(k, v)| k.is_ascii() && all_keys_ascii(v)),
        _ => true,
    }
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// Rebuilds a value with every object's keys inserted in sorted order, which is what a
/// typed model with sorted field declarations produces under `preserve_order`.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        Value::Object(map) => {
            let mut pairs: Vec<_> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

#[test]
fn unsorted_keys_are_refused_under_preserve_order() {
    let value: Value = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
    // Whether serde_json keeps insertion order depends on features unified across the
    // whole build (cedar-policy turns `preserve_order` on), so ask the map itself.
    let preserves_order = value.as_object().unwrap().keys().next().unwrap() == "b";
    assert_eq!(is_canonical_as_is(&value), !preserves_order);
    if !preserves_order {
        assert_eq!(compact_bytes(&value).unwrap(), br#"{"a":2,"b":1}"#);
    }
    assert_eq!(jcs_bytes(&value).unwrap(), br#"{"a":2,"b":1}"#);
}
