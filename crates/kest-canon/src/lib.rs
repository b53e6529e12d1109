//! RFC 8785 (JCS) canonical JSON, SHA-256 and base64url for Kest lineage entries.
//!
//! Two runtimes can only verify each other's passports if they produce the same canonical
//! bytes for the same entry. This crate is the bottom of the Kest stack and does only that:
//!
//! ```
//! use kest_canon::{canonicalize_text, sha256_hex, b64url_encode};
//!
//! let canonical = canonicalize_text(br#"{ "b": 2.50, "a": [1E2, "\u00e9"] }"#)?;
//! assert_eq!(canonical, r#"{"a":[100,"é"],"b":2.5}"#.as_bytes());
//! assert_eq!(sha256_hex(&canonical).len(), 64);
//! assert_eq!(b64url_encode(b"\xfb\xff"), "-_8");
//! # Ok::<(), kest_canon::CanonError>(())
//! ```
//!
//! # Number rules
//!
//! By default ([`NumberMode::SafeIntegers`]) this crate rejects what the Python package's
//! canonicalizer (`rfc8785`) rejects, with a typed error:
//!
//! | input | Python error | here |
//! |---|---|---|
//! | lone surrogate escape (`"\ud800"`) | `CanonicalizationError` | [`CanonError::LoneSurrogate`] |
//! | `NaN`, `Infinity`, `1e400` | `FloatDomainError` | [`CanonError::NonFiniteNumber`] |
//! | integer outside ±(2^53−1) | `IntegerDomainError` | [`CanonError::IntegerOutOfRange`] |
//!
//! An integer literal (no `.`, `e` or `E`) is an integer, as Python's `json.loads` reads
//! it; `1e20` and `100000000000000000000.0` are doubles and canonicalize fine.
//! [`NumberMode::Ieee754`] gives pure RFC 8785 behaviour instead, where every number is a
//! double.
//!
//! Text is parsed with `serde_json`'s `float_roundtrip`, so every double survives parsing
//! exactly. Duplicate keys keep the last value, as in Python.
//!
//! # Fast path
//!
//! [`is_canonical_as_is`] tells when plain `serde_json` output is already canonical, which
//! lets typed models skip `serde_jcs`. See the [`fast`](is_canonical_as_is) notes.

mod encoding;
mod error;
mod fast;
mod jcs;
mod limits;
mod python;
mod scan;
mod text;

pub use encoding::{
    Sha256Digest, b64url_decode, b64url_decode_unpadded, b64url_encode, b64url_encode_padded,
    b64url_encode_to, hex_encode, sha256, sha256_hex,
};
pub use error::CanonError;
pub use fast::{compact_bytes, is_canonical_as_is, keys_are_canonical};
pub use jcs::{Canonicalizer, NumberMode, canonicalize, canonicalize_text, jcs_bytes, parse};
pub use limits::{MAX_DEPTH, MAX_SAFE_INTEGER};
pub use python::{PythonSeparators, python_dumps};
pub use text::{DEFAULT_SHOWN_CHARS, Untrusted, check_nesting, escape_untrusted, neutralize};
