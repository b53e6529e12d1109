//! Span and metric exporters: OTLP, JSON lines, SQLite.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::Value as OtelValue;
use opentelemetry::trace::Status;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use serde_json::{Map, Value, json};

/// Where spans and metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exporter {
    /// An OTLP collector: over HTTP with protobuf (feature `otlp-http`) or gRPC (feature
    /// `otlp`). For gRPC the endpoint is the collector's, e.g. `http://127.0.0.1:4317`;
    /// for HTTP it is the base URL (`http://127.0.0.1:4318`) to which `/v1/traces` and
    /// `/v1/metrics` are added, or the traces URL itself.
    Otlp {
        /// The collector endpoint.
        endpoint: String,
        /// gRPC or HTTP with protobuf.
        protocol: OtlpProtocol,
    },
    /// One JSON object per span and per metric data point (`"signal": "span"` or
    /// `"metric"`), appended to a file.
    JsonLines(PathBuf),
    /// `spans` and `metrics` tables in an SQLite database (feature `sqlite`).
    Sqlite(PathBuf),
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC.
    Grpc,
    /// OTLP over HTTP, protobuf bodies.
    HttpProtobuf,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The exporter could not be built.
    #[error("cannot set up the {exporter} exporter: {reason}")]
    Exporter {
        /// Which exporter.
        exporter: &'static str,
        /// Why.
        reason: String,
    },
    /// The exporter needs a feature this build lacks.
    #[error("the {exporter} exporter needs kest's `{feature}` feature")]
    MissingFeature {
        /// Which exporter.
        exporter: &'static str,
        /// The feature.
        feature: &'static str,
    },
    /// An `OTEL_*` variable holds a value this build cannot use.
    #[error("{variable}={value:?}: {reason}")]
    InvalidSetting {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What is accepted.
        reason: &'static str,
    },
}

/// Keeps the tracer and meter providers alive; dropping it flushes and shuts the
/// exporters down.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    meters: SdkMeterProvider,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard").finish_non_exhaustive()
    }
}

impl TelemetryGuard {
    /// Exports everything pending now.
    ///
    /// # Errors
    /// The exporter's error.
    pub fn flush(&self) -> OTelSdkResult {
        self.provider.force_flush()?;
        self.meters.force_flush()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
        let _ = self.meters.force_flush();
        let _ = self.meters.shutdown();
    }
}

/// Installs a global tracer provider and a global meter provider, with `service.name` =
/// `service_name`, that send every span and every metric to `exporter`. Metrics are
/// exported every `OTEL_METRIC_EXPORT_INTERVAL` milliseconds (60 s by default) and when
/// the guard is flushed or dropped. Keep the guard for as long as telemetry should be
/// exported.
///
/// ```no_run
/// let _telemetry = kest::telemetry::init(
///     "billing",
///     kest::telemetry::Exporter::JsonLines("telemetry.jsonl".into()),
/// )?;
/// # Ok::<(), kest::telemetry::TelemetryError>(())
/// ```
///
/// # Errors
/// [`TelemetryError`] when an exporter cannot be built.
pub fn init(service_name: &str, exporter: Exporter) -> Result<TelemetryGuard, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource.clone());
    let meters = SdkMeterProvider::builder().with_resource(resource);
    let (provider, meters) = match exporter {
        Exporter::JsonLines(path) => {
            let file = JsonLinesFile::open(&path)?;
            (
                builder
                    .with_simple_exporter(JsonLinesExporter::new(file.clone()))
                    .build(),
                meters
                    .with_reader(PeriodicReader::builder(JsonLinesMetrics { file }).build())
                    .build(),
            )
        }
        Exporter::Sqlite(path) => sqlite(builder, meters, &path)?,
        Exporter::Otlp { endpoint, protocol } => otlp(builder, meters, &endpoint, protocol)?,
    };
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_meter_provider(meters.clone());
    Ok(TelemetryGuard { provider, meters })
}

