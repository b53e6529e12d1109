//! Spans of protected calls, read back from each exporter: JSON lines, SQLite, and OTLP
//! over gRPC and HTTP to receivers run by the test. One test, because the tracer provider
//! is process-wide.
#![cfg(feature = "telemetry")]
#![allow(
    clippy::unreachable,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::Arc;

use kest::telemetry::{Exporter, OtlpProtocol};
use kest::{Call, Flow, Kest, Values};
use kest_identity::MockIdentity;
use kest_policy::MockEngine;
use serde_json::Value;

const W: &str = "spiffe://kest.test/telemetry";

/// Runs one allowed and one denied call; returns the allowed entry's id and signature.
async fn calls(kest: &Kest, suffix: &str) -> (String, String) {
    let allowed = kest
        .protect(Call::new(format!("allowed_{suffix}")).policy("ok"))
        .unwrap();
    let denied = kest
        .protect(Call::new(format!("denied_{suffix}")).policy("no"))
        .unwrap();
    let flow = Flow::new();
    flow.scope(async {
        allowed.run(Values::new(), async {}).await.unwrap();
        assert!(denied.run(Values::new(), async {}).await.is_err());
    })
    .await;
    let passport = flow.passport();
    let entry = passport.entries()[0];
    (
        entry.entry().entry_id().to_string(),
        entry.jws().rsplit('.').next().unwrap().to_owned(),
    )
}

fn check_attributes(
    attributes: &serde_json::Map<String, Value>,
    entry_id: &str,
    signature: &str,
    suffix: &str,
) {
    assert_eq!(attributes["kest.entry_id"], entry_id);
    assert_eq!(attributes["kest.signature"], signature);
    assert_eq!(attributes["kest.operation"], format!("allowed_{suffix}"));
    assert_eq!(attributes["kest.workload_id"], W);
    assert_eq!(attributes["kest.trust_score"], 100);
    assert_eq!(attributes["kest.parent_hash"], "");
    assert_eq!(attributes["kest.decision"], "allow");
    assert!(
        attributes["kest.passport"]
            .as_str()
            .unwrap()
            .starts_with("[\"ey")
    );
    assert_eq!(attributes["service.name"], "telemetry-test");
}

/// OTLP carries histogram sums as doubles; the integer histograms' sums compare as
/// integers.
fn integer_sums(points: Vec<Value>) -> Vec<Value> {
    points
        .into_iter()
        .map(|mut point| {
            if let Some(sum) = point["sum"].as_f64()
                && point["name"] != "kest.call.duration"
                && sum.fract() == 0.0
            {
                point["sum"] = Value::from(format!("{sum:.0}").parse::<u64>().unwrap());
            }
            point
        })
        .collect()
}

