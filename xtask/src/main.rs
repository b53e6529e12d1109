//! Project automation, in Rust rather than shell: `cargo xtask <task>`.
//!
//! | task | what it does |
//! |---|---|
//! | `lint` | `cargo fmt --check`, then clippy with `-D warnings` on all targets and features |
//! | `test` | the test suite with all features, then the wire crates again without `preserve_order` |
//! | `doc` | `cargo doc` with warnings denied |
//! | `tidy` | the repository's own rules (module docs, vectors, README, changelog, docs pages) |
//! | `services` | installs and starts the real components of the live tier (`stop` stops them) |
//! | `live` | the live tier: installs what it needs, then runs the tests with `KEST_LIVE=1` |
//! | `fuzz` | a short run of every fuzz target, when `cargo fuzz` is installed |
//! | `bench` | the criterion benchmarks and peak RSS; `--compare-python` adds the Python package's figures and ratios |
//! | `load` | the multi-hop services under 32 clients for 30 s: requests/s, p50/p99, broken chains |
//! | `ci` | tidy, lint, doc, test (including the live tier), fuzz smoke: what `.ci/run` runs |
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports progress on its terminal"
)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use xshell::{Shell, cmd};

mod live;
mod services;
mod tidy;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage: cargo xtask <lint|test|doc|tidy|services [start|stop]|live|fuzz|bench [--compare-python]|load|ci>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = Shell::new().map_err(Into::into).and_then(|sh| {
        sh.change_dir(workspace_root());
        match task.as_str() {
            "lint" => lint(&sh),
            "test" => test(&sh),
            "doc" => doc(&sh),
            "tidy" => tidy::run(&workspace_root()),
            "live" => live::run(&sh),
            "fuzz" => fuzz(&sh, false),
            "bench" => bench(&sh, args.get(1..).unwrap_or_default()),
            "services" => services::run(&sh, args.get(1..).unwrap_or_default()),
            "load" => load(&sh, args.get(1..).unwrap_or_default()),
            "ci" => ci(&sh),
            other => Err(format!("unknown task `{other}`\n{USAGE}").into()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask {task}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn step(name: &str) {
    eprintln!("\n==> {name}");
}

fn lint(sh: &Shell) -> Result {
    step("fmt");
    cmd!(sh, "cargo fmt --all --check").run()?;
    step("clippy");
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets --all-features --locked -- -D warnings"
    )
    .run()?;
    Ok(())
}

fn doc(sh: &Shell) -> Result {
    step("doc");
    cmd!(
        sh,
        "cargo doc --workspace --all-features --no-deps --locked"
    )
    .env("RUSTDOCFLAGS", "-D warnings")
    .run()?;
    Ok(())
}

/// Runs the suite twice: once with every feature (which turns on serde_json's
/// `preserve_order`, as Cedar does in real builds), once for the wire crates with default
/// features (sorted maps). Canonical bytes must not depend on that.
fn test(sh: &Shell) -> Result {
    step("test (all features)");
    cmd!(sh, "cargo test --workspace --all-features --locked").run()?;
    step("test (wire crates and identity, default features)");
    cmd!(
        sh,
        "cargo test --locked -p kest-canon -p kest-passport -p kest-identity"
    )
    .run()?;
    Ok(())
}

/// A short run of every fuzz target. `install` (set by `ci`) installs cargo-fuzz when it
/// is missing; a plain `cargo xtask fuzz` asks for it instead.
fn fuzz(sh: &Shell, install: bool) -> Result {
    if cmd!(sh, "cargo fuzz --version")
        .quiet()
        .ignore_stderr()
        .read()
        .is_err()
    {
        if !install {
            return Err("`cargo fuzz` is not installed: cargo install cargo-fuzz --locked".into());
        }
        step("install cargo-fuzz");
        cmd!(sh, "cargo install cargo-fuzz --locked").run()?;
    }
    let _dir = sh.push_dir("fuzz");
    let targets = cmd!(sh, "cargo fuzz list").read()?;
    for target in targets.lines().map(str::trim).filter(|t| !t.is_empty()) {
        step(&format!("fuzz {target} (20 s)"));
        // Stable toolchains need RUSTC_BOOTSTRAP for the sanitizer flags cargo-fuzz passes.
        cmd!(
            sh,
            "cargo fuzz run {target} -- -max_total_time=20 -rss_limit_mb=2048"
        )
        .env("RUSTC_BOOTSTRAP", "1")
        .run()?;
    }
    Ok(())
}

fn bench(sh: &Shell, args: &[String]) -> Result {
    let compare_python = args.iter().any(|a| a == "--compare-python");
    let extra: Vec<&String> = args.iter().filter(|a| *a != "--compare-python").collect();
    let extra = extra.as_slice();
    step("bench");
    cmd!(
        sh,
        "cargo bench --locked -p kest-passport --bench core -- {extra...}"
    )
    .run()?;
    cmd!(
        sh,
        "cargo bench --locked -p kest-policy --bench engines -- {extra...}"
    )
    .run()?;
    cmd!(
        sh,
        "cargo bench --locked -p kest --bench hook -- {extra...}"
    )
    .run()?;
    step("bench: peak RSS over 10,000 calls");
    for shape in ["service", "pipeline"] {
        cmd!(sh, "cargo bench --locked -p kest --bench rss -- {shape}").run()?;
    }
    if compare_python {
        compare_with_python(sh)?;
    }
    Ok(())
}

/// `cargo xtask load`: the multi-hop services under 32 concurrent clients for 30 s (or
/// the `--clients` and `--seconds` given), checking every final passport; once with every
/// hop verifying its inbound passport, once with verification off, to show its cost.
fn load(sh: &Shell, args: &[String]) -> Result {
    let mut extra: Vec<String> = args.to_vec();
    if !extra.iter().any(|a| a == "--clients") {
        extra.extend(["--clients".into(), "32".into()]);
    }
    if !extra.iter().any(|a| a == "--seconds") {
        extra.extend(["--seconds".into(), "30".into()]);
    }
    for (label, mode) in [
        ("ingress verified", None),
        ("ingress not verified", Some("--insecure-unverified")),
    ] {
        step(&format!("load: multi_hop, release build, {label}"));
        let mode = mode.into_iter();
        let extra = &extra;
        cmd!(
            sh,
            "cargo run --locked --release -p kest-examples --features multi-hop --example multi_hop -- --load {extra...} {mode...}"
        )
        .run()?;
    }
    Ok(())
}

/// Runs the Python package's equivalents and prints each measurement's ratio.
fn compare_with_python(sh: &Shell) -> Result {
    step("bench: the Python package (kest==0.3.0.post1) on the same machine");
    let venv = live::target_dir(sh)?.join("kest-bench-venv");
    let python = live::ensure_venv(sh, &venv, "import kest", &["kest==0.3.0.post1"])?;
    let script = workspace_root().join("crates/kest/benches/python/hook_bench.py");
    let output = cmd!(sh, "{python} {script}").read()?;
    let python_us: std::collections::BTreeMap<String, f64> = serde_json::from_str(output.trim())?;
    let criterion = live::target_dir(sh)?.join("criterion");
    let rust_us = |path: &str| -> Result<f64> {
        let file = criterion.join(path).join("new/estimates.json");
        let estimates: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
        estimates
            .pointer("/median/point_estimate")
            .and_then(serde_json::Value::as_f64)
            .map(|ns| ns / 1000.0)
            .ok_or_else(|| format!("no median in {}", file.display()).into())
    };
    let rows = [
        (
            "hook, depth 0, allow-all engine",
            "hook_depth_0",
            "hook_overhead_allow_all/depth/0",
        ),
        (
            "hook, depth 50, allow-all engine",
            "hook_depth_50",
            "hook_overhead_allow_all/depth/50",
        ),
        (
            "hook, depth 0 (Rust with Cedar)",
            "hook_depth_0",
            "hook_overhead/depth/0",
        ),
        (
            "hook, depth 50 (Rust with Cedar)",
            "hook_depth_50",
            "hook_overhead/depth/50",
        ),
        (
            "baggage pack, 10 entries",
            "baggage_pack_10",
            "baggage/pack/10",
        ),
        (
            "baggage pack, 50 entries",
            "baggage_pack_50",
            "baggage/pack/50",
        ),
        (
            "baggage unpack, 10 entries",
            "baggage_unpack_10",
            "baggage/unpack/10",
        ),
        (
            "baggage unpack, 50 entries",
            "baggage_unpack_50",
            "baggage/unpack/50",
        ),
    ];
    println!("\n| measurement | Python µs | Rust µs | Rust is faster by |");
    println!("|---|---|---|---|");
    for (label, python_key, rust_path) in rows {
        let python = python_us
            .get(python_key)
            .copied()
            .ok_or_else(|| format!("python gave no {python_key}"))?;
        let rust = rust_us(rust_path)?;
        println!(
            "| {label} | {python:.1} | {rust:.1} | {:.1}× |",
            python / rust
        );
    }
    let one = rust_us("hook_throughput/threads/1")?;
    let two = rust_us("hook_throughput/threads/2")?;
    println!(
        "| throughput, 2 threads against 1 | | | {:.2}× |",
        one / two
    );
    Ok(())
}

fn ci(sh: &Shell) -> Result {
    tidy::run(&workspace_root())?;
    lint(sh)?;
    doc(sh)?;
    let env = live::environment(sh)?;
    step("test (all features, live tier)");
    let tested = cmd!(sh, "cargo test --workspace --all-features --locked")
        .envs(env)
        .run();
    // Stop the services whatever the outcome, so that CI leaves nothing running.
    services::stop(sh)?;
    tested?;
    step("test (wire crates and identity, default features)");
    cmd!(
        sh,
        "cargo test --locked -p kest-canon -p kest-passport -p kest-identity"
    )
    .run()?;
    fuzz(sh, true)?;
    eprintln!("\nci: all green");
    Ok(())
}
