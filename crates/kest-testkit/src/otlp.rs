//! OTLP receivers run by a test, over gRPC and over HTTP with protobuf: they keep every
//! trace and metrics request, and flatten what they got to JSON objects shaped like the
//! JSON-lines exporter's lines.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message as _;
use serde_json::{Map, Value, json};

/// Everything a receiver got.
#[derive(Debug, Clone, Default)]
pub struct Received {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

impl Received {
    /// The spans received, as JSON objects: `name`, `scope`, `resource`, `attributes`.
    #[must_use]
    pub fn spans(&self) -> Vec<Value> {
        let mut spans = Vec::new();
        for request in self.traces.lock().expect("traces").iter() {
            for resource_spans in &request.resource_spans {
                let resource = attributes(
                    resource_spans
                        .resource
                        .as_ref()
                        .map_or(&[][..], |r| &r.attributes),
                );
                for scope_spans in &resource_spans.scope_spans {
                    let scope = scope_spans
                        .scope
                        .as_ref()
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    for span in &scope_spans.spans {
                        spans.push(json!({
                            "name": span.name, "scope": scope, "resource": resource,
                            "attributes": attributes(&span.attributes),
                        }));
                    }
                }
            }
        }
        spans
    }

    /// The metric data points received, as JSON objects: `name`, `unit`, `kind`,
    /// `attributes`, the resource's `service.name`, and `value` or `count` and `sum`. The
    /// exports are cumulative, so only each series' last point is kept: its total.
    #[must_use]
    pub fn metric_points(&self) -> Vec<Value> {
        let mut latest = BTreeMap::new();
        for request in self.metrics.lock().expect("metrics").iter() {
            for resource in &request.resource_metrics {
                let service = attributes(
                    resource
                        .resource
                        .as_ref()
                        .map_or(&[][..], |r| &r.attributes),
                )
                .get("service.name")
                .cloned()
                .unwrap_or(Value::Null);
                for scope in &resource.scope_metrics {
                    for metric in &scope.metrics {
                        let mut points = Vec::new();
                        match &metric.data {
                            Some(metric::Data::Sum(sum)) => {
                                for point in &sum.data_points {
                                    let value = match point.value {
                                        Some(number_data_point::Value::AsInt(i)) => Value::from(i),
                                        Some(number_data_point::Value::AsDouble(d)) => {
                                            Value::from(d)
                                        }
                                        None => Value::Null,
                                    };
                                    points.push(json!({"kind": "sum", "value": value,
                                        "monotonic": sum.is_monotonic,
                                        "attributes": attributes(&point.attributes)}));
                                }
                            }
                            Some(metric::Data::Histogram(histogram)) => {
                                for point in &histogram.data_points {
                                    points.push(json!({"kind": "histogram", "count": point.count,
                                        "sum": point.sum, "attributes": attributes(&point.attributes)}));
                                }
                            }
                            _ => {}
                        }
                        for mut point in points {
                            let key = format!(
                                "{}{}",
                                metric.name,
                                point.get("attributes").unwrap_or(&Value::Null)
                            );
                            if let Some(object) = point.as_object_mut() {
                                object.insert("name".into(), Value::from(metric.name.clone()));
                                object.insert("unit".into(), Value::from(metric.unit.clone()));
                                object.insert("service.name".into(), service.clone());
                            }
                            latest.insert(key, point);
                        }
                    }
                }
            }
        }
        latest.into_values().collect()
    }
}

fn attributes(list: &[KeyValue]) -> Map<String, Value> {
    list.iter()
        .map(|kv| (kv.key.clone(), any(kv.value.as_ref())))
        .collect()
}

fn any(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        _ => Value::Null,
    }
}

struct Grpc(Received);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0
            .traces
            .lock()
            .expect("traces")
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0
            .metrics
            .lock()
            .expect("metrics")
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts an OTLP/gRPC receiver on 127.0.0.1 and returns its endpoint.
///
/// # Panics
/// When it cannot listen.
pub async fn grpc_receiver(received: &Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let address = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Grpc(received.clone())))
            .add_service(MetricsServiceServer::new(Grpc(received.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{address}")
}

/// Starts an OTLP/HTTP (protobuf) receiver on 127.0.0.1, serving `/v1/traces` and
/// `/v1/metrics`, and returns its base URL.
///
/// # Panics
/// When it cannot listen.
pub async fn http_receiver(received: &Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let address = listener.local_addr().expect("address");
    let (traces, metrics) = (received.traces.clone(), received.metrics.clone());
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let traces = traces.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("a trace request");
                    traces.lock().expect("traces").push(request);
                    let response = ExportTraceServiceResponse {
                        partial_success: None,
                    };
                    (
                        [("content-type", "application/x-protobuf")],
                        response.encode_to_vec(),
                    )
                }
            }),
        )
        .route(
            "/v1/metrics",
            axum::routing::post(move |body: axum::body::Bytes| {
                let metrics = metrics.clone();
                async move {
                    let request =
                        ExportMetricsServiceRequest::decode(body).expect("a metrics request");
                    metrics.lock().expect("metrics").push(request);
                    let response = ExportMetricsServiceResponse {
                        partial_success: None,
                    };
                    (
                        [("content-type", "application/x-protobuf")],
                        response.encode_to_vec(),
                    )
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{address}")
}
