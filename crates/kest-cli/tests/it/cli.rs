//! The `kest` command as scripts use it: arguments, output and exit codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const W: &str = "spiffe://kest.test/interop-workload";

fn kest(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

fn vector(path: &str) -> PathBuf {
    kest_testkit::vectors_dir().join(path)
}

/// A temp dir with the Python vectors' key written by `kest keygen`: the private JWK in
/// `key.jwk` (for signing) and the public one it prints in `pub.jwk` (for verifying).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = kest(
        dir.path(),
        &["keygen", "--seed-hex", SEED, "--out", "key.jwk"],
        None,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::fs::write(dir.path().join("pub.jwk"), stdout(&out)).unwrap();
    dir
}

fn append(dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "append",
        "--key",
        "key.jwk",
        "--principal",
        W,
        "--out",
        "p.json",
    ];
    if dir.join("p.json").exists() {
        args.extend(["--passport", "p.json"]);
    }
    args.extend_from_slice(extra);
    let out = kest(dir, &args, None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

fn chain_of_three(dir: &Path) {
    append(
        dir,
        &[
            "--operation",
            "ingest",
            "--origin",
            "user_input",
            "--added-taint",
            "pii",
            "--policy",
            "p_ingest",
        ],
    );
    append(
        dir,
        &[
            "--operation",
            "scrub",
            "--removed-taint",
            "pii",
            "--trust-override",
            "90",
        ],
    );
    append(dir, &["--operation", "answer", "--origin", "llm"]);
}

#[test]
fn keygen_writes_a_private_jwk_with_mode_0600_and_prints_the_public_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = kest(
        dir.path(),
        &["keygen", "--seed-hex", SEED, "--out", "k.jwk"],
        None,
    );
    assert_eq!(code(&out), 0);
    let public: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let expected: Value = kest_testkit::load_json("python/key.json");
    assert_eq!(public["x"], expected["public_key_jwk"]["x"]);
    assert!(public.get("d").is_none());
    let private: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("k.jwk")).unwrap()).unwrap();
    for member in ["kty", "crv", "x", "d", "kid"] {
        assert!(private.get(member).is_some(), "missing {member}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("k.jwk"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = kest(dir.path(), &["keygen", "--out", "k.jwk"], None);
    assert_eq!(code(&again), 2);
    assert!(stderr(&again).contains("--force"));
    assert_eq!(
        code(&kest(
            dir.path(),
            &["keygen", "--out", "k.jwk", "--force"],
            None
        )),
        0
    );
    let to_stdout = kest(
        dir.path(),
        &["keygen", "--seed-hex", SEED, "--out", "-"],
        None,
    );
    let private: Value = serde_json::from_str(&stdout(&to_stdout)).unwrap();
    assert!(private.get("d").is_some());
    assert_eq!(
        code(&kest(dir.path(), &["keygen", "--seed-hex", "abc"], None)),
        2
    );
}

#[test]
fn append_then_verify_then_catch_tampering() {
    let dir = workspace();
    chain_of_three(dir.path());
    let ok = kest(
        dir.path(),
        &["verify", "p.json", "--key", &format!("{W}=pub.jwk")],
        None,
    );
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert!(stdout(&ok).starts_with("verified: 3 entries"));
    assert!(stdout(&ok).contains("trust raised from 40 to 90 by a declared override"));
    assert!(stderr(&ok).is_empty(), "{}", stderr(&ok));
    // Verifying with the private key file works, with a warning that it is not needed.
    let private = kest(
        dir.path(),
        &["verify", "p.json", "--key", &format!("{W}=key.jwk")],
        None,
    );
    assert_eq!(code(&private), 0, "{}", stderr(&private));
    assert!(
        stderr(&private).contains("key.jwk holds a private key"),
        "{}",
        stderr(&private)
    );

    let json = kest(
        dir.path(),
        &[
            "verify",
            "p.json",
            "--json",
            "--key",
            &format!("{W}=pub.jwk"),
        ],
        None,
    );
    let report: Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(report["entries"], 3);
    assert_eq!(report["strict"], true);

    // Tamper with the middle entry's payload.
    let passport: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("p.json")).unwrap()).unwrap();
    let mut tampered = passport.clone();
    tampered[1] = tampered[1].replacen(".eyJ", ".eyZ", 1);
    std::fs::write(
        dir.path().join("t.json"),
        serde_json::to_string(&tampered).unwrap(),
    )
    .unwrap();
    let bad = kest(
        dir.path(),
        &["verify", "t.json", "--key", &format!("{W}=pub.jwk")],
        None,
    );
    assert_eq!(code(&bad), 1);
    let message = stderr(&bad);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with("kest: verification failed: entry 1"),
        "{message}"
    );

    // A forged signature on an otherwise valid payload names the entry_id.
    let mut forged = passport.clone();
    let last = forged[2].len() - 5;
    let replacement = if &forged[2][last..last + 1] == "A" {
        "B"
    } else {
        "A"
    };
    forged[2].replace_range(last..last + 1, replacement);
    std::fs::write(
        dir.path().join("f.json"),
        serde_json::to_string(&forged).unwrap(),
    )
    .unwrap();
    let bad = kest(
        dir.path(),
        &[
            "verify",
            "f.json",
            "--json",
            "--key",
            &format!("{W}=pub.jwk"),
        ],
        None,
    );
    assert_eq!(code(&bad), 1);
    let report: Value = serde_json::from_str(&stdout(&bad)).unwrap();
    assert_eq!(report["verified"], false);
    assert_eq!(report["error"]["index"], 2);
    assert_eq!(report["error"]["cause"], "signature does not verify");
    assert_eq!(report["error"]["entry_id"].as_str().unwrap().len(), 36);

    // Truncation is caught against the pinned tip.
    let tip = report_tip(dir.path());
    std::fs::write(
        dir.path().join("short.json"),
        serde_json::to_string(&passport[..2]).unwrap(),
    )
    .unwrap();
    assert_eq!(
        code(&kest(
            dir.path(),
            &["verify", "short.json", "--key", &format!("{W}=pub.jwk")],
            None
        )),
        0
    );
    let cut = kest(
        dir.path(),
        &[
            "verify",
            "short.json",
            "--expect-tip",
            &tip,
            "--key",
            &format!("{W}=pub.jwk"),
        ],
        None,
    );
    assert_eq!(code(&cut), 1);
    assert!(stderr(&cut).contains("truncated"), "{}", stderr(&cut));
}

