//! The decision cache: it reuses a decision only for exactly the same question.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::Arc;
use std::time::Duration;

use kest_policy::{
    CachedEngine, DecisionCache, EvaluationContext, MockEngine, PolicyEngine, PolicyError,
    RegoEngine,
};
use serde_json::Value;

fn gate() -> RegoEngine {
    RegoEngine::builder()
        .policy_source(
            "gate.rego",
            "package p_resource_gate\ndefault allow := false\nallow if input.resource == \"public\"",
        )
        .build()
        .unwrap()
}

fn request(resource: &str) -> EvaluationContext {
    // The same workload, user, trust and policy: only the resource differs, which is all
    // the Python package's cache key left out.
    EvaluationContext::builder("spiffe://kest.test/interop-workload")
        .user("alice")
        .value("resource", resource)
        .build()
        .unwrap()
}

/// `policy_context.json` records the Python package serving the allow for
/// `resource=public` to a request for `resource=secret`. Here the second request is
/// evaluated, and denied.
#[tokio::test]
async fn the_python_packages_leak_cannot_happen() {
    let vector: Value = kest_testkit::load_json("python/policy_context.json");
    let demo =
        &vector["policy_decision_cache"]["collision_demo_engine_allows_only_resource_public"];
    // In Python the engine ran once and both calls "succeeded".
    assert_eq!(demo[0]["result"], "ran:public");
    assert_eq!(demo[1]["result"], "ran:secret");
    assert_eq!(demo[1]["engine_calls_so_far"], 1);

    let engine = CachedEngine::new(
        gate(),
        Arc::new(DecisionCache::new(1024, Duration::from_secs(60))),
    );
    assert!(
        engine
            .evaluate("p_resource_gate", &request("public"))
            .await
            .unwrap()
            .allow
    );
    assert!(
        !engine
            .evaluate("p_resource_gate", &request("secret"))
            .await
            .unwrap()
            .allow
    );
    let stats = engine.cache().stats();
    assert_eq!((stats.hits, stats.misses), (0, 2));
    // The same question again is a hit, with the same answer.
    assert!(
        !engine
            .evaluate("p_resource_gate", &request("secret"))
            .await
            .unwrap()
            .allow
    );
    assert!(
        engine
            .evaluate("p_resource_gate", &request("public"))
            .await
            .unwrap()
            .allow
    );
    assert_eq!(engine.cache().stats().hits, 2);
}

#[tokio::test]
async fn every_part_of_the_context_is_in_the_key() {
    let engine = CachedEngine::new(
        MockEngine::allow_all(),
        Arc::new(DecisionCache::new(1024, Duration::from_secs(60))),
    );
    let base = || EvaluationContext::builder("w").user("alice");
    let variants = [
        base().build().unwrap(),
        EvaluationContext::builder("v")
            .user("alice")
            .build()
            .unwrap(),
        base().agent("a").build().unwrap(),
        base().task("t").build().unwrap(),
        base()
            .trust_score(kest_trust::TrustScore::new(50).unwrap())
            .build()
            .unwrap(),
        base()
            .taints(["pii"].into_iter().collect())
            .build()
            .unwrap(),
        base().classification("secret").build().unwrap(),
        base().origin("llm").build().unwrap(),
        base().resource_id("doc").build().unwrap(),
        base().resource_attribute("owner", "x").build().unwrap(),
        base().value("amount", 5).build().unwrap(),
        base().policy_names(vec!["other".into()]).build().unwrap(),
    ];
    for context in &variants {
        engine.evaluate("p", context).await.unwrap();
    }
    assert_eq!(engine.inner().calls(), variants.len() as u64);
    engine.evaluate("q", &variants[0]).await.unwrap();
    assert_eq!(
        engine.inner().calls(),
        variants.len() as u64 + 1,
        "the policy name is in the key"
    );
}

#[tokio::test]
async fn ttl_invalidation_bounds_and_errors() {
    let engine = CachedEngine::new(
        MockEngine::allow_all(),
        Arc::new(DecisionCache::new(1024, Duration::from_millis(30))),
    );
    let context = request("public");
    engine.evaluate("p", &context).await.unwrap();
    engine.evaluate("p", &context).await.unwrap();
    assert_eq!(engine.inner().calls(), 1);
    tokio::time::sleep(Duration::from_millis(60)).await;
    engine.evaluate("p", &context).await.unwrap();
    assert_eq!(
        engine.inner().calls(),
        2,
        "expired entries are evaluated again"
    );
    engine.cache().invalidate();
    assert_eq!(engine.cache().stats().entries, 0);
    engine.evaluate("p", &context).await.unwrap();
    assert_eq!(engine.inner().calls(), 3);

    let small = CachedEngine::new(
        MockEngine::allow_all(),
        Arc::new(DecisionCache::new(8, Duration::from_secs(60))),
    );
    for index in 0..100 {
        small
            .evaluate("p", &request(&format!("r{index}")))
            .await
            .unwrap();
    }
    assert!(
        small.cache().stats().entries <= 8,
        "{:?}",
        small.cache().stats()
    );

    let failing = CachedEngine::new(
        MockEngine::allow_all().failing(
            "p",
            PolicyError::MalformedAnswer {
                engine: "mock",
                reason: "x".into(),
            },
        ),
        Arc::new(DecisionCache::new(8, Duration::from_secs(60))),
    );
    assert!(failing.evaluate("p", &context).await.is_err());
    assert!(failing.evaluate("p", &context).await.is_err());
    assert_eq!(failing.inner().calls(), 2, "errors are never cached");
}

#[test]
fn ttl_from_the_environment_setting() {
    assert!(
        DecisionCache::from_ttl_setting(Some("0"), 10)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        DecisionCache::from_ttl_setting(Some("5"), 10)
            .unwrap()
            .unwrap()
            .ttl(),
        Duration::from_secs(5)
    );
    assert_eq!(
        DecisionCache::from_ttl_setting(None, 10)
            .unwrap()
            .unwrap()
            .ttl(),
        kest_policy::DEFAULT_TTL
    );
    let error = DecisionCache::from_ttl_setting(Some("soon"), 10).unwrap_err();
    assert!(
        matches!(&error, kest_policy::ConfigError::InvalidValue { key, value, .. }
            if *key == "KEST_POLICY_CACHE_TTL" && value == "soon"),
        "{error}"
    );
    assert!(
        error.to_string().contains("KEST_POLICY_CACHE_TTL"),
        "{error}"
    );
}
