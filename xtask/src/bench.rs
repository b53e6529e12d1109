//! `cargo xtask bench`: the criterion benchmarks, peak RSS, and the comparison with the
//! Python package.

use xshell::{Shell, cmd};

use crate::util::{Result, ensure_venv, step, target_dir, workspace_root};

/// The criterion benchmarks (arguments after `--` go to criterion), peak RSS over 10,000
/// calls, and with `compare_python` the Python package's figures and the ratios.
pub(crate) fn run(sh: &Shell, compare_python: bool, extra: &[String]) -> Result {
    step("bench");
    for (package, bench, features) in [
        ("kest-passport", "core", ""),
        ("kest-policy", "engines", ""),
        ("kest", "hook", "telemetry"),
        ("kest-cli", "audit", ""),
        ("kest-mcp", "mcp", ""),
    ] {
        cmd!(
            sh,
            "cargo bench --locked -p {package} --features={features} --bench {bench} -- {extra...}"
        )
        .run()?;
    }
    step("bench: peak RSS over 10,000 calls");
    for shape in ["service", "pipeline"] {
        cmd!(sh, "cargo bench --locked -p kest --bench rss -- {shape}").run()?;
    }
    if compare_python {
        compare_with_python(sh)?;
        compare_binding(sh)?;
    }
    Ok(())
}

/// The Python-binding section: the pure-Python package against `kest_rs` on the same
/// machine, with the targets of the binding.
pub(crate) fn compare_binding(sh: &Shell) -> Result {
    let python = crate::python::install(sh)?;
    step("bench: the Python package against kest_rs (the Rust core through PyO3)");
    let script = workspace_root().join("crates/kest-python/benches/binding_bench.py");
    let output = cmd!(sh, "{python} {script}").read()?;
    let results: serde_json::Value = serde_json::from_str(output.trim())?;
    let figure = |name: &str, side: &str| -> Result<f64> {
        results
            .pointer(&format!("/{name}/{side}"))
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("the binding benchmark gave no {name}/{side}").into())
    };
    println!("\n| measurement | pure Python µs | kest_rs µs | kest_rs is faster by | target |");
    println!("|---|---|---|---|---|");
    for (label, name, target) in [
        ("sign_entry", "sign_entry", "≥ 2.5×"),
        (
            "decorator, depth 0, accelerate()",
            "decorator_depth_0",
            "≥ 1.3×",
        ),
        (
            "decorator, depth 50, accelerate()",
            "decorator_depth_50",
            "",
        ),
        ("verify 100 entries", "verify_100", ""),
        ("verify 1,000 entries", "verify_1000", "≥ 4×"),
        ("baggage pack, 10 entries", "baggage_pack_10", ""),
        ("baggage pack, 50 entries", "baggage_pack_50", ""),
        ("baggage unpack, 10 entries", "baggage_unpack_10", ""),
        ("baggage unpack, 50 entries", "baggage_unpack_50", ""),
    ] {
        let (python, rust) = (figure(name, "python")?, figure(name, "rust")?);
        println!(
            "| {label} | {python:.1} | {rust:.1} | {:.2}× | {target} |",
            python / rust
        );
    }
    let one = figure("sign_throughput", "one_thread")?;
    let two = figure("sign_throughput", "two_threads")?;
    println!(
        "| sign_entry throughput, 1 → 2 threads | | {one:.0}/s → {two:.0}/s | {:.2}× | ≥ 1.7× |",
        two / one
    );
    Ok(())
}

/// Runs the Python package's equivalents and prints each measurement's ratio.
pub(crate) fn compare_with_python(sh: &Shell) -> Result {
    step("bench: the Python package (kest==0.3.0.post1) on the same machine");
    let venv = target_dir(sh)?.join("kest-bench-venv");
    let python = ensure_venv(sh, &venv, "import kest", &["kest==0.3.0.post1"])?;
    let script = workspace_root().join("crates/kest/benches/python/hook_bench.py");
    let output = cmd!(sh, "{python} {script}").read()?;
    let python_us: std::collections::BTreeMap<String, f64> = serde_json::from_str(output.trim())?;
    let criterion = target_dir(sh)?.join("criterion");
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