/// What the standard OpenTelemetry variables ask for: OTLP to
/// `OTEL_EXPORTER_OTLP_ENDPOINT` over `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the
/// default, or `grpc`), as `OTEL_SERVICE_NAME` (else `default_service`). `None` when no
/// endpoint is set: then nothing is exported. `lookup` reads a variable;
/// [`init_from_env`] passes the process environment.
///
/// ```
/// use kest::telemetry::{Exporter, OtlpProtocol, exporter_from};
///
/// let env = |name: &str| match name {
///     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".to_owned()),
///     "OTEL_SERVICE_NAME" => Some("billing".to_owned()),
///     _ => None,
/// };
/// let (service, exporter) = exporter_from(env, "quickstart")?.unwrap();
/// assert_eq!(service, "billing");
/// assert_eq!(exporter, Exporter::Otlp {
///     endpoint: "http://collector:4318".into(),
///     protocol: OtlpProtocol::HttpProtobuf,
/// });
/// assert!(exporter_from(|_| None, "quickstart")?.is_none());
/// # Ok::<(), kest::telemetry::TelemetryError>(())
/// ```
///
/// # Errors
/// [`TelemetryError::InvalidSetting`] for a protocol other than those two.
pub fn exporter_from(
    lookup: impl Fn(&str) -> Option<String>,
    default_service: &str,
) -> Result<Option<(String, Exporter)>, TelemetryError> {
    let Some(endpoint) = lookup("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    let protocol = match lookup("OTEL_EXPORTER_OTLP_PROTOCOL")
        .as_deref()
        .map(str::trim)
    {
        None | Some("" | "http/protobuf") => OtlpProtocol::HttpProtobuf,
        Some("grpc") => OtlpProtocol::Grpc,
        Some(other) => {
            return Err(TelemetryError::InvalidSetting {
                variable: "OTEL_EXPORTER_OTLP_PROTOCOL",
                value: other.to_owned(),
                reason: "Kest exports `http/protobuf` or `grpc`",
            });
        }
    };
    let service = lookup("OTEL_SERVICE_NAME")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default_service.to_owned());
    Ok(Some((
        service,
        Exporter::Otlp {
            endpoint: endpoint.trim().to_owned(),
            protocol,
        },
    )))
}

/// [`init`] as the standard OpenTelemetry variables ask ([`exporter_from`] with the process
/// environment): `None`, exporting nothing, when `OTEL_EXPORTER_OTLP_ENDPOINT` is unset.
///
/// # Errors
/// As [`exporter_from`] and [`init`].
pub fn init_from_env(default_service: &str) -> Result<Option<TelemetryGuard>, TelemetryError> {
    match exporter_from(|name| std::env::var(name).ok(), default_service)? {
        Some((service, exporter)) => init(&service, exporter).map(Some),
        None => Ok(None),
    }
}

/// The traces and metrics URLs of an OTLP/HTTP endpoint given as a base URL or as the
/// traces URL.
#[cfg(feature = "otlp-http")]
fn http_urls(endpoint: &str) -> (String, String) {
    let base = endpoint
        .trim_end_matches('/')
        .strip_suffix("/v1/traces")
        .unwrap_or_else(|| endpoint.trim_end_matches('/'));
    (format!("{base}/v1/traces"), format!("{base}/v1/metrics"))
}

#[cfg(feature = "otlp-http")]
fn otlp(
    builder: opentelemetry_sdk::trace::TracerProviderBuilder,
    meters: opentelemetry_sdk::metrics::MeterProviderBuilder,
    endpoint: &str,
    protocol: OtlpProtocol,
) -> Result<(SdkTracerProvider, SdkMeterProvider), TelemetryError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let error = |reason: String| TelemetryError::Exporter {
        exporter: "OTLP",
        reason,
    };
    let (spans, metrics) = match protocol {
        #[cfg(feature = "otlp")]
        OtlpProtocol::Grpc => (
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build(),
            opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build(),
        ),
        #[cfg(not(feature = "otlp"))]
        OtlpProtocol::Grpc => {
            return Err(TelemetryError::MissingFeature {
                exporter: "OTLP/gRPC",
                feature: "otlp",
            });
        }
        OtlpProtocol::HttpProtobuf => {
            let (traces, metrics) = http_urls(endpoint);
            (
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(traces)
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .build(),
                opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_endpoint(metrics)
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .build(),
            )
        }
    };
    let spans = spans.map_err(|e| error(e.to_string()))?;
    let metrics = metrics.map_err(|e| error(e.to_string()))?;
    Ok((
        builder.with_batch_exporter(spans).build(),
        meters
            .with_reader(PeriodicReader::builder(metrics).build())
            .build(),
    ))
}

