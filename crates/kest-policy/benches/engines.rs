//! Decision latency of the in-process engines, run by `cargo xtask bench`.
//!
//! Every figure includes building the evaluation context, as the hook does for each call.
//! Two policies per engine: a function-level threshold (`subject.trust_score >= 50`), the
//! typical policy; and the library's `kest/clearance` model, which reads five members and
//! calls helper functions. The threshold is also measured behind the decision cache,
//! cold (a miss: key, evaluation, insert) and warm (a hit).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "benchmarks report failures by panicking, and their setup needs no docs"
)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kest_policy::{
    CachedEngine, DecisionCache, EvaluationContext, PolicyEngine, PolicyTier, library,
};
use kest_trust::{TaintSet, TrustScore};
use serde_json::json;

const CEDAR_THRESHOLD: &str = r#"permit (principal, action == Action::"threshold", resource)
when { context.subject.trust_score >= 50 };"#;
const REGO_THRESHOLD: &str = "package threshold\n\
    default allow := false\n\
    allow if input.subject.trust_score >= 50\n";

/// In-process engines never wait, so their futures are ready on the first poll.
fn ready<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// A context as the hook builds it for a protected call.
fn context(policy: &str) -> EvaluationContext {
    EvaluationContext::builder("spiffe://bench.example/agents/ops")
        .user("alice")
        .agent("agent-007")
        .task("task:rotate")
        .trust_score(TrustScore::new(85).unwrap())
        .taints(["unverified"].into_iter().collect::<TaintSet>())
        .resource_id("cluster-7")
        .resource_attribute("owner", "team-a")
        .origin("internal")
        .policy_names(vec![policy.to_owned()])
        .policy_tier(PolicyTier::Function)
        .value("country", "NL")
        .value("restricted_countries", json!(["KP", "IR"]))
        .value("operation_kind", "read")
        .value("role", "engineer")
        .build()
        .unwrap()
}

fn engines(c: &mut Criterion) {
    let cedar = library::cedar_builder()
        .policy_source("threshold.cedar", CEDAR_THRESHOLD)
        .build()
        .unwrap();
    let rego = library::rego_builder()
        .policy_source("threshold.rego", REGO_THRESHOLD)
        .build()
        .unwrap();
    for policy in ["threshold", "kest/clearance"] {
        assert!(cedar.decide(policy, &context(policy)).unwrap().allow);
        assert!(rego.decide(policy, &context(policy)).unwrap().allow);
    }

    let mut group = c.benchmark_group("decision");
    group.bench_function("context_build", |b| {
        b.iter(|| black_box(context("threshold")))
    });
    group.bench_function("cedar_threshold", |b| {
        b.iter(|| {
            cedar
                .decide(black_box("threshold"), &context("threshold"))
                .unwrap()
        });
    });
    group.bench_function("rego_threshold", |b| {
        b.iter(|| {
            rego.decide(black_box("threshold"), &context("threshold"))
                .unwrap()
        });
    });
    group.bench_function("cedar_model_clearance", |b| {
        b.iter(|| {
            cedar
                .decide(black_box("kest/clearance"), &context("kest/clearance"))
                .unwrap()
        });
    });
    group.bench_function("rego_model_clearance", |b| {
        b.iter(|| {
            rego.decide(black_box("kest/clearance"), &context("kest/clearance"))
                .unwrap()
        });
    });
    group.finish();

    let mut group = c.benchmark_group("cached");
    cached(&mut group, "cedar", CachedEngine::new(cedar, cache()));
    cached(&mut group, "rego", CachedEngine::new(rego, cache()));
    group.finish();
}

fn cache() -> Arc<DecisionCache> {
    Arc::new(DecisionCache::new(10_000, Duration::from_secs(60)))
}

fn cached<E: PolicyEngine>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    engine: CachedEngine<E>,
) {
    group.bench_function(format!("{name}_threshold_cold"), |b| {
        b.iter_batched(
            || engine.cache().invalidate(),
            |()| ready(engine.evaluate("threshold", &context("threshold"))).unwrap(),
            BatchSize::PerIteration,
        );
    });
    group.bench_function(format!("{name}_threshold_warm"), |b| {
        ready(engine.evaluate("threshold", &context("threshold"))).unwrap();
        b.iter(|| ready(engine.evaluate(black_box("threshold"), &context("threshold"))).unwrap());
    });
    let stats = engine.cache().stats();
    assert!(stats.hits > 0 && stats.misses > 0, "{stats:?}");
}

criterion_group!(benches, engines);
criterion_main!(benches);
