//! The stdio proxy against a scripted server: what passes unchanged, what goes through
//! the hook, and the messages built to slip past it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kest::Kest;
use kest::crypto::{SigningKey, StaticKeyResolver, VerifyingKey};
use kest::identity::StaticIdentity;
use kest::passport::Verifier;
use kest::policy::CedarEngine;
use kest_mcp::{McpConfig, McpGuard, Proxy, ProxyReport, REFUSED};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::sync::Notify;

const SERVER: &str = "spiffe://example.org/tools";

/// Lines the scripted server received, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// A server speaking newline-delimited JSON-RPC: it answers `initialize`, `tools/list`
/// and `tools/call` (the tool `slow` sends progress and waits for `release`; the tool
/// `bad_meta` answers with a `_meta` that is not an object), and records every line.
fn scripted_server(io: DuplexStream, seen: Seen, release: Arc<Notify>) {
    tokio::spawn(async move {
        let (read, write) = tokio::io::split(io);
        let write = Arc::new(tokio::sync::Mutex::new(write));
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            seen.lock().unwrap().push(line.clone());
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let (Some(id), Some(method)) = (message.get("id"), message["method"].as_str()) else {
                continue;
            };
            let result = match method {
                "initialize" => {
                    json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                                       "serverInfo": {"name": "scripted", "version": "1"}})
                }
                "tools/list" => {
                    json!({"tools": [{"name": "lookup", "inputSchema": {"type": "object"}},
                                                 {"name": "slow", "inputSchema": {"type": "object"}}]})
                }
                "tools/call" => {
                    let name = message["params"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    if name == "slow" {
                        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                              "params": {"progressToken": "p1", "progress": 1}});
                        let write = Arc::clone(&write);
                        let release = Arc::clone(&release);
                        let id = id.clone();
                        tokio::spawn(async move {
                            let mut out = write.lock().await;
                            out.write_all(format!("{progress}\n").as_bytes())
                                .await
                                .unwrap();
                            drop(out);
                            release.notified().await;
                            let answer = json!({"jsonrpc": "2.0", "id": id,
                                                "result": {"content": [{"type": "text", "text": "slow done"}]}});
                            let _ = write
                                .lock()
                                .await
                                .write_all(format!("{answer}\n").as_bytes())
                                .await;
                        });
                        continue;
                    }
                    if name == "bad_meta" {
                        json!({"content": [], "_meta": "not an object"})
                    } else if name == "failing" {
                        let answer = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "bad arguments"}});
                        write
                            .lock()
                            .await
                            .write_all(format!("{answer}\n").as_bytes())
                            .await
                            .unwrap();
                        continue;
                    } else {
                        json!({"content": [{"type": "text", "text": format!("ran {name}")}]})
                    }
                }
                _ => json!({"echo": method}),
            };
            let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
            write
                .lock()
                .await
                .write_all(format!("{answer}\n").as_bytes())
                .await
                .unwrap();
        }
    });
}

struct Harness {
    client: tokio::io::WriteHalf<DuplexStream>,
    replies: Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
    seen: Seen,
    release: Arc<Notify>,
    key: VerifyingKey,
    proxy: tokio::task::JoinHandle<Result<ProxyReport, kest_mcp::McpError>>,
    passport: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

const POLICIES: &[(&str, &str)] = &[
    (
        "lookup",
        r#"permit(principal, action == Action::"lookup", resource);"#,
    ),
    (
        "slow",
        r#"permit(principal, action == Action::"slow", resource);"#,
    ),
    (
        "bad_meta",
        r#"permit(principal, action == Action::"bad_meta", resource);"#,
    ),
    (
        "failing",
        r#"permit(principal, action == Action::"failing", resource);"#,
    ),
    (
        "forbidden",
        r#"forbid(principal, action == Action::"forbidden", resource);"#,
    ),
];

async fn harness(max_message_bytes: Option<usize>) -> Harness {
    let signing = SigningKey::generate_ed25519().unwrap();
    let key = signing.verifying_key().clone();
    let engine = POLICIES
        .iter()
        .fold(CedarEngine::builder(), |b, (name, source)| {
            b.policy_source(*name, *source)
        })
        .build()
        .unwrap();
    let kest = Kest::builder()
        .identity(StaticIdentity::new(SERVER, signing))
        .engine(engine)
        .build()
        .unwrap();
    let mut text = String::from(
        "[mcp]\nserver = \"scripted\"\n[mcp.tools.lookup]\norigin = \"third_party_api\"\n\
         [mcp.tools.slow]\n[mcp.tools.bad_meta]\n[mcp.tools.failing]\n[mcp.tools.forbidden]\n\
         [mcp.tools.not_offered]\n",
    );
    if let Some(max) = max_message_bytes {
        text = text.replace("[mcp]\n", &format!("[mcp]\nmax_message_bytes = {max}\n"));
    }
    let config = McpConfig::from_toml_str(&text).unwrap();
    let guard = McpGuard::new(kest, config).await.unwrap();

    let (client_side, proxy_client) = tokio::io::duplex(1 << 20);
    let (proxy_server, server_side) = tokio::io::duplex(1 << 20);
    let seen = Seen::default();
    let release = Arc::new(Notify::new());
    scripted_server(server_side, Arc::clone(&seen), Arc::clone(&release));
    let dir = tempfile::tempdir().unwrap();
    let passport = dir.path().join("passport.json");
    let (client_in, client_out) = tokio::io::split(proxy_client);
    let (server_in, server_out) = tokio::io::split(proxy_server);
    let proxy = tokio::spawn(
        Proxy::new(guard)
            .passport_out(&passport)
            .run(client_in, client_out, server_in, server_out),
    );
    let (read, write) = tokio::io::split(client_side);
    Harness {
        client: write,
        replies: BufReader::new(read).lines(),
        seen,
        release,
        key,
        proxy,
        passport,
        _dir: dir,
    }
}

impl Harness {
    async fn send(&mut self, line: &str) {
        self.client
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    async fn reply(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.replies.next_line())
            .await
            .expect("a reply within 10 s")
            .unwrap()
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }

