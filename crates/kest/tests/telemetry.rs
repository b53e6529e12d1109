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

use std::sync::{Arc, Mutex};

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
    let spans: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
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
    }

    #[cfg(feature = "otlp")]
    {
        // OTLP over gRPC and over HTTP, each to a receiver in this test.
        for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
            let received = Arc::new(Mutex::new(Vec::new()));
            let endpoint = match protocol {
                OtlpProtocol::Grpc => otlp::grpc_receiver(received.clone()).await,
                OtlpProtocol::HttpProtobuf => otlp::http_receiver(received.clone()).await,
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
            let spans = otlp::spans(&received.lock().unwrap());
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

#[cfg(feature = "otlp")]
mod otlp {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::any_value;
    use prost::Message as _;

    type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

    struct Receiver(Received);

    #[tonic::async_trait]
    impl TraceService for Receiver {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.0.lock().unwrap().push(request.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }))
        }
    }

    pub(super) async fn grpc_receiver(received: Received) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Receiver(received)))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        format!("http://{address}")
    }

    pub(super) async fn http_receiver(received: Received) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let received = received.clone();
                async move {
                    received
                        .lock()
                        .unwrap()
                        .push(ExportTraceServiceRequest::decode(body).unwrap());
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportTraceServiceResponse {
                            partial_success: None,
                        }
                        .encode_to_vec(),
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}/v1/traces")
    }

    /// The spans received, flattened to JSON like the JSON-lines exporter's.
    pub(super) fn spans(requests: &[ExportTraceServiceRequest]) -> Vec<Value> {
        let mut spans = Vec::new();
        for request in requests {
            for resource_spans in &request.resource_spans {
                let resource: serde_json::Map<String, Value> = resource_spans
                    .resource
                    .iter()
                    .flat_map(|r| r.attributes.iter())
                    .map(|kv| (kv.key.clone(), any(kv.value.as_ref())))
                    .collect();
                for scope_spans in &resource_spans.scope_spans {
                    let scope = scope_spans
                        .scope
                        .as_ref()
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    for span in &scope_spans.spans {
                        let attributes: serde_json::Map<String, Value> = span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), any(kv.value.as_ref())))
                            .collect();
                        spans.push(serde_json::json!({
                            "name": span.name, "scope": scope, "resource": resource, "attributes": attributes,
                        }));
                    }
                }
            }
        }
        spans
    }

    fn any(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> Value {
        match value.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
            Some(any_value::Value::IntValue(i)) => Value::from(*i),
            Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
            Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
            _ => Value::Null,
        }
    }
}
