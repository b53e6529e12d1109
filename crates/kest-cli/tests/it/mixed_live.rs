//! Live tier (`KEST_LIVE=1`): a mixed deployment over real HTTP.
//!
//! ```text
//! test ─▶ Python /start ─(N @kest_verified steps, httpx + KestHttpxInterceptor)─▶
//!         Rust /tool (verified ingress, the hook) ─(reqwest + PropagateLineage)─▶
//!         Python /callback (KestMiddleware, @kest_verified, PassportVerifier)
//! ```
//!
//! The Python service (`tests/python/mixed_service.py`) uses only the `kest` 0.3 package's
//! own middleware, decorator and interceptor, run by uvicorn from the live venv. The Rust
//! service is tower layers and the hook, trusting the Python service's public key and
//! nothing else. Both share the live Redis for claim checks. For chains of 1, 3, 6 and 40
//! Python entries, every tier is crossed in both directions; the passport is verified at
//! each end by `kest verify` and by the package's `PassportVerifier`, and `kest.user`,
//! `kest.agent` and `kest.task` must reach every step. The tier matrix is printed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts; the tier matrix is printed for the report"
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kest::crypto::{SigningKey, StaticKeyResolver, VerifyingKey};
use kest::identity::StaticIdentity;
use kest::passport::UnverifiedEntry;
use kest::policy::CedarEngine;
use kest::propagation::{LineageLayer, PropagateLineage, RedisClaimStore};
use kest::{Call, Kest, Protected, Values};
use serde_json::{Value, json};

use crate::live_python::python_verify;

const PYTHON: &str = "spiffe://kest.test/python-agent";
const RUST: &str = "spiffe://kest.test/rust-tool";
/// The Python service's Ed25519 seed (RFC 8032, test 2).
const PYTHON_SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
const RUST_SEED: [u8; 32] = [0x5a; 32];
const USER: &str = "alice";
const AGENT: &str = "support-bot";
const TASK: &str = "refunds";

/// The Rust step's policy: it runs only for the caller the test started with, so a step
/// that ran proves the caller's identity crossed from Python.
const POLICY: &str = r#"
permit (principal, action == Action::"tool", resource)
when {
  context.subject has user && context.subject.user == "alice" &&
  context.subject has agent && context.subject.agent == "support-bot" &&
  context.subject has task && context.subject.task == "refunds"
};
"#;

/// A tier as the receiving side saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// The Python interceptor's raw JSON `kest.passport=["…","…"]`.
    RawInline,
    /// Percent-encoded JSON in `kest.passport` (what our writer sends when inline is on).
    Inline,
    Compressed,
    ClaimCheck,
}

