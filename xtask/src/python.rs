//! `cargo xtask python`: builds `kest-rs` (PyO3, maturin) into a venv, runs its own tests,
//! then the `kest` package's own test suite plain, with `accelerate()` and with
//! `accelerate(strict_verify=True)`, and fails on any difference not accounted for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use xshell::{Shell, cmd};

use crate::util::{Result, ensure_venv, step, target_dir, workspace_root};

/// The package and the test dependencies its suite needs, pinned.
const PACKAGES: &[&str] = &[
    "kest[cedar,rego,aws,opa,spiffe]==0.3.0.post1",
    "hypothesis==6.170.17",
    "respx==0.23.1",
    "pytest==9.2.0",
    "pytest-asyncio==1.5.0",
    "fastapi==0.165.0",
    "moto==5.2.5",
    "maturin==1.16.0",
];

/// The venv `kest-rs` is installed into (also used by `bench --compare-python`).
pub(crate) fn venv(sh: &Shell) -> Result<PathBuf> {
    Ok(target_dir(sh)?.join("kest-python-venv"))
}

/// Creates the venv, builds the wheel in release mode and installs it. Returns the
/// interpreter.
pub(crate) fn install(sh: &Shell) -> Result<PathBuf> {
    step("python: venv with kest 0.3.0.post1 and its test dependencies");
    let venv = venv(sh)?;
    let python = ensure_venv(
        sh,
        &venv,
        "import kest, hypothesis, respx, pytest_asyncio, fastapi, moto, maturin",
        PACKAGES,
    )?;
    step("python: build the kest-rs wheel (maturin, the `wheel` profile: release with LTO)");
    let wheels = target_dir(sh)?.join("kest-python-wheels");
    if wheels.exists() {
        std::fs::remove_dir_all(&wheels)?;
    }
    let maturin = venv.join("bin").join("maturin");
    let manifest = workspace_root().join("crates/kest-python/Cargo.toml");
    cmd!(
        sh,
        "{maturin} build --locked --quiet --manifest-path {manifest} --out {wheels}"
    )
    .env("VIRTUAL_ENV", &venv)
    .run()?;
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or("maturin built no wheel")?;
    cmd!(
        sh,
        "{python} -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps {wheel}"
    )
    .run()?;
    Ok(python)
}

/// What one pytest run reported.
struct Outcome {
    passed: usize,
    failed: BTreeSet<String>,
}

fn pytest(
    sh: &Shell,
    python: &Path,
    site: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Outcome> {
    let plugin = workspace_root().join("crates/kest-python/tests/plugin");
    let kest = site.join("kest");
    let mut command = cmd!(
        sh,
        "{python} -m pytest -q -p no:cacheprovider -rfE --tb=no {args...} {kest}"
    )
    .env("PYTHONPATH", plugin)
    .ignore_status();
    for (key, value) in env {
        command = command.env(key, value);
    }
    let output = command.output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut failed = BTreeSet::new();
    let mut passed = None;
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("FAILED ")
            .or_else(|| line.strip_prefix("ERROR "))
        {
            let id = rest.split(" - ").next().unwrap_or(rest);
            // pytest prints ids relative to the working directory; keep the part from the
            // package down.
            let id = id.rsplit_once("site-packages/").map_or(id, |(_, id)| id);
            failed.insert(id.to_owned());
        }
        if line.contains(" passed")
            && (line.starts_with('=') || line.chars().next().is_some_and(|c| c.is_ascii_digit()))
        {
            passed = line.split([',', '=']).map(str::trim).find_map(|part| {
                part.strip_suffix(" passed")
                    .and_then(|n| n.trim().parse().ok())
            });
        }
    }
    let passed = passed.ok_or_else(|| format!("pytest printed no summary:\n{text}"))?;
    Ok(Outcome { passed, failed })
}

/// The strict run's accounted-for failures, from `tests/strict_differences.txt`.
fn strict_differences() -> Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(
        workspace_root().join("crates/kest-python/tests/strict_differences.txt"),
    )?;
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The task.
pub(crate) fn run(sh: &Shell) -> Result {
    let python = install(sh)?;
    step("python: kest-rs's own tests");
    let tests = workspace_root().join("crates/kest-python/tests");
    let vectors = workspace_root().join("vectors");
    cmd!(sh, "{python} -m pytest -q -p no:cacheprovider {tests}")
        .env("KEST_VECTORS_DIR", vectors)
        .run()?;
    let site = PathBuf::from(
        cmd!(
            sh,
            "{python} -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])'"
        )
        .read()?,
    );
    step("python: the kest package's own suite (plain, accelerated, strict)");
    let plain = pytest(sh, &python, &site, &[], &[])?;
    let fast = pytest(sh, &python, &site, &["-p", "kest_rs_accelerate"], &[])?;
    let strict = pytest(
        sh,
        &python,
        &site,
        &["-p", "kest_rs_accelerate"],
        &[("KEST_RS_STRICT_VERIFY", "1")],
    )?;
    for (name, outcome) in [
        ("plain", &plain),
        ("accelerate()", &fast),
        ("accelerate(strict_verify=True)", &strict),
    ] {
        println!(
            "kest 0.3.0.post1 suite, {name}: {} passed, {} failed",
            outcome.passed,
            outcome.failed.len()
        );
        for id in &outcome.failed {
            println!("    failed: {id}");
        }
    }
    let mut problems = Vec::new();
    let new: Vec<_> = fast.failed.difference(&plain.failed).collect();
    if !new.is_empty() || fast.passed < plain.passed {
        problems.push(format!(
            "accelerate() fails tests that pass plain: {new:?} ({} passed against {})",
            fast.passed, plain.passed
        ));
    }
    let expected: BTreeSet<String> = plain
        .failed
        .union(&strict_differences()?)
        .cloned()
        .collect();
    if strict.failed != expected {
        problems.push(format!(
            "the strict run's failures differ from tests/strict_differences.txt: unexpected {:?}, missing {:?}",
            strict.failed.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&strict.failed).collect::<Vec<_>>()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}
