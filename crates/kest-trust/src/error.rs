//! The one error type of this crate.

use thiserror::Error;

/// A trust score out of range, or an origin that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A score above 100 (or below 0).
    #[error("trust score {value} is outside 0..=100")]
    OutOfRange {
        /// The value given.
        value: i64,
    },
    /// An origin name not in the origin map. A typo must not silently mean some score.
    #[error("unknown origin `{name}`; known origins: {known}")]
    UnknownOrigin {
        /// The name given.
        name: String,
        /// The names the map knows, comma-separated.
        known: String,
    },
    /// An attempt to change the score of a built-in origin.
    #[error("origin `{name}` is built in with score {score} and cannot be overridden")]
    BuiltInOrigin {
        /// The built-in name.
        name: String,
        /// Its fixed score.
        score: u8,
    },
    /// An origin name that is empty or has characters other than `[A-Za-z0-9_.:-]`.
    #[error("invalid origin name `{name}`: use 1 to 64 characters from [A-Za-z0-9_.:-]")]
    InvalidOriginName {
        /// The name given.
        name: String,
    },
}