fn report_tip(dir: &Path) -> String {
    let out = kest(dir, &["inspect", "p.json", "--json"], None);
    let entries: Value = serde_json::from_str(&stdout(&out)).unwrap();
    entries.as_array().unwrap().last().unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn verify_needs_trusted_keys_and_refuses_strangers() {
    let dir = workspace();
    chain_of_three(dir.path());
    let none = kest(dir.path(), &["verify", "p.json"], None);
    assert_eq!(code(&none), 2);
    assert!(stderr(&none).contains("no trusted keys"));
    let out = kest(dir.path(), &["keygen", "--out", "other.jwk"], None);
    assert_eq!(code(&out), 0);
    let wrong = kest(
        dir.path(),
        &["verify", "p.json", "--key", &format!("{W}=other.jwk")],
        None,
    );
    assert_eq!(code(&wrong), 1);
    assert!(stderr(&wrong).contains("entry 0"), "{}", stderr(&wrong));
    let stranger = kest(
        dir.path(),
        &["verify", "p.json", "--key", "spiffe://else/x=pub.jwk"],
        None,
    );
    assert_eq!(code(&stranger), 1);
    assert!(
        stderr(&stranger).contains("no key is known for principal"),
        "{}",
        stderr(&stranger)
    );
    let garbage = kest(
        dir.path(),
        &["verify", "-", "--key", &format!("{W}=pub.jwk")],
        Some("hello"),
    );
    assert_eq!(code(&garbage), 2);
    // JSON that is no passport is unreadable input too (exit 2, as cli.md says), with
    // or without `--json`; a passport whose entries are bad is a failed check (exit 1).
    for (text, want) in [
        ("[1,", 2),
        ("[1,2]", 2),
        ("[\"a\", ", 2),
        ("[\"a.b.c\"]", 1),
    ] {
        for json in [false, true] {
            let mut args = vec!["verify", "-", "--key", "w=pub.jwk"];
            if json {
                args.push("--json");
            }
            let out = kest(dir.path(), &args, Some(text));
            assert_eq!(code(&out), want, "{text} {json}: {}", stderr(&out));
            assert!(stderr(&out).starts_with("kest: "), "{}", stderr(&out));
            if json {
                let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
                assert_eq!(report["verified"], false);
            }
        }
    }
}

#[test]
fn verify_reads_stdin_a_jwks_a_baggage_header_and_a_single_jws() {
    let dir = workspace();
    let key: Value = kest_testkit::load_json("python/key.json");
    let mut jwk = key["public_key_jwk"].clone();
    jwk["kid"] = Value::from(W);
    std::fs::write(
        dir.path().join("jwks.json"),
        serde_json::json!({"keys": [jwk]}).to_string(),
    )
    .unwrap();

    let chain = std::fs::read_to_string(vector("python/chain_3.json")).unwrap();
    let chain: Value = serde_json::from_str(&chain).unwrap();
    let out = kest(
        dir.path(),
        &["verify", "--jwks", "jwks.json"],
        Some(chain["serialized"].as_str().unwrap()),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("3 entries") && stdout(&out).contains("lenient"));

    let single = chain["hops"][0]["jws"].as_str().unwrap();
    let out = kest(dir.path(), &["verify", "--jwks", "jwks.json"], Some(single));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("verified: entry"));

    // A baggage header: the compressed tier plus the chain tip, as a service would get it.
    let baggage: Value = kest_testkit::load_json("python/baggage.json");
    let case = &baggage["cases"][9]["with_cache"];
    assert_eq!(case["key"], "kest.passport_z");
    let header = format!(
        "baggage: kest.passport_z={},kest.chain_tip={}",
        case["value"].as_str().unwrap(),
        case["chain_tip"].as_str().unwrap()
    );
    let out = kest(
        dir.path(),
        &["verify", "--jwks", "jwks.json"],
        Some(&header),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("10 entries"));
    // The header's tip is pinned: announce another one and verification fails.
    let wrong_tip = format!(
        "kest.passport_z={},kest.chain_tip={}",
        case["value"].as_str().unwrap(),
        "ab".repeat(32)
    );
    let out = kest(
        dir.path(),
        &["verify", "--jwks", "jwks.json"],
        Some(&wrong_tip),
    );
    assert_eq!(code(&out), 1);
}

