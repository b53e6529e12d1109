//! The hook's OpenTelemetry metrics (the instruments are listed on the telemetry page).
//!
//! Instruments come from the global meter provider through a cache that follows it when
//! a new one is installed; attribute values that are fixed per call site are built once,
//! in [`CallAttributes`], so a measurement copies reference counts, not text.

use std::time::Duration;

use kest_policy::AuthorizationError;
use kest_propagation::metrics::Instruments;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

/// Bucket bounds for the hook's own overhead, in seconds: 5 µs to 100 ms.
const DURATION_BOUNDS: [f64; 14] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1,
];
/// Bucket bounds for trust scores.
const TRUST_BOUNDS: [f64; 10] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0];
/// Bucket bounds for chain depth.
const DEPTH_BOUNDS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

pub(crate) struct Hook {
    decisions: Counter<u64>,
    duration: Histogram<f64>,
    trust: Histogram<u64>,
    entries: Histogram<u64>,
}

static HOOK: Instruments<Hook> = Instruments::new(|meter: &Meter| {
    Hook {
    decisions: meter
        .u64_counter("kest.decisions")
        .with_description("Policy decisions on protected calls")
        .with_unit("{decision}")
        .build(),
    duration: meter
        .f64_histogram("kest.call.duration")
        .with_description("The hook's own time per protected call: authorizing, signing, appending, not the operation")
        .with_unit("s")
        .with_boundaries(DURATION_BOUNDS.to_vec())
        .build(),
    trust: meter
        .u64_histogram("kest.entry.trust_score")
        .with_description("Trust scores of the entries recorded")
        .with_unit("1")
        .with_boundaries(TRUST_BOUNDS.to_vec())
        .build(),
    entries: meter
        .u64_histogram("kest.passport.entries")
        .with_description("Passport length after each recorded call")
        .with_unit("{entry}")
        .with_boundaries(DEPTH_BOUNDS.to_vec())
        .build(),
}
});

/// The attribute values of one call site, built when it is protected.
#[derive(Debug, Clone)]
pub(crate) struct CallAttributes {
    operation: KeyValue,
    policy: KeyValue,
}

impl CallAttributes {
    pub(crate) fn new(operation: &str, policies: &[String]) -> Self {
        Self {
            operation: KeyValue::new("kest.operation", shared(operation)),
            policy: KeyValue::new("kest.policy", shared(&policies.join(","))),
        }
    }
}

/// A string value whose clones share one allocation.
fn shared(text: &str) -> opentelemetry::StringValue {
    opentelemetry::StringValue::from(std::sync::Arc::<str>::from(text))
}

/// Records an allowed, recorded call.
pub(crate) fn allowed(
    call: &CallAttributes,
    engine: &'static str,
    overhead: Duration,
    trust: u8,
    depth: usize,
) {
    let built = HOOK.get();
    let hook = &built.instruments;
    let decision = KeyValue::new("kest.decision", "allow");
    hook.decisions.add(
        1,
        &[
            decision.clone(),
            call.policy.clone(),
            KeyValue::new("kest.policy.tier", "function"),
            KeyValue::new("kest.engine", engine),
        ],
    );
    hook.duration
        .record(overhead.as_secs_f64(), &[call.operation.clone(), decision]);
    hook.trust.record(u64::from(trust), &[]);
    hook.entries
        .record(u64::try_from(depth).unwrap_or(u64::MAX), &[]);
}

/// Records a call refused before it ran.
pub(crate) fn refused(
    call: &CallAttributes,
    engine: &'static str,
    overhead: Duration,
    error: &AuthorizationError,
    depth: usize,
) {
    let built = HOOK.get();
    let hook = &built.instruments;
    let (decision, tier) = match error {
        AuthorizationError::Denied { tier, .. } => ("deny", tier.as_str()),
        AuthorizationError::Engine { tier, .. } => ("error", tier.as_str()),
    };
    let decision = KeyValue::new("kest.decision", decision);
    hook.decisions.add(
        1,
        &[
            decision.clone(),
            KeyValue::new("kest.policy", error.policy().to_owned()),
            KeyValue::new("kest.policy.tier", tier),
            KeyValue::new("kest.engine", engine),
        ],
    );
    hook.duration
        .record(overhead.as_secs_f64(), &[call.operation.clone(), decision]);
    hook.entries
        .record(u64::try_from(depth).unwrap_or(u64::MAX), &[]);
}
