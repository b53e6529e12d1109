//! What Kest adds to an MCP tool call.
//!
//! - `mcp/rmcp_direct` and `mcp/rmcp_kest_server`: an rmcp client calling a tool of an
//!   rmcp server in process (an in-memory transport), without and with [`KestServer`].
//! - `mcp/stdio_direct` and `mcp/stdio_proxy`: newline-delimited JSON-RPC, as over stdio
//!   (in-memory pipes), to a server that answers at once, without and with [`Proxy`].
//! - `mcp/child_direct` and `mcp/child_proxy`: the same over real pipes to a child
//!   process (this binary, started again as the server), without and with [`Proxy`].
//! - `mcp/session_call`: the guard alone (the hook and what the MCP boundary adds), with
//!   no transport.
//! - `mcp/raw_signature`: one Ed25519 signature over an entry-sized message, the cost the
//!   target is stated in.
//!
//! Every session is filled with 1,000 calls before it is measured and keeps growing while
//! it is: the figures are for a deep passport. After criterion, each pair is timed call by
//! call and the p50 overhead is printed against the target (one signature plus 50 µs).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "a measurement binary"
)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use kest::Kest;
use kest::crypto::SigningKey;
use kest::identity::StaticIdentity;
use kest::policy::CedarEngine;
use kest_mcp::{KestServer, McpConfig, McpGuard, Proxy, Rule};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleClient, RoleServer, RunningService};
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::runtime::Runtime;

const PRINCIPAL: &str = "spiffe://kest.bench/tools";
const DEPTH: usize = 1000;

fn depth() -> usize {
    std::env::var("KEST_BENCH_MCP_DEPTH")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(DEPTH)
}

/// A server whose one tool answers at once.
#[derive(Clone)]
struct Lookup;

impl ServerHandler for Lookup {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text("found")]).into())
    }
}

fn guard(rt: &Runtime) -> McpGuard {
    let kest = Kest::builder()
        .identity(StaticIdentity::new(PRINCIPAL, SigningKey::generate_ed25519().unwrap()))
        .engine(
            CedarEngine::builder()
                .policy_source("lookup", r#"permit(principal, action == Action::"lookup", resource) when { context.subject.trust_score >= 10 };"#)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let config = McpConfig::new().with_tool("lookup", Rule::new());
    rt.block_on(McpGuard::new(kest, config)).unwrap()
}

async fn rmcp_client(server: impl rmcp::Service<RoleServer>) -> RunningService<RoleClient, ()> {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let running = server.serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    ().serve(client_io).await.unwrap()
}

async fn rmcp_call(client: &RunningService<RoleClient, ()>) {
    let params = CallToolRequestParams::new("lookup")
        .with_arguments(json!({"q": "x"}).as_object().unwrap().clone());
    client.call_tool(params).await.unwrap();
}

/// A JSON-RPC peer on newline-delimited pipes: in memory, or a child's.
struct LinePeer<W, R> {
    write: W,
    lines: Lines<BufReader<R>>,
    next: u64,
}

impl LinePeer<tokio::io::WriteHalf<DuplexStream>, tokio::io::ReadHalf<DuplexStream>> {
    fn new(io: DuplexStream) -> Self {
        let (read, write) = tokio::io::split(io);
        Self {
            write,
            lines: BufReader::new(read).lines(),
            next: 0,
        }
    }
}

impl<W: tokio::io::AsyncWrite + Unpin, R: tokio::io::AsyncRead + Unpin> LinePeer<W, R> {
    async fn call(&mut self) {
        self.next += 1;
        let id = self.next;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                             "params": {"name": "lookup", "arguments": {"q": "x"}}});
        self.write
            .write_all(format!("{request}\n").as_bytes())
            .await
            .unwrap();
        loop {
            let line = self.lines.next_line().await.unwrap().unwrap();
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["id"] == id {
                assert!(message.get("result").is_some(), "{line}");
                return;
            }
        }
    }
}

/// An in-memory peer.
type MemoryPeer = LinePeer<tokio::io::WriteHalf<DuplexStream>, tokio::io::ReadHalf<DuplexStream>>;
/// A child process's pipes, and the child.
type ChildPeer = (
    LinePeer<tokio::process::ChildStdin, tokio::process::ChildStdout>,
    tokio::process::Child,
);

/// Set in the environment of this binary started again as the child server.
const CHILD: &str = "KEST_BENCH_MCP_CHILD_SERVER";

/// The child server: answers every line on stdin at once, on stdout.
fn child_server() {
    use std::io::{BufRead as _, Write as _};
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let message: Value = serde_json::from_str(&line).unwrap();
        let answer = json!({"jsonrpc": "2.0", "id": message["id"],
                            "result": {"content": [{"type": "text", "text": "found"}]}});
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
}

