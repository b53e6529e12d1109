//! `kest audit` over a directory of good and tampered passports, header values, and span
//! exports written by real protected calls: JSON lines, SQLite and OTLP JSON.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::path::Path;
use std::process::{Command, Output};

use kest::crypto::SigningKey;
use kest::identity::StaticIdentity;
use kest::policy::CedarEngine;
use kest::telemetry::Exporter;
use kest::{Call, Flow, Kest, Values};
use serde_json::{Value, json};

const W: &str = "spiffe://kest.test/audit";
/// Whether this build reads SQLite exports (kest-cli's `sqlite` feature).
const SQLITE: bool = cfg!(feature = "sqlite");
/// Recorded flows: JSON lines (and its OTLP copy), and SQLite when it is read.
const FLOWS: usize = if SQLITE { 2 } else { 1 };
const POLICIES: &str = r#"
@id("invoke")
permit (principal, action == Action::"invoke", resource);
"#;

fn kest_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(args)
        .output()
        .unwrap()
}

fn key() -> SigningKey {
    SigningKey::from_ed25519_seed(&[9; 32]).unwrap()
}

/// The tracer provider is process-wide: one recording at a time.
static RECORDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Three allowed calls and one refused, in one flow, recorded through `exporter`.
async fn record(exporter: Exporter) {
    let _one_at_a_time = RECORDING.lock().await;
    let kest = Kest::builder()
        .identity(StaticIdentity::new(W, key()))
        .engine(
            CedarEngine::builder()
                .policy_source("audit", POLICIES)
                .build()
                .unwrap(),
        )
        .service_name("audit-test")
        .build()
        .unwrap();
    let guard = kest::telemetry::init("audit-test", exporter).unwrap();
    let step = |name: &str| kest.protect(Call::new(name).policy("invoke")).unwrap();
    let (ingest, summarize, reply) = (step("ingest"), step("summarize"), step("reply"));
    let refund = kest.protect(Call::new("refund").policy("guarded")).unwrap();
    Flow::new()
        .scope(async {
            ingest.run(Values::new(), async {}).await.unwrap();
            summarize.run(Values::new(), async {}).await.unwrap();
            assert!(refund.run(Values::new(), async {}).await.is_err());
            reply.run(Values::new(), async {}).await.unwrap();
        })
        .await;
    drop(guard);
}

/// The JSON-lines spans as OTLP JSON (`ExportTraceServiceRequest`), one request.
fn as_otlp(lines: &str) -> Value {
    let spans: Vec<Value> = lines
        .lines()
        .map(|line| {
            let span: Value = serde_json::from_str(line).unwrap();
            let attributes: Vec<Value> = span["attributes"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(key, value)| {
                    let value = match value {
                        Value::Number(n) => json!({"intValue": n.to_string()}),
                        Value::Bool(b) => json!({"boolValue": b}),
                        other => json!({"stringValue": other.as_str().unwrap()}),
                    };
                    json!({"key": key, "value": value})
                })
                .collect();
            json!({
                "traceId": span["trace_id"], "spanId": span["span_id"], "name": span["name"],
                "endTimeUnixNano": span["end_unix_nanos"].to_string(), "attributes": attributes,
            })
        })
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": []},
        "scopeSpans": [{"scope": {"name": "kest.core"}, "spans": spans}]}]})
}

fn vectors(name: &str) -> Value {
    serde_json::from_str(&kest_testkit::read_vector(&format!("python/{name}"))).unwrap()
}