/// A passport sent by claim check and read back twice: once as sent, once with its last
/// signature replaced, which ingress verification refuses.
async fn propagation() {
    use kest::crypto::{KeySigner, SigningKey, StaticKeyResolver};
    use kest::passport::{EntryBuilder, Passport};
    use kest::propagation::{Baggage, Caller, Ingress, MemoryClaimStore, PassportCodec};
    let key = SigningKey::from_ed25519_seed(&[4; 32]).unwrap();
    let keys = StaticKeyResolver::new().with_key(W, key.verifying_key().clone());
    let signer = KeySigner::new(key, W);
    let mut passport = Passport::new();
    for step in ["a", "b", "c"] {
        passport
            .append(
                EntryBuilder::new(step).principal(W),
                &signer,
                &kest::trust::WeakestLink,
            )
            .unwrap();
    }
    let store = Arc::new(MemoryClaimStore::new(
        std::num::NonZeroUsize::new(8).unwrap(),
    ));
    let codec = PassportCodec::new()
        .threshold(64)
        .store(store.clone())
        .ingress(Ingress::verify(keys));
    let mut baggage = Baggage::new();
    codec
        .write(&mut baggage, &passport, &Caller::default())
        .await
        .unwrap();
    assert!(codec.read(&baggage).await.unwrap().0.is_some());
    // Tamper with the stored copy: same claim id, last signature replaced.
    let id = baggage.get("kest.claim_check").unwrap().to_owned();
    let mut entries: Vec<String> = serde_json::from_str(&passport.to_json()).unwrap();
    let last = entries.pop().unwrap();
    let (signed, signature) = last.rsplit_once('.').unwrap();
    entries.push(format!("{signed}.{}", "A".repeat(signature.len())));
    use kest::propagation::ClaimStore as _;
    store
        .put(
            &format!("kest.claim.{id}"),
            &serde_json::to_string(&entries).unwrap(),
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    baggage.remove("kest.chain_tip");
    assert!(codec.read(&baggage).await.is_err());
    // Offline verification counts too: a truncated passport against its tip.
    let keys = StaticKeyResolver::new().with_key(
        W,
        SigningKey::from_ed25519_seed(&[4; 32])
            .unwrap()
            .verifying_key()
            .clone(),
    );
    let truncated = serde_json::to_string(&entries[..2]).unwrap();
    assert!(
        kest::passport::Verifier::new(&keys)
            .expect_tip(passport.tip_hash().unwrap())
            .verify_json(&truncated)
            .is_err()
    );
}

/// The metric data points of one `calls` run (one allow, one deny), as JSON objects like
/// the JSON-lines exporter's: each counted and measured once.
fn check_metrics(points: &[Value], suffix: &str) {
    // Exports are cumulative and may repeat (each flush exports again): keep each series'
    // last point.
    let mut latest = std::collections::BTreeMap::new();
    for point in points {
        latest.insert(
            format!("{}{}", point["name"], point["attributes"]),
            point.clone(),
        );
    }
    let points: Vec<Value> = latest.into_values().collect();
    let named =
        |name: &str| -> Vec<&Value> { points.iter().filter(|p| p["name"] == name).collect() };
    let decisions = named("kest.decisions");
    let decision = |which: &str| {
        decisions
            .iter()
            .find(|p| p["attributes"]["kest.decision"] == which)
            .unwrap_or_else(|| panic!("{suffix}: no {which} decision in {decisions:?}"))
    };
    let allow = decision("allow");
    assert_eq!(allow["value"], 1, "{suffix}: {allow}");
    assert_eq!(allow["attributes"]["kest.policy"], "ok");
    assert_eq!(allow["attributes"]["kest.policy.tier"], "function");
    assert_eq!(allow["attributes"]["kest.engine"], "mock");
    let deny = decision("deny");
    assert_eq!(deny["value"], 1, "{suffix}: {deny}");
    assert_eq!(deny["attributes"]["kest.policy"], "no");
    let durations = named("kest.call.duration");
    assert_eq!(
        durations.len(),
        2,
        "{suffix}: one series per decision: {durations:?}"
    );
    for duration in durations {
        assert_eq!(duration["kind"], "histogram");
        assert_eq!(duration["unit"], "s");
        assert_eq!(duration["count"], 1);
        assert!(duration["sum"].as_f64().unwrap() > 0.0);
        assert!(
            duration["sum"].as_f64().unwrap() < 1.0,
            "the hook took a second?"
        );
    }
    let trust = named("kest.entry.trust_score");
    assert_eq!(trust[0]["count"], 1, "{suffix}");
    assert_eq!(trust[0]["sum"], 100);
    let depth = named("kest.passport.entries");
    assert_eq!(
        depth[0]["count"], 2,
        "{suffix}: the allowed call and the refused one"
    );
    assert_eq!(
        depth[0]["sum"], 2,
        "{suffix}: 1 entry after the first call, 1 at the refused one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exporter_carries_the_attributes() {
    let kest = Kest::builder()
        .identity(Arc::new(MockIdentity::new(W).unwrap()))
        .engine(Arc::new(MockEngine::allow_all().denying("no")))
        .service_name("telemetry-test")
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    // JSON lines.
    let path = dir.path().join("spans.jsonl");
    let guard = kest::telemetry::init("telemetry-test", Exporter::JsonLines(path.clone())).unwrap();
    let (entry_id, signature) = calls(&kest, "jsonl").await;
    drop(guard);
    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let spans: Vec<Value> = lines
        .iter()
        .filter(|line| line["signal"] == "span")
        .cloned()
        .collect();
    check_metrics(
        &lines
            .iter()
            .filter(|line| line["signal"] == "metric")
            .cloned()
            .collect::<Vec<_>>(),
        "jsonl",
    );
    let allowed = spans
        .iter()
        .find(|s| s["name"] == "kest.verified.allowed_jsonl")
        .unwrap();
    check_attributes(
        allowed["attributes"].as_object().unwrap(),
        &entry_id,
        &signature,
        "jsonl",
    );
    assert_eq!(allowed["scope"], "kest.core");
    assert_eq!(allowed["resource"]["service.name"], "telemetry-test");
    assert_eq!(allowed["status"], "ok");
    let denied = spans
        .iter()
        .find(|s| s["name"] == "kest.verified.denied_jsonl")
        .unwrap();
    assert_eq!(denied["attributes"]["kest.decision"], "deny");
    assert_eq!(denied["attributes"]["kest.policy"], "no");
    assert_eq!(denied["status"], "error");

    // Ingress refusals and claim checks, counted by kest-propagation.
    let path = dir.path().join("propagation.jsonl");
    let guard = kest::telemetry::init("telemetry-test", Exporter::JsonLines(path.clone())).unwrap();
    propagation().await;
    drop(guard);
    let mut latest = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(&path).unwrap().lines() {
        let point: Value = serde_json::from_str(line).unwrap();
        if point["signal"] == "metric" {
            latest.insert(format!("{}{}", point["name"], point["attributes"]), point);
        }
    }
    let value = |name: &str, attributes: Value| {
        latest
            .values()
            .find(|p| p["name"] == name && p["attributes"] == attributes)
            .map(|p| p["value"].clone())
            .unwrap_or_else(|| panic!("no {name} {attributes} in {latest:?}"))
    };
    assert_eq!(
        value(
            "kest.claim_check.operations",
            serde_json::json!({"kest.operation": "put", "kest.outcome": "stored"})
        ),
        1
    );
    assert_eq!(
        value(
            "kest.claim_check.operations",
            serde_json::json!({"kest.operation": "get", "kest.outcome": "found"})
        ),
        2
    );
    assert_eq!(
        value(
            "kest.verification.failures",
            serde_json::json!({"kest.cause": "bad_signature"})
        ),
        1
    );

    // SQLite.
    #[cfg(feature = "sqlite")]
    {
        let path = dir.path().join("spans.db");
        let guard =
            kest::telemetry::init("telemetry-test", Exporter::Sqlite(path.clone())).unwrap();
        let (entry_id, signature) = calls(&kest, "sqlite").await;
        drop(guard);
        let connection = rusqlite::Connection::open(&path).unwrap();
        let (attributes, service, status): (String, String, String) = connection
            .query_row(
                "SELECT attributes, service_name, status FROM spans WHERE name = 'kest.verified.allowed_sqlite'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        let attributes: Value = serde_json::from_str(&attributes).unwrap();
        check_attributes(
            attributes.as_object().unwrap(),
            &entry_id,
            &signature,
            "sqlite",
        );
        assert_eq!(service, "telemetry-test");
        assert_eq!(status, "ok");
        let denied: i64 = connection
            .query_row(
                "SELECT count(*) FROM spans WHERE status = 'error'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(denied, 1);
        let mut statement = connection.prepare("SELECT point FROM metrics").unwrap();
        let points: Vec<Value> = statement
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(|text| serde_json::from_str(&text.unwrap()).unwrap())
            .collect();
        check_metrics(&points, "sqlite");
    }

    #[cfg(feature = "otlp")]
    {
        // OTLP over gRPC and over HTTP, each to a receiver in this test.
        for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
            let received = kest_testkit::otlp::Received::default();
            let endpoint = match protocol {
                OtlpProtocol::Grpc => kest_testkit::otlp::grpc_receiver(&received).await,
                OtlpProtocol::HttpProtobuf => kest_testkit::otlp::http_receiver(&received).await,
            };
            let suffix = match protocol {
                OtlpProtocol::Grpc => "grpc",
                OtlpProtocol::HttpProtobuf => "http",
            };
            let guard =
                kest::telemetry::init("telemetry-test", Exporter::Otlp { endpoint, protocol })
                    .unwrap();
            let (entry_id, signature) = calls(&kest, suffix).await;
            guard.flush().unwrap();
            drop(guard);
            check_metrics(&integer_sums(received.metric_points()), suffix);
            let spans = received.spans();
            let allowed = spans
                .iter()
                .find(|s| s["name"] == format!("kest.verified.allowed_{suffix}"))
                .unwrap_or_else(|| panic!("no span over {suffix}: {spans:?}"));
            check_attributes(
                allowed["attributes"].as_object().unwrap(),
                &entry_id,
                &signature,
                suffix,
            );
            assert_eq!(allowed["scope"], "kest.core");
            assert_eq!(allowed["resource"]["service.name"], "telemetry-test");
            assert!(
                spans
                    .iter()
                    .any(|s| s["name"] == format!("kest.verified.denied_{suffix}"))
            );
        }
    }
    let _ = OtlpProtocol::Grpc;
}
