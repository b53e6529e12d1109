//! The laws of trust and taint propagation, as property tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_trust::{TaintSet, TrustEvaluator, TrustScore, WeakestLink, Weighted, derive_trust};
use proptest::prelude::*;

fn score() -> impl Strategy<Value = TrustScore> {
    (0_u8..=100).prop_map(|n| TrustScore::new(n).unwrap())
}

#[derive(Debug, Clone)]
enum Kind {
    WeakestLink,
    Weighted(Weighted),
}

impl Kind {
    fn as_ref(&self) -> &dyn TrustEvaluator {
        match self {
            Self::WeakestLink => &WeakestLink,
            Self::Weighted(w) => w,
        }
    }

    fn calculate(&self, self_score: TrustScore, parents: &[TrustScore]) -> TrustScore {
        self.as_ref().calculate(self_score, parents)
    }
}

fn evaluator() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::WeakestLink),
        score().prop_map(|w| Kind::Weighted(Weighted::new(w)))
    ]
}

fn taint() -> impl Strategy<Value = String> {
    "[a-e]"
}

fn taints() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(taint(), 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Trust never rises above the parents' minimum without an override.
    #[test]
    fn trust_never_rises_without_override(
        evaluator in evaluator(),
        self_score in score(),
        parents in prop::collection::vec(score(), 1..5),
    ) {
        let min = *parents.iter().min().unwrap();
        let result = derive_trust(evaluator.as_ref(), self_score, &parents, None);
        prop_assert!(result <= min, "{result:?} > {min:?} with {evaluator:?}");
    }

    /// Along any chain of steps without overrides, trust is non-increasing.
    #[test]
    fn trust_is_monotone_along_a_chain(
        evaluator in evaluator(),
        steps in prop::collection::vec(score(), 1..12),
    ) {
        let mut current = evaluator.calculate(steps[0], &[]);
        for step in &steps[1..] {
            let next = evaluator.calculate(*step, &[current]);
            prop_assert!(next <= current);
            current = next;
        }
    }

    /// An override replaces the result, whatever the parents say.
    #[test]
    fn override_replaces(evaluator in evaluator(), self_score in score(), parents in prop::collection::vec(score(), 0..4), value in score()) {
        prop_assert_eq!(derive_trust(evaluator.as_ref(), self_score, &parents, Some(value)), value);
    }

    /// The order of parents does not matter, for trust or taints.
    #[test]
    fn parent_order_does_not_matter(
        evaluator in evaluator(),
        self_score in score(),
        parents in prop::collection::vec((score(), taints()), 1..5),
        added in taints(),
        removed in taints(),
        rotation in 0_usize..5,
    ) {
        let mut shuffled = parents.clone();
        shuffled.rotate_left(rotation % parents.len());
        shuffled.reverse();
        let scores = |ps: &[(TrustScore, Vec<String>)]| ps.iter().map(|p| p.0).collect::<Vec<_>>();
        let sets = |ps: &[(TrustScore, Vec<String>)]| ps.iter().map(|p| p.1.iter().cloned().collect::<TaintSet>()).collect::<Vec<_>>();
        prop_assert_eq!(
            evaluator.calculate(self_score, &scores(&parents)),
            evaluator.calculate(self_score, &scores(&shuffled))
        );
        let a = sets(&parents);
        let b = sets(&shuffled);
        prop_assert_eq!(
            TaintSet::derive(&a, added.clone(), removed.clone()),
            TaintSet::derive(&b, added, removed)
        );
    }

    /// A removed taint stays removed downstream unless a later step adds it again.
    #[test]
    fn removed_taint_stays_removed(
        start in taints(),
        steps in prop::collection::vec((taints(), taints()), 1..10),
        target in taint(),
    ) {
        let mut current: TaintSet = start.into_iter().collect();
        let mut removed_and_not_readded = false;
        for (added, removed) in steps {
            current = TaintSet::derive([&current], added.clone(), removed.clone());
            if removed.contains(&target) {
                removed_and_not_readded = true;
            } else if added.contains(&target) {
                removed_and_not_readded = false;
            }
            if removed_and_not_readded {
                prop_assert!(!current.contains(&target), "{target} came back: {current:?}");
            }
        }
    }

    /// Taints are never lost without being removed: the result holds every parent taint
    /// and every added one, minus the removed.
    #[test]
    fn taints_follow_the_set_rule(parents in prop::collection::vec(taints(), 0..4), added in taints(), removed in taints()) {
        let sets: Vec<TaintSet> = parents.iter().map(|p| p.iter().cloned().collect()).collect();
        let result = TaintSet::derive(&sets, added.clone(), removed.clone());
        for t in parents.iter().flatten().chain(added.iter()) {
            prop_assert_eq!(result.contains(t), !removed.contains(t));
        }
        for t in result.iter() {
            prop_assert!(parents.iter().flatten().any(|p| p == t) || added.iter().any(|a| a == t));
        }
    }
}

