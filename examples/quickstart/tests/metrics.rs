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
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message as _;

type Received = Arc<Mutex<Vec<ExportMetricsServiceRequest>>>;

async fn receiver(received: Received, traces: Arc<Mutex<usize>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/v1/metrics",
            axum::routing::post(move |body: axum::body::Bytes| {
                let received = received.clone();
                async move {
                    received
                        .lock()
                        .unwrap()
                        .push(ExportMetricsServiceRequest::decode(body).unwrap());
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportMetricsServiceResponse {
                            partial_success: None,
                        }
                        .encode_to_vec(),
                    )
                }
            }),
        )
        .route(
            "/v1/traces",
            axum::routing::post(move |_: axum::body::Bytes| {
                let traces = traces.clone();
                async move {
                    *traces.lock().unwrap() += 1;
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// `kest.decisions` as (decision, policy) → count, from the last cumulative export.
fn decisions(requests: &[ExportMetricsServiceRequest]) -> BTreeMap<(String, String), i64> {
    let mut counts = BTreeMap::new();
    for request in requests {
        for resource in &request.resource_metrics {
            for scope in &resource.scope_metrics {
                for metric in scope.metrics.iter().filter(|m| m.name == "kest.decisions") {
                    let Some(metric::Data::Sum(sum)) = &metric.data else {
                        panic!("kest.decisions is not a sum");
                    };
                    assert!(sum.is_monotonic);
                    for point in &sum.data_points {
                        let attribute = |key: &str| {
                            point
                                .attributes
                                .iter()
                                .find(|kv| kv.key == key)
                                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                                .map(|value| match value {
                                    any_value::Value::StringValue(text) => text.clone(),
                                    other => format!("{other:?}"),
                                })
                                .unwrap_or_default()
                        };
                        let Some(number_data_point::Value::AsInt(value)) = point.value else {
                            panic!("a decision count that is not an integer");
                        };
                        counts.insert(
                            (attribute("kest.decision"), attribute("kest.policy")),
                            value,
                        );
                    }
                }
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_exports_its_decisions_over_otlp_http() {
    // Without the endpoint, nothing is set up.
    assert!(kest_quickstart::telemetry(|_| None).unwrap().is_none());

    let received = Arc::new(Mutex::new(Vec::new()));
    let traces = Arc::new(Mutex::new(0));
    let endpoint = receiver(received.clone(), traces.clone()).await;
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

    let requests = received.lock().unwrap();
    assert!(!requests.is_empty(), "no metrics arrived");
    let service = requests[0].resource_metrics[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref()?.value.clone());
    assert_eq!(
        service,
        Some(any_value::Value::StringValue(
            "quickstart-metrics-test".into()
        ))
    );
    let counts = decisions(&requests);
    assert_eq!(
        counts.get(&("deny".to_owned(), "guarded_action".to_owned())),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&("allow".to_owned(), "invoke".to_owned())),
        Some(&3),
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&("allow".to_owned(), "guarded_action".to_owned())),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(counts.values().sum::<i64>(), 5, "{counts:?}");
    assert!(*traces.lock().unwrap() > 0, "spans went to /v1/traces too");
}