/// The audited directory; returns the key arguments.
async fn corpus(dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir.join("passports/nested")).unwrap();
    std::fs::create_dir_all(dir.join("spans")).unwrap();
    for name in ["chain_3", "chain_10"] {
        let chain = vectors(&format!("{name}.json"));
        std::fs::write(
            dir.join(format!("passports/{name}.json")),
            chain["serialized"].as_str().unwrap(),
        )
        .unwrap();
    }
    let tampered = vectors("tampered.json");
    for case in tampered["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        if [
            "signature_altered_last_entry",
            "entries_reordered_swap_1_2",
            "foreign_root_spliced_at_end",
        ]
        .contains(&name)
        {
            std::fs::write(
                dir.join(format!("passports/nested/{name}.json")),
                case["serialized"].as_str().unwrap(),
            )
            .unwrap();
        }
    }
    let chain = vectors("chain_3.json");
    let encoded: String = chain["serialized"]
        .as_str()
        .unwrap()
        .chars()
        .map(|c| match c {
            '"' => "%22".to_owned(),
            ',' => "%2C".to_owned(),
            ' ' => "%20".to_owned(),
            '[' => "%5B".to_owned(),
            ']' => "%5D".to_owned(),
            c => c.to_string(),
        })
        .collect();
    std::fs::write(
        dir.join("headers.txt"),
        format!(
            "kest.passport={encoded},kest.chain_tip={}\n",
            chain["final_chain_tip"].as_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "# not a passport\n").unwrap();

    record(Exporter::JsonLines(dir.join("spans/spans.jsonl"))).await;
    if SQLITE {
        record(Exporter::Sqlite(dir.join("spans/spans.db"))).await;
    }
    let lines = std::fs::read_to_string(dir.join("spans/spans.jsonl")).unwrap();
    std::fs::write(
        dir.join("spans/otlp.json"),
        serde_json::to_string_pretty(&as_otlp(&lines)).unwrap(),
    )
    .unwrap();

    let python = vectors("key.json");
    std::fs::write(dir.join("python.jwk"), python["public_key_jwk"].to_string()).unwrap();
    let ours = serde_json::to_string(&key().verifying_key().to_jwk()).unwrap();
    std::fs::write(dir.join("ours.jwk"), ours).unwrap();
    vec![
        "--key".to_owned(),
        format!(
            "{}={}",
            python["principal"].as_str().unwrap(),
            dir.join("python.jwk").display()
        ),
        "--key".to_owned(),
        format!("{W}={}", dir.join("ours.jwk").display()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_passports_headers_and_span_exports_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let keys = corpus(dir.path()).await;
    let root = dir.path().display().to_string();
    let mut args = vec!["audit", root.as_str(), "--format", "json"];
    args.extend(keys.iter().map(String::as_str));
    let out = kest_cli(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "tampered passports fail the audit"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let passports = report["passports"].as_array().unwrap();
    let by_source = |part: &str| {
        passports
            .iter()
            .filter(|p| p["source"].as_str().unwrap().contains(part))
            .collect::<Vec<_>>()
    };
    for good in ["chain_3.json", "chain_10.json", "headers.txt:1"] {
        let found = by_source(good);
        assert_eq!(found.len(), 1, "{good}");
        assert_eq!(found[0]["verified"], true, "{good}: {}", found[0]);
    }
    assert_eq!(by_source("chain_10.json")[0]["entries"], 10);
    let expect_fault = [
        ("signature_altered_last_entry", 2, "signature"),
        ("entries_reordered_swap_1_2", 0, "root"),
        ("foreign_root_spliced_at_end", 3, "root"),
    ];
    for (name, index, cause) in expect_fault {
        let found = by_source(name);
        assert_eq!(found.len(), 1, "{name}");
        assert_eq!(found[0]["verified"], false, "{name}");
        assert_eq!(found[0]["error"]["index"], index, "{name}: {}", found[0]);
        assert!(
            found[0]["error"]["cause"].as_str().unwrap().contains(cause),
            "{name}: {}",
            found[0]
        );
        assert!(found[0]["error"]["entry_id"].is_string(), "{name}");
    }
    // Each export holds one flow: three calls ran, so its passport of 3 entries is audited
    // once (the shorter ones at the first two calls are its prefixes), with the refusal.
    let exports: &[&str] = if SQLITE {
        &["spans.jsonl", "spans.db", "otlp.json"]
    } else {
        &["spans.jsonl", "otlp.json"]
    };
    for export in exports {
        let found = by_source(export);
        assert_eq!(found.len(), 1, "{export}: {found:?}");
        assert_eq!(found[0]["verified"], true, "{export}");
        assert_eq!(found[0]["entries"], 3, "{export}");
    }
    let summary = &report["summary"];
    assert_eq!(summary["failed"], 3);
    let verified = 3 + exports.len();
    assert_eq!(summary["verified"], verified);
    assert_eq!(
        summary["denials"],
        exports.len(),
        "one refund refused per export: {summary}"
    );
    let ours = &summary["by_principal"][W];
    assert_eq!(ours["denials"], exports.len());
    assert_eq!(
        ours["entries"],
        3 * FLOWS,
        "flows of 3 (the OTLP copy repeats the JSON lines)"
    );
    assert_eq!(summary["by_operation"]["refund"]["denials"], exports.len());
    assert_eq!(summary["by_operation"]["refund"]["entries"], 0);
    assert_eq!(
        summary["causes"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        3
    );

    // Text: one line per passport, the ignored file named, the summary.
    let mut args = vec!["audit", root.as_str()];
    args.extend(keys.iter().map(String::as_str));
    let out = kest_cli(&args);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("verified ")).count(),
        verified,
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FAILED ")).count(),
        3,
        "{text}"
    );
    assert!(text.contains("README.md: no passport or spans"), "{text}");
    assert!(
        text.contains(&format!(
            "{} passports: {verified} verified, 3 failed",
            verified + 3
        )),
        "{text}"
    );

    // HTML: one page, a drawing per verified or readable passport, nothing fetched.
    let page = dir.path().join("report.html");
    let page_arg = page.display().to_string();
    let mut args = vec![
        "audit",
        root.as_str(),
        "--format",
        "html",
        "--out",
        page_arg.as_str(),
    ];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(kest_cli(&args).status.code(), Some(1));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        html.matches("class=\"kest-data\"").count(),
        verified + 3,
        "the verified, and 3 failed with each entry readable"
    );
    assert!(html.contains("default-src 'none'"));
    assert!(html.contains("FAILED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_whether_the_audit_ran() {
    let dir = tempfile::tempdir().unwrap();
    let keys = corpus(dir.path()).await;
    let good = dir
        .path()
        .join("passports/chain_3.json")
        .display()
        .to_string();
    let mut args = vec!["audit", good.as_str()];
    args.extend(keys.iter().map(String::as_str));
    let out = kest_cli(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // No key: the audit cannot run.
    assert_eq!(kest_cli(&["audit", good.as_str()]).status.code(), Some(2));
    // A path that does not exist.
    let mut args = vec!["audit", "/nonexistent/kest"];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(kest_cli(&args).status.code(), Some(2));
    // A named file of no known form.
    let readme = dir.path().join("README.md").display().to_string();
    let mut args = vec!["audit", readme.as_str()];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(kest_cli(&args).status.code(), Some(2));
    // A directory with no passport in it.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("notes.txt"), "nothing here").unwrap();
    let empty_arg = empty.path().display().to_string();
    let mut args = vec!["audit", empty_arg.as_str()];
    args.extend(keys.iter().map(String::as_str));
    let out = kest_cli(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no passport found"));
}

#[test]
fn hostile_sources_are_escaped_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // A file name and a span attribute with terminal control characters.
    let name = dir.path().join("evil\u{1b}[2Jname.jsonl");
    let span = json!({
        "trace_id": "t\u{1b}]0;pwned\u{7}", "end_unix_nanos": 1,
        "attributes": {"kest.decision": "deny", "kest.operation": "op\u{1b}[31m", "kest.workload_id": "w"}
    });
    std::fs::write(&name, format!("{span}\n")).unwrap();
    let chain = vectors("chain_3.json");
    std::fs::write(
        dir.path().join("p.json"),
        chain["serialized"].as_str().unwrap(),
    )
    .unwrap();
    let python = vectors("key.json");
    let jwk = dir.path().join("k.jwk");
    std::fs::write(&jwk, python["public_key_jwk"].to_string()).unwrap();
    let key = format!(
        "{}={}",
        python["principal"].as_str().unwrap(),
        jwk.display()
    );
    let root = dir.path().display().to_string();
    let out = kest_cli(&["audit", root.as_str(), "--key", key.as_str()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "control characters reached the terminal: {text:?}"
    );
    assert!(text.contains("1 denials"), "{text}");
    // Named on the command line, a hostile file name of no known form reaches the
    // terminal escaped in the error too.
    let bell = dir.path().join("bell\u{7}\u{1b}]0;pwned\u{7}.md");
    std::fs::write(&bell, "not a passport\n").unwrap();
    let bell_arg = bell.display().to_string();
    let out = kest_cli(&["audit", bell_arg.as_str(), "--key", key.as_str()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "control characters reached the terminal: {stderr:?}"
    );
    assert!(stderr.contains("pwned"), "{stderr}");
    std::fs::remove_file(&bell).unwrap();
    // A line over the input limit is refused, not read into memory whole.
    let huge = dir.path().join("huge.jsonl");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(70 * 1024 * 1024).unwrap();
    std::fs::write(&huge, {
        let mut bytes = b"{\"trace_id\":\"".to_vec();
        bytes.resize(65 * 1024 * 1024, b'a');
        bytes
    })
    .unwrap();
    let huge_arg = huge.display().to_string();
    let out = kest_cli(&["audit", huge_arg.as_str(), "--key", key.as_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("longer than"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Finding 5 of the authority report: an export holding an honest flow and a forged
/// passport whose spans claim (`kest.chain_tip`, `kest.passport_len`) to be an earlier
/// call of the honest flow. Every distinct passport is audited: the forged one is found
/// and fails; what a span says about itself decides nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_passport_cannot_hide_behind_an_honest_flow() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("spans.jsonl");
    record(Exporter::JsonLines(export.clone())).await;
    let honest = std::fs::read_to_string(&export).unwrap();
    let spans: Vec<Value> = honest
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // The honest flow's first call: its passport of one entry and that entry's hash.
    let first = spans
        .iter()
        .find(|span| span["attributes"]["kest.passport_len"] == 1)
        .unwrap();
    let first_tip = first["attributes"]["kest.chain_tip"].as_str().unwrap();
    // A forged passport of one entry, signed by a key nobody trusts, in W's name.
    let forger = kest::crypto::KeySigner::new(SigningKey::from_ed25519_seed(&[66; 32]).unwrap(), W);
    let mut forged = kest::passport::Passport::new();
    forged
        .append(
            kest::passport::EntryBuilder::new("wire_money").principal(W),
            &forger,
            &kest::trust::WeakestLink,
        )
        .unwrap();
    let mut lie = first.clone();
    lie["trace_id"] = json!("f".repeat(32));
    lie["attributes"]["kest.passport"] = json!(forged.to_json());
    lie["attributes"]["kest.chain_tip"] = json!(first_tip);
    lie["attributes"]["kest.passport_len"] = json!(1);
    std::fs::write(&export, format!("{honest}{lie}\n")).unwrap();
    let jwk = dir.path().join("ours.jwk");
    std::fs::write(
        &jwk,
        serde_json::to_string(&key().verifying_key().to_jwk()).unwrap(),
    )
    .unwrap();
    let key_arg = format!("{W}={}", jwk.display());
    let export_arg = export.display().to_string();
    let out = kest_cli(&[
        "audit",
        export_arg.as_str(),
        "--key",
        key_arg.as_str(),
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the forged passport fails the audit"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let passports = report["passports"].as_array().unwrap();
    assert_eq!(passports.len(), 2, "{passports:#?}");
    let verified: Vec<bool> = passports
        .iter()
        .map(|p| p["verified"].as_bool().unwrap())
        .collect();
    assert!(
        verified.contains(&true) && verified.contains(&false),
        "{verified:?}"
    );
}

/// Findings 7c and 7d: a FIFO in an audited directory is skipped with a note and never
/// opened; a FIFO named on the command line that nobody writes to is skipped after a
/// bounded wait; a pipe that delivers (`kest audit <(cat p.json)`) is read once, whole.
#[cfg(unix)]
#[test]
fn pipes_never_block_the_audit_and_are_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let chain = vectors("chain_3.json");
    let passport = chain["serialized"].as_str().unwrap().to_owned();
    std::fs::write(dir.path().join("p.json"), &passport).unwrap();
    let fifo = dir.path().join("silent.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let python = vectors("key.json");
    let jwk = dir.path().join("k.jwk");
    std::fs::write(&jwk, python["public_key_jwk"].to_string()).unwrap();
    let key = format!(
        "{}={}",
        python["principal"].as_str().unwrap(),
        jwk.display()
    );
    let started = std::time::Instant::now();
    let root = dir.path().display().to_string();
    let out = kest_cli(&["audit", root.as_str(), "--key", key.as_str()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("silent.fifo: not a regular file"), "{text}");
    assert!(text.contains("1 passports: 1 verified"), "{text}");
    // Named, with nobody writing: skipped after the wait, not a hang.
    let fifo_arg = fifo.display().to_string();
    let p_arg = dir.path().join("p.json").display().to_string();
    let out = kest_cli(&[
        "audit",
        fifo_arg.as_str(),
        p_arg.as_str(),
        "--key",
        key.as_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("nothing was written to it"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    // A pipe with a writer, as the shell's `<(cat p.json)` makes: read once, whole.
    let script = format!(
        "exec {} audit <(cat {}) --key {} --format json",
        env!("CARGO_BIN_EXE_kest"),
        p_arg,
        key
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["passports"][0]["verified"], true, "{report}");
    assert_eq!(report["passports"][0]["entries"], 3, "{report}");
}
