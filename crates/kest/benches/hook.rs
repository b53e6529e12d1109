//! The verification hook's overhead and throughput, and baggage pack/unpack.
//!
//! - `hook/overhead/depth_N`: one protected call (in-process Cedar, Ed25519 signing,
//!   entry built, signed and appended, span emitted to the no-op tracer) on a passport
//!   already N entries deep; the operation itself does nothing.
//! - `hook/overhead_allow_all/depth_N`: the same with an allow-all engine, the setting
//!   the Python comparison uses for the Python package's decorator.
//! - `hook/latency/depth_50`: the same call timed one by one; after criterion's figures
//!   it prints the p50, p99 and p99.9 of every call it timed (the p99 target).
//! - `hook/throughput/threads_T`: 64 concurrent flows making 32 calls each on a
//!   multi-threaded runtime with T workers; the time per call.
//! - `baggage/pack_N` and `baggage/unpack_N`: a passport of N entries into a `baggage`
//!   header and back (inline or compressed tier), verified on the way in against the
//!   signer's key; `unpack` meets entries this process verified before (a hop's usual
//!   case), `unpack_new` checks every signature.

#![allow(
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "a measurement binary"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kest::{Call, Flow, Kest, Protected, Values};
use kest_crypto::{KeySigner, SigningKey};
use kest_passport::{EntryBuilder, Passport};
use kest_policy::CedarEngine;
use kest_propagation::{Baggage, Caller, PassportCodec};
use kest_trust::WeakestLink;

const W: &str = "spiffe://kest.bench/agent";
const POLICY: &str = r#"
@id("bench/threshold")
permit (principal, action == Action::"invoke", resource)
when { context.subject.trust_score >= 50 };
"#;

fn hook() -> Protected {
    hook_with(Arc::new(
        CedarEngine::builder()
            .policy_source("bench", POLICY)
            .build()
            .expect("engine"),
    ))
}

fn hook_with(engine: Arc<dyn kest_policy::PolicyEngine>) -> Protected {
    let kest = Kest::builder()
        .identity(Arc::new(
            kest_identity::MockIdentity::new(W).expect("identity"),
        ))
        .engine(engine)
        .build()
        .expect("kest");
    kest.protect(Call::new("step").policy("invoke").origin("internal"))
        .expect("hook")
}

fn passport_of(depth: usize) -> Passport {
    let signer = KeySigner::new(SigningKey::from_ed25519_seed(&[1; 32]).expect("key"), W);
    let mut passport = Passport::new();
    for i in 0..depth {
        passport
            .append(
                EntryBuilder::new(format!("step{i}")).principal(W),
                &signer,
                &WeakestLink,
            )
            .expect("append");
    }
    passport
}

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hook = hook();
    let mut group = c.benchmark_group("hook/overhead");
    for depth in [0_usize, 10, 50, 1000] {
        let base = passport_of(depth);
        group.bench_with_input(BenchmarkId::new("depth", depth), &depth, |b, _| {
            b.iter(|| {
                // A fork of the base: every iteration appends at the same depth.
                let flow = Flow::with_passport(base.clone(), Caller::default());
                runtime
                    .block_on(flow.scope(hook.run(Values::new(), async {})))
                    .expect("allowed");
            });
        });
    }
    group.finish();
    // The same with an allow-all engine, as the Python comparison runs its decorator.
    let mock = hook_with(Arc::new(kest_policy::MockEngine::allow_all()));
    let mut group = c.benchmark_group("hook/overhead_allow_all");
    for depth in [0_usize, 50] {
        let base = passport_of(depth);
        group.bench_with_input(BenchmarkId::new("depth", depth), &depth, |b, _| {
            b.iter(|| {
                let flow = Flow::with_passport(base.clone(), Caller::default());
                runtime
                    .block_on(flow.scope(mock.run(Values::new(), async {})))
                    .expect("allowed");
            });
        });
    }
    group.finish();
}

/// Times each call on its own, so that tail latency (p99) can be reported next to
/// criterion's per-iteration estimate.
fn latency(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hook = hook();
    let base = passport_of(50);
    let mut samples: Vec<Duration> = Vec::new();
    c.bench_function("hook/latency/depth_50", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let flow = Flow::with_passport(base.clone(), Caller::default());
                let start = Instant::now();
                runtime
                    .block_on(flow.scope(hook.run(Values::new(), async {})))
                    .expect("allowed");
                let took = start.elapsed();
                total += took;
                samples.push(took);
            }
            total
        });
    });
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(rank).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    println!(
        "hook/latency/depth_50: p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs over {} calls",
        at(0.50),
        at(0.99),
        at(0.999),
        samples.len()
    );
}

