//! Every schema rule of the entry payload, one mutation of a valid payload at a time: the
//! fault must be `Schema` naming the field, with a reason that says what is wrong. Then
//! what the reader hands back for valid payloads: policy lists, deviations and hashes as
//! written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_canon::Sha256Digest;
use kest_passport::{Deviation, Entry, EntryBuilder, EntryFault, PolicyContext};
use kest_trust::WeakestLink;
use serde_json::{Value, json};

fn hash(byte: u8) -> Sha256Digest {
    Sha256Digest::from_hex(&format!("{byte:02x}").repeat(32)).unwrap()
}

/// A valid payload, as JSON.
fn payload() -> Value {
    let entry = EntryBuilder::new("fetch")
        .principal("spiffe://x/w")
        .policy_context(PolicyContext {
            enterprise_policies: vec!["baseline".into()],
            platform_policies: vec!["platform".into()],
            app_policies: vec!["app".into()],
            function_policies: vec!["fn".into()],
            deviations: vec![Deviation {
                policy: "baseline".into(),
                tier: "enterprise".into(),
                reason: Some("incident 7".into()),
                approver: None,
                extra: Default::default(),
            }],
            extra: Default::default(),
        })
        .content_hash(hash(0xab))
        .input_hash(hash(0xcd))
        .build_on(&[], &WeakestLink)
        .unwrap();
    serde_json::to_value(&entry).unwrap()
}

fn read(value: &Value) -> Result<Entry, EntryFault> {
    let bytes = serde_json::to_vec(value).unwrap();
    let from_slice = Entry::from_json_slice(&bytes);
    // Both readers apply the same rules.
    assert_eq!(
        from_slice.as_ref().err(),
        Entry::from_value(value.clone()).as_ref().err()
    );
    from_slice
}

/// Sets (or with `None` removes) the member at a `/`-separated path.
fn with(path: &str, value: Option<Value>) -> Value {
    let mut payload = payload();
    let (parent, last) = path.rsplit_once('/').unwrap_or(("", path));
    let target = if parent.is_empty() {
        &mut payload
    } else {
        payload.pointer_mut(&format!("/{parent}")).unwrap()
    };
    match (target, value) {
        (Value::Object(map), Some(value)) => {
            map.insert(last.to_owned(), value);
        }
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Array(items), Some(value)) => items[last.parse::<usize>().unwrap()] = value,
        (other, _) => panic!("{path} is in {other}"),
    }
    payload
}

#[test]
fn each_rule_names_its_field() {
    let h = hash(1).to_hex();
    let cases: Vec<(&str, Option<Value>, &str, &str)> = vec![
        (
            "parent_ids",
            Some(json!([])),
            "parent_ids",
            "must not be empty",
        ),
        (
            "parent_ids",
            Some(json!(["0", "0"])),
            "parent_ids",
            "\"0\" or entry hashes",
        ),
        ("parent_ids", Some(json!([h, h])), "parent_ids", "twice"),
        (
            "parent_ids",
            Some(json!(["ABC"])),
            "parent_ids",
            "\"0\" or entry hashes",
        ),
        (
            "labels/principal",
            Some(json!("")),
            "labels.principal",
            "non-empty string",
        ),
        (
            "labels/principal",
            Some(json!(7)),
            "labels.principal",
            "non-empty string",
        ),
        ("labels/principal", None, "labels.principal", "is missing"),
        (
            "schema_version",
            Some(json!("0.4.0")),
            "schema_version",
            "0.3.x, found `0.4.0`",
        ),
        (
            "entry_id",
            Some(json!("nope")),
            "entry_id",
            "must be a UUID, found `nope`",
        ),
        (
            "entry_id",
            Some(json!("6ba7b810-9dad-41d1-80b4-00c04fd430c8")),
            "entry_id",
            "UUID v7, found version 4",
        ),
        (
            "entry_id",
            Some(json!("01890a5d-ac96-774b-0cce-b302099a8057")),
            "entry_id",
            "variant",
        ),
        (
            "operation",
            Some(json!("")),
            "operation",
            "must not be empty",
        ),
        ("trust_score", Some(json!(101)), "trust_score", "0..=100"),
        ("trust_score", Some(json!(-1)), "trust_score", "0..=100"),
        ("trust_score", Some(json!(1.5)), "trust_score", "0..=100"),
        (
            "timestamp_ms",
            Some(json!(-1)),
            "timestamp_ms",
            "non-negative integer",
        ),
        (
            "timestamp_ms",
            Some(json!(9_007_199_254_740_992_u64)),
            "timestamp_ms",
            "non-negative integer",
        ),
        (
            "content_hash",
            Some(json!("xyz")),
            "content_hash",
            "64 lowercase hex",
        ),
        (
            "input_hash",
            Some(json!(hash(0xab).to_hex().to_uppercase())),
            "input_hash",
            "64 lowercase hex",
        ),
        (
            "runtime",
            Some(json!("kest")),
            "runtime",
            "must be an object, found a string",
        ),
        (
            "runtime/name",
            Some(json!(5)),
            "runtime.name",
            "must be a string, found a number",
        ),
        ("runtime/version", None, "runtime.version", "is missing"),
        (
            "policy_context",
            Some(json!([])),
            "policy_context",
            "must be an object, found an array",
        ),
        (
            "policy_context/app_policies",
            Some(json!([1])),
            "policy_context.app_policies",
            "only strings, found a number",
        ),
        (
            "policy_context/platform_policies",
            Some(json!("p")),
            "policy_context.platform_policies",
            "must be an array, found a string",
        ),
        (
            "policy_context/deviations",
            Some(json!("d")),
            "policy_context.deviations",
            "must be an array, found a string",
        ),
        (
            "policy_context/deviations/0",
            Some(json!({"policy": "p", "reason": null, "approver": null})),
            "policy_context.deviations[].tier",
            "is missing",
        ),
        (
            "policy_context/deviations/0",
            Some(json!({"policy": "p", "tier": "t", "reason": 5, "approver": null})),
            "policy_context.deviations[].reason",
            "string or null, found a number",
        ),
        ("classification", None, "classification", "is missing"),
        ("taints", Some(json!(["b", "a"])), "taints", "sorted"),
        ("taints", Some(json!(["a", "a"])), "taints", "sorted"),
        ("metadata", None, "metadata", "is missing"),
    ];
    // Each kind of JSON value is named as found.
    let kinds = [
        (json!(null), "must be a string, found null"),
        (json!(true), "must be a string, found a boolean"),
        (json!({}), "must be a string, found an object"),
    ];
    let cases: Vec<_> = cases
        .into_iter()
        .chain(
            kinds
                .into_iter()
                .map(|(value, reason)| ("runtime/version", Some(value), "runtime.version", reason)),
        )
        .collect();
    // A member of the wrong type is named by its own name, whichever it is.
    let wrong: Vec<(&str, Value)> = vec![
        ("added_taints", json!("x")),
        ("classification", json!([])),
        ("content_hash", json!(5)),
        ("entry_id", json!(5)),
        ("environment", json!([])),
        ("input_hash", json!(true)),
        ("labels", json!([])),
        ("operation", json!(5)),
        ("otel_context", json!(5)),
        ("parent_ids", json!("0")),
        ("removed_taints", json!(1)),
        ("schema_version", json!(1)),
        ("taints", json!({})),
    ];
    let cases = cases.into_iter().chain(
        wrong
            .into_iter()
            .map(|(field, value)| (field, Some(value), field, "has the wrong type")),
    );
    for (path, value, field, reason) in cases {
        let shown = format!("{path} = {value:?}");
        match read(&with(path, value)) {
            Err(EntryFault::Schema {
                field: found,
                reason: why,
            }) => {
                assert_eq!(found, field, "{shown}");
                assert!(why.contains(reason), "{shown}: {why}");
            }
            other => panic!("{shown}: {other:?}"),
        }
    }
}

