//! The evaluation context: the the [evaluation context](https://github.com/kest-dev/kest-rust/blob/main/docs/src/crates/kest-policy.md#the-evaluation-context) structure, and the Python package's flat keys.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_canon::Sha256Digest;
use kest_policy::{EvaluationContext, PolicyTier};
use kest_trust::{TaintSet, TrustScore};
use serde_json::{Value, json};

fn python() -> Value {
    kest_testkit::load_json("python/policy_context.json")
}

/// The non-root call of `policy_context.json`: every key the Python package passed to its
/// engine is in our context with the same value.
#[test]
fn flat_keys_match_the_python_package() {
    let vector = python();
    let call = &vector["non_root_call"]["engine_evaluate_args"]["context"];
    let tip = Sha256Digest::from_hex(call["chain_tip"].as_str().unwrap()).unwrap();
    let context = EvaluationContext::builder(call["principal"].as_str().unwrap())
        .jwt(call["jwt"].as_str().unwrap())
        .parents(vec![tip])
        .origin(call["origin"].as_str().unwrap())
        .trust_score(TrustScore::new(36).unwrap())
        .user(call["user"].as_str().unwrap())
        .agent(call["agent"].as_str().unwrap())
        .task(call["task"].as_str().unwrap())
        .scope(call["scope"].as_str().unwrap())
        .value("resource", call["resource"].clone())
        .value("txn_amount", call["txn_amount"].clone())
        .value("meta", call["meta"].clone())
        .build()
        .unwrap();
    let document = context.document();
    for (key, value) in call.as_object().unwrap() {
        assert_eq!(&document[key], value, "key `{key}`");
    }
}

#[test]
fn root_call_flat_keys_match_the_python_package() {
    let vector = python();
    let call = &vector["root_call"]["engine_evaluate_args"]["context"];
    let context = EvaluationContext::builder(call["principal"].as_str().unwrap())
        .origin("user_input")
        .trust_score(TrustScore::new(40).unwrap())
        .build()
        .unwrap();
    for (key, value) in call.as_object().unwrap() {
        assert_eq!(&context.document()[key], value, "key `{key}`");
    }
}

#[test]
fn nested_sections_have_the_spec_structure() {
    let tip = kest_canon::sha256(b"parent");
    let taints: TaintSet = ["pii", "external"].into_iter().collect();
    let context = EvaluationContext::builder("spiffe://t/w")
        .user("alice")
        .trust_score(TrustScore::new(36).unwrap())
        .taints(taints)
        .resource_id("doc-42")
        .resource_attribute("owner", "team-a")
        .classification("confidential")
        .parents(vec![tip])
        .origin("verified_rag")
        .policy_names(vec!["read".into()])
        .policy_tier(PolicyTier::Function)
        .active_deviations(vec!["egress".into()])
        .build()
        .unwrap();
    let document = context.to_value();
    assert_eq!(
        document["subject"],
        json!({"workload": "spiffe://t/w", "user": "alice", "agent": null, "task": null,
               "trust_score": 36, "taints": ["external", "pii"]})
    );
    assert_eq!(
        document["object"],
        json!({"id": "doc-42", "classification": "confidential", "attributes": {"owner": "team-a"}})
    );
    assert_eq!(
        document["environment"],
        json!({"is_root": false, "source_type": "verified_rag", "parent_hash": tip.to_hex(),
               "policy_names": ["read"], "policy_tier": "function", "active_deviations": ["egress"]})
    );
    assert_eq!(document["identity"], "spiffe://t/w");
    assert_eq!(document["trust_score"], 36);
    assert_eq!(context.principal(), Some("spiffe://t/w"));
    assert_eq!(context.resource_id(), Some("doc-42"));
}

#[test]
fn callers_cannot_supply_reserved_keys() {
    for key in kest_policy::RESERVED_KEYS {
        let error = EvaluationContext::builder("w")
            .value(key, 100)
            .build()
            .unwrap_err();
        assert!(error.to_string().contains(key), "{key}: {error}");
    }
    let error = EvaluationContext::builder("w")
        .value("a", 1)
        .value("a", 2)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("twice"), "{error}");
}

#[test]
fn tier_copies_do_not_change_the_original() {
    let context = EvaluationContext::builder("w").build().unwrap();
    let tier = context.for_tier(PolicyTier::Platform, &["egress".into()], &["legacy".into()]);
    assert_eq!(tier.document()["environment"]["policy_tier"], "platform");
    assert_eq!(
        tier.document()["environment"]["policy_names"],
        json!(["egress"])
    );
    assert_eq!(
        tier.document()["environment"]["active_deviations"],
        json!(["legacy"])
    );
    assert_eq!(
        context.document()["environment"]["policy_tier"],
        Value::Null
    );
}

#[test]
fn documents_must_be_objects() {
    assert!(EvaluationContext::from_document(json!([1])).is_err());
    let context = EvaluationContext::from_document(json!({"subject": {"workload": "w"}})).unwrap();
    assert_eq!(context.principal(), Some("w"));
}
