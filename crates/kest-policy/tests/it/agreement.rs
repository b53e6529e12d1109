//! Property tests: for every model, random inputs (right and wrong types, missing and null
//! fields, boundary numbers) get the same decision from Cedar and Rego.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::OnceLock;

use kest_policy::library::{self, CaseTable, MODELS, merge};
use kest_policy::{CedarEngine, RegoEngine};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn engines() -> &'static (CedarEngine, RegoEngine) {
    static ENGINES: OnceLock<(CedarEngine, RegoEngine)> = OnceLock::new();
    ENGINES.get_or_init(|| {
        (
            library::cedar_builder().build().unwrap(),
            library::rego_builder().build().unwrap(),
        )
    })
}

const WORDS: [&str; 24] = [
    "read",
    "write",
    "append",
    "hr",
    "payroll",
    "bank_a",
    "bank_b",
    "banks",
    "oil",
    "KP",
    "NL",
    "admin",
    "config_change",
    "payment",
    "withdrawal",
    "transfer",
    "low",
    "medium",
    "high",
    "alice",
    "bob",
    "post_ledger",
    "item-1",
    "",
];

fn word() -> impl Strategy<Value = Value> {
    prop::sample::select(&WORDS[..]).prop_map(Value::from)
}

fn record() -> impl Strategy<Value = Value> {
    prop_oneof![
        (word(), word()).prop_map(|(c, k)| json!({"company": c, "conflict_class": k})),
        (word(), word()).prop_map(|(f, t)| json!({"from": f, "to": t})),
        (word(), word(), word())
            .prop_map(|(u, t, i)| json!({"user": u, "transformation": t, "item": i})),
        (word(), any::<i8>()).prop_map(|(c, n)| json!({"company": c, "conflict_class": n})),
    ]
}

/// A value of any shape, weighted towards what the models read.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => word(),
        4 => prop::sample::select(&[-2_i64, -1, 0, 1, 2, 3, 4, 79, 80, 81, 5000, 10000, 10001][..]).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => Just(Value::from("$absent")),
        1 => prop::sample::select(&[2.5_f64, 3.0, 0.5][..]).prop_map(Value::from),
        2 => prop::collection::vec(word(), 0..4).prop_map(Value::from),
        2 => prop::collection::vec(record(), 0..4).prop_map(Value::from),
        1 => record(),
    ]
}

/// The fields each model reads, as paths into the context.
fn fields(model: &str) -> &'static [&'static [&'static str]] {
    match model {
        "bell_lapadula" => &[
            &["access"],
            &["clearance"],
            &["object", "attributes", "level"],
        ],
        "biba" => &[
            &["access"],
            &["integrity"],
            &["object", "attributes", "integrity"],
        ],
        "brewer_nash" => &[
            &["history"],
            &["object", "attributes", "company"],
            &["object", "attributes", "conflict_class"],
        ],
        "clark_wilson" => &[
            &["subject", "user"],
            &["transformation"],
            &["object", "id"],
            &["object", "attributes", "constrained"],
            &["certified"],
        ],
        "goguen_meseguer" => &[
            &["domain"],
            &["object", "attributes", "domain"],
            &["interference"],
        ],
        "financial_limits" => &[
            &["transaction", "kind"],
            &["transaction", "amount"],
            &["limit"],
            &["risk"],
            &["mfa"],
        ],
        "clearance" => &[
            &["subject", "trust_score"],
            &["operation_kind"],
            &["role"],
            &["country"],
            &["restricted_countries"],
        ],
        other => panic!("no field list for {other}"),
    }
}

fn patch_for(path: &[&str], value: Value) -> Value {
    path.iter().rev().fold(value, |inner, key| {
        let mut map = Map::new();
        map.insert((*key).to_owned(), inner);
        Value::Object(map)
    })
}

fn agree(model_index: usize, values: Vec<(usize, Value)>) -> Result<(), TestCaseError> {
    let model = &MODELS[model_index];
    let table = CaseTable::parse(model.cases).unwrap();
    let paths = fields(model.name);
    let mut document = table.base.clone();
    for (field, value) in values {
        merge(&mut document, &patch_for(paths[field % paths.len()], value));
    }
    let context = kest_policy::EvaluationContext::from_document(document.clone()).unwrap();
    let (cedar, rego) = engines();
    let c = cedar
        .decide(model.policy, &context)
        .map(|d| d.allow)
        .unwrap_or(false);
    let r = rego
        .decide(model.policy, &context)
        .map(|d| d.allow)
        .unwrap_or(false);
    prop_assert_eq!(
        c,
        r,
        "{} disagrees (cedar {}, rego {}) on {}",
        model.name,
        c,
        r,
        document
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn bell_lapadula_agrees(values in prop::collection::vec((0_usize..3, value()), 0..5)) { agree(0, values)?; }
    #[test]
    fn biba_agrees(values in prop::collection::vec((0_usize..3, value()), 0..5)) { agree(1, values)?; }
    #[test]
    fn brewer_nash_agrees(values in prop::collection::vec((0_usize..3, value()), 0..5)) { agree(2, values)?; }
    #[test]
    fn clark_wilson_agrees(values in prop::collection::vec((0_usize..5, value()), 0..6)) { agree(3, values)?; }
    #[test]
    fn goguen_meseguer_agrees(values in prop::collection::vec((0_usize..3, value()), 0..5)) { agree(4, values)?; }
    #[test]
    fn financial_limits_agrees(values in prop::collection::vec((0_usize..5, value()), 0..6)) { agree(5, values)?; }
    #[test]
    fn clearance_agrees(values in prop::collection::vec((0_usize..5, value()), 0..6)) { agree(6, values)?; }
}

#[test]
fn model_order_is_what_the_generators_assume() {
    let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
    assert_eq!(
        names,
        [
            "bell_lapadula",
            "biba",
            "brewer_nash",
            "clark_wilson",
            "goguen_meseguer",
            "financial_limits",
            "clearance"
        ]
    );
}

/// The generators reach both decisions, so agreement is not just two engines denying
/// everything.
#[test]
fn generators_reach_both_decisions() {
    use proptest::strategy::ValueTree as _;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (cedar, _) = engines();
    for (index, model) in MODELS.iter().enumerate() {
        let table = CaseTable::parse(model.cases).unwrap();
        let paths = fields(model.name);
        let strategy = prop::collection::vec((0..paths.len(), value()), 0..3);
        let mut allows = 0;
        for _ in 0..300 {
            let values = strategy.new_tree(&mut runner).unwrap().current();
            let mut document = table.base.clone();
            for (field, value) in values {
                merge(&mut document, &patch_for(paths[field], value));
            }
            let context = kest_policy::EvaluationContext::from_document(document).unwrap();
            if cedar.decide(model.policy, &context).is_ok_and(|d| d.allow) {
                allows += 1;
            }
        }
        assert!(
            (15..285).contains(&allows),
            "model {index} ({}): {allows} of 300 allowed",
            model.name
        );
    }
}
