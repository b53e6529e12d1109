//! `vectors/python/jcs.json`: what the Python package's canonicalizer (`rfc8785`) produces
//! and rejects, case by case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_canon::{CanonError, Canonicalizer, NumberMode, canonicalize_text, sha256_hex};
use kest_testkit::load_json;
use serde_json::Value;

#[test]
fn every_text_case_matches_python() {
    let vectors: Value = load_json("python/jcs.json");
    let mut text_cases = 0;
    for case in vectors["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let Some(input) = case["input_json"].as_str() else {
            continue; // Python values with no JSON text form (tuples, NaN objects).
        };
        text_cases += 1;
        let result = canonicalize_text(input.as_bytes());
        if let Some(expected) = case["output"].as_str() {
            let canonical = result.unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(std::str::from_utf8(&canonical).unwrap(), expected, "{name}");
            assert_eq!(hex::encode(&canonical), case["output_hex"], "{name}");
            assert_eq!(sha256_hex(&canonical), case["output_sha256"], "{name}");
        } else {
            let python_error = case["error"].as_str().unwrap();
            let error = result.expect_err(name);
            let kind_matches = match python_error.split(':').next().unwrap() {
                "IntegerDomainError" => matches!(error, CanonError::IntegerOutOfRange { .. }),
                "FloatDomainError" => matches!(error, CanonError::NonFiniteNumber { .. }),
                "CanonicalizationError" => matches!(error, CanonError::LoneSurrogate { .. }),
                other => panic!("{name}: unknown Python error {other}"),
            };
            assert!(
                kind_matches,
                "{name}: Python says {python_error}, we say {error:?}"
            );
        }
        if let Some(ieee) = case.get("if_ints_parsed_as_double") {
            let canonical = Canonicalizer::new()
                .number_mode(NumberMode::Ieee754)
                .canonicalize_text(input.as_bytes())
                .unwrap();
            assert_eq!(
                std::str::from_utf8(&canonical).unwrap(),
                ieee["output"],
                "{name}"
            );
        }
    }
    assert!(text_cases >= 50, "only {text_cases} text cases found");
}

#[test]
fn python_value_cases_have_rust_counterparts() {
    // `python_nan` / `python_inf`: serde_json cannot even hold them, so a caller who has
    // an f64 NaN gets Null from `Value::from`; the canonicalizer never sees a NaN.
    assert_eq!(Value::from(f64::NAN), Value::Null);
    // `python_non_string_key`: a map with integer keys is not JSON data.
    let map: std::collections::BTreeMap<i32, &str> = [(1, "a")].into();
    // serde_jcs stringifies integer keys like serde_json does, which Python refuses; the
    // typed models in Kest never use non-string keys, and this documents the difference.
    assert_eq!(kest_canon::jcs_bytes(&map).unwrap(), br#"{"1":"a"}"#);
    // `python_tuple_is_array`.
    assert_eq!(kest_canon::jcs_bytes(&(1, 2)).unwrap(), b"[1,2]");
}

#[test]
fn errors_say_where() {
    let error = canonicalize_text(b"{\n  \"a\": [1, 9007199254740992]\n}").unwrap_err();
    assert_eq!(
        error.to_string(),
        "integer `9007199254740992` at line 2, column 12 is outside the interoperable range ±(2^53-1)"
    );
    let error = canonicalize_text(b"[1,\n\"\\udc00\"]").unwrap_err();
    assert_eq!(
        error.to_string(),
        "lone surrogate `\\udc00` at line 2, column 2"
    );
    let error = canonicalize_text(b"[1,").unwrap_err();
    assert!(
        matches!(error, CanonError::Syntax { line: 1, .. }),
        "{error:?}"
    );
    let error = canonicalize_text(b"[1e400]").unwrap_err();
    assert!(
        matches!(error, CanonError::NonFiniteNumber { .. }),
        "{error:?}"
    );
    let deep = "[".repeat(200);
    let error = canonicalize_text(deep.as_bytes()).unwrap_err();
    assert!(matches!(error, CanonError::TooDeep { .. }), "{error:?}");
    // A huge literal does not make a huge error message.
    let huge = "9".repeat(100_000);
    let error = canonicalize_text(huge.as_bytes()).unwrap_err();
    assert!(error.to_string().len() < 200);
}

#[test]
fn validate_reports_a_json_pointer() {
    let value = serde_json::json!({"labels": {"a/b": [0, u64::MAX]}});
    let error = kest_canon::canonicalize(&value).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "integer `{}` at `/labels/a~1b/1` is outside the interoperable range ±(2^53-1)",
            u64::MAX
        )
    );
    let negative = serde_json::json!([-9_007_199_254_740_992_i64]);
    assert!(kest_canon::canonicalize(&negative).is_err());
    let ok = serde_json::json!([-9_007_199_254_740_991_i64, 9_007_199_254_740_991_u64]);
    assert!(kest_canon::canonicalize(&ok).is_ok());
}

#[test]
fn validate_handles_values_deeper_than_the_stack() {
    let mut value = Value::Null;
    for _ in 0..100_000 {
        value = Value::Array(vec![value]);
    }
    let error = kest_canon::canonicalize(&value).unwrap_err();
    assert!(matches!(error, CanonError::TooDeep { .. }));
    // Dropping a 100,000-deep value recurses in serde_json; unwind it by hand.
    let mut current = value;
    while let Value::Array(mut items) = current {
        current = items.pop().unwrap_or(Value::Null);
    }
}
