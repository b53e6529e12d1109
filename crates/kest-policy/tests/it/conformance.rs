//! The engine conformance suite: every engine allows, denies, denies an unknown policy,
//! refuses a malformed policy when built (where it builds one), and reports an
//! unreachable, slow or garbled remote as an error, never as an allow.
//!
//! Remote engines run against test servers speaking their wire protocols: the OPA Data
//! API backed by regorus and Verified Permissions' JSON protocol backed by the in-process
//! Cedar engine (no OPA binary is reachable from this machine's registries, and moto does
//! not emulate Verified Permissions). The real Cedar agent is tested in `live_cedar_agent.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use crate::support;

use std::time::Duration;

use kest_policy::{
    CedarAgentEngine, CedarEngine, EvaluationContext, MockEngine, OpaEngine, PolicyEngine,
    PolicyError, RegoEngine, VerifiedPermissionsEngine,
};
use kest_trust::TrustScore;
use support::Misbehavior;

const POLICY: &str = "conf/trusted";
const CEDAR: &str = r#"permit (principal, action == Action::"conf/trusted", resource)
when { context.subject.trust_score >= 50 };"#;
const REGO: &str =
    "package conf.trusted\ndefault allow := false\nallow if input.subject.trust_score >= 50\n";

fn context(trust: u8) -> EvaluationContext {
    EvaluationContext::builder("spiffe://conformance/w")
        .trust_score(TrustScore::new(trust).unwrap())
        .resource_id("doc-1")
        .build()
        .unwrap()
}

/// The behaviour every engine must show for the conformance policy.
async fn conforms(engine: &dyn PolicyEngine) {
    let name = engine.name();
    let allowed = engine.evaluate(POLICY, &context(90)).await.unwrap();
    assert!(allowed.allow, "{name}: trusted call denied: {allowed:?}");
    let denied = engine.evaluate(POLICY, &context(10)).await.unwrap();
    assert!(!denied.allow, "{name}: untrusted call allowed");
    assert!(!denied.reasons.is_empty(), "{name}: a denial says why");
    let unknown = engine
        .evaluate("conf/no_such_policy", &context(90))
        .await
        .unwrap();
    assert!(!unknown.allow, "{name}: an unknown policy allowed");
}

fn cedar() -> CedarEngine {
    CedarEngine::builder()
        .policy_source("conf.cedar", CEDAR)
        .build()
        .unwrap()
}

async fn avp(url: &str, timeout: Duration) -> VerifiedPermissionsEngine {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_verifiedpermissions::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(timeout)
                .build(),
        )
        .load()
        .await;
    VerifiedPermissionsEngine::from_config(&config, "store-1", timeout)
}

#[tokio::test]
async fn mock_conforms() {
    // The mock cannot read the context: it is configured to allow the policy, then to
    // deny it, and denies what it does not know.
    let allow = MockEngine::deny_all().allowing(POLICY);
    assert!(allow.evaluate(POLICY, &context(90)).await.unwrap().allow);
    let deny = MockEngine::allow_all().denying(POLICY);
    assert!(!deny.evaluate(POLICY, &context(10)).await.unwrap().allow);
    assert!(
        !allow
            .evaluate("conf/no_such_policy", &context(90))
            .await
            .unwrap()
            .allow
    );
    assert_eq!(allow.calls() + deny.calls(), 3);
}

#[tokio::test]
async fn cedar_conforms() {
    conforms(&cedar()).await;
}