/// Text quoted from the payload in a fault is escaped and cut short; a payload that is not
/// an object says what was expected.
#[test]
fn faults_quote_payload_text_safely() {
    let long = format!("\u{1b}[2J{}", "9".repeat(300));
    match read(&with("schema_version", Some(json!(long)))).unwrap_err() {
        EntryFault::Schema { field, reason } => {
            assert_eq!(field, "schema_version");
            assert!(!reason.contains('\u{1b}'), "{reason}");
            assert!(reason.contains("found `"), "{reason}");
            assert!(reason.len() < 120, "{} bytes: {reason}", reason.len());
        }
        other => panic!("{other:?}"),
    }
    for text in ["[]", "5", "\"entry\""] {
        match Entry::from_json_slice(text.as_bytes()).unwrap_err() {
            EntryFault::PayloadNotJson { reason } => {
                assert!(
                    reason.contains("an entry payload object"),
                    "{text}: {reason}"
                );
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

/// A member given twice is refused by name, known or not: two readers could take
/// different ones.
#[test]
fn a_member_given_twice_is_refused_by_name() {
    let text = serde_json::to_string(&payload()).unwrap();
    for (member, twice) in [
        (
            "\"operation\":\"fetch\"",
            "\"operation\":\"fetch\",\"operation\":\"fetch\"",
        ),
        (
            "\"metadata\":null",
            "\"metadata\":null,\"later\":1,\"later\":1",
        ),
    ] {
        assert!(text.contains(member), "{text}");
        let doubled = text.replacen(member, twice, 1);
        match Entry::from_json_slice(doubled.as_bytes()).unwrap_err() {
            EntryFault::Schema { field, reason } => {
                let expected = if member.contains("operation") {
                    "operation"
                } else {
                    "later"
                };
                assert_eq!(field, expected);
                assert_eq!(reason, "appears twice");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn valid_payloads_read_back_as_written() {
    let entry = read(&payload()).unwrap();
    let context = entry.policy_context();
    assert_eq!(context.enterprise_policies, ["baseline"]);
    assert_eq!(context.platform_policies, ["platform"]);
    assert_eq!(context.app_policies, ["app"]);
    assert_eq!(context.function_policies, ["fn"]);
    let deviation = &context.deviations[0];
    assert_eq!(deviation.policy, "baseline");
    assert_eq!(deviation.tier, "enterprise");
    assert_eq!(deviation.reason.as_deref(), Some("incident 7"));
    assert_eq!(deviation.approver, None);
    assert_eq!(entry.content_hash(), Some(hash(0xab)));
    assert_eq!(entry.input_hash(), Some(hash(0xcd)));
    assert!(entry.parents().is_root());

    // Empty hashes read as none; several distinct parents are kept in order.
    let parents = json!([hash(2).to_hex(), hash(1).to_hex()]);
    let mut value = with("parent_ids", Some(parents));
    value["content_hash"] = json!("");
    value["input_hash"] = json!("");
    let entry = read(&value).unwrap();
    assert_eq!(entry.content_hash(), None);
    assert_eq!(entry.input_hash(), None);
    assert_eq!(entry.parents().hashes(), [hash(2), hash(1)]);
    assert!(!entry.parents().is_root());
    // Unknown members are kept, here and in nested objects.
    let mut value = payload();
    value["future"] = json!({"x": 1});
    value["policy_context"]["later"] = json!(true);
    let entry = read(&value).unwrap();
    assert_eq!(entry.extra()["future"], json!({"x": 1}));
    assert_eq!(entry.policy_context().extra["later"], json!(true));
}
