//! `cargo xtask soak`: the multi-hop services under steady load for minutes, with inbound
//! verification on and passports going by claim check through the real Redis, while the
//! resident memory of every process is sampled each second. It passes when no chain
//! breaks and memory after warm-up grows by less than 5 %.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xshell::{Shell, cmd};

use crate::services;
use crate::util::{Result, step, target_dir};

/// Passports larger than this go by claim check, so that Redis carries most of them.
const INLINE_THRESHOLD: &str = "256";
/// Concurrent clients, and the requests a second they send in all: a fixed pace below
/// what 2 cores serve (300 to 450 a second), so that the load, and the claims alive in
/// Redis, do not change when other work on the machine starts or stops.
const CLIENTS: &str = "8";
const RATE: &str = "250";
/// Largest growth of resident memory after warm-up that passes.
const MAX_GROWTH: f64 = 0.05;
/// How long a claim-checked passport stays in Redis. A claim only has to outlive the
/// request that carries it (milliseconds here); the default, 300 s, makes Redis hold
/// five minutes of traffic, over a million passports at this rate, and a deployment
/// sizes it to its rate as this one does. Redis grows until the first claims expire, so
/// warm-up lasts at least this long.
const CLAIM_TTL_SECONDS: u64 = 60;

/// The resident set of `pid` in KiB, from `/proc`.
fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// The median of the samples between `from` and `to` (fractions of the run).
fn median(samples: &[u64], from: f64, to: f64) -> u64 {
    let len = samples.len() as f64;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "fractions of a sample count"
    )]
    let (start, end) = ((len * from) as usize, ((len * to) as usize).max(1));
    let mut window: Vec<u64> = samples
        .get(start..end.min(samples.len()))
        .unwrap_or_default()
        .to_vec();
    window.sort_unstable();
    window.get(window.len() / 2).copied().unwrap_or(0)
}

/// What one process did over the run.
struct Sampled {
    name: &'static str,
    samples: Vec<u64>,
}

impl Sampled {
    /// RSS after warm-up (the median of the tenth of the run that starts at `warm_from`)
    /// and at the end (the median of its last tenth), and the growth between them.
    fn growth(&self, warm_from: f64) -> (u64, u64, f64) {
        let warm = median(&self.samples, warm_from, warm_from + 0.1);
        let end = median(&self.samples, 0.9, 1.0);
        #[expect(clippy::cast_precision_loss, reason = "a ratio of memory sizes")]
        let growth = if warm == 0 {
            f64::INFINITY
        } else {
            (end as f64 - warm as f64) / warm as f64
        };
        (warm, end, growth)
    }
}

/// The task.
pub(crate) fn run(sh: &Shell, minutes: u32) -> Result {
    step("soak: services (Redis)");
    let env = services::start(sh)?;
    let redis = env
        .iter()
        .find(|(key, _)| key == "KEST_REDIS_URL")
        .map(|(_, value)| value.clone())
        .ok_or("services gave no Redis")?;
    step("soak: build multi_hop (release, the same build as `chaos`)");
    cmd!(
        sh,
        "cargo build --locked --release -p kest-examples --features chaos --example multi_hop"
    )
    .run()?;
    let binary = target_dir(sh)?.join("release/examples/multi_hop");
    let redis_pid: u32 = std::fs::read_to_string(services::state_dir(sh)?.join("redis.pid"))?
        .trim()
        .parse()?;
    let seconds = u64::from(minutes) * 60;
    step(&format!(
        "soak: {minutes} min, {CLIENTS} clients sending {RATE} requests/s, inbound verification on, claim checks in Redis above {INLINE_THRESHOLD} bytes, kept {CLAIM_TTL_SECONDS} s"
    ));
    let out = target_dir(sh)?.join("kest-soak.log");
    let child = Command::new(&binary)
        .args([
            "--load",
            "--clients",
            CLIENTS,
            "--seconds",
            &seconds.to_string(),
            "--redis",
            &redis,
            "--inline-threshold",
            INLINE_THRESHOLD,
            "--claim-ttl",
            &CLAIM_TTL_SECONDS.to_string(),
            "--rate",
            RATE,
        ])
        .stdout(Stdio::from(std::fs::File::create(&out)?))
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id();
    let mut hops = Sampled {
        name: "multi_hop (gateway and 3 hops)",
        samples: Vec::new(),
    };
    let mut store = Sampled {
        name: "redis-server",
        samples: Vec::new(),
    };
    let started = Instant::now();
    let mut child = child;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Some(kib) = rss_kib(pid) {
            hops.samples.push(kib);
        }
        if let Some(kib) = rss_kib(redis_pid) {
            store.samples.push(kib);
        }
        if started.elapsed() > Duration::from_secs(seconds + 120) {
            child.kill()?;
            return Err("the soak run did not end: a hang".into());
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let report = std::fs::read_to_string(&out)?;
    println!("{}", report.trim());
    // Warm-up: a tenth of the run, and for both processes until the first claims have
    // expired (a minute after the TTL), when the run is long enough for that.
    #[expect(clippy::cast_precision_loss, reason = "a fraction of the run")]
    let after_ttl = (CLAIM_TTL_SECONDS + 60) as f64 / seconds as f64;
    let warm_from = if after_ttl <= 0.8 {
        after_ttl.max(0.1)
    } else {
        0.1
    };
    if after_ttl > 0.8 {
        println!(
            "(a run this short ends before the first claims expire: Redis's growth is reported, not judged; run {} minutes or more)",
            (CLAIM_TTL_SECONDS + 60) * 5 / 4 / 60 + 1
        );
    }
    report_growth(
        &[hops, store],
        after_ttl <= 0.8,
        warm_from,
        status.success(),
        &out,
    )
}

fn report_growth(
    processes: &[Sampled],
    judge_store: bool,
    warm_from: f64,
    succeeded: bool,
    out: &Path,
) -> Result {
    println!("\n| process | RSS after warm-up | RSS at the end | growth |");
    println!("|---|---|---|---|");
    let mut problems = Vec::new();
    for process in processes {
        let (warm, end, growth) = process.growth(warm_from);
        if process.name == "redis-server" && !judge_store {
            println!(
                "| {} (not judged) | {:.1} MiB | {:.1} MiB | {:+.1} % |",
                process.name,
                warm as f64 / 1024.0,
                end as f64 / 1024.0,
                growth * 100.0
            );
            continue;
        }
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {:+.1} % |",
            process.name,
            warm as f64 / 1024.0,
            end as f64 / 1024.0,
            growth * 100.0
        );
        if growth >= MAX_GROWTH {
            problems.push(format!(
                "{}: resident memory grew {:.1} % after warm-up",
                process.name,
                growth * 100.0
            ));
        }
    }
    if !succeeded {
        problems.push(format!(
            "multi_hop failed or counted broken chains; see {}",
            out.display()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}
