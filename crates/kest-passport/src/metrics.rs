//! OpenTelemetry metrics: the `kest.verification.failures` counter, which every verifier
//! adds to, and [`Instruments`], the instrument cache the layers above use for their own.
//!
//! Measurements go to the global meter provider, whatever it is when they are made:
//! nothing is exported until an application installs one (`kest::telemetry::init`), and
//! until then a measurement costs a read lock and a few atomic operations.

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

static FAILURES: Instruments<Counter<u64>> = Instruments::new(|meter| {
    meter
        .u64_counter("kest.verification.failures")
        .with_description(
            "Passports, baggage members and entries refused because they did not verify",
        )
        .with_unit("{failure}")
        .build()
});

/// Counts one verification failure, by its fixed cause name ([`crate::PassportError::kind`]
/// or a propagation error's): `kest.verification.failures` with `kest.cause`. The
/// [`crate::Verifier`] counts its own failures; callers count failures that happen
/// before a passport reaches it.
pub fn verification_failed(cause: &'static str) {
    FAILURES
        .get()
        .instruments
        .add(1, &[KeyValue::new("kest.cause", cause)]);
}
