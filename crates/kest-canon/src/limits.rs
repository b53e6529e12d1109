//! The bounds every JSON value Kest canonicalizes must respect.

/// The largest integer every JSON implementation reads exactly: 2^53 − 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Deepest nesting of arrays and objects accepted, the same limit `serde_json` parses to.
pub const MAX_DEPTH: usize = 128;