#[tokio::test]
async fn rego_conforms() {
    conforms(
        &RegoEngine::builder()
            .policy_source("conf.rego", REGO)
            .build()
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn opa_conforms() {
    let url = support::opa_server(vec![("conf.rego".into(), REGO.into())]).await;
    let engine = OpaEngine::builder(&url)
        .path_template("{policy}")
        .build()
        .unwrap();
    conforms(&engine).await;
    // The default template is the Python package's `kest/{policy}`.
    let url = support::opa_server(vec![(
        "conf.rego".into(),
        REGO.replace("package conf.trusted", "package kest.conf.trusted"),
    )])
    .await;
    conforms(&OpaEngine::builder(&url).build().unwrap()).await;
}

#[tokio::test]
async fn verified_permissions_conforms() {
    let url = support::avp_server(cedar()).await;
    conforms(&avp(&url, Duration::from_secs(2)).await).await;
}

/// Cedar has no floating point. Every Cedar engine turns a JSON number into the same Cedar
/// value (a `decimal` up to four places) and refuses the same numbers, rather than
/// deciding on a different value.
#[tokio::test]
async fn cedar_engines_agree_on_numbers() {
    const AMOUNT: &str = "conf/amount";
    let cedar = || {
        CedarEngine::builder()
            .policy_source(
                "amount.cedar",
                r#"permit (principal, action == Action::"conf/amount", resource)
when { context.object.attributes.amount.lessThan(decimal("3.0")) };"#,
            )
            .build()
            .unwrap()
    };
    let remote = avp(&support::avp_server(cedar()).await, Duration::from_secs(2)).await;
    let with_amount = |amount: serde_json::Value| {
        EvaluationContext::builder("spiffe://conformance/w")
            .resource_attribute("amount", amount)
            .build()
            .unwrap()
    };
    let local = cedar();
    for engine in [&local as &dyn PolicyEngine, &remote] {
        let name = engine.name();
        let low = engine
            .evaluate(AMOUNT, &with_amount(2.5.into()))
            .await
            .unwrap();
        assert!(low.allow, "{name}: 2.5 < 3.0 denied: {low:?}");
        let high = engine
            .evaluate(AMOUNT, &with_amount(3.25.into()))
            .await
            .unwrap();
        assert!(!high.allow, "{name}: 3.25 < 3.0 allowed");
        for unrepresentable in [0.123_456, 1.0e300] {
            let error = engine
                .evaluate(AMOUNT, &with_amount(unrepresentable.into()))
                .await
                .unwrap_err();
            assert!(
                matches!(&error, PolicyError::Context { reason } if reason.contains("no exact Cedar representation")),
                "{name}: {unrepresentable}: {error}"
            );
        }
    }
}

#[test]
fn malformed_policies_are_refused_when_built() {
    let error = CedarEngine::builder()
        .policy_source(
            "bad.cedar",
            "permit(principal, action, resource) when { context. };",
        )
        .build()
        .unwrap_err();
    assert!(
        matches!(&error, PolicyError::InvalidPolicy { engine: "cedar", name, .. } if name == "bad.cedar"),
        "{error}"
    );
    let error = RegoEngine::builder()
        .policy_source("bad.rego", "package p\nallow if {")
        .build()
        .unwrap_err();
    assert!(
        matches!(&error, PolicyError::InvalidPolicy { engine: "rego", name, .. } if name == "bad.rego"),
        "{error}"
    );
    assert!(
        CedarEngine::builder()
            .entities_json("not json")
            .build()
            .is_err()
    );
    assert!(CedarEngine::builder().schema_json("{").build().is_err());
    assert!(OpaEngine::builder("ftp://x").build().is_err());
    assert!(
        OpaEngine::builder("http://x")
            .path_template("no-placeholder")
            .build()
            .is_err()
    );
    assert!(CedarAgentEngine::new("not a url").is_err());
}

/// One remote engine of each kind, pointed at `url`.
async fn remotes(url: &str, timeout: Duration) -> Vec<Box<dyn PolicyEngine>> {
    vec![
        Box::new(OpaEngine::builder(url).timeout(timeout).build().unwrap()),
        Box::new(CedarAgentEngine::with_timeout(url, timeout).unwrap()),
        Box::new(avp(url, timeout).await),
    ]
}

#[tokio::test]
async fn an_unreachable_engine_is_an_error() {
    let url = support::closed_port().await;
    for engine in remotes(&url, Duration::from_secs(1)).await {
        let error = engine.evaluate(POLICY, &context(90)).await.unwrap_err();
        assert!(
            matches!(error, PolicyError::Unreachable { .. }),
            "{}: {error}",
            engine.name()
        );
    }
}

#[tokio::test]
async fn a_slow_engine_times_out() {
    let url = support::misbehaving_server(Misbehavior::Slow(Duration::from_secs(3))).await;
    for engine in remotes(&url, Duration::from_millis(300)).await {
        let started = std::time::Instant::now();
        let error = engine.evaluate(POLICY, &context(90)).await.unwrap_err();
        assert!(
            matches!(error, PolicyError::Timeout { .. }),
            "{}: {error}",
            engine.name()
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{}: waited past its timeout",
            engine.name()
        );
    }
}

#[tokio::test]
async fn garbage_and_failures_are_errors() {
    for kind in [
        Misbehavior::Garbage,
        Misbehavior::ServerError,
        Misbehavior::WrongShape,
    ] {
        let url = support::misbehaving_server(kind).await;
        for engine in remotes(&url, Duration::from_secs(2)).await {
            let result = engine.evaluate(POLICY, &context(90)).await;
            assert!(
                result.is_err(),
                "{} with {kind:?}: {result:?}",
                engine.name()
            );
        }
    }
}