#[test]
fn weighted_endpoints() {
    let s = |n| TrustScore::new(n).unwrap();
    let full = Weighted::new(s(100));
    let none = Weighted::new(s(0));
    for origin in [0, 10, 40, 60, 90, 100] {
        for parent in [0, 21, 55, 100] {
            assert_eq!(
                full.calculate(s(origin), &[s(parent)]),
                WeakestLink.calculate(s(origin), &[s(parent)]),
                "weight 100 is the weakest link"
            );
            assert_eq!(none.calculate(s(origin), &[s(parent)]), s(parent));
        }
    }
    assert_eq!(full.calculate(s(40), &[]), s(40));
}

#[test]
fn score_bounds_and_serde() {
    assert!(TrustScore::new(101).is_err());
    assert!(TrustScore::try_from_i64(-1).is_err());
    assert_eq!(TrustScore::clamped(250), TrustScore::MAX);
    assert_eq!(TrustScore::clamped(-5), TrustScore::MIN);
    assert_eq!(
        serde_json::to_string(&TrustScore::new(36).unwrap()).unwrap(),
        "36"
    );
    assert!(serde_json::from_str::<TrustScore>("101").is_err());
    assert!(serde_json::from_str::<TrustScore>("3.5").is_err());
    assert_eq!(
        serde_json::from_str::<TrustScore>("0").unwrap(),
        TrustScore::MIN
    );
}

