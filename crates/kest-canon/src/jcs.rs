//! RFC 8785 canonicalization on top of `serde_jcs`, with the number rules made explicit.

use serde::Serialize;
use serde_json::Value;

use crate::error::{CanonError, shorten};
use crate::limits::{MAX_DEPTH, MAX_SAFE_INTEGER};
use crate::scan;

/// How numbers outside the exactly representable integer range are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NumberMode {
    /// Integers must lie within ±(2^53−1); larger ones are an error. Integer literals in text
    /// are integers, as Python's `json.loads` reads them. This is what the Python package
    /// does and what Kest signs with.
    #[default]
    SafeIntegers,
    /// Pure RFC 8785: every number is an IEEE 754 double, so `9007199254740993` becomes
    /// `9007199254740992`. Use it to canonicalize foreign documents, never to sign entries
    /// that other runtimes must reproduce.
    Ieee754,
}

/// A configurable canonicalizer. [`canonicalize`] and friends use the default.
///
/// ```
/// use kest_canon::{Canonicalizer, NumberMode};
///
/// let strict = Canonicalizer::new();
/// assert!(strict.canonicalize_text(b"9007199254740993").is_err());
///
/// let ieee = Canonicalizer::new().number_mode(NumberMode::Ieee754);
/// assert_eq!(ieee.canonicalize_text(b"9007199254740993").unwrap(), b"9007199254740992");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Canonicalizer {
    mode: NumberMode,
}

impl Canonicalizer {
    /// A canonicalizer with the default [`NumberMode::SafeIntegers`].
    #[must_use]
    pub const fn new() -> Self {
        Self {
            mode: NumberMode::SafeIntegers,
        }
    }

    /// Sets how out-of-range numbers are treated.
    #[must_use]
    pub const fn number_mode(mut self, mode: NumberMode) -> Self {
        self.mode = mode;
        self
    }

    /// Parses JSON text into a value, applying this canonicalizer's number rules.
    ///
    /// # Errors
    /// A [`CanonError`] naming the line and column of the first problem.
    pub fn parse(&self, text: &[u8]) -> Result<Value, CanonError> {
        scan::scan(text, self.mode == NumberMode::SafeIntegers)?;
        serde_json::from_slice(text).map_err(map_parse_error)
    }

    /// Checks that a value can be canonicalized under this canonicalizer's rules.
    ///
    /// # Errors
    /// [`CanonError::IntegerOutOfRange`] or [`CanonError::TooDeep`], with a JSON pointer.
    pub fn validate(&self, value: &Value) -> Result<(), CanonError> {
        // An explicit stack: values built in code can be nested deeper than the call stack.
        let mut stack: Vec<(&Value, usize, String)> = vec![(value, 0, String::new())];
        while let Some((value, depth, path)) = stack.pop() {
            match value {
                Value::Number(number) if self.mode == NumberMode::SafeIntegers => {
                    let unsafe_integer = match (number.as_u64(), number.as_i64()) {
                        (Some(u), _) => u > MAX_SAFE_INTEGER,
                        (None, Some(i)) => i.unsigned_abs() > MAX_SAFE_INTEGER,
                        (None, None) => false,
                    };
                    if unsafe_integer {
                        return Err(CanonError::IntegerOutOfRange {
                            literal: shorten(&number.to_string()),
                            location: pointer_or_root(path),
                        });
                    }
                }
                Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => {
                    return Err(CanonError::TooDeep {
                        limit: MAX_DEPTH,
                        location: pointer_or_root(path),
                    });
                }
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        stack.push((item, depth + 1, format!("{path}/{index}")));
                    }
                }
                Value::Object(map) => {
                    for (key, item) in map {
                        stack.push((item, depth + 1, format!("{path}/{}", escape_pointer(key))));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Canonicalizes a value: validates it, then serializes it per RFC 8785.
    ///
    /// # Errors
    /// See [`Canonicalizer::validate`].
    pub fn canonicalize(&self, value: &Value) -> Result<Vec<u8>, CanonError> {
        // Most values Kest signs (ASCII keys, integer numbers) are canonical as `serde_json`
        // writes them; that is far cheaper than `serde_jcs`, and implies validity.
        if crate::fast::is_canonical_as_is(value) {
            return crate::fast::compact_bytes(value);
        }
        self.validate(value)?;
        jcs_bytes(value)
    }

    /// Parses JSON text and returns its canonical form.
    ///
    /// # Errors
    /// See [`Canonicalizer::parse`] and [`Canonicalizer::validate`].
    pub fn canonicalize_text(&self, text: &[u8]) -> Result<Vec<u8>, CanonError> {
        let value = self.parse(text)?;
        self.canonicalize(&value)
    }
}

fn pointer_or_root(path: String) -> String {
    if path.is_empty() {
        "the root".to_owned()
    } else {
        format!("`{}`", shorten(&path))
    }
}

/// RFC 6901 escaping of one JSON pointer segment.
fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Serializes any `Serialize` value with `serde_jcs`.
///
/// This does not check the integer domain: it is meant for typed models whose integers are
/// bounded by construction. Use [`canonicalize`] for arbitrary [`Value`]s.
///
/// # Errors
/// [`CanonError::Unserializable`] when the value is not JSON data (a non-finite float, a map
/// with non-string keys).
pub fn jcs_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonError> {
    serde_jcs::to_vec(value).map_err(|error| CanonError::Unserializable {
        message: error.to_string(),
    })
}

/// Canonicalizes a value with the default rules ([`NumberMode::SafeIntegers`]).
///
/// ```
/// let value = serde_json::json!({"b": [1.0, "é"], "a": null});
/// assert_eq!(kest_canon::canonicalize(&value).unwrap(), r#"{"a":null,"b":[1,"é"]}"#.as_bytes());
/// ```
///
/// # Errors
/// See [`Canonicalizer::validate`].
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, CanonError> {
    Canonicalizer::new().canonicalize(value)
}

/// Parses JSON text with the default rules and returns its canonical form.
///
/// # Errors
/// See [`Canonicalizer::canonicalize_text`].
pub fn canonicalize_text(text: &[u8]) -> Result<Vec<u8>, CanonError> {
    Canonicalizer::new().canonicalize_text(text)
}

/// Parses JSON text with the default rules.
///
/// # Errors
/// See [`Canonicalizer::parse`].
pub fn parse(text: &[u8]) -> Result<Value, CanonError> {
    Canonicalizer::new().parse(text)
}

fn map_parse_error(error: serde_json::Error) -> CanonError {
    let (line, column) = (error.line(), error.column());
    let message = error.to_string();
    // serde_json appends " at line L column C"; keep only the description.
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(head, _)| head)
        .to_owned();
    let location = format!("line {line}, column {column}");
    match message.as_str() {
        "number out of range" => CanonError::NonFiniteNumber {
            literal: "(exceeds the double range)".to_owned(),
            line,
            column,
        },
        "recursion limit exceeded" => CanonError::TooDeep {
            limit: MAX_DEPTH,
            location,
        },
        _ => CanonError::Syntax {
            line,
            column,
            message,
        },
    }
}
