//! The RFC 8785 test files: the RFC's own input/output pairs, 100,000 number vectors and
//! 500 random documents.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_canon::{Canonicalizer, NumberMode, canonicalize_text};
use kest_testkit::{read_vector, vectors_dir};

const RFC_FILES: [&str; 6] = [
    "arrays",
    "french",
    "structures",
    "unicode",
    "values",
    "weird",
];

#[test]
fn rfc_input_output_pairs() {
    for name in RFC_FILES {
        let input = read_vector(&format!("rfc8785/input/{name}.json"));
        let expected =
            std::fs::read(vectors_dir().join(format!("rfc8785/output/{name}.json"))).unwrap();
        let hex = read_vector(&format!("rfc8785/outhex/{name}.txt"));
        let expected_from_hex: Vec<u8> = hex
            .split_whitespace()
            .map(|pair| u8::from_str_radix(pair, 16).unwrap())
            .collect();
        assert_eq!(
            expected, expected_from_hex,
            "{name}: output and outhex disagree"
        );

        let canonical =
            canonicalize_text(input.as_bytes()).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(
            String::from_utf8_lossy(&canonical),
            String::from_utf8_lossy(&expected),
            "{name}"
        );
        assert_eq!(canonical, expected, "{name}: bytes");
    }
}

/// Each line is `<IEEE 754 bits as hex>,<ECMAScript text>`.
#[test]
fn es6_numbers_100k() {
    let text = read_vector("rfc8785/es6numbers-100k.txt");
    let mut checked = 0;
    for (line_no, line) in text.lines().enumerate() {
        let (bits, expected) = line.split_once(',').unwrap();
        let value = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        let json = serde_json::Value::from(value);
        let canonical = kest_canon::canonicalize(&json)
            .unwrap_or_else(|error| panic!("line {}: {bits}: {error}", line_no + 1));
        assert_eq!(
            std::str::from_utf8(&canonical).unwrap(),
            expected,
            "line {}: bits {bits}",
            line_no + 1
        );
        // The canonical text must parse back to the same double (float_roundtrip).
        let reparsed: f64 = serde_json::from_slice(&canonical).unwrap();
        assert_eq!(
            reparsed.to_bits(),
            if value == 0.0 { 0 } else { value.to_bits() }
        );
        checked += 1;
    }
    assert_eq!(checked, 100_000);
}

#[derive(serde::Deserialize)]
struct RandomCase {
    input: String,
    canonical: String,
}

/// The random documents use pure RFC 8785 number semantics: ten of them hold integer
/// literals beyond 2^53, which are doubles there. Under the default (Python-compatible)
/// rules exactly those are rejected, and every other document gives the same bytes.
#[test]
fn random_500_documents() {
    let text = read_vector("rfc8785/random-500.jsonl");
    let ieee = Canonicalizer::new().number_mode(NumberMode::Ieee754);
    let (mut total, mut rejected_by_default) = (0, 0);
    for (line_no, line) in text.lines().enumerate() {
        let case: RandomCase = serde_json::from_str(line).unwrap();
        let canonical = ieee
            .canonicalize_text(case.input.as_bytes())
            .unwrap_or_else(|error| panic!("line {}: {error}", line_no + 1));
        assert_eq!(
            std::str::from_utf8(&canonical).unwrap(),
            case.canonical,
            "line {}",
            line_no + 1
        );
        match canonicalize_text(case.input.as_bytes()) {
            Ok(strict) => assert_eq!(strict, canonical, "line {}", line_no + 1),
            Err(kest_canon::CanonError::IntegerOutOfRange { .. }) => rejected_by_default += 1,
            Err(other) => panic!("line {}: unexpected {other}", line_no + 1),
        }
        total += 1;
    }
    assert_eq!(total, 500);
    assert_eq!(rejected_by_default, 10);
}
