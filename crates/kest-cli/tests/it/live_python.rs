//! Live tier (`KEST_LIVE=1`): a chain built with `kest append` is verified by the Python
//! package itself (`kest==0.3.0.post1`, installed by `cargo xtask ci` into its own venv,
//! whose interpreter it passes in `KEST_PYTHON`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const W: &str = "spiffe://kest.test/rust-workload";

fn kest(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kest {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Has the Python package's `PassportVerifier` check `passport` with the given
/// `(principal, public key hex)` pairs: its exit code (0 accepted, 3 refused) and report.
pub(crate) fn python_verify(python: &str, passport: &Path, keys: &[(&str, &str)]) -> (i32, Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/verify_with_kest.py");
    let out = Command::new(python)
        .arg(script)
        .arg(passport)
        .args(keys.iter().flat_map(|(principal, hex)| [*principal, *hex]))
        .output()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "python printed {stdout:?}, stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

#[test]
fn the_python_package_verifies_a_chain_built_by_kest_append() {
    if !kest_testkit::live() {
        return;
    }
    let python = kest_testkit::live_env("KEST_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    kest(d, &["keygen", "--seed-hex", SEED, "--out", "key.jwk"]);
    let base = [
        "append",
        "--key",
        "key.jwk",
        "--principal",
        W,
        "--out",
        "p.json",
    ];
    let with_passport = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["--passport", "p.json"]);
        args.extend_from_slice(extra);
        args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
    };
    let mut first: Vec<&str> = base.to_vec();
    first.extend([
        "--operation",
        "ingest",
        "--origin",
        "user_input",
        "--added-taint",
        "pii",
    ]);
    kest(d, &first);
    for extra in [
        vec![
            "--operation",
            "scrub",
            "--removed-taint",
            "pii",
            "--trust-override",
            "90",
        ],
        vec![
            "--operation",
            "summarize",
            "--origin",
            "llm",
            "--policy",
            "p_summarize",
        ],
    ] {
        let args = with_passport(&extra);
        kest(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let public_hex = {
        let key: Value = kest_testkit::load_json("python/key.json");
        key["public_key_hex"].as_str().unwrap().to_owned()
    };

    let (code, report) = python_verify(&python, &d.join("p.json"), &[(W, &public_hex)]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report, serde_json::json!({"verified": true, "entries": 3}));

    // A control: the Python verifier really checks our signatures. Flip one signature
    // character of the last entry and it must refuse.
    let mut entries: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(d.join("p.json")).unwrap()).unwrap();
    let last = entries.last_mut().unwrap();
    let at = last.len() - 3;
    let flipped = if &last[at..=at] == "A" { "B" } else { "A" };
    last.replace_range(at..=at, flipped);
    std::fs::write(d.join("bad.json"), serde_json::to_string(&entries).unwrap()).unwrap();
    let (code, report) = python_verify(&python, &d.join("bad.json"), &[(W, &public_hex)]);
    assert_eq!(code, 3, "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("Signature verification failed"),
        "{report}"
    );
}
