//! Live tier (`KEST_LIVE=1`): the real `cedar-agent` server from crates.io, installed and
//! started by `cargo xtask services`, which passes its URL in `KEST_CEDAR_AGENT_URL`.
//!
//! The agent gets the model library and the conformance policy, then must decide every
//! case of every table as the tables say, and behave as the conformance suite requires.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_policy::library::{self, CaseTable, Expect, MODELS};
use kest_policy::{CedarAgentEngine, EvaluationContext, PolicyEngine, PolicyError};
use kest_trust::TrustScore;

fn agent() -> Option<CedarAgentEngine> {
    if !kest_testkit::live() {
        return None;
    }
    let url = kest_testkit::live_env("KEST_CEDAR_AGENT_URL");
    let engine = MODELS
        .iter()
        .filter_map(|m| m.enricher.map(|e| (m.policy, e)))
        .fold(
            CedarAgentEngine::new(&url).unwrap(),
            |engine, (policy, enricher)| engine.enricher(policy, enricher),
        );
    Some(engine)
}

async fn load_policies(engine: &CedarAgentEngine) {
    let mut policies = library::cedar_policy_texts().unwrap();
    policies.push((
        "conformance".into(),
        r#"permit (principal, action == Action::"conf/trusted", resource) when { context.subject.trust_score >= 50 };"#.into(),
    ));
    engine.put_policies(&policies).await.unwrap();
}

/// One test, so that the policy store is loaded once and no other test replaces it while
/// this one runs.
#[tokio::test]
async fn the_cedar_agent_decides_like_the_tables_and_conforms() {
    let Some(engine) = agent() else { return };
    load_policies(&engine).await;

    // Conformance: allow, deny, unknown policy.
    let context = |trust: u8| {
        EvaluationContext::builder("spiffe://conformance/w")
            .trust_score(TrustScore::new(trust).unwrap())
            .resource_id("doc-1")
            .build()
            .unwrap()
    };
    assert!(
        engine
            .evaluate("conf/trusted", &context(90))
            .await
            .unwrap()
            .allow
    );
    let denied = engine.evaluate("conf/trusted", &context(10)).await.unwrap();
    assert!(!denied.allow && !denied.reasons.is_empty());
    assert!(
        !engine
            .evaluate("conf/no_such_policy", &context(90))
            .await
            .unwrap()
            .allow
    );

    // Every case of every model.
    let mut checked = 0;
    for model in &MODELS {
        let table = CaseTable::parse(model.cases).unwrap();
        for case in &table.cases {
            let context = table.context_for(case).unwrap();
            let allowed = engine
                .evaluate(model.policy, &context)
                .await
                .map(|d| d.allow)
                .unwrap_or(false);
            assert_eq!(
                allowed,
                case.expect == Expect::Allow,
                "{} / {}",
                model.name,
                case.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 84, "{checked}");

    // A policy that does not parse is refused by the agent's store.
    let error = engine
        .put_policies(&[(
            "broken".into(),
            "permit(principal, action, resource) when { context. };".into(),
        )])
        .await
        .unwrap_err();
    assert!(
        matches!(error, PolicyError::MalformedAnswer { .. }),
        "{error}"
    );
    // The store kept its previous policies.
    assert!(
        engine
            .evaluate("conf/trusted", &context(90))
            .await
            .unwrap()
            .allow
    );
}