    async fn raw_reply(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.replies.next_line())
            .await
            .expect("a reply within 10 s")
            .unwrap()
            .unwrap()
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn tool_calls_seen(&self) -> Vec<String> {
        self.seen()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["method"] == "tools/call")
            .map(|m| m["params"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    fn verified_file(&self) -> usize {
        let text = std::fs::read_to_string(&self.passport).unwrap();
        let keys = StaticKeyResolver::new().with_key(SERVER, self.key.clone());
        Verifier::new(&keys)
            .verify_json(&text)
            .unwrap()
            .into_passport()
            .len()
    }

    async fn close(mut self) -> ProxyReport {
        self.client.shutdown().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.proxy)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }
}

fn call(id: u32, name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {"q": 1}}})
        .to_string()
}

#[tokio::test]
async fn other_messages_pass_byte_for_byte_and_calls_come_back_with_lineage() {
    let mut h = harness(None).await;
    // Odd spacing and member order survive: the proxy forwards what it read.
    let initialize = r#"{ "jsonrpc":"2.0",  "id":"init-1","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"agent\u001b[31m","version":"9"}}}"#;
    h.send(initialize).await;
    let answer = h.raw_reply().await;
    assert!(answer.contains("\"serverInfo\""), "{answer}");
    h.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .await;
    h.send(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).await;
    assert_eq!(h.reply().await["result"]["echo"], "ping");

    h.send(&call(3, "lookup")).await;
    let reply = h.reply().await;
    assert_eq!(reply["id"], 3);
    assert_eq!(reply["result"]["content"][0]["text"], "ran lookup");
    // No lineage came in, so only the tip goes back: the session keeps the passport.
    let baggage = reply["result"]["_meta"]["baggage"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        baggage.starts_with("kest.chain_tip=") && !baggage.contains("kest.passport"),
        "{baggage}"
    );
    // The tip, sent back, continues the session.
    let again = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                       "params": {"name": "lookup", "_meta": {"baggage": baggage}}});
    h.send(&again.to_string()).await;
    let whole = h.reply().await;
    // Lineage came in, so the whole passport goes back.
    let whole = whole["result"]["_meta"]["baggage"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(whole.contains("kest.passport="), "{whole}");
    // An older tip of the session, sent back, continues it too (the session is ahead).
    let older = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
                       "params": {"name": "lookup", "_meta": {"baggage": baggage}}});
    h.send(&older.to_string()).await;
    let older = h.reply().await;
    assert!(older["result"]["_meta"]["baggage"].is_string(), "{older}");
    // A tip the session never had is refused, as over HTTP.
    let stranger = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                          "params": {"name": "lookup", "_meta": {"baggage": format!("kest.chain_tip={}", "ab".repeat(32))}}});
    h.send(&stranger.to_string()).await;
    assert_eq!(h.reply().await["error"]["code"], REFUSED);

    let seen = h.seen();
    assert_eq!(seen[0], initialize, "initialize is forwarded unchanged");
    assert!(
        seen.iter()
            .any(|l| l == r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
    );
    assert!(
        seen.iter()
            .any(|l| l == r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
    );
    assert_eq!(h.tool_calls_seen(), ["lookup", "lookup", "lookup"]);
    assert_eq!(
        h.verified_file(),
        3,
        "the passport file holds every call and verifies"
    );
    let file = std::fs::read_to_string(&h.passport).unwrap();
    let first: Vec<String> = serde_json::from_str(&file).unwrap();
    let part = first[0].split('.').nth(1).unwrap();
    let entry: Value =
        serde_json::from_slice(&kest::canon::b64url_decode(part, "payload").unwrap()).unwrap();
    assert_eq!(
        entry["trust_score"], 40,
        "third_party_api (60) held to the edge's user_input (40)"
    );
    assert_eq!(entry["labels"]["mcp.server"], "scripted");
    assert!(
        entry["labels"]["mcp.client"]
            .as_str()
            .unwrap()
            .contains("agent")
    );
    assert_eq!(
        entry["content_hash"],
        kest::hash_serialized(&json!({"content": [{"type": "text", "text": "ran lookup"}]}))
            .unwrap()
            .to_hex()
    );
    let report = h.close().await;
    assert_eq!(
        report,
        ProxyReport {
            recorded: 3,
            refused: 1
        }
    );
}

#[tokio::test]
async fn messages_built_to_slip_past_the_guard_are_refused_and_never_forwarded() {
    let mut h = harness(Some(4096)).await;
    let lies = [
        // Two names: the policy would decide one, the server run the other.
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup","name":"forbidden"}}"#.to_owned(),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","method":"ping","params":{"name":"forbidden"}}"#.to_owned(),
        // A batch hiding a call, and a call sent as a notification.
        format!("[{}]", call(3, "forbidden")),
        r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"forbidden"}}"#.to_owned(),
        // Not JSON, and too large.
        "{\"jsonrpc\":\"2.0\",\"id\":4,".to_owned(),
        format!("{{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{{\"name\":\"lookup\",\"arguments\":{{\"x\":\"{}\"}}}}}}", "a".repeat(5000)),
        // A name that is not a string, arguments that are not an object, baggage that
        // is not a string.
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":["forbidden"]}}"#.to_owned(),
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"lookup","arguments":[1]}}"#.to_owned(),
        r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"lookup","_meta":{"baggage":["x"]}}}"#.to_owned(),
        // Forged lineage.
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"lookup","_meta":{"baggage":"kest.passport=%5B%22a.b.c%22%5D"}}}"#.to_owned(),
        // Denied by policy, and not listed.
        call(10, "forbidden"),
        call(11, "unlisted_tool"),
    ];
    for lie in &lies {
        h.send(lie).await;
        let reply = h.reply().await;
        let code = reply["error"]["code"].as_i64().unwrap();
        assert!(
            [REFUSED, kest_mcp::PARSE_ERROR, kest_mcp::INVALID_REQUEST].contains(&code),
            "{lie:.80}: {reply}"
        );
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(!message.contains('\n') && !message.contains('\u{1b}'));
    }
    // The proxy is still in step: an honest call goes through.
    h.send(&call(12, "lookup")).await;
    assert_eq!(h.reply().await["id"], 12);
    assert_eq!(
        h.tool_calls_seen(),
        ["lookup"],
        "only the honest call reached the server"
    );
    let report = h.close().await;
    assert_eq!(report.recorded, 1);
    assert!(report.refused >= 6, "{report:?}");
}

