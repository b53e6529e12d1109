//! `cargo xtask mutants [--file F]...`: mutation testing of the security core with
//! cargo-mutants, each file against its own crate's tests only (every crate is meant to be
//! usable alone, so its own tests must pin its behaviour), then a table of the scores.
//!
//! Every viable mutant counts: the run ignores `.cargo/mutants.toml`'s exclusions (that
//! file only documents mutants that cannot change behaviour, for runs of `cargo mutants`
//! by hand), so the table is the strict score.

use std::path::{Path, PathBuf};

use xshell::{Shell, cmd};

use crate::util::{Result, cargo_tool, step, target_dir, workspace_root};

/// cargo-mutants, pinned.
const CARGO_MUTANTS: (&str, &str) = ("cargo-mutants", "27.1.0");

/// The security core: parsing and verifying entries and passports, the dense form held
/// entries keep their JWS in, keys and JWS, the trust and taint rules, and verified
/// ingress.
pub(crate) const CORE: &[&str] = &[
    "crates/kest-passport/src/verify.rs",
    "crates/kest-passport/src/read.rs",
    "crates/kest-passport/src/signed.rs",
    "crates/kest-passport/src/packed.rs",
    "crates/kest-crypto/src/jws.rs",
    "crates/kest-crypto/src/keys.rs",
    "crates/kest-trust/src/taint.rs",
    "crates/kest-trust/src/score.rs",
    "crates/kest-propagation/src/ingress.rs",
];

/// One file's outcome.
struct Score {
    file: String,
    caught: u64,
    timeout: u64,
    missed: u64,
    unviable: u64,
    missed_list: Vec<String>,
}

impl Score {
    fn viable(&self) -> u64 {
        self.caught + self.timeout + self.missed
    }

    /// Percent of viable mutants that some test noticed (a timeout counts: the mutant
    /// hung a test, which the suite would report).
    #[allow(
        clippy::cast_precision_loss,
        reason = "mutant counts are small; the score is printed to one decimal"
    )]
    fn percent(&self) -> f64 {
        if self.viable() == 0 {
            return 100.0;
        }
        (self.caught + self.timeout) as f64 * 100.0 / self.viable() as f64
    }
}

/// The package that owns `file`: `crates/<package>/...`.
fn package_of(file: &str) -> Result<&str> {
    file.strip_prefix("crates/")
        .and_then(|rest| rest.split('/').next())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| format!("{file} is not under crates/<package>/").into())
}

fn count(outcomes: &serde_json::Value, key: &str) -> u64 {
    outcomes
        .get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_default()
}

fn run_one(sh: &Shell, tool: &Path, file: &str, out: &Path, target: &Path) -> Result<Score> {
    let package = package_of(file)?;
    step(&format!("mutants: {file} (tests of {package})"));
    std::fs::create_dir_all(out)?;
    // cargo-mutants exits non-zero when a mutant is missed; the outcome file says which.
    let _ = cmd!(
        sh,
        "{tool} mutants --no-config --package {package} --test-package {package} --file {file} --all-features --no-shuffle --output {out}"
    )
    // A target directory of its own: the mutated copies of the workspace build with the
    // same artifact names as the real one, and would overwrite its up-to-date outputs.
    .env("CARGO_TARGET_DIR", target)
    .run();
    let dir = out.join("mutants.out");
    let text = std::fs::read_to_string(dir.join("outcomes.json"))
        .map_err(|error| format!("{file}: no outcomes from cargo-mutants: {error}"))?;
    let outcomes: serde_json::Value = serde_json::from_str(&text)?;
    let missed_list = std::fs::read_to_string(dir.join("missed.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    Ok(Score {
        file: file.to_owned(),
        caught: count(&outcomes, "caught"),
        timeout: count(&outcomes, "timeout"),
        missed: count(&outcomes, "missed"),
        unviable: count(&outcomes, "unviable"),
        missed_list,
    })
}

/// Runs cargo-mutants on `files` (the security core when empty) and prints the table;
/// fails when any file scores under 90 %.
pub(crate) fn run(sh: &Shell, files: &[String]) -> Result {
    let tool = cargo_tool(
        sh,
        CARGO_MUTANTS.0,
        CARGO_MUTANTS.1,
        "cargo-mutants",
        &["mutants", "--version"],
    )?;
    let files: Vec<String> = if files.is_empty() {
        CORE.iter().map(|f| (*f).to_owned()).collect()
    } else {
        files.to_vec()
    };
    let _dir = sh.push_dir(workspace_root());
    let base: PathBuf = target_dir(sh)?.join("kest-mutants");
    let target = base.join("target");
    let mut scores = Vec::new();
    for file in &files {
        let out = base.join(file.replace('/', "_"));
        scores.push(run_one(sh, &tool, file, &out, &target)?);
    }
    println!("\n| file | caught / viable | score | unviable |");
    println!("|---|---|---|---|");
    for score in &scores {
        println!(
            "| {} | {} / {} | {:.1} % | {} |",
            score.file,
            score.caught + score.timeout,
            score.viable(),
            score.percent(),
            score.unviable
        );
    }
    for score in &scores {
        for missed in &score.missed_list {
            println!("missed: {missed}");
        }
    }
    let low: Vec<&str> = scores
        .iter()
        .filter(|score| score.percent() < 90.0)
        .map(|score| score.file.as_str())
        .collect();
    if low.is_empty() {
        Ok(())
    } else {
        Err(format!("under 90 %: {}", low.join(", ")).into())
    }
}