/// This binary, started as the child server, with its pipes.
fn spawn_child() -> tokio::process::Child {
    tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// This binary started as the child server, and a peer on its pipes.
fn child_peer(rt: &Runtime) -> ChildPeer {
    rt.block_on(async {
        let mut child = spawn_child();
        let peer = LinePeer {
            write: child.stdin.take().unwrap(),
            lines: BufReader::new(child.stdout.take().unwrap()).lines(),
            next: 0,
        };
        (peer, child)
    })
}

/// The proxy in front of a child server, spoken to over in-memory pipes (as the proxy's
/// own stdin and stdout would be).
fn child_proxy(rt: &Runtime, guard: McpGuard) -> MemoryPeer {
    rt.block_on(async {
        let (client, proxy_client) = tokio::io::duplex(1 << 20);
        let mut child = spawn_child();
        let (to_server, from_server) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let (client_in, client_out) = tokio::io::split(proxy_client);
        tokio::spawn(async move {
            let _child = child;
            let _ = Proxy::new(guard)
                .run(client_in, client_out, from_server, to_server)
                .await;
        });
        LinePeer::new(client)
    })
}

/// A stdio-style server answering every `tools/call` at once.
fn line_server(io: DuplexStream) {
    tokio::spawn(async move {
        let (read, mut write) = tokio::io::split(io);
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let message: Value = serde_json::from_str(&line).unwrap();
            let answer = json!({"jsonrpc": "2.0", "id": message["id"],
                                "result": {"content": [{"type": "text", "text": "found"}]}});
            write
                .write_all(format!("{answer}\n").as_bytes())
                .await
                .unwrap();
        }
    });
}

fn stdio_direct(rt: &Runtime) -> MemoryPeer {
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 20);
        line_server(server);
        LinePeer::new(client)
    })
}

fn stdio_proxy(rt: &Runtime, guard: McpGuard) -> MemoryPeer {
    rt.block_on(async {
        let (client, proxy_client) = tokio::io::duplex(1 << 20);
        let (proxy_server, server) = tokio::io::duplex(1 << 20);
        line_server(server);
        let (client_in, client_out) = tokio::io::split(proxy_client);
        let (server_in, server_out) = tokio::io::split(proxy_server);
        tokio::spawn(Proxy::new(guard).run(client_in, client_out, server_in, server_out));
        LinePeer::new(client)
    })
}

/// The p50 of `calls` calls timed one by one, in µs.
fn p50(mut timed: impl FnMut() -> Duration, calls: usize) -> f64 {
    let mut all: Vec<Duration> = (0..calls).map(|_| timed()).collect();
    all.sort();
    all[all.len() / 2].as_secs_f64() * 1e6
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("mcp");

    let key = SigningKey::generate_ed25519().unwrap();
    let message = vec![b'a'; 1400];
    group.bench_function("raw_signature", |b| b.iter(|| key.sign(&message).unwrap()));

    let direct = rt.block_on(rmcp_client(Lookup));
    let wrapped = {
        let guard = guard(&rt);
        rt.block_on(rmcp_client(KestServer::new(Lookup, &guard)))
    };
    let mut plain = stdio_direct(&rt);
    let mut proxied = stdio_proxy(&rt, guard(&rt));
    let (mut child_plain, _child) = child_peer(&rt);
    let mut child_proxied = child_proxy(&rt, guard(&rt));
    rt.block_on(async {
        for _ in 0..depth() {
            rmcp_call(&wrapped).await;
            proxied.call().await;
            child_proxied.call().await;
        }
    });

    group.bench_function("rmcp_direct", |b| {
        b.iter(|| rt.block_on(rmcp_call(&direct)))
    });
    group.bench_function("rmcp_kest_server", |b| {
        b.iter(|| rt.block_on(rmcp_call(&wrapped)))
    });
    // The guard alone: the hook plus what the MCP boundary adds, with no transport.
    let session = guard(&rt).session();
    let arguments = json!({"q": "x"}).as_object().unwrap().clone();
    group.bench_function("session_call", |b| {
        b.iter(|| {
            let request = kest_mcp::Request {
                kind: kest_mcp::Kind::Tool,
                name: "lookup",
                arguments: Some(&arguments),
                baggage: None,
            };
            rt.block_on(session.call(
                request,
                async { Ok::<_, ()>(json!({"content": [{"type": "text", "text": "found"}]})) },
                kest::hash_serialized,
            ))
            .unwrap()
        })
    });
    group.bench_function("stdio_direct", |b| b.iter(|| rt.block_on(plain.call())));
    group.bench_function("stdio_proxy", |b| b.iter(|| rt.block_on(proxied.call())));
    group.bench_function("child_direct", |b| {
        b.iter(|| rt.block_on(child_plain.call()))
    });
    group.bench_function("child_proxy", |b| {
        b.iter(|| rt.block_on(child_proxied.call()))
    });
    group.finish();

    // The target, from per-call p50s measured back to back.
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    let calls = 3000;
    let signature = p50(|| time(&mut || drop(key.sign(&message).unwrap())), calls);
    let rows = [
        (
            "in process (rmcp, KestServer)",
            p50(|| time(&mut || rt.block_on(rmcp_call(&direct))), calls),
            p50(|| time(&mut || rt.block_on(rmcp_call(&wrapped))), calls),
        ),
        (
            "Proxy, in process (in-memory pipes)",
            p50(|| time(&mut || rt.block_on(plain.call())), calls),
            p50(|| time(&mut || rt.block_on(proxied.call())), calls),
        ),
        (
            "Proxy, over stdio (child process)",
            p50(|| time(&mut || rt.block_on(child_plain.call())), calls),
            p50(|| time(&mut || rt.block_on(child_proxied.call())), calls),
        ),
    ];
    println!(
        "\nMCP tools/call, p50 of {calls} calls each, sessions over {} entries deep:",
        depth()
    );
    println!(
        "| path | direct µs | with Kest µs | overhead µs | target (signature {signature:.1} + 50) |"
    );
    println!("|---|---|---|---|---|");
    for (path, without, with) in rows {
        let overhead = with - without;
        let verdict = if overhead <= signature + 50.0 {
            "met"
        } else {
            "MISSED"
        };
        println!("| {path} | {without:.1} | {with:.1} | {overhead:.1} | {verdict} |");
    }
}

criterion_group!(benches, bench);

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child_server();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