#[tokio::test]
async fn progress_passes_a_cancelled_call_is_recorded_but_unanswered_and_server_errors_pass_unrecorded()
 {
    let mut h = harness(None).await;
    h.send(&call(1, "slow")).await;
    let progress = h.reply().await;
    assert_eq!(progress["method"], "notifications/progress");
    let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"user"}}"#;
    h.send(cancel).await;
    // The cancellation reaches the server unchanged.
    for _ in 0..100 {
        if h.seen().iter().any(|l| l == cancel) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(h.seen().iter().any(|l| l == cancel));
    // The server answers anyway: the tool ran, so it is recorded; the answer is withheld.
    h.release.notify_one();
    h.send(&call(2, "failing")).await;
    let failed = h.reply().await;
    assert_eq!(
        failed["id"], 2,
        "the cancelled call got no answer: {failed}"
    );
    assert_eq!(
        failed["error"]["code"], -32602,
        "the server's own error, unchanged"
    );
    h.send(&call(3, "bad_meta")).await;
    let bad = h.reply().await;
    assert_eq!(bad["error"]["code"], kest_mcp::NOT_RECORDED, "{bad}");
    // Two calls in flight under one id: the second is refused.
    h.send(&call(4, "slow")).await;
    let _progress = h.reply().await;
    h.send(&call(4, "lookup")).await;
    let duplicate = h.reply().await;
    assert_eq!(duplicate["id"], 4);
    assert!(
        duplicate["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already in flight")
    );
    h.release.notify_one();
    let slow = h.reply().await;
    assert_eq!(slow["result"]["content"][0]["text"], "slow done");
    // Both slow calls (the cancelled one too: it ran) and `bad_meta` (it ran, but its
    // answer could not carry the lineage, so the client got an error) are in the file.
    assert_eq!(h.verified_file(), 3);
    let report = h.close().await;
    assert_eq!(report.recorded, 2, "{report:?}");
}
