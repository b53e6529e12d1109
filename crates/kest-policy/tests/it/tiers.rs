//! Tiers and deviations: order, logical AND, stopping at the first denial, scoping of
//! deviations, and configuration from files and the environment.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::collections::HashMap;
use std::sync::Arc;

use kest_policy::{
    AuthorizationError, ConfigError, DeviationRule, EvaluationContext, MockEngine, PolicyConfig,
    PolicyError, PolicyTier, Scope, TieredPolicies,
};

fn config() -> PolicyConfig {
    PolicyConfig {
        enterprise: vec!["ent/baseline".into()],
        platform: vec!["plat/egress".into(), "plat/residency".into()],
        application: vec!["app/billing".into()],
        deviations: vec![DeviationRule {
            scope: Scope::Function("export_report".into()),
            policy: "plat/egress".into(),
            tier: PolicyTier::Platform,
            reason: "exports go to the audited bucket".into(),
            approver: "secops@example.org".into(),
        }],
    }
}

fn tiers(function: &str, policies: &[&str]) -> TieredPolicies {
    TieredPolicies::new(
        Arc::new(config()),
        Some("billing"),
        function,
        policies.iter().map(|p| (*p).to_owned()).collect(),
    )
    .unwrap()
}

fn context() -> EvaluationContext {
    EvaluationContext::builder("spiffe://t/w").build().unwrap()
}

#[tokio::test]
async fn every_tier_in_order_and_all_must_allow() {
    let engine = MockEngine::allow_all();
    let outcome = tiers("charge", &["fn/charge", "fn/limit"])
        .evaluate(&engine, &context())
        .await
        .unwrap();
    assert_eq!(
        engine.evaluated(),
        [
            "ent/baseline",
            "plat/egress",
            "plat/residency",
            "app/billing",
            "fn/charge",
            "fn/limit"
        ]
    );
    let pc = outcome.policy_context;
    assert_eq!(pc.enterprise_policies, ["ent/baseline"]);
    assert_eq!(pc.platform_policies, ["plat/egress", "plat/residency"]);
    assert_eq!(pc.app_policies, ["app/billing"]);
    assert_eq!(pc.function_policies, ["fn/charge", "fn/limit"]);
    assert!(pc.deviations.is_empty());
    assert_eq!(outcome.decisions.len(), 6);
}

#[tokio::test]
async fn the_first_denial_stops_evaluation() {
    let engine = MockEngine::allow_all().denying("plat/residency");
    let error = tiers("charge", &["fn/charge"])
        .evaluate(&engine, &context())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AuthorizationError::Denied { tier: PolicyTier::Platform, policy, .. } if policy == "plat/residency")
    );
    assert_eq!(
        engine.evaluated(),
        ["ent/baseline", "plat/egress", "plat/residency"]
    );
    assert!(error.to_string().contains("mock denies"), "{error}");
}

#[tokio::test]
async fn an_engine_error_is_a_denial() {
    let failure = PolicyError::Timeout {
        engine: "opa",
        endpoint: "http://127.0.0.1:8181".into(),
        after: std::time::Duration::from_secs(1),
    };
    let engine = MockEngine::allow_all().failing("app/billing", failure.clone());
    let error = tiers("charge", &["fn/charge"])
        .evaluate(&engine, &context())
        .await
        .unwrap_err();
    assert_eq!(
        error,
        AuthorizationError::Engine {
            tier: PolicyTier::Application,
            policy: "app/billing".into(),
            error: failure
        }
    );
    assert!(!engine.evaluated().contains(&"fn/charge".to_owned()));
}

#[tokio::test]
async fn a_deviation_skips_one_policy_for_its_scope_only() {
    let engine = MockEngine::allow_all().denying("plat/egress");
    // The export function has an approved deviation from the egress policy...
    let outcome = tiers("export_report", &["fn/export"])
        .evaluate(&engine, &context())
        .await
        .unwrap();
    assert!(!engine.evaluated().contains(&"plat/egress".to_owned()));
    assert_eq!(outcome.policy_context.platform_policies, ["plat/residency"]);
    let deviation = &outcome.policy_context.deviations[0];
    assert_eq!(
        (
            deviation.policy.as_str(),
            deviation.tier.as_str(),
            deviation.reason.as_deref(),
            deviation.approver.as_deref()
        ),
        (
            "plat/egress",
            "platform",
            Some("exports go to the audited bucket"),
            Some("secops@example.org")
        )
    );
    // ...which other functions do not get.
    let other = MockEngine::allow_all().denying("plat/egress");
    let error = tiers("charge", &["fn/charge"])
        .evaluate(&other, &context())
        .await
        .unwrap_err();
    assert_eq!(error.policy(), "plat/egress");
}

