//! `kest mcp proxy`: its startup checks, and (live tier) the agent story with the official
//! Python SDK (`mcp` 2.x, installed by `cargo xtask ci` into the live venv): its
//! `ClientSession` talks to the proxy over stdio and over streamable HTTP (with a bearer
//! token from the live OIDC provider), and the proxy fronts a server built on its
//! `MCPServer`, over stdio and over streamable HTTP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const PRINCIPAL: &str = "spiffe://example.org/mail-tools";

fn story_dir() -> PathBuf {
    kest_testkit::workspace_root().join("examples/mcp_agent")
}

/// A directory holding the story's configuration, policies and a fresh key.
fn deployment() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = story_dir();
    std::fs::copy(source.join("kest.toml"), dir.path().join("kest.toml")).unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    for entry in std::fs::read_dir(source.join("policies")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            dir.path().join("policies").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(["keygen", "--out", "proxy-key.jwk"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    dir
}

/// Runs `kest mcp proxy` with `config` in front of `command`, stdin closed at once.
fn proxy(dir: &Path, command: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(["mcp", "proxy", "--config", "kest.toml", "--"])
        .args(command)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_proxy_refuses_to_start_on_a_bad_configuration_or_server() {
    let dir = deployment();
    let ok = proxy(dir.path(), &["true"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let missing = proxy(dir.path(), &["/no/such/server"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot start `/no/such/server`"));

    let config = dir.path().join("kest.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    let cases = [
        // A policy that does not parse.
        (
            "send_email",
            good.clone(),
            Some(("policies/send_email.cedar", "permit(principal, action")),
        ),
        // A typo in a tool's rule.
        (
            "orgin",
            good.replace("origin = \"internet\"", "orgin = \"internet\""),
            None,
        ),
        // An origin the trust map does not know.
        (
            "internett",
            good.replace("origin = \"internet\"", "origin = \"internett\""),
            None,
        ),
        // An unlisted mode that does not exist.
        (
            "allow",
            good.replace("unlisted = \"deny\"", "unlisted = \"allow\""),
            None,
        ),
    ];
    for (named, text, file) in cases {
        std::fs::write(&config, &text).unwrap();
        let saved = file.map(|(path, source)| {
            let path = dir.path().join(path);
            let before = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, source).unwrap();
            (path, before)
        });
        let out = proxy(dir.path(), &["true"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{named}: {stderr}");
        assert!(stderr.contains(named), "{named}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing reaches the MCP channel");
        if let Some((path, before)) = saved {
            std::fs::write(path, before).unwrap();
        }
    }
    std::fs::write(&config, good).unwrap();
}

/// The public key's hex, from the JWK `kest keygen` wrote.
fn public_hex(dir: &Path) -> String {
    let jwk: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("proxy-key.jwk")).unwrap()).unwrap();
    let x = kest_canon::b64url_decode(jwk["x"].as_str().unwrap(), "x").unwrap();
    hex::encode(x)
}

/// Runs the scripted agent (`agent.py`) through the proxy in front of `server.py`: its
/// report, and what the proxy wrote to stderr.
fn run_agent(python: &str, dir: &Path, echoes: usize) -> (Value, String) {
    let story = story_dir();
    let kest = env!("CARGO_BIN_EXE_kest");
    let echoes = echoes.to_string();
    let out = Command::new(python)
        .arg(story.join("agent.py"))
        .args([
            "--echo",
            &echoes,
            "--",
            kest,
            "mcp",
            "proxy",
            "--config",
            "kest.toml",
        ])
        .args([
            "--passport-out",
            "passport.json",
            "--spans",
            "spans.jsonl",
            "--",
            python,
        ])
        .arg(story.join("server.py"))
        .env("MAIL_TOOLS_LOG", dir.join("server.log"))
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "agent: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        serde_json::from_str(stdout.trim()).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Has the Python binding (`kest_rs.verify`, in the venv `cargo xtask python` builds)
/// verify `file` (relative to `dir`) against the proxy's public key: the entries it
/// accepted. A refusal fails the test.
fn binding_verify(dir: &Path, file: &str) -> usize {
    let python = kest_testkit::live_env("KEST_BINDING_PYTHON");
    let script = r#"
import json, sys, kest_rs
with open(sys.argv[1]) as passport, open(sys.argv[3]) as key:
    jwk = {k: v for k, v in json.load(key).items() if k != "d"}
    report = kest_rs.verify(json.load(passport), {sys.argv[2]: jwk}, strict=True)
print(len(report["entries"]))
"#;
    let out = Command::new(python)
        .args(["-c", script, file, PRINCIPAL, "proxy-key.jwk"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kest_rs refused the passport: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `kest verify` on the passport file: its exit code and output.
fn kest_verify(dir: &Path) -> (i32, String) {
    kest_verify_file(dir, "passport.json")
}

/// `kest verify` on `file` (relative to `dir`).
fn kest_verify_file(dir: &Path, file: &str) -> (i32, String) {
    let key = format!("{PRINCIPAL}=proxy-key.jwk");
    let out = Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(["verify", file, "--key", &key, "--json"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The story's outcome, as the agent reported it and as the server's own log shows: the
/// tainted email refused and never run, the rest run, every result with lineage.
fn assert_story(report: &Value, dir: &Path) {
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "{report}");
    assert_eq!(steps[0]["refused"], false);
    let refused = &steps[1];
    assert_eq!(refused["tool"], "send_email");
    assert_eq!(refused["refused"], true, "{report}");
    assert_eq!(refused["code"], -32001);
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("policy `send_email`") && message.contains("untrusted_content"),
        "{message}"
    );
    assert_eq!(steps[2]["refused"], false);
    assert_eq!(steps[3]["refused"], false);
    assert_eq!(steps[3]["text"], "sent to owner@shop.example");
    assert_eq!(
        report["baggage_returned"], true,
        "every result carried the passport back"
    );
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        ["echo", "fetch_page", "send_email", "summarize"],
        "tools/list passed through"
    );

    // The server's own log: the refused email never ran.
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    let ran: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let tools_ran: Vec<&str> = ran.iter().map(|r| r["tool"].as_str().unwrap()).collect();
    assert_eq!(tools_ran, ["fetch_page", "summarize", "send_email"]);
    assert!(!log.contains("attacker@evil.example"), "{log}");
}

#[test]
fn the_python_sdk_runs_the_story_through_the_proxy_and_the_refused_email_never_runs() {
    if !kest_testkit::live() {
        return;
    }
    let python = kest_testkit::live_env("KEST_PYTHON");
    let dir = deployment();
    // A tool the server does not offer: a warning once the session is up.
    let config = dir.path().join("kest.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[mcp.tools.not_offered]\n");
    std::fs::write(&config, text).unwrap();
    let (report, stderr) = run_agent(&python, dir.path(), 0);
    assert!(
        stderr.contains("names a tool the server does not list") && stderr.contains("not_offered"),
        "{stderr}"
    );

    assert_story(&report, dir.path());

    let (code, verified) = kest_verify(dir.path());
    assert_eq!(code, 0, "{verified}");
    let verified: Value = serde_json::from_str(verified.trim()).unwrap();
    assert_eq!(verified["entries"], 3, "{verified}");
    let (code, python_report) = crate::live_python::python_verify(
        &python,
        &dir.path().join("passport.json"),
        &[(PRINCIPAL, &public_hex(dir.path()))],
    );
    assert_eq!(code, 0, "the Python package verifies it: {python_report}");
    assert_eq!(python_report["entries"], 3);
    assert_eq!(binding_verify(dir.path(), "passport.json"), 3);

    // The spans the proxy exported are audited as any service's.
    let key = format!("{PRINCIPAL}=proxy-key.jwk");
    let audit = Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(["audit", "spans.jsonl", "--key", &key, "--format", "json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(stdout.contains("send_email"), "{stdout}");
}

#[test]
fn a_hundred_call_session_through_the_proxy_verifies() {
    if !kest_testkit::live() {
        return;
    }
    let python = kest_testkit::live_env("KEST_PYTHON");
    let dir = deployment();
    let (report, _) = run_agent(&python, dir.path(), 97);
    let refused = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["refused"] == true)
        .count();
    assert_eq!(refused, 1, "only the tainted email");
    let (code, verified) = kest_verify(dir.path());
    assert_eq!(code, 0, "{verified}");
    let verified: Value = serde_json::from_str(verified.trim()).unwrap();
    assert_eq!(verified["entries"], 100, "{verified}");
}

/// Runs `agent.py --url URL` with `token` as its bearer token: its exit status, report
/// (when it finished) and stderr.
fn run_http_agent(
    python: &str,
    dir: &Path,
    url: &str,
    token: Option<&str>,
) -> (bool, String, String) {
    let mut command = Command::new(python);
    command
        .arg(story_dir().join("agent.py"))
        .args(["--url", url])
        .current_dir(dir);
    if let Some(token) = token {
        command.env("KEST_BEARER_TOKEN", token);
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A child process stopped with SIGTERM (then killed) when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kest mcp proxy --listen 127.0.0.1:0` in `dir`; returns it and its URL.
fn listening_proxy(dir: &Path, python: &str) -> (Running, String) {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kest"))
        .args([
            "mcp",
            "proxy",
            "--config",
            "kest.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .args([
            "--passport-out",
            "passports",
            "--spans",
            "spans.jsonl",
            "--",
            python,
        ])
        .arg(story_dir().join("server.py"))
        .env("MAIL_TOOLS_LOG", dir.join("server.log"))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (found, url) = std::sync::mpsc::channel();
    let log = dir.join("proxy.stderr");
    std::thread::spawn(move || {
        let mut out = std::fs::File::create(log).unwrap();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = found.send(url.to_owned());
            }
            let _ = std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes());
        }
    });
    let url = url
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the proxy says where it listens");
    (Running(child), url)
}

#[test]
fn the_python_sdk_runs_the_story_over_streamable_http_with_a_bearer_token() {
    if !kest_testkit::live() {
        return;
    }
    let python = kest_testkit::live_env("KEST_PYTHON");
    let issuer = kest_testkit::live_env("KEST_OIDC_PROVIDER_URL");
    let dir = deployment();
    let config = dir.path().join("kest.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[mcp.http]\nissuer = \"{issuer}\"\naudience = \"mail-agent\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    let (proxy, url) = listening_proxy(dir.path(), &python);

    // Without a token, or with one for another audience, nothing runs.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let elsewhere = runtime.block_on(kest_testkit::oidc_provider::id_token(
        &issuer,
        "another-app",
        "alice",
    ));
    for token in [None, Some(elsewhere.as_str())] {
        let (ok, stdout, stderr) = run_http_agent(&python, dir.path(), &url, token);
        assert!(!ok, "an unauthenticated agent got through: {stdout}");
        // The SDK raises the 401's JSON-RPC error: missing, or invalid, bearer token.
        assert!(
            stderr.contains("kest: missing bearer token")
                || stderr.contains("kest: invalid bearer token"),
            "{stderr}"
        );
    }
    assert!(
        !dir.path().join("server.log").exists(),
        "the server ran nothing"
    );

    // Tokens live a few seconds at this provider: one is fetched just before the run.
    let token = runtime.block_on(kest_testkit::oidc_provider::id_token(
        &issuer,
        "mail-agent",
        "alice",
    ));
    let (ok, stdout, stderr) = run_http_agent(&python, dir.path(), &url, Some(&token));
    assert!(ok, "agent: {stdout}\n{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_story(&report, dir.path());

    // One session, one passport file; it verifies with both verifiers, and its entries
    // name the token's user.
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path().join("passports"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = files[0]
        .strip_prefix(dir.path())
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let (code, verified) = kest_verify_file(dir.path(), &file);
    assert_eq!(code, 0, "{verified}");
    let verified: Value = serde_json::from_str(verified.trim()).unwrap();
    assert_eq!(verified["entries"], 3, "{verified}");
    let (code, python_report) = crate::live_python::python_verify(
        &python,
        &files[0],
        &[(PRINCIPAL, &public_hex(dir.path()))],
    );
    assert_eq!(code, 0, "the Python package verifies it: {python_report}");
    assert_eq!(binding_verify(dir.path(), &file), 3);
    let jws: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    let part = jws[0].split('.').nth(1).unwrap();
    let entry: Value =
        serde_json::from_slice(&kest_canon::b64url_decode(part, "payload").unwrap()).unwrap();
    assert_eq!(entry["labels"]["user"], "alice", "{entry}");
    drop(proxy);
}

#[test]
fn the_proxy_fronts_a_python_server_that_speaks_streamable_http() {
    if !kest_testkit::live() {
        return;
    }
    let python = kest_testkit::live_env("KEST_PYTHON");
    let dir = deployment();
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let server = Running(
        Command::new(&python)
            .arg(story_dir().join("server.py"))
            .args(["--http", &port.to_string()])
            .env("MAIL_TOOLS_LOG", dir.path().join("server.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ready = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(ready, "the Python server listens on {port}");
    let upstream = format!("http://127.0.0.1:{port}/mcp");
    let out = Command::new(&python)
        .arg(story_dir().join("agent.py"))
        .args([
            "--",
            env!("CARGO_BIN_EXE_kest"),
            "mcp",
            "proxy",
            "--config",
            "kest.toml",
        ])
        .args(["--passport-out", "passport.json", "--upstream", &upstream])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "agent: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_story(&report, dir.path());
    let (code, verified) = kest_verify(dir.path());
    assert_eq!(code, 0, "{verified}");
    drop(server);
}