fn throughput(c: &mut Criterion) {
    const FLOWS: u64 = 64;
    const CALLS: u64 = 32;
    let hook = hook();
    let mut group = c.benchmark_group("hook/throughput");
    group.throughput(Throughput::Elements(FLOWS * CALLS));
    group.sample_size(20);
    for threads in [1_usize, 2] {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("runtime");
        group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    runtime.block_on(async {
                        let mut tasks = Vec::new();
                        for _ in 0..FLOWS {
                            let hook = hook.clone();
                            tasks.push(tokio::spawn(async move {
                                let flow = Flow::new();
                                flow.scope(async {
                                    for _ in 0..CALLS {
                                        hook.run(Values::new(), async {}).await.expect("allowed");
                                    }
                                })
                                .await;
                            }));
                        }
                        for task in tasks {
                            task.await.expect("task");
                        }
                    });
                    total += started.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

fn baggage(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let key = SigningKey::from_ed25519_seed(&[1; 32]).expect("key");
    let trusted = kest_crypto::StaticKeyResolver::new().with_key(W, key.verifying_key().clone());
    let store: Arc<dyn kest_propagation::ClaimStore> =
        Arc::new(kest_propagation::MemoryClaimStore::default());
    let codec = PassportCodec::new()
        .store(Arc::clone(&store))
        .ingress(kest_propagation::Ingress::verify(trusted.clone()));
    let caller = Caller {
        user: Some("alice".into()),
        ..Caller::default()
    };
    let mut group = c.benchmark_group("baggage");
    for depth in [10_usize, 50] {
        let passport = passport_of(depth);
        group.bench_with_input(BenchmarkId::new("pack", depth), &depth, |b, _| {
            b.iter(|| {
                let mut baggage = Baggage::new();
                runtime
                    .block_on(codec.write(&mut baggage, &passport, &caller))
                    .expect("pack");
                baggage.to_header()
            });
        });
        let mut baggage = Baggage::new();
        runtime
            .block_on(codec.write(&mut baggage, &passport, &caller))
            .expect("pack");
        let header = baggage.to_header();
        group.bench_with_input(BenchmarkId::new("unpack", depth), &depth, |b, _| {
            b.iter(|| {
                let parsed = Baggage::parse(&header, &Default::default()).expect("parse");
                runtime
                    .block_on(codec.read(&parsed))
                    .expect("unpack")
                    .0
                    .expect("passport")
                    .len()
            });
        });
        group.bench_with_input(BenchmarkId::new("unpack_new", depth), &depth, |b, _| {
            b.iter_batched(
                || {
                    PassportCodec::new()
                        .store(Arc::clone(&store))
                        .ingress(kest_propagation::Ingress::verify(trusted.clone()))
                },
                |fresh| {
                    let parsed = Baggage::parse(&header, &Default::default()).expect("parse");
                    runtime
                        .block_on(fresh.read(&parsed))
                        .expect("unpack")
                        .0
                        .expect("passport")
                        .len()
                },
                criterion::BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// A metric exporter that drops what it is given.
struct Discard;

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for Discard {
    async fn export(
        &self,
        _: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        opentelemetry_sdk::metrics::Temporality::Cumulative
    }
}

/// The hook's metrics: the four measurements an allowed call makes (a decision counted,
/// the hook's time, the trust and the depth recorded), with no meter provider and with
/// the SDK's, then a whole call with the SDK's. The budget is 1 µs per measurement.
fn metrics(c: &mut Criterion) {
    let probe = kest::private::MetricsProbe::new("step", "invoke");
    let mut group = c.benchmark_group("metrics");
    group.bench_function("allowed_call_no_provider", |b| b.iter(|| probe.allowed()));
    // The SDK aggregating every measurement; its exporter (every 60 s, so never during
    // the run) discards.
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(opentelemetry_sdk::metrics::PeriodicReader::builder(Discard).build())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    group.bench_function("allowed_call_sdk", |b| b.iter(|| probe.allowed()));
    group.finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mock = hook_with(Arc::new(kest_policy::MockEngine::allow_all()));
    let base = passport_of(0);
    let mut group = c.benchmark_group("hook/overhead_allow_all_with_metrics");
    group.bench_with_input(BenchmarkId::new("depth", 0), &0, |b, _| {
        b.iter(|| {
            let flow = Flow::with_passport(base.clone(), Caller::default());
            runtime
                .block_on(flow.scope(mock.run(Values::new(), async {})))
                .expect("allowed");
        });
    });
    group.finish();
    let _ = provider.shutdown();
}

criterion_group!(benches, overhead, latency, throughput, baggage, metrics);
criterion_main!(benches);
