//! Trust evaluators: how a new entry's score follows from its parents'.

use std::fmt;

use crate::TrustScore;
use crate::score::scale;

/// Computes an entry's trust from its own origin score and its parents' scores.
///
/// Every implementation must keep the first law of Kest trust: without an explicit
/// override, a result never exceeds the lowest parent score. The verifier re-derives
/// trust along a chain with the weakest-link bound and reports any entry that rises above
/// it without declaring an override.
pub trait TrustEvaluator: Send + Sync + fmt::Debug {
    /// The score of a new entry. `parent_scores` is empty for a root.
    fn calculate(&self, self_score: TrustScore, parent_scores: &[TrustScore]) -> TrustScore;
}

impl<E: TrustEvaluator + ?Sized> TrustEvaluator for std::sync::Arc<E> {
    fn calculate(&self, self_score: TrustScore, parent_scores: &[TrustScore]) -> TrustScore {
        (**self).calculate(self_score, parent_scores)
    }
}

/// The default rule ([trust and taints](https://github.com/kest-dev/kest-rust/blob/main/docs/src/wire-format.md#trust-and-taints)):
/// `min(parents) * self_score / 100`, or `self_score` for a root. Trust only ever falls,
/// by the factor of the least trusted source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeakestLink;

impl TrustEvaluator for WeakestLink {
    fn calculate(&self, self_score: TrustScore, parent_scores: &[TrustScore]) -> TrustScore {
        TrustScore::weakest_link(parent_scores, self_score)
    }
}

/// A softer rule: the origin's penalty counts only `origin_weight` percent.
///
/// With bound `b = min(parents)` (100 for a root) and origin score `s`, the result is
/// `b * (100 - w * (100 - s) / 100) / 100`. At weight 100 it is the weakest-link rule; at
/// weight 0 an entry inherits its parents' minimum whatever its origin. It never exceeds
/// the parents' minimum.
///
/// ```
/// use kest_trust::{TrustEvaluator, TrustScore, Weighted};
/// let s = |n| TrustScore::new(n).unwrap();
/// let half = Weighted::new(s(50));
/// // An `llm` origin (0) under a parent at 80: the penalty is halved.
/// assert_eq!(half.calculate(s(0), &[s(80)]), s(40));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weighted {
    origin_weight: TrustScore,
}

impl Weighted {
    /// An evaluator that applies `origin_weight` percent of the origin's penalty.
    #[must_use]
    pub const fn new(origin_weight: TrustScore) -> Self {
        Self { origin_weight }
    }
}

impl TrustEvaluator for Weighted {
    fn calculate(&self, self_score: TrustScore, parent_scores: &[TrustScore]) -> TrustScore {
        let bound = TrustScore::minimum(parent_scores).unwrap_or(TrustScore::MAX);
        let penalty = scale(self.origin_weight.get(), 100 - self_score.get());
        TrustScore::new(scale(bound.get(), 100 - penalty)).unwrap_or(TrustScore::MIN)
    }
}

/// Applies an evaluator, then an optional override. The override is the sanitizer: it
/// replaces the computed score, clamped to 0..=100, and must be recorded in the entry.
#[must_use]
pub fn derive_trust(
    evaluator: &dyn TrustEvaluator,
    self_score: TrustScore,
    parent_scores: &[TrustScore],
    trust_override: Option<TrustScore>,
) -> TrustScore {
    trust_override.unwrap_or_else(|| evaluator.calculate(self_score, parent_scores))
}
