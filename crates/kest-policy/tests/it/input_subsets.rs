//! The engines convert only the context members a policy can read. These policies read
//! members in every way the languages allow; each decision must equal the one made with
//! the whole context.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use cedar_policy::{Authorizer, Entities, EntityUid, PolicySet, Request};
use kest_policy::{CedarEngine, EvaluationContext, RegoEngine};
use serde_json::{Value, json};

fn context(extra: Value) -> EvaluationContext {
    let mut builder = EvaluationContext::builder("w").user("alice");
    for (key, value) in extra.as_object().unwrap() {
        builder = builder.value(key.clone(), value.clone());
    }
    builder.build().unwrap()
}

/// Rego evaluated the plain way, with the whole input.
fn rego_reference(sources: &[(&str, &str)], package: &str, context: &EvaluationContext) -> bool {
    let mut engine = regorus::Engine::new();
    for (name, source) in sources {
        engine
            .add_policy((*name).to_owned(), (*source).to_owned())
            .unwrap();
    }
    engine.set_input(regorus::Value::from(context.to_value()));
    engine.eval_rule(format!("{package}.allow")).unwrap() == regorus::Value::Bool(true)
}

#[test]
fn rego_reads_every_member_a_policy_can_see() {
    type Sources = Vec<(&'static str, &'static str)>;
    let cases: Vec<(&str, Sources, Value)> = vec![
        (
            "negated member",
            vec![(
                "p.rego",
                "package p\ndefault allow := false\nallow if not input.blocked",
            )],
            json!({"blocked": true}),
        ),
        (
            "whole input bound to a variable",
            vec![(
                "p.rego",
                "package p\ndefault allow := false\nallow if { x := input; x.flag == true }",
            )],
            json!({"flag": true}),
        ),
        (
            "dynamic index",
            vec![(
                "p.rego",
                "package p\ndefault allow := false\nallow if { some k; input[k] == \"yes\"; k == \"answer\" }",
            )],
            json!({"answer": "yes"}),
        ),
        (
            "quoted member",
            vec![(
                "p.rego",
                "package p\ndefault allow := false\nallow if input[\"odd key\"] == 1",
            )],
            json!({"odd key": 1}),
        ),
        (
            "imported input",
            vec![(
                "p.rego",
                "package p\nimport input.flag as f\ndefault allow := false\nallow if f == true",
            )],
            json!({"flag": true}),
        ),
        (
            "whole record of a member",
            vec![(
                "p.rego",
                "package p\ndefault allow := false\nallow if count(input.subject) == 6",
            )],
            json!({}),
        ),
        (
            "member of a member",
            vec![(
                "p.rego",
                "package p\ndefault allow := false\nallow if input.subject.user == \"alice\"",
            )],
            json!({}),
        ),
        (
            "another package reads the input",
            vec![
                ("h.rego", "package helpers\nok if input.secret == \"s3\"\n"),
                (
                    "p.rego",
                    "package p\ndefault allow := false\nallow if data.helpers.ok",
                ),
            ],
            json!({"secret": "s3"}),
        ),
        (
            "an imported package reads the input",
            vec![
                ("h.rego", "package lib.checks\nok if input.level > 2\n"),
                (
                    "p.rego",
                    "package p\nimport data.lib.checks\ndefault allow := false\nallow if checks.ok",
                ),
            ],
            json!({"level": 3}),
        ),
        (
            "data as a whole",
            vec![
                ("h.rego", "package helpers\nflag := input.flag\n"),
                (
                    "p.rego",
                    "package p\ndefault allow := false\nallow if { k := \"helpers\"; data[k].flag == true }",
                ),
            ],
            json!({"flag": true}),
        ),
        (
            "with input as",
            vec![(
                "p.rego",
                "package p\ndefault allow := false\ninner if input.x == 1\nallow if inner with input as {\"x\": 1}",
            )],
            json!({}),
        ),
    ];
    for (name, sources, extra) in cases {
        let engine = sources
            .iter()
            .fold(RegoEngine::builder(), |b, (n, s)| b.policy_source(*n, *s))
            .build()
            .unwrap();
        let context = context(extra);
        let expected = rego_reference(&sources, "data.p", &context);
        let actual = engine.decide("p", &context).unwrap().allow;
        assert_eq!(actual, expected, "{name}");
        // Each case is written so that its decision flips if the member does not reach the
        // policy: it allows, except the negated member, which must deny.
        assert_eq!(
            expected,
            name != "negated member",
            "{name}: the reference decision"
        );
    }
}

/// Cedar evaluated the plain way: the whole policy set and the whole context.
fn cedar_reference(source: &str, action: &str, context: &EvaluationContext) -> bool {
    let policies: PolicySet = source.parse().unwrap();
    let record = kest_policy::to_context(context.document()).unwrap();
    let request = Request::new(
        r#"Workload::"w""#.parse::<EntityUid>().unwrap(),
        format!(r#"Action::"{action}""#)
            .parse::<EntityUid>()
            .unwrap(),
        r#"Resource::"""#.parse::<EntityUid>().unwrap(),
        record,
        None,
    )
    .unwrap();
    Authorizer::new()
        .is_authorized(&request, &policies, &Entities::empty())
        .decision()
        == cedar_policy::Decision::Allow
}

#[test]
fn cedar_reads_every_member_a_policy_can_see() {
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "has and value",
            r#"permit(principal, action == Action::"p", resource) when { context has blocked && context.blocked == false };"#,
            json!({"blocked": false}),
        ),
        (
            "member of a member",
            r#"permit(principal, action == Action::"p", resource) when { context.subject.taints.isEmpty() };"#,
            json!({}),
        ),
        (
            "bracket access",
            r#"permit(principal, action == Action::"p", resource) when { context["odd key"] == 1 };"#,
            json!({"odd key": 1}),
        ),
        (
            "whole record of a member",
            r#"permit(principal, action == Action::"p", resource) when { context.object == {"id": "doc", "classification": "system", "attributes": {}} };"#,
            json!({}),
        ),
        (
            "a forbid on another member",
            r#"permit(principal, action == Action::"p", resource); forbid(principal, action == Action::"p", resource) when { context.banned == true };"#,
            json!({"banned": false}),
        ),
        (
            "unscoped policy",
            r#"permit(principal, action, resource) when { context.flag == true };"#,
            json!({"flag": true}),
        ),
        (
            "nested has",
            r#"permit(principal, action == Action::"p", resource) when { context.subject has user && context.subject.user == "alice" };"#,
            json!({}),
        ),
    ];
    for (name, source, extra) in cases {
        let engine = CedarEngine::builder()
            .policy_source("p.cedar", source)
            .build()
            .unwrap();
        let mut extra = extra;
        let context = if name == "whole record of a member" {
            EvaluationContext::builder("w")
                .resource_id("doc")
                .build()
                .unwrap()
        } else {
            context(std::mem::take(&mut extra))
        };
        let expected = cedar_reference(source, "p", &context);
        let actual = engine
            .decide("p", &context)
            .map(|d| d.allow)
            .unwrap_or(false);
        assert_eq!(actual, expected, "{name}");
        assert!(expected, "{name}: the reference should allow");
    }
    // And the forbid really is seen: with `banned` true, both deny.
    let source = r#"permit(principal, action == Action::"p", resource); forbid(principal, action == Action::"p", resource) when { context.banned == true };"#;
    let engine = CedarEngine::builder()
        .policy_source("p.cedar", source)
        .build()
        .unwrap();
    let banned = context(json!({"banned": true}));
    assert!(!engine.decide("p", &banned).unwrap().allow);
    assert!(!cedar_reference(source, "p", &banned));
}
