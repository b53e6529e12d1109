//! Origins: where data came from, and the trust that source earns.

use std::collections::BTreeMap;

use crate::{TrustError, TrustScore};

/// The built-in origins and their scores. They may be extended, never changed.
pub const BUILT_IN_ORIGINS: [(&str, u8); 7] = [
    ("system", 100),
    ("internal", 100),
    ("verified_rag", 90),
    ("third_party_api", 60),
    ("user_input", 40),
    ("internet", 10),
    ("llm", 0),
];

/// The origin used when none is given: full trust, as `internal`.
pub const DEFAULT_ORIGIN: &str = "internal";

/// Maps origin names to the trust a source of that kind earns.
///
/// ```
/// use kest_trust::{OriginMap, TrustScore};
///
/// let mut origins = OriginMap::new();
/// origins.register("partner_feed", TrustScore::new(70)?)?;
/// assert_eq!(origins.score("partner_feed")?.get(), 70);
/// assert_eq!(origins.score("llm")?.get(), 0);
/// assert!(origins.register("llm", TrustScore::MAX).is_err()); // built in
/// assert!(origins.score("interal").is_err()); // a typo is an error, not a score
/// # Ok::<(), kest_trust::TrustError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginMap {
    custom: BTreeMap<String, TrustScore>,
}

impl OriginMap {
    /// The built-in origins only.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a custom origin. Registering the same name again replaces its score.
    ///
    /// # Errors
    /// [`TrustError::BuiltInOrigin`] for a built-in name, or
    /// [`TrustError::InvalidOriginName`].
    pub fn register(&mut self, name: &str, score: TrustScore) -> Result<(), TrustError> {
        if let Some((_, fixed)) = BUILT_IN_ORIGINS.iter().find(|(known, _)| *known == name) {
            return Err(TrustError::BuiltInOrigin {
                name: name.to_owned(),
                score: *fixed,
            });
        }
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
        if !valid {
            return Err(TrustError::InvalidOriginName {
                name: name.chars().take(80).collect(),
            });
        }
        self.custom.insert(name.to_owned(), score);
        Ok(())
    }

    /// Builder form of [`OriginMap::register`].
    ///
    /// # Errors
    /// As [`OriginMap::register`].
    pub fn with_origin(mut self, name: &str, score: TrustScore) -> Result<Self, TrustError> {
        self.register(name, score)?;
        Ok(self)
    }

    /// The score of an origin.
    ///
    /// # Errors
    /// [`TrustError::UnknownOrigin`], listing the known names.
    pub fn score(&self, origin: &str) -> Result<TrustScore, TrustError> {
        if let Some((_, score)) = BUILT_IN_ORIGINS.iter().find(|(name, _)| *name == origin) {
            return TrustScore::new(*score);
        }
        self.custom
            .get(origin)
            .copied()
            .ok_or_else(|| TrustError::UnknownOrigin {
                name: origin.chars().take(80).collect(),
                known: self.names().collect::<Vec<_>>().join(", "),
            })
    }

    /// The score of an optional origin; no origin means [`DEFAULT_ORIGIN`].
    ///
    /// # Errors
    /// [`TrustError::UnknownOrigin`].
    pub fn score_or_default(&self, origin: Option<&str>) -> Result<TrustScore, TrustError> {
        self.score(origin.unwrap_or(DEFAULT_ORIGIN))
    }

    /// Every known origin name: built-ins first, then custom ones in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        BUILT_IN_ORIGINS
            .iter()
            .map(|(name, _)| *name)
            .chain(self.custom.keys().map(String::as_str))
    }
}
