//! OpenTelemetry metrics of this crate: `kest.claim_check.operations`, and the
//! `kest.verification.failures` of inbound baggage that fails before a passport reaches
//! the verifier (which counts its own). The instrument cache is
//! [`kest_passport::metrics::Instruments`], re-exported here for the layers above.

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;

pub use kest_passport::metrics::{Built, Instruments, SCOPE, verification_failed};

static CLAIM_CHECKS: Instruments<Counter<u64>> = Instruments::new(|meter| {
    meter
        .u64_counter("kest.claim_check.operations")
        .with_description("Claim-check store operations: passports put and got")
        .with_unit("{operation}")
        .build()
});

/// Counts one claim-check operation: `put` or `get`, with its outcome.
pub(crate) fn claim_check(operation: &'static str, outcome: &'static str) {
    CLAIM_CHECKS.get().instruments.add(
        1,
        &[
            KeyValue::new("kest.operation", operation),
            KeyValue::new("kest.outcome", outcome),
        ],
    );
}
