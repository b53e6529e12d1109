//! Bounds on hostile input.

/// Bounds on what [`crate::UnverifiedPassport::decode`] and the verifier accept, so that
/// hostile input cannot exhaust memory or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest passport text, in bytes. Default 16 MiB.
    pub max_bytes: usize,
    /// Most entries. Default 10,000.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            max_entries: 10_000,
        }
    }
}
