//! The fast path: when plain `serde_json` output is already canonical.
//!
//! RFC 8785 differs from `serde_json`'s compact output in only two places: object keys are
//! sorted by UTF-16 code units, and numbers are written the way ECMAScript writes doubles.
//! For keys that are ASCII, UTF-16 order, UTF-8 byte order and `str` order coincide; for
//! integers within ±(2^53−1), ECMAScript and `itoa` print the same digits. String escaping
//! is the same in both. So a value whose objects have ASCII keys in ascending order and
//! whose numbers are all such integers serializes canonically with `serde_json` alone,
//! which is about fifteen times cheaper than `serde_jcs`. The test suite checks this claim
//! against `serde_jcs` with property tests, with and without `preserve_order`.

use serde::Serialize;
use serde_json::Value;

use crate::error::CanonError;
use crate::limits::{MAX_DEPTH, MAX_SAFE_INTEGER};

/// Whether `serde_json`'s compact serialization of `value` is byte-identical to its RFC
/// 8785 form: every object key is ASCII and keys appear in strictly ascending order, every
/// number is an integer within ±(2^53−1), and nesting stays within the depth limit.
///
/// ```
/// use serde_json::json;
/// assert!(kest_canon::is_canonical_as_is(&json!({"a": [1, "é"], "b": null})));
/// assert!(!kest_canon::is_canonical_as_is(&json!({"a": 1.5})));
/// assert!(!kest_canon::is_canonical_as_is(&json!({"é": 1})));
/// ```
#[must_use]
pub fn is_canonical_as_is(value: &Value) -> bool {
    let mut stack = vec![(value, 0_usize)];
    while let Some((value, depth)) = stack.pop() {
        match value {
            Value::Number(number) => {
                let safe = match (number.as_u64(), number.as_i64()) {
                    (Some(u), _) => u <= MAX_SAFE_INTEGER,
                    (None, Some(i)) => i.unsigned_abs() <= MAX_SAFE_INTEGER,
                    (None, None) => false,
                };
                if !safe {
                    return false;
                }
            }
            Value::Array(items) => {
                if depth >= MAX_DEPTH {
                    return false;
                }
                stack.extend(items.iter().map(|item| (item, depth + 1)));
            }
            Value::Object(map) => {
                if depth >= MAX_DEPTH || !keys_are_canonical(map.keys().map(String::as_str)) {
                    return false;
                }
                stack.extend(map.values().map(|item| (item, depth + 1)));
            }
            Value::Null | Value::Bool(_) | Value::String(_) => {}
        }
    }
    true
}

/// Whether a sequence of object keys, in the order they would be written, is ASCII and
/// strictly ascending: the condition under which writing them in that order is canonical.
#[must_use]
pub fn keys_are_canonical<'a>(keys: impl IntoIterator<Item = &'a str>) -> bool {
    let mut previous: Option<&str> = None;
    for key in keys {
        if !key.is_ascii() || previous.is_some_and(|p| p >= key) {
            return false;
        }
        previous = Some(key);
    }
    true
}

/// Compact `serde_json` serialization. Canonical only when the value meets the conditions
/// of [`is_canonical_as_is`]; callers must check that first.
///
/// # Errors
/// [`CanonError::Unserializable`] when the value is not JSON data.
pub fn compact_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonError> {
    serde_json::to_vec(value).map_err(|error| CanonError::Unserializable {
        message: error.to_string(),
    })
}