#[test]
fn taint_sets_read_python_order_and_write_sorted() {
    let set: TaintSet = serde_json::from_str(r#"["unverified","pii","external","pii"]"#).unwrap();
    assert_eq!(
        serde_json::to_string(&set).unwrap(),
        r#"["external","pii","unverified"]"#
    );
}

#[test]
fn origins() {
    let mut map = kest_trust::OriginMap::new();
    for (name, score) in kest_trust::BUILT_IN_ORIGINS {
        assert_eq!(map.score(name).unwrap().get(), score);
        assert!(map.register(name, TrustScore::MAX).is_err());
    }
    assert_eq!(map.score_or_default(None).unwrap(), TrustScore::MAX);
    let error = map.score("custom_source_not_in_map").unwrap_err();
    assert!(error.to_string().contains("verified_rag"), "{error}");
    assert!(map.register("", TrustScore::MAX).is_err());
    assert!(map.register("has space", TrustScore::MAX).is_err());
    map.register("partner", TrustScore::new(70).unwrap())
        .unwrap();
    assert_eq!(map.score("partner").unwrap().get(), 70);
}

/// The verifier's dropped-taint rule rests on `missing_from`: what an entry owes but does
/// not hold, in sorted order, and nothing else.
#[test]
fn missing_from_names_exactly_the_dropped_taints() {
    let owed: TaintSet = ["pii", "unverified", "external"].into_iter().collect();
    let held: TaintSet = ["external", "extra"].into_iter().collect();
    assert_eq!(
        owed.missing_from(&held).collect::<Vec<_>>(),
        ["pii", "unverified"]
    );
    assert_eq!(held.missing_from(&owed).collect::<Vec<_>>(), ["extra"]);
    assert_eq!(owed.missing_from(&owed).count(), 0);
    assert_eq!(TaintSet::new().missing_from(&held).count(), 0);
    assert!(!held.is_superset(&owed));
    let more: TaintSet = ["pii", "unverified", "external", "x"].into_iter().collect();
    assert!(more.is_superset(&owed));
    assert!(owed.is_superset(&owed));
    assert!(!owed.is_superset(&more));

    let mut set = TaintSet::new();
    assert!(set.is_empty());
    assert!(set.insert("a"));
    assert!(!set.insert("a"), "a second insert is not new");
    assert_eq!((set.len(), set.is_empty()), (1, false));
    assert!(set.contains("a") && !set.contains("b"));
    assert!(set.remove("a"));
    assert!(!set.remove("a"), "nothing left to remove");
    assert!(set.is_empty());
    set.extend_from(&held);
    assert_eq!(set.iter().collect::<Vec<_>>(), ["external", "extra"]);
    assert_eq!(set.len(), 2);
    assert_eq!(
        (&set).into_iter().collect::<Vec<_>>(),
        ["external", "extra"]
    );
    assert_eq!(format!("{set:?}"), r#"{"external", "extra"}"#);
    let wire: TaintSet = serde_json::from_str(r#"["b","a","b"]"#).unwrap();
    assert_eq!(wire.iter().collect::<Vec<_>>(), ["a", "b"]);
}

/// Scores are 0 to 100 from every entry point; overrides clamp instead of failing.
#[test]
fn scores_are_bounded_at_every_entry_point() {
    for value in [0_u8, 1, 99, 100] {
        assert_eq!(TrustScore::new(value).unwrap().get(), value);
        assert_eq!(TrustScore::try_from(value).unwrap().get(), value);
        assert_eq!(u8::from(TrustScore::new(value).unwrap()), value);
    }
    for value in [101_u8, 200, 255] {
        assert!(TrustScore::new(value).is_err());
    }
    for (value, ok) in [
        (-1_i64, false),
        (0, true),
        (100, true),
        (101, false),
        (256, false),
        (i64::MIN, false),
    ] {
        assert_eq!(TrustScore::try_from_i64(value).is_ok(), ok, "{value}");
        assert_eq!(TrustScore::try_from(value).is_ok(), ok, "{value}");
    }
    let error = TrustScore::try_from_i64(-5).unwrap_err().to_string();
    assert!(error.contains("-5"), "{error}");
    for (value, clamped) in [
        (i64::MIN, 0_u8),
        (-1, 0),
        (0, 0),
        (57, 57),
        (100, 100),
        (101, 100),
        (i64::MAX, 100),
    ] {
        assert_eq!(TrustScore::clamped(value).get(), clamped, "{value}");
    }
    let s = |n| TrustScore::new(n).unwrap();
    assert_eq!(TrustScore::minimum(&[]), None);
    assert_eq!(TrustScore::minimum(&[s(70), s(30), s(90)]), Some(s(30)));
    assert_eq!(TrustScore::weakest_link(&[s(100)], s(100)), s(100));
    assert_eq!(TrustScore::weakest_link(&[s(99), s(50)], s(99)), s(49));
    assert_eq!(format!("{:?} {}", s(42), s(42)), "TrustScore(42) 42");
    assert_eq!(serde_json::to_string(&s(42)).unwrap(), "42");
    assert_eq!(serde_json::from_str::<TrustScore>("42").unwrap(), s(42));
    assert!(serde_json::from_str::<TrustScore>("101").is_err());
    assert!(serde_json::from_str::<TrustScore>("-1").is_err());
}
