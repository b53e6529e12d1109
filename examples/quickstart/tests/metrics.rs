//! The quickstart's metrics, read back from an OTLP/HTTP receiver: four allowed calls and
//! the one refusal, with the variables a deployment would set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::collections::BTreeMap;

use kest_testkit::otlp::{Received, http_receiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_exports_its_decisions_over_otlp_http() {
    // Without the endpoint, nothing is set up.
    assert!(kest_quickstart::telemetry(|_| None).unwrap().is_none());

    let received = Received::default();
    let endpoint = http_receiver(&received).await;
    let env = move |name: &str| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_owned()),
        "OTEL_SERVICE_NAME" => Some("quickstart-metrics-test".to_owned()),
        _ => None,
    };
    let guard = tokio::task::spawn_blocking(move || kest_quickstart::telemetry(env))
        .await
        .unwrap()
        .unwrap()
        .expect("the endpoint is set");
    let mut out = Vec::new();
    kest_quickstart::quickstart(&mut out).await.unwrap();
    // Exporting blocks (the HTTP client is synchronous): off the async workers.
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();

    let points = received.metric_points();
    let decisions: BTreeMap<(String, String), i64> = points
        .iter()
        .filter(|point| point["name"] == "kest.decisions")
        .map(|point| {
            assert_eq!(point["monotonic"], true);
            assert_eq!(point["service.name"], "quickstart-metrics-test");
            (
                (
                    point["attributes"]["kest.decision"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    point["attributes"]["kest.policy"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                ),
                point["value"].as_i64().unwrap(),
            )
        })
        .collect();
    let count =
        |decision: &str, policy: &str| decisions.get(&(decision.to_owned(), policy.to_owned()));
    assert_eq!(count("deny", "guarded_action"), Some(&1), "{decisions:?}");
    assert_eq!(count("allow", "invoke"), Some(&3), "{decisions:?}");
    assert_eq!(count("allow", "guarded_action"), Some(&1), "{decisions:?}");
    assert_eq!(decisions.values().sum::<i64>(), 5, "{decisions:?}");
    let depth = points
        .iter()
        .find(|point| point["name"] == "kest.passport.entries")
        .unwrap();
    assert_eq!(depth["count"], 5, "one depth per call");
    assert!(!received.spans().is_empty(), "spans went to /v1/traces too");
}
