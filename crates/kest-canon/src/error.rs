//! The one error type of this crate.

use thiserror::Error;

/// Why a JSON text or value could not be canonicalized, or an encoded string decoded.
///
/// Positions are 1-based line and column numbers in the input text, counted in bytes
/// the way `serde_json` counts them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CanonError {
    /// The text is not JSON.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// A `\uXXXX` escape names half of a surrogate pair without the other half.
    ///
    /// The Python package rejects the same input with `CanonicalizationError`.
    #[error("lone surrogate `{escape}` at line {line}, column {column}")]
    LoneSurrogate {
        /// The offending escape, e.g. `\ud800`.
        escape: String,
        /// Line of the escape.
        line: usize,
        /// Column of the escape.
        column: usize,
    },
    /// `NaN`, `Infinity` or a literal too large for a double, such as `1e400`.
    ///
    /// The Python package rejects the same input with `FloatDomainError`.
    #[error("number `{literal}` at line {line}, column {column} is not a finite double")]
    NonFiniteNumber {
        /// The literal, shortened when long.
        literal: String,
        /// Line of the literal.
        line: usize,
        /// Column of the literal.
        column: usize,
    },
    /// An integer outside ±(2^53−1), the range every JSON implementation reads exactly.
    ///
    /// The Python package rejects the same input with `IntegerDomainError`.
    #[error("integer `{literal}` at {location} is outside the interoperable range ±(2^53-1)")]
    IntegerOutOfRange {
        /// The integer, shortened when long.
        literal: String,
        /// `line L, column C` for text, or a JSON pointer such as `/labels/n` for values.
        location: String,
    },
    /// Objects or arrays nested deeper than the limit.
    #[error("nesting deeper than {limit} levels at {location}")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
        /// Where the limit was crossed.
        location: String,
    },
    /// A value that is not JSON data, such as a map with non-string keys.
    #[error("value cannot be serialized as canonical JSON: {message}")]
    Unserializable {
        /// What the serializer reported.
        message: String,
    },
    /// A base64url string that does not decode.
    #[error("invalid base64url in {what}: {message}")]
    Base64 {
        /// Which field was being decoded.
        what: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// A hexadecimal string that does not decode to the expected length.
    #[error("invalid hex in {what}: {message}")]
    Hex {
        /// Which field was being decoded.
        what: &'static str,
        /// What was wrong with it.
        message: String,
    },
}

/// Shortens user input quoted in an error so that hostile input cannot make errors huge.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text.get(..end).unwrap_or_default())
}
