//! The trust score.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::TrustError;

/// How much an entry's data can be trusted, from 0 (not at all) to 100 (fully).
///
/// Serializes as a bare JSON integer, as `trust_score` in an entry payload.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustScore(u8);

impl TrustScore {
    /// 0: no trust.
    pub const MIN: Self = Self(0);
    /// 100: full trust, what a root with origin `system` or `internal` gets.
    pub const MAX: Self = Self(100);

    /// A score, if `value` is within 0..=100.
    ///
    /// # Errors
    /// [`TrustError::OutOfRange`] above 100.
    pub const fn new(value: u8) -> Result<Self, TrustError> {
        if value > 100 {
            return Err(TrustError::OutOfRange {
                value: value as i64,
            });
        }
        Ok(Self(value))
    }

    /// A score from any integer, if it is within 0..=100.
    ///
    /// # Errors
    /// [`TrustError::OutOfRange`].
    pub fn try_from_i64(value: i64) -> Result<Self, TrustError> {
        u8::try_from(value)
            .ok()
            .and_then(|v| Self::new(v).ok())
            .ok_or(TrustError::OutOfRange { value })
    }

    /// A score from any integer, clamped into 0..=100. This is how a `trust_override` is
    /// applied.
    #[must_use]
    pub fn clamped(value: i64) -> Self {
        let clamped = value.clamp(0, 100);
        Self(u8::try_from(clamped).unwrap_or(100))
    }

    /// The score as a number.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The weakest-link rule of the [trust and taint rules](https://github.com/kest-dev/kest-rust/blob/main/docs/src/wire-format.md#trust-and-taints): with no parents, `self_score`; otherwise
    /// `min(parents) * self_score / 100` in integer arithmetic, rounding down.
    ///
    /// ```
    /// use kest_trust::TrustScore;
    /// let s = |n| TrustScore::new(n).unwrap();
    /// assert_eq!(TrustScore::weakest_link(&[], s(40)), s(40));
    /// assert_eq!(TrustScore::weakest_link(&[s(40), s(90)], s(90)), s(36));
    /// ```
    #[must_use]
    pub fn weakest_link(parents: &[Self], self_score: Self) -> Self {
        match parents.iter().min() {
            None => self_score,
            Some(min) => Self(scale(min.0, self_score.0)),
        }
    }

    /// The lowest of `scores`, or `None` when there are none.
    #[must_use]
    pub fn minimum(scores: &[Self]) -> Option<Self> {
        scores.iter().min().copied()
    }
}

/// `a * b / 100` for `a, b` in 0..=100, which stays in 0..=100.
pub(crate) fn scale(a: u8, b: u8) -> u8 {
    let product = u16::from(a) * u16::from(b) / 100;
    u8::try_from(product).unwrap_or(100)
}

impl fmt::Debug for TrustScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustScore({})", self.0)
    }
}

impl fmt::Display for TrustScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl TryFrom<u8> for TrustScore {
    type Error = TrustError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<i64> for TrustScore {
    type Error = TrustError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::try_from_i64(value)
    }
}

impl From<TrustScore> for u8 {
    fn from(score: TrustScore) -> Self {
        score.0
    }
}

impl Serialize for TrustScore {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for TrustScore {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        Self::try_from_i64(value).map_err(serde::de::Error::custom)
    }
}
