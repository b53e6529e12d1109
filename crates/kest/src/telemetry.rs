//! OpenTelemetry spans for protected calls, and (feature `telemetry`) the exporters that
//! write them out.
//!
//! Every protected call ends in a span `kest.verified.<operation>` from the
//! instrumentation scope `kest.core`, with the attributes of the [telemetry page](https://github.com/kest-dev/kest-rust/blob/main/docs/src/telemetry.md):
//!
//! | attribute | value |
//! |---|---|
//! | `kest.entry_id` | the entry's UUID |
//! | `kest.operation` | the operation |
//! | `kest.workload_id` | the signing workload |
//! | `kest.trust_score` | the entry's trust, 0–100 |
//! | `kest.signature` | the JWS signature (base64url) |
//! | `kest.parent_hash` | the first parent's hash, empty for a root |
//! | `kest.chain_tip` | the passport's new tip |
//! | `kest.passport` | the passport JSON, for passports of up to 16 entries |
//! | `kest.passport_len` | the passport's length |
//! | `kest.decision` | `allow`, or `deny` / `error` for calls refused before they ran |
//!
//! Refused calls are recorded too, with the policy and the reason and an error status.
//! Spans go to whatever tracer provider is installed globally; [`init`] installs one that
//! exports to OTLP, a JSON-lines file or SQLite.

use std::time::Instant;

use kest_passport::Passport;
use kest_policy::AuthorizationError;
use kest_propagation::{Baggage, keys};
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue, global};
use uuid::Uuid;

use crate::Kest;

/// The instrumentation scope of Kest's spans.
pub const SCOPE: &str = "kest.core";
/// Passports up to this many entries are attached to spans whole.
const PASSPORT_ATTRIBUTE_MAX_ENTRIES: usize = 16;

fn tracer() -> global::BoxedTracer {
    global::tracer_provider().tracer_with_scope(
        InstrumentationScope::builder(SCOPE)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    )
}

/// Emits the span of a recorded call.
pub(crate) fn recorded(kest: &Kest, passport: &Passport) {
    let Some(signed) = passport.tip() else {
        return;
    };
    let tracer = tracer();
    let mut span = tracer
        .span_builder("kest.verified")
        .with_kind(SpanKind::Internal)
        .start(&tracer);
    // The passport holds the entry packed; parse it only for a span that is kept.
    if !span.is_recording() {
        return;
    }
    let entry = signed.entry();
    span.update_name(format!("kest.verified.{}", entry.operation()));
    let signature = signed.signature_b64().into_owned();
    let parent = entry
        .parents()
        .hashes()
        .first()
        .map(|h| h.to_hex())
        .unwrap_or_default();
    let mut attributes = vec![
        KeyValue::new("service.name", kest.service_name().to_owned()),
        KeyValue::new("kest.entry_id", entry.entry_id().to_string()),
        KeyValue::new("kest.operation", entry.operation().to_owned()),
        KeyValue::new(
            "kest.workload_id",
            entry.principal().unwrap_or_default().to_owned(),
        ),
        KeyValue::new("kest.trust_score", i64::from(entry.trust_score().get())),
        KeyValue::new("kest.signature", signature),
        KeyValue::new("kest.parent_hash", parent),
        KeyValue::new("kest.chain_tip", signed.hash().to_hex()),
        KeyValue::new(
            "kest.passport_len",
            i64::try_from(passport.len()).unwrap_or(i64::MAX),
        ),
        KeyValue::new("kest.decision", "allow"),
    ];
    if passport.len() <= PASSPORT_ATTRIBUTE_MAX_ENTRIES {
        attributes.push(KeyValue::new("kest.passport", passport.to_json()));
    }
    span.set_attributes(attributes);
    span.set_status(Status::Ok);
    span.end();
}

/// Emits the span of a call refused before it ran.
pub(crate) fn denied(
    kest: &Kest,
    operation: &str,
    workload: &str,
    entry_id: Uuid,
    error: &AuthorizationError,
    started: Instant,
) {
    let tracer = tracer();
    let mut span = tracer
        .span_builder(format!("kest.verified.{operation}"))
        .with_kind(SpanKind::Internal)
        .with_start_time(std::time::SystemTime::now() - started.elapsed())
        .start(&tracer);
    if !span.is_recording() {
        return;
    }
    let decision = match error {
        AuthorizationError::Denied { .. } => "deny",
        _ => "error",
    };
    span.set_attributes([
        KeyValue::new("service.name", kest.service_name().to_owned()),
        KeyValue::new("kest.entry_id", entry_id.to_string()),
        KeyValue::new("kest.operation", operation.to_owned()),
        KeyValue::new("kest.workload_id", workload.to_owned()),
        KeyValue::new("kest.decision", decision),
        KeyValue::new("kest.policy", error.policy().to_owned()),
        KeyValue::new("kest.reason", error.to_string()),
    ]);
    span.set_status(Status::error(error.to_string()));
    span.end();
}

/// The `kest.*` members of the OpenTelemetry baggage of the current context, if any.
pub(crate) fn kest_baggage() -> Option<Baggage> {
    use opentelemetry::baggage::BaggageExt as _;
    opentelemetry::Context::map_current(|cx| {
        let otel = cx.baggage();
        let mut baggage = Baggage::new();
        for key in keys::ALL {
            if let Some(value) = otel.get(key) {
                // Keys are fixed tokens, so this cannot fail.
                let _ = baggage.set(key, value.as_str().to_owned());
            }
        }
        (!baggage.is_empty()).then_some(baggage)
    })
}

#[cfg(feature = "telemetry")]
mod export;
#[cfg(feature = "telemetry")]
pub use export::{
    Exporter, OtlpProtocol, TelemetryError, TelemetryGuard, exporter_from, init, init_from_env,
};