#[cfg(not(feature = "otlp-http"))]
fn otlp(
    _: opentelemetry_sdk::trace::TracerProviderBuilder,
    _: opentelemetry_sdk::metrics::MeterProviderBuilder,
    _: &str,
    _: OtlpProtocol,
) -> Result<(SdkTracerProvider, SdkMeterProvider), TelemetryError> {
    Err(TelemetryError::MissingFeature {
        exporter: "OTLP",
        feature: "otlp-http",
    })
}

#[cfg(feature = "sqlite")]
fn sqlite(
    builder: opentelemetry_sdk::trace::TracerProviderBuilder,
    meters: opentelemetry_sdk::metrics::MeterProviderBuilder,
    path: &Path,
) -> Result<(SdkTracerProvider, SdkMeterProvider), TelemetryError> {
    let database = SqliteExporter::create(path)?;
    let metrics = SqliteMetrics {
        connection: std::sync::Arc::clone(&database.connection),
    };
    Ok((
        builder.with_simple_exporter(database).build(),
        meters
            .with_reader(PeriodicReader::builder(metrics).build())
            .build(),
    ))
}

#[cfg(not(feature = "sqlite"))]
fn sqlite(
    _: opentelemetry_sdk::trace::TracerProviderBuilder,
    _: opentelemetry_sdk::metrics::MeterProviderBuilder,
    _: &Path,
) -> Result<(SdkTracerProvider, SdkMeterProvider), TelemetryError> {
    Err(TelemetryError::MissingFeature {
        exporter: "SQLite",
        feature: "sqlite",
    })
}

/// A span as one JSON object.
fn span_json(span: &SpanData, resource: &Map<String, Value>) -> Value {
    let attributes: Map<String, Value> = span
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str().to_owned(), value_json(&kv.value)))
        .collect();
    let (status, message) = match &span.status {
        Status::Unset => ("unset", String::new()),
        Status::Ok => ("ok", String::new()),
        Status::Error { description } => ("error", description.to_string()),
    };
    json!({
        "signal": "span",
        "name": span.name,
        "trace_id": span.span_context.trace_id().to_string(),
        "span_id": span.span_context.span_id().to_string(),
        "parent_span_id": span.parent_span_id.to_string(),
        "start_unix_nanos": nanos(span.start_time),
        "end_unix_nanos": nanos(span.end_time),
        "status": status,
        "status_message": message,
        "scope": span.instrumentation_scope.name(),
        "resource": resource,
        "attributes": attributes,
    })
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    })
}

fn value_json(value: &OtelValue) -> Value {
    match value {
        OtelValue::Bool(b) => Value::Bool(*b),
        OtelValue::I64(i) => Value::from(*i),
        OtelValue::F64(f) => Value::from(*f),
        OtelValue::String(s) => Value::String(s.to_string()),
        other => Value::String(other.to_string()),
    }
}

fn resource_json(resource: &Resource) -> Map<String, Value> {
    resource
        .iter()
        .map(|(key, value)| (key.as_str().to_owned(), value_json(value)))
        .collect()
}

fn export_error(error: impl fmt::Display) -> OTelSdkError {
    OTelSdkError::InternalFailure(error.to_string())
}

