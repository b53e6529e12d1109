//! Span exporters: OTLP, JSON lines, SQLite.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::Value as OtelValue;
use opentelemetry::trace::Status;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use serde_json::{Map, Value, json};

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exporter {
    /// An OTLP collector (feature `otlp`), e.g. `http://127.0.0.1:4317` for gRPC or
    /// `http://127.0.0.1:4318/v1/traces` for HTTP.
    Otlp {
        /// The collector endpoint.
        endpoint: String,
        /// gRPC or HTTP with protobuf.
        protocol: OtlpProtocol,
    },
    /// One JSON object per span, appended to a file.
    JsonLines(PathBuf),
    /// A `spans` table in an SQLite database (feature `sqlite`).
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
}

/// Keeps the tracer provider alive; dropping it flushes and shuts the exporter down.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
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
        self.provider.force_flush()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

/// Installs a global tracer provider with `service.name` = `service_name` that sends every
/// span to `exporter`. Keep the guard for as long as spans should be exported.
///
/// ```no_run
/// let _telemetry = kest::telemetry::init(
///     "billing",
///     kest::telemetry::Exporter::JsonLines("spans.jsonl".into()),
/// )?;
/// # Ok::<(), kest::telemetry::TelemetryError>(())
/// ```
///
/// # Errors
/// [`TelemetryError`] when the exporter cannot be built.
pub fn init(service_name: &str, exporter: Exporter) -> Result<TelemetryGuard, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let provider = match exporter {
        Exporter::JsonLines(path) => builder
            .with_simple_exporter(JsonLinesExporter::create(&path)?)
            .build(),
        Exporter::Sqlite(path) => sqlite(builder, &path)?,
        Exporter::Otlp { endpoint, protocol } => otlp(builder, &endpoint, protocol)?,
    };
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(TelemetryGuard { provider })
}

#[cfg(feature = "otlp")]
fn otlp(
    builder: opentelemetry_sdk::trace::TracerProviderBuilder,
    endpoint: &str,
    protocol: OtlpProtocol,
) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let error = |reason: String| TelemetryError::Exporter {
        exporter: "OTLP",
        reason,
    };
    let exporter = match protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build(),
    }
    .map_err(|e| error(e.to_string()))?;
    Ok(builder.with_batch_exporter(exporter).build())
}

#[cfg(not(feature = "otlp"))]
fn otlp(
    _: opentelemetry_sdk::trace::TracerProviderBuilder,
    _: &str,
    _: OtlpProtocol,
) -> Result<SdkTracerProvider, TelemetryError> {
    Err(TelemetryError::MissingFeature {
        exporter: "OTLP",
        feature: "otlp",
    })
}

#[cfg(feature = "sqlite")]
fn sqlite(
    builder: opentelemetry_sdk::trace::TracerProviderBuilder,
    path: &Path,
) -> Result<SdkTracerProvider, TelemetryError> {
    Ok(builder
        .with_simple_exporter(SqliteExporter::create(path)?)
        .build())
}

#[cfg(not(feature = "sqlite"))]
fn sqlite(
    _: opentelemetry_sdk::trace::TracerProviderBuilder,
    _: &Path,
) -> Result<SdkTracerProvider, TelemetryError> {
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

/// Appends one JSON object per span to a file.
#[derive(Debug)]
struct JsonLinesExporter {
    file: Mutex<std::fs::File>,
    resource: Map<String, Value>,
}

impl JsonLinesExporter {
    fn create(path: &Path) -> Result<Self, TelemetryError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|error| TelemetryError::Exporter {
                exporter: "JSON lines",
                reason: format!("{}: {error}", path.display()),
            })?;
        Ok(Self {
            file: Mutex::new(file),
            resource: Map::new(),
        })
    }
}

impl SpanExporter for JsonLinesExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut text = String::new();
        for span in &batch {
            text.push_str(&span_json(span, &self.resource).to_string());
            text.push('\n');
        }
        let mut file = self.file.lock().map_err(export_error)?;
        file.write_all(text.as_bytes()).map_err(export_error)?;
        file.flush().map_err(export_error)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource_json(resource);
    }
}

/// Writes spans into an SQLite table `spans`.
#[cfg(feature = "sqlite")]
#[derive(Debug)]
struct SqliteExporter {
    connection: Mutex<rusqlite::Connection>,
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
                );",
            )
            .map_err(|e| error(e.to_string()))?;
        Ok(Self {
            connection: Mutex::new(connection),
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
