//! OpenTelemetry metrics: the claim-check and ingress-verification counters of this crate,
//! and [`Instruments`], the instrument cache the `kest` facade uses for its own.
//!
//! Measurements go to the global meter provider, whatever it is when they are made:
//! nothing is exported until an application installs one (`kest::telemetry::init`).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use opentelemetry::metrics::{Counter, Meter, MeterProvider};
use opentelemetry::{InstrumentationScope, KeyValue};

/// The instrumentation scope of Kest's metrics, as of its spans.
pub const SCOPE: &str = "kest.core";

/// Instruments built from the global meter provider, and rebuilt when a new provider is
/// installed (instruments made from the no-op provider that stands in before one is
/// installed would stay silent forever). Getting them costs a read lock and two atomic
/// operations.
pub struct Instruments<T> {
    build: fn(&Meter) -> T,
    slot: ArcSwapOption<Built<T>>,
}

/// Instruments and the provider they came from.
pub struct Built<T> {
    provider: Arc<dyn MeterProvider + Send + Sync>,
    /// The instruments.
    pub instruments: T,
}

impl<T> std::fmt::Debug for Instruments<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instruments").finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for Built<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built").finish_non_exhaustive()
    }
}

impl<T> Instruments<T> {
    /// A cache that makes its instruments with `build`.
    #[must_use]
    pub const fn new(build: fn(&Meter) -> T) -> Self {
        Self {
            build,
            slot: ArcSwapOption::const_empty(),
        }
    }

    /// The instruments of the current global meter provider.
    pub fn get(&self) -> Arc<Built<T>> {
        let provider = opentelemetry::global::meter_provider();
        if let Some(built) = self.slot.load_full()
            && Arc::ptr_eq(&built.provider, &provider)
        {
            return built;
        }
        let meter = provider.meter_with_scope(
            InstrumentationScope::builder(SCOPE)
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        let built = Arc::new(Built {
            instruments: (self.build)(&meter),
            provider,
        });
        self.slot.store(Some(Arc::clone(&built)));
        built
    }
}

struct Propagation {
    claim_checks: Counter<u64>,
    failures: Counter<u64>,
}

static INSTRUMENTS: Instruments<Propagation> = Instruments::new(|meter| Propagation {
    claim_checks: meter
        .u64_counter("kest.claim_check.operations")
        .with_description("Claim-check store operations: passports put and got")
        .with_unit("{operation}")
        .build(),
    failures: verification_failures(meter),
});

/// The `kest.verification.failures` counter on `meter`: the facade builds the same one.
#[must_use]
pub fn verification_failures(meter: &Meter) -> Counter<u64> {
    meter
        .u64_counter("kest.verification.failures")
        .with_description("Passports refused because they did not verify")
        .with_unit("{failure}")
        .build()
}

/// Counts one claim-check operation: `put` or `get`, with its outcome.
pub(crate) fn claim_check(operation: &'static str, outcome: &'static str) {
    INSTRUMENTS.get().instruments.claim_checks.add(
        1,
        &[
            KeyValue::new("kest.operation", operation),
            KeyValue::new("kest.outcome", outcome),
        ],
    );
}

/// Counts one inbound passport refused, by cause.
pub(crate) fn verification_failed(cause: &'static str) {
    INSTRUMENTS
        .get()
        .instruments
        .failures
        .add(1, &[KeyValue::new("kest.cause", cause)]);
}