/// The Python service, stopped when dropped.
struct PythonService {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Drop for PythonService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PythonService {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

struct Tool {
    step: Protected,
    /// Sends compressed where inline would fit (what Python can read).
    client: reqwest_middleware::ClientWithMiddleware,
    /// Sends small passports inline, percent-encoded: the control.
    inline_client: reqwest_middleware::ClientWithMiddleware,
    inline: AtomicBool,
    python: String,
}

/// The Rust service's one route: the protected step, then the Python callback with the
/// passport, answering with what it sent and what Python answered.
async fn tool(State(tool): State<Arc<Tool>>) -> Response {
    if let Err(error) = tool.step.run(Values::new(), async {}).await {
        return (StatusCode::FORBIDDEN, format!("{error}\n")).into_response();
    }
    let sent = kest::current_passport().unwrap_or_default();
    let caller = json!({
        "user": kest::current_user(),
        "agent": kest::current_agent(),
        "task": kest::current_task(),
    });
    let client = if tool.inline.load(Ordering::SeqCst) {
        &tool.inline_client
    } else {
        &tool.client
    };
    let answer = client
        .post(format!("{}/callback", tool.python))
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let python = match answer {
        Ok(response) if response.status().is_success() => {
            response.json::<Value>().await.unwrap_or(Value::Null)
        }
        Ok(response) => json!({
            "status": response.status().as_u16(),
            "text": response.text().await.unwrap_or_default(),
        }),
        Err(error) => json!({"error": error.to_string()}),
    };
    axum::Json(json!({
        "rust_sent": serde_json::from_str::<Value>(&sent.to_json()).unwrap_or(Value::Null),
        "rust_caller": caller,
        "python": python,
    }))
    .into_response()
}

/// Records each inbound `baggage` header before the lineage layer reads it.
async fn capture(
    State(headers): State<Arc<Mutex<Vec<String>>>>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get("baggage")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    headers.lock().unwrap().push(header);
    next.run(request).await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_python(
    python: &str,
    dir: &Path,
    rust_url: &str,
    rust_key: &VerifyingKey,
) -> PythonService {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mixed_service.py");
    let port = free_port();
    let log = dir.join("python-service.log");
    let child = Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .env("KEST_MIXED_SEED_HEX", PYTHON_SEED)
        .env("KEST_MIXED_PRINCIPAL", PYTHON)
        .env("KEST_MIXED_RUST_URL", rust_url)
        .env("KEST_MIXED_RUST_PRINCIPAL", RUST)
        .env(
            "KEST_MIXED_RUST_PUBLIC_HEX",
            hex::encode(rust_key.as_bytes()),
        )
        .env("KEST_MIXED_EXPECT_USER", USER)
        .env("KEST_MIXED_EXPECT_AGENT", AGENT)
        .env("KEST_MIXED_EXPECT_TASK", TASK)
        .env("KEST_REDIS_URL", kest_testkit::live_env("KEST_REDIS_URL"))
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    PythonService {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    }
}

async fn wait_until_up(service: &mut PythonService, http: &reqwest::Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = http.get(format!("{}/health", service.url)).send().await
            && response.status().is_success()
        {
            return;
        }
        if let Ok(Some(status)) = service.child.try_wait() {
            panic!("the Python service exited ({status}):\n{}", service.log());
        }
        assert!(
            Instant::now() < deadline,
            "the Python service did not come up in 60 s:\n{}",
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The tier of a header the Python interceptor wrote, and whether stale passport
/// members rode beside the one its chain tip names.
fn tier_sent_by_python(header: &str) -> (Tier, bool) {
    let raw = header.contains("kest.passport=[");
    if header.contains("kest.claim_check=") {
        (Tier::ClaimCheck, raw || header.contains("kest.passport_z="))
    } else if header.contains("kest.passport_z=") {
        (Tier::Compressed, raw)
    } else {
        assert!(raw, "no passport member in {header}");
        (Tier::RawInline, false)
    }
}

/// The tier the Python callback received, from the member keys it saw.
fn tier_received_by_python(keys: &Value) -> Tier {
    let has = |key: &str| keys.as_array().unwrap().iter().any(|k| k == key);
    if has("kest.claim_check") {
        Tier::ClaimCheck
    } else if has("kest.passport_z") {
        Tier::Compressed
    } else {
        assert!(has("kest.passport"), "no passport member among {keys}");
        Tier::Inline
    }
}

fn kest_verify(dir: &Path, file: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kest"))
        .arg("verify")
        .arg("--json")
        .args(["--key", &format!("{PYTHON}=python.jwk")])
        .args(["--key", &format!("{RUST}=rust.jwk")])
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "kest verify printed {:?}, stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "kest verify {}: {report}",
        file.display()
    );
    report
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a passport: {value}"))
        .iter()
        .map(|jws| jws.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_services_carry_one_chain_both_ways_in_every_tier() {
    if !kest_testkit::live() {
        return;
    }
    let python_bin = kest_testkit::live_env("KEST_PYTHON");
    let redis_url = kest_testkit::live_env("KEST_REDIS_URL");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let python_key = SigningKey::from_ed25519_seed_hex(PYTHON_SEED).unwrap();
    let rust_key = SigningKey::from_ed25519_seed(&RUST_SEED).unwrap();
    let rust_public = rust_key.verifying_key().clone();
    for (file, key) in [("python.jwk", &python_key), ("rust.jwk", &rust_key)] {
        let jwk = serde_json::to_string(&key.verifying_key().to_jwk()).unwrap();
        std::fs::write(d.join(file), jwk).unwrap();
    }

    // The Rust service: it trusts the Python service's key, and only that.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rust_url = format!("http://{}", listener.local_addr().unwrap());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut python = start_python(&python_bin, d, &rust_url, &rust_public);
    let kest = Kest::builder()
        .identity(StaticIdentity::new(RUST, rust_key))
        .engine(
            CedarEngine::builder()
                .policy_source("mixed", POLICY)
                .build()
                .unwrap(),
        )
        .trust_keys(StaticKeyResolver::new().with_key(PYTHON, python_key.verifying_key().clone()))
        .claim_store(Arc::new(
            RedisClaimStore::connect(&redis_url).await.unwrap(),
        ))
        // The Python middleware does not percent-decode: send it base64url, never inline.
        .inline_tier(false)
        .service_name("mixed-rust-tool")
        .build()
        .unwrap();
    let tool_state = Arc::new(Tool {
        step: kest.protect(Call::new("tool").policy("tool")).unwrap(),
        client: reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(PropagateLineage::new(kest.codec().clone()))
            .build(),
        inline_client: reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(PropagateLineage::new(
                kest.codec().clone().inline_tier(true),
            ))
            .build(),
        inline: AtomicBool::new(false),
        python: python.url.clone(),
    });
    let inbound = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/tool", axum::routing::post(tool))
        .with_state(Arc::clone(&tool_state))
        .layer(LineageLayer::new(kest.codec().clone()))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&inbound),
            capture,
        ));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    wait_until_up(&mut python, &http).await;

    let python_hex = hex::encode(python_key.verifying_key().as_bytes());
    let rust_hex = hex::encode(rust_public.as_bytes());
    let keys = [(PYTHON, python_hex.as_str()), (RUST, rust_hex.as_str())];
    let expected_caller = json!({"user": USER, "agent": AGENT, "task": TASK});
    let python_identity = json!({"user": USER, "agent": AGENT});

    // depth, the tier Python sent, whether stale members rode along, the tier Rust sent.
    let expected = [
        (1, Tier::RawInline, false, Tier::Compressed),
        (3, Tier::RawInline, false, Tier::Compressed),
        (6, Tier::Compressed, true, Tier::Compressed),
        (40, Tier::ClaimCheck, true, Tier::ClaimCheck),
    ];
    let mut matrix = Vec::new();
    for (depth, python_tier, python_stale, rust_tier) in expected {
        inbound.lock().unwrap().clear();
        let response = http
            .post(format!("{}/start?depth={depth}", python.url))
            .header(
                "baggage",
                format!("kest.user={USER},kest.agent={AGENT},kest.task={TASK}"),
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "depth {depth}: {status} {body}\n{}",
            python.log()
        );
        assert_eq!(
            body["status"], 200,
            "depth {depth}: the Rust service answered {body}"
        );
        let rust = &body["rust"];
        let answer = &rust["python"];

        // What crossed, in which tier.
        let headers = inbound.lock().unwrap().clone();
        assert_eq!(headers.len(), 1, "depth {depth}");
        assert_eq!(
            Some(&headers[0]),
            body["sent_baggage"].as_str().map(str::to_owned).as_ref()
        );
        let (sent_tier, stale) = tier_sent_by_python(&headers[0]);
        let received_tier = tier_received_by_python(&answer["received_keys"]);
        matrix.push(format!(
            "{depth:>2} Python entries: Python -> Rust {sent_tier:?}{}, Rust -> Python \
             {received_tier:?}; the callback holds {} entries, the package's unpack reads {}",
            if stale { " (with stale members)" } else { "" },
            depth + 2,
            answer["package_unpack_entries"]
        ));
        assert_eq!(
            (sent_tier, stale, received_tier),
            (python_tier, python_stale, rust_tier),
            "depth {depth}: header {}",
            headers[0]
        );

        // The chains: N Python entries, then Rust's, then Python's callback.
        let rust_sent = strings(&rust["rust_sent"]);
        let last = strings(&answer["passport"]);
        assert_eq!(rust_sent.len(), depth + 1, "depth {depth}");
        assert_eq!(last.len(), depth + 2, "depth {depth}");
        assert_eq!(
            last[..=depth],
            rust_sent[..],
            "depth {depth}: the callback extends what Rust sent"
        );

        // Each end verifies, with both verifiers.
        assert_eq!(answer["python_verified"], true, "depth {depth}: {answer}");
        for (name, chain) in [("rust_sent", &rust_sent), ("last", &last)] {
            let file = d.join(format!("{name}-{depth}.json"));
            std::fs::write(&file, serde_json::to_string(chain).unwrap()).unwrap();
            let report = kest_verify(d, &file);
            assert_eq!(
                report["entries"],
                chain.len(),
                "{name} at depth {depth}: {report}"
            );
            let (code, report) = python_verify(&python_bin, &file, &keys);
            assert_eq!(code, 0, "{name} at depth {depth}: {report}");
        }
        // The header exactly as the Python interceptor wrote it, where it carries the
        // passport itself (a claim check needs the store, which `kest verify` has not).
        if sent_tier != Tier::ClaimCheck {
            let file = d.join(format!("header-{depth}.txt"));
            std::fs::write(&file, &headers[0]).unwrap();
            assert_eq!(
                kest_verify(d, &file)["entries"],
                depth,
                "header at depth {depth}"
            );
        }

        // The caller reached every step: both policies required it, and it is recorded.
        assert_eq!(rust["rust_caller"], expected_caller, "depth {depth}");
        assert_eq!(answer["caller"], expected_caller, "depth {depth}");
        for (index, jws) in last.iter().enumerate() {
            let read = UnverifiedEntry::parse(jws).unwrap();
            let entry = read.entry();
            if index == depth {
                assert_eq!(entry.principal(), Some(RUST));
                assert_eq!(entry.operation(), "tool");
                assert_eq!(entry.label("user"), Some(USER));
                assert_eq!(entry.label("agent"), Some(AGENT));
                assert_eq!(entry.label("task"), Some(TASK));
            } else {
                assert_eq!(entry.principal(), Some(PYTHON));
                let identity: Value =
                    serde_json::from_str(entry.label("kest.identity").unwrap()).unwrap();
                assert_eq!(identity, python_identity, "entry {index} at depth {depth}");
            }
        }
    }
    eprintln!("tier matrix:\n  {}", matrix.join("\n  "));

    // The control: the inline tier, percent-encoded as W3C baggage requires, is what the
    // Python middleware cannot read. It keeps the value as sent, and the package's
    // `Passport.deserialize` turns JSON it cannot parse into an empty passport, so the
    // callback continues from a tip whose chain it does not hold.
    tool_state.inline.store(true, Ordering::SeqCst);
    let body: Value = http
        .post(format!("{}/start?depth=1", python.url))
        .header(
            "baggage",
            format!("kest.user={USER},kest.agent={AGENT},kest.task={TASK}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null);
    let answer = &body["rust"]["python"];
    eprintln!("control, inline tier to Python: {answer}");
    assert_eq!(
        tier_received_by_python(&answer["received_keys"]),
        Tier::Inline,
        "{body}"
    );
    assert_ne!(
        answer["passport"].as_array().map(Vec::len),
        Some(3),
        "{body}"
    );
    server.abort();
}
