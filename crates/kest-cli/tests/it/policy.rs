//! `kest policy eval` and `kest policy test`: decisions, exit codes and output.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn kest(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn root() -> std::path::PathBuf {
    kest_testkit::workspace_root()
}

/// A complete context from the clearance case table's base, with changes.
fn clearance_context(dir: &Path, country: &str) -> String {
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("policies/cases/clearance.json")).unwrap(),
    )
    .unwrap();
    let mut base = table["base"].clone();
    base["country"] = Value::from(country);
    let path = dir.join(format!("context-{country}.json"));
    std::fs::write(&path, base.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn eval_exit_codes_follow_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let policies = root().join("policies");
    let cedar = policies.join("clearance.cedar").display().to_string();
    let lib = policies.join("lib.rego").display().to_string();
    let rego = policies.join("clearance.rego").display().to_string();
    let allowed = clearance_context(dir.path(), "NL");
    let denied = clearance_context(dir.path(), "KP");

    let out = kest(
        dir.path(),
        &[
            "policy",
            "eval",
            "--engine",
            "cedar",
            "--policy",
            &cedar,
            "--name",
            "kest/clearance",
            "--input",
            &allowed,
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("allow\n  clearance/trusted-subject"));

    let out = kest(
        dir.path(),
        &[
            "policy",
            "eval",
            "--engine",
            "rego",
            "--policy",
            &lib,
            "--policy",
            &rego,
            "--name",
            "kest/clearance",
            "--input",
            &denied,
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("requests from KP are restricted"));

    let out = kest(
        dir.path(),
        &[
            "policy",
            "eval",
            "--engine",
            "cedar",
            "--policy",
            &cedar,
            "--name",
            "kest/clearance",
            "--input",
            &denied,
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["decision"], "deny");
    assert_eq!(report["engine"], "cedar");

    // An engine that cannot decide: no principal in the context.
    std::fs::write(dir.path().join("empty.json"), "{}").unwrap();
    let out = kest(
        dir.path(),
        &[
            "policy",
            "eval",
            "--engine",
            "cedar",
            "--policy",
            &cedar,
            "--name",
            "kest/clearance",
            "--input",
            "empty.json",
        ],
    );
    assert_eq!(out.status.code(), Some(4));

    // Unusable input.
    std::fs::write(dir.path().join("bad.cedar"), "permit(").unwrap();
    let out = kest(
        dir.path(),
        &[
            "policy",
            "eval",
            "--engine",
            "cedar",
            "--policy",
            "bad.cedar",
            "--name",
            "x",
            "--input",
            &allowed,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.cedar"));
    let out = kest(
        dir.path(),
        &[
            "policy",
            "eval",
            "--engine",
            "rego",
            "--policy",
            &rego,
            "--name",
            "x",
            "--input",
            &allowed,
            "--entities",
            &allowed,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = kest(
        dir.path(),
        &[
            "policy",
            "eval",
            "--engine",
            "rego",
            "--policy",
            &rego,
            "--name",
            "x",
            "--input",
            "missing.json",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn test_runs_every_table_in_both_languages() {
    let out = kest(&root(), &["policy", "test"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 7, "{text}");
    assert!(
        text.lines()
            .all(|line| line.ends_with("0 disagreements: ok")),
        "{text}"
    );

    // A copy with one expectation flipped fails, naming the model and the case.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cases")).unwrap();
    for name in ["lib.rego", "biba.cedar", "biba.rego"] {
        std::fs::copy(root().join("policies").join(name), dir.path().join(name)).unwrap();
    }
    let table = std::fs::read_to_string(root().join("policies/cases/biba.json")).unwrap();
    let flipped = table.replacen("\"expect\": \"allow\"", "\"expect\": \"deny\"", 1);
    std::fs::write(dir.path().join("cases/biba.json"), flipped).unwrap();
    let out = kest(dir.path(), &["policy", "test", "."]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("biba: 14 cases, cedar 13/14, rego 13/14, 0 disagreements: MISMATCH"),
        "{text}"
    );
    assert!(text.contains("read at the same level"), "{text}");
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        kest(empty.path(), &["policy", "test", "."]).status.code(),
        Some(2)
    );
}