/// A file that spans and metric data points are appended to, one JSON object a line.
#[derive(Debug, Clone)]
struct JsonLinesFile(std::sync::Arc<Mutex<std::fs::File>>);

impl JsonLinesFile {
    fn open(path: &Path) -> Result<Self, TelemetryError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|error| TelemetryError::Exporter {
                exporter: "JSON lines",
                reason: format!("{}: {error}", path.display()),
            })?;
        Ok(Self(std::sync::Arc::new(Mutex::new(file))))
    }

    fn append(&self, lines: &[Value]) -> OTelSdkResult {
        let mut text = String::new();
        for line in lines {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let mut file = self.0.lock().map_err(export_error)?;
        file.write_all(text.as_bytes()).map_err(export_error)?;
        file.flush().map_err(export_error)
    }
}

/// Appends one JSON object per span to a file.
#[derive(Debug)]
struct JsonLinesExporter {
    file: JsonLinesFile,
    resource: Map<String, Value>,
}

impl JsonLinesExporter {
    fn new(file: JsonLinesFile) -> Self {
        Self {
            file,
            resource: Map::new(),
        }
    }
}

impl SpanExporter for JsonLinesExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let lines: Vec<Value> = batch
            .iter()
            .map(|span| span_json(span, &self.resource))
            .collect();
        self.file.append(&lines)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource_json(resource);
    }
}

/// Appends one JSON object per metric data point to the same file.
#[derive(Debug)]
struct JsonLinesMetrics {
    file: JsonLinesFile,
}

impl PushMetricExporter for JsonLinesMetrics {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        self.file.append(&metric_points(metrics))
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// Every data point of `metrics` as one JSON object: `name`, `unit`, `scope`, `kind`
/// (`sum`, `gauge` or `histogram`), `attributes`, the resource, the time, and `value`, or
/// for a histogram `count`, `sum`, `min`, `max`, `bounds` and `bucket_counts`.
fn metric_points(metrics: &ResourceMetrics) -> Vec<Value> {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    let resource = resource_json(metrics.resource());
    let mut points = Vec::new();
    let attributes =
        |attributes: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| -> Map<String, Value> {
            attributes
                .map(|kv| (kv.key.as_str().to_owned(), value_json(&kv.value)))
                .collect()
        };
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            let head = json!({
                "signal": "metric",
                "name": metric.name(),
                "unit": metric.unit(),
                "scope": scope.scope().name(),
                "resource": resource,
            });
            let mut push = |mut point: Value| {
                if let (Some(point), Some(head)) = (point.as_object_mut(), head.as_object()) {
                    for (key, value) in head {
                        point.insert(key.clone(), value.clone());
                    }
                }
                points.push(point);
            };
            macro_rules! numbers {
                ($data:expr) => {
                    match $data {
                        MetricData::Sum(sum) => {
                            for point in sum.data_points() {
                                push(json!({"kind": "sum", "time_unix_nanos": nanos(sum.time()),
                                    "attributes": attributes(&mut point.attributes()), "value": point.value()}));
                            }
                        }
                        MetricData::Gauge(gauge) => {
                            for point in gauge.data_points() {
                                push(json!({"kind": "gauge", "time_unix_nanos": nanos(gauge.time()),
                                    "attributes": attributes(&mut point.attributes()), "value": point.value()}));
                            }
                        }
                        MetricData::Histogram(histogram) => {
                            for point in histogram.data_points() {
                                push(json!({"kind": "histogram", "time_unix_nanos": nanos(histogram.time()),
                                    "attributes": attributes(&mut point.attributes()),
                                    "count": point.count(), "sum": point.sum(), "min": point.min(), "max": point.max(),
                                    "bounds": point.bounds().collect::<Vec<_>>(),
                                    "bucket_counts": point.bucket_counts().collect::<Vec<_>>()}));
                            }
                        }
                        MetricData::ExponentialHistogram(histogram) => {
                            for point in histogram.data_points() {
                                push(json!({"kind": "exponential_histogram", "time_unix_nanos": nanos(histogram.time()),
                                    "attributes": attributes(&mut point.attributes()),
                                    "count": point.count(), "sum": point.sum()}));
                            }
                        }
                    }
                };
            }
            match metric.data() {
                AggregatedMetrics::F64(data) => numbers!(data),
                AggregatedMetrics::U64(data) => numbers!(data),
                AggregatedMetrics::I64(data) => numbers!(data),
            }
        }
    }
    points
}