#[test]
fn python_chain_10_audit_strict_and_lenient() {
    let dir = workspace();
    let chain: Value = kest_testkit::load_json("python/chain_10.json");
    std::fs::write(
        dir.path().join("c.json"),
        chain["serialized"].as_str().unwrap(),
    )
    .unwrap();
    let key = format!("{W}=pub.jwk");
    let out = kest(dir.path(), &["verify", "c.json", "--key", &key], None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("entry 4") && stdout(&out).contains("without a declared override")
    );
    let strict = kest(
        dir.path(),
        &["verify", "c.json", "--strict", "--key", &key],
        None,
    );
    assert_eq!(code(&strict), 1);
    assert!(stderr(&strict).contains("entry 4"));
}

#[test]
fn canon_files_stdin_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "arrays",
        "french",
        "structures",
        "unicode",
        "values",
        "weird",
    ] {
        let input = vector(&format!("rfc8785/input/{name}.json"));
        let out = kest(dir.path(), &["canon", input.to_str().unwrap()], None);
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
        let expected = std::fs::read(vector(&format!("rfc8785/output/{name}.json"))).unwrap();
        let mut with_newline = expected.clone();
        with_newline.push(b'\n');
        assert_eq!(out.stdout, with_newline, "{name}");
    }
    let out = kest(dir.path(), &["canon"], Some(" {\"b\": 1.0, \"a\": [] } "));
    assert_eq!(stdout(&out), "{\"a\":[],\"b\":1}\n");
    let out = kest(
        dir.path(),
        &["canon", "--lines", "-"],
        Some("{\"z\":1,\"a\":2}\n[1.50]\n"),
    );
    assert_eq!(stdout(&out), "{\"a\":2,\"z\":1}\n[1.5]\n");
    let out = kest(dir.path(), &["canon", "--lines"], Some("1\n2\n[\n4\n"));
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with("kest: line 3:"),
        "{}",
        stderr(&out)
    );
    let out = kest(dir.path(), &["canon"], Some("9007199254740993"));
    assert_eq!(code(&out), 1);
    let out = kest(dir.path(), &["canon", "--ieee"], Some("9007199254740993"));
    assert_eq!(stdout(&out), "9007199254740992\n");
    let out = kest(dir.path(), &["canon", "missing.json"], None);
    assert_eq!(code(&out), 2);
}

