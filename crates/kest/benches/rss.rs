//! Peak resident memory over 10,000 protected calls, in a process of its own.
//!
//! Two shapes: a service (each call in its own flow, as requests are), and one pipeline
//! whose passport grows to 10,000 entries. Prints one line per shape with the peak RSS
//! (`VmHWM`) in MiB, for `cargo xtask bench` to report.
#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    reason = "a measurement binary"
)]

use std::sync::Arc;

use kest::{Call, Flow, Kest, Values};
use kest_policy::CedarEngine;

const CALLS: usize = 10_000;

/// The peak either shape may reach, in MiB: 20 MB for a service, 20 MiB for the
/// 10,000-entry pipeline. `cargo xtask bench` fails when one is exceeded.
fn target_mib(shape: &str) -> f64 {
    if shape == "pipeline" {
        20.0
    } else {
        20.0e6 / 1_048_576.0
    }
}

fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

fn main() {
    // Criterion passes `--bench`; nothing to parse.
    let shape = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "service".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let kest = Kest::builder()
        .identity(Arc::new(
            kest_identity::MockIdentity::new("spiffe://kest.bench/rss").expect("identity"),
        ))
        .engine(Arc::new(
            CedarEngine::builder()
                .policy_source(
                    "rss",
                    "permit (principal, action == Action::\"invoke\", resource);",
                )
                .build()
                .expect("engine"),
        ))
        .build()
        .expect("kest");
    let hook = kest
        .protect(Call::new("step").policy("invoke"))
        .expect("hook");
    let before = peak_rss_mib();
    let resident_before = status_mib("VmRSS:");
    let mut jws_bytes = 0;
    runtime.block_on(async {
        if shape == "pipeline" {
            let flow = Flow::new();
            flow.scope(async {
                for _ in 0..CALLS {
                    hook.run(Values::new(), async {}).await.expect("allowed");
                }
            })
            .await;
            let passport = flow.passport();
            assert_eq!(passport.len(), CALLS);
            jws_bytes = passport
                .entries()
                .iter()
                .map(|e| e.jws().len())
                .sum::<usize>();
        } else {
            for _ in 0..CALLS {
                Flow::new()
                    .scope(hook.run(Values::new(), async {}))
                    .await
                    .expect("allowed");
            }
        }
    });
    println!(
        "rss/{shape}: peak {:.1} MiB after {CALLS} calls (peak {:.1} MiB before them)",
        peak_rss_mib(),
        before
    );
    println!(
        "rss/{shape}: resident {:.1} MiB after the calls ({resident_before:.1} MiB before them)",
        status_mib("VmRSS:")
    );
    let peak = peak_rss_mib();
    let target = target_mib(&shape);
    let verdict = if peak <= target { "met" } else { "NOT MET" };
    println!("rss/{shape}: target peak <= {target:.1} MiB: {verdict}");
    if jws_bytes > 0 {
        #[allow(
            clippy::cast_precision_loss,
            reason = "a size in MiB, printed to one decimal"
        )]
        let mib = jws_bytes as f64 / 1_048_576.0;
        println!("rss/{shape}: the entries' JWS text alone is {mib:.1} MiB");
    }
    if peak > target {
        std::process::exit(1);
    }
}