#[tokio::test]
async fn app_scoped_deviations_cover_every_function_of_the_app() {
    let mut config = config();
    config.deviations = vec![DeviationRule {
        scope: Scope::App("billing".into()),
        policy: "ent/baseline".into(),
        tier: PolicyTier::Enterprise,
        reason: "migration window".into(),
        approver: "ciso".into(),
    }];
    let config = Arc::new(config);
    for function in ["charge", "refund"] {
        let tiers = TieredPolicies::new(
            Arc::clone(&config),
            Some("billing"),
            function,
            vec!["fn/x".into()],
        )
        .unwrap();
        let engine = MockEngine::allow_all().denying("ent/baseline");
        let outcome = tiers.evaluate(&engine, &context()).await.unwrap();
        assert!(outcome.policy_context.enterprise_policies.is_empty());
    }
    let other_app =
        TieredPolicies::new(config, Some("ledger"), "charge", vec!["fn/x".into()]).unwrap();
    let engine = MockEngine::allow_all().denying("ent/baseline");
    assert!(other_app.evaluate(&engine, &context()).await.is_err());
}

#[test]
fn an_empty_function_list_is_refused_when_built() {
    let error = TieredPolicies::new(Arc::new(config()), None, "charge", Vec::new()).unwrap_err();
    assert_eq!(
        error,
        ConfigError::EmptyFunctionPolicies {
            function: "charge".into()
        }
    );
    assert!(TieredPolicies::new(Arc::new(config()), None, "charge", vec![" ".into()]).is_err());
}

/// The Python package evaluates `['p_root', 'p_shared', 'p_root']` as two policies.
#[tokio::test]
async fn repeated_function_policies_run_once() {
    let engine = MockEngine::allow_all();
    let tiers = TieredPolicies::new(
        Arc::new(PolicyConfig::default()),
        None,
        "f",
        vec!["p_root".into(), "p_shared".into(), "p_root".into()],
    )
    .unwrap();
    let outcome = tiers.evaluate(&engine, &context()).await.unwrap();
    assert_eq!(
        outcome.policy_context.function_policies,
        ["p_root", "p_shared"]
    );
    assert_eq!(engine.calls(), 2);
}

#[test]
fn configuration_from_toml_json_and_the_environment() {
    let toml = r#"
        enterprise = ["ent/baseline"]
        platform = ["plat/egress", "plat/residency"]
        application = ["app/billing"]

        [[deviations]]
        scope = "function:export_report"
        policy = "plat/egress"
        tier = "platform"
        reason = "exports go to the audited bucket"
        approver = "secops@example.org"
    "#;
    assert_eq!(PolicyConfig::from_toml_str(toml).unwrap(), config());
    let json = serde_json::to_string(&config()).unwrap();
    assert_eq!(PolicyConfig::from_json_str(&json).unwrap(), config());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kest.toml");
    std::fs::write(&path, toml).unwrap();
    assert_eq!(PolicyConfig::from_file(&path).unwrap(), config());

    let vars: HashMap<&str, String> = HashMap::from([
        ("KEST_ENTERPRISE_POLICIES", "ent/baseline".to_owned()),
        (
            "KEST_PLATFORM_POLICIES",
            "plat/egress, plat/residency".to_owned(),
        ),
        ("KEST_APP_POLICIES", "app/billing".to_owned()),
        (
            "KEST_POLICY_DEVIATIONS",
            serde_json::to_string(&config().deviations).unwrap(),
        ),
    ]);
    let from_env = PolicyConfig::from_vars(|name| vars.get(name).cloned())
        .unwrap()
        .unwrap();
    assert_eq!(from_env, config());
    assert_eq!(PolicyConfig::from_vars(|_| None).unwrap(), None);
    let file_var = PolicyConfig::from_vars(|name| {
        (name == "KEST_POLICY_CONFIG").then(|| path.display().to_string())
    });
    assert_eq!(file_var.unwrap().unwrap(), config());
}

#[test]
fn bad_configuration_is_refused() {
    let unknown = r#"platform = ["a"]
        [[deviations]]
        scope = "function:f"
        policy = "b"
        tier = "platform"
        reason = "r"
        approver = "x""#;
    assert!(matches!(
        PolicyConfig::from_toml_str(unknown),
        Err(ConfigError::UnknownDeviationPolicy { .. })
    ));
    let unaccountable = r#"platform = ["a"]
        [[deviations]]
        scope = "app:x"
        policy = "a"
        tier = "platform"
        reason = ""
        approver = "x""#;
    assert!(matches!(
        PolicyConfig::from_toml_str(unaccountable),
        Err(ConfigError::UnaccountableDeviation { .. })
    ));
    let bad_scope = r#"platform = ["a"]
        [[deviations]]
        scope = "team:x"
        policy = "a"
        tier = "platform"
        reason = "r"
        approver = "x""#;
    assert!(matches!(
        PolicyConfig::from_toml_str(bad_scope),
        Err(ConfigError::Parse { .. })
    ));
    assert!(matches!(
        PolicyConfig::from_toml_str("platform = [\"has space\"]"),
        Err(ConfigError::InvalidPolicyName { .. })
    ));
    assert!(matches!(
        PolicyConfig::from_toml_str("unknown_key = 1"),
        Err(ConfigError::Parse { .. })
    ));
    let bad_env = PolicyConfig::from_vars(|name| {
        (name == "KEST_POLICY_DEVIATIONS").then(|| "not json".to_owned())
    });
    assert!(
        matches!(bad_env, Err(ConfigError::Parse { source_name, .. }) if source_name == "KEST_POLICY_DEVIATIONS")
    );
}