#[test]
fn inspect_and_tree() {
    let dir = workspace();
    chain_of_three(dir.path());
    let out = kest(dir.path(), &["inspect", "p.json", "--json"], None);
    let entries: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for field in [
        "index",
        "entry_id",
        "operation",
        "principal",
        "trust",
        "taints",
        "parents",
        "hash",
    ] {
        assert!(entries[0].get(field).is_some(), "{field}");
    }
    assert_eq!(entries[0]["taints"], serde_json::json!(["pii"]));
    assert_eq!(entries[1]["parents"][0], entries[0]["hash"]);
    assert_eq!(entries[2]["trust"], 0);
    assert!(entries.iter().all(|entry| entry["fault"].is_null()));
    assert_eq!(code(&out), 0);
    let table = stdout(&kest(dir.path(), &["inspect", "p.json"], None));
    assert!(table.lines().next().unwrap().starts_with("#  entry_id"));
    assert!(!table.contains("fault"), "{table}");
    assert_eq!(table.lines().count(), 4);

    // A tampered passport is shown, not refused: what reads is listed, and each problem
    // is marked on its entry. Entry 0's payload no longer parses, so entry 1's parent is
    // nowhere before it; entry 2 reads and links.
    let passport: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("p.json")).unwrap()).unwrap();
    let mut tampered = passport.clone();
    tampered[0] = tampered[0].replacen(".eyJ", ".eyZ", 1);
    std::fs::write(
        dir.path().join("t.json"),
        serde_json::to_string(&tampered).unwrap(),
    )
    .unwrap();
    let out = kest(dir.path(), &["inspect", "t.json", "--json"], None);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with("kest: entry 0: payload is not a JSON object"),
        "{}",
        stderr(&out)
    );
    let rows: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].get("operation").is_none());
    assert_eq!(
        rows[0]["hash"],
        kest_canon::sha256_hex(tampered[0].as_bytes())
    );
    assert!(rows[0]["fault"].as_str().unwrap().contains("payload"));
    assert_eq!(rows[1]["operation"], "scrub");
    assert!(
        rows[1]["fault"]
            .as_str()
            .unwrap()
            .contains("is not an earlier entry"),
        "{}",
        rows[1]
    );
    assert!(rows[2]["fault"].is_null());
    let out = kest(dir.path(), &["inspect", "t.json"], None);
    assert_eq!(code(&out), 1);
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].ends_with("fault"), "{table}");
    assert!(
        lines[1].starts_with("0  ?") && lines[1].contains("!! payload"),
        "{table}"
    );
    assert!(
        lines[2].contains("scrub") && lines[2].contains("!! parent"),
        "{table}"
    );
    assert!(
        lines[3].contains("answer") && lines[3].ends_with(" -"),
        "{table}"
    );
    // Not a list of strings at all: still an input error.
    assert_eq!(code(&kest(dir.path(), &["inspect"], Some("[1,"))), 2);

    let text = stdout(&kest(dir.path(), &["tree", "p.json"], None));
    assert!(
        text.contains("#0 ingest [trust 40; pii]") && text.contains("└─ #1 scrub"),
        "{text}"
    );
    let mermaid = stdout(&kest(
        dir.path(),
        &["tree", "p.json", "--format", "mermaid"],
        None,
    ));
    assert!(
        mermaid.starts_with("graph TD")
            && mermaid.contains("e0 --> e1")
            && mermaid.contains("e1 --> e2")
    );
    let dot = stdout(&kest(
        dir.path(),
        &["tree", "p.json", "--format", "dot"],
        None,
    ));
    assert!(dot.starts_with("digraph kest") && dot.contains("e1 -> e2;"));
    assert_eq!(
        code(&kest(
            dir.path(),
            &["tree", "p.json", "--format", "svg"],
            None
        )),
        2
    );
}

/// `kest verify` reads every header the Python package's interceptor writes: raw inline
/// JSON with unencoded commas (2 entries and more), and the compressed tier.
#[test]
fn verify_reads_python_interceptor_headers_of_any_length() {
    let dir = workspace();
    let vectors: Value = kest_testkit::load_json("python/baggage.json");
    let mut raw_inline = 0;
    for case in vectors["cases"].as_array().unwrap() {
        if case["with_cache"]["key"] == "kest.claim_check" {
            continue;
        }
        let n = case["n_entries"].as_u64().unwrap();
        let header = case["kest_httpx_interceptor_header"].as_str().unwrap();
        raw_inline += usize::from(header.starts_with("kest.passport=[\"") && n > 1);
        std::fs::write(dir.path().join("header.txt"), header).unwrap();
        let key = format!("{W}=pub.jwk");
        let out = kest(
            dir.path(),
            &["verify", "--key", &key, "--json", "header.txt"],
            None,
        );
        assert_eq!(code(&out), 0, "n={n}: {}{}", stdout(&out), stderr(&out));
        let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(report["entries"], n, "n={n}");
        assert_eq!(report["tip"], case["with_cache"]["chain_tip"], "n={n}");
    }
    assert!(
        raw_inline >= 2,
        "raw inline headers of several entries were read"
    );
}