/// Writes spans into an SQLite table `spans`.
#[cfg(feature = "sqlite")]
#[derive(Debug)]
struct SqliteExporter {
    connection: std::sync::Arc<Mutex<rusqlite::Connection>>,
    resource: Map<String, Value>,
}

#[cfg(feature = "sqlite")]
impl SqliteExporter {
    fn create(path: &Path) -> Result<Self, TelemetryError> {
        let error = |reason: String| TelemetryError::Exporter {
            exporter: "SQLite",
            reason,
        };
        let connection = rusqlite::Connection::open(path)
            .map_err(|e| error(format!("{}: {e}", path.display())))?;
        connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS spans (
                    trace_id TEXT NOT NULL,
                    span_id TEXT NOT NULL,
                    parent_span_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    start_unix_nanos INTEGER NOT NULL,
                    end_unix_nanos INTEGER NOT NULL,
                    status TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    service_name TEXT,
                    attributes TEXT NOT NULL
                );
                CREATE TABLE IF NOT EXISTS metrics (
                    name TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    time_unix_nanos INTEGER NOT NULL,
                    attributes TEXT NOT NULL,
                    point TEXT NOT NULL
                );",
            )
            .map_err(|e| error(e.to_string()))?;
        Ok(Self {
            connection: std::sync::Arc::new(Mutex::new(connection)),
            resource: Map::new(),
        })
    }
}

#[cfg(feature = "sqlite")]
impl SpanExporter for SqliteExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut connection = self.connection.lock().map_err(export_error)?;
        let transaction = connection.transaction().map_err(export_error)?;
        for span in &batch {
            let row = span_json(span, &self.resource);
            let text = |key: &str| {
                row.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let number = |key: &str| {
                row.get(key)
                    .and_then(Value::as_u64)
                    .and_then(|n| i64::try_from(n).ok())
                    .unwrap_or_default()
            };
            transaction
                .execute(
                    "INSERT INTO spans VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    rusqlite::params![
                        text("trace_id"),
                        text("span_id"),
                        text("parent_span_id"),
                        text("name"),
                        number("start_unix_nanos"),
                        number("end_unix_nanos"),
                        text("status"),
                        text("scope"),
                        self.resource.get("service.name").and_then(Value::as_str),
                        row.get("attributes")
                            .map(Value::to_string)
                            .unwrap_or_default(),
                    ],
                )
                .map_err(export_error)?;
        }
        transaction.commit().map_err(export_error)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource_json(resource);
    }
}

/// Writes metric data points into the `metrics` table of the spans' database.
#[cfg(feature = "sqlite")]
#[derive(Debug)]
struct SqliteMetrics {
    connection: std::sync::Arc<Mutex<rusqlite::Connection>>,
}

#[cfg(feature = "sqlite")]
impl PushMetricExporter for SqliteMetrics {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let points = metric_points(metrics);
        let mut connection = self.connection.lock().map_err(export_error)?;
        let transaction = connection.transaction().map_err(export_error)?;
        for point in &points {
            let text = |key: &str| {
                point
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            transaction
                .execute(
                    "INSERT INTO metrics VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        text("name"),
                        text("kind"),
                        point
                            .get("time_unix_nanos")
                            .and_then(Value::as_u64)
                            .and_then(|n| i64::try_from(n).ok())
                            .unwrap_or_default(),
                        point
                            .get("attributes")
                            .map(Value::to_string)
                            .unwrap_or_default(),
                        point.to_string(),
                    ],
                )
                .map_err(export_error)?;
        }
        transaction.commit().map_err(export_error)
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
