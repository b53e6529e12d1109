//! The proxy's streamable HTTP side, with the official Rust SDK on both ends: an rmcp
//! client (bearer token and all) calls the proxy, which fronts an rmcp server that
//! itself speaks streamable HTTP. Then every way a caller could lie to the HTTP side.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{SERVER, Setup, Tools, rules};
use kest::Flow;
use kest::canon::b64url_encode;
use kest::crypto::SigningKey;
use kest::identity::JwtValidator;
use kest::propagation::IdentityLayer;
use kest_mcp::{
    HttpProxy, HttpSettings, KestClient, McpConfig, McpGuard, Proxy, REFUSED, Upstream,
};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const ISSUER: &str = "https://login.kest.test";
const AUDIENCE: &str = "mail-tools";

fn issuer_key() -> SigningKey {
    SigningKey::from_ed25519_seed(&[21; 32]).unwrap()
}

fn jwks() -> String {
    let mut jwk = serde_json::to_value(issuer_key().verifying_key().to_jwk()).unwrap();
    jwk["kid"] = json!("login-1");
    jwk["alg"] = json!("EdDSA");
    json!({ "keys": [jwk] }).to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token signed by `key` with `claims`.
fn signed(key: &SigningKey, claims: &Value) -> String {
    let header = json!({"alg": "EdDSA", "kid": "login-1", "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(claims.to_string().as_bytes())
    );
    format!(
        "{input}.{}",
        b64url_encode(&key.sign(input.as_bytes()).unwrap())
    )
}

/// A valid token for `user`, acting through the agent `planner`.
fn token(user: &str) -> String {
    signed(
        &issuer_key(),
        &json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 300, "sub": user, "client_id": "planner"}),
    )
}

/// Serves `tools` over streamable HTTP with the official SDK; returns its URL.
async fn upstream(tools: &Tools) -> String {
    upstream_recording(tools).await.0
}

/// The HTTP methods an upstream server received, in order.
type Methods = Arc<std::sync::Mutex<Vec<String>>>;

/// As [`upstream`], recording the HTTP method of every request it receives.
async fn upstream_recording(tools: &Tools) -> (String, Methods) {
    async fn record(
        axum::extract::State(methods): axum::extract::State<Methods>,
        request: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        methods.lock().unwrap().push(request.method().to_string());
        next.run(request).await
    }
    let tools = tools.clone();
    let service = StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let methods = Methods::default();
    let router = axum::Router::new().nest_service("/mcp", service).layer(
        axum::middleware::from_fn_with_state(Arc::clone(&methods), record),
    );
    (serve(router).await, methods)
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

struct Front {
    url: String,
    proxy: HttpProxy,
    tools: Tools,
    setup: Setup,
    dir: tempfile::TempDir,
    /// What the upstream server received.
    upstream: Methods,
}

/// The proxy, validating tokens of the test issuer, in front of an SDK server.
async fn front(settings: HttpSettings) -> Front {
    let tools = Tools::new();
    let (upstream_url, methods) = upstream_recording(&tools).await;
    let (runtime, setup) = Setup::server_runtime(false);
    let guard = McpGuard::new(runtime, rules().with_http(settings))
        .await
        .unwrap();
    let validator = JwtValidator::with_jwks(ISSUER, AUDIENCE, &jwks(), Duration::ZERO).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let proxy = HttpProxy::with_identity(
        guard,
        Upstream::Url(upstream_url),
        IdentityLayer::new(validator),
    )
    .passport_dir(dir.path());
    let url = serve(proxy.router()).await;
    Front {
        url,
        proxy,
        tools,
        setup,
        dir,
        upstream: methods,
    }
}

/// An rmcp client of `url` presenting `token`.
async fn sdk_client(url: &str, token: &str) -> RunningService<RoleClient, ClientConfig> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).auth_header(token),
    );
    ClientConfig::default()
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
        .serve(transport)
        .await
        .unwrap()
}

/// An `initialize` request with `id`, from a client named `client`.
fn initialize(id: u32, client: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": client, "version": "1"}}})
}

fn params(name: &'static str, arguments: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name).with_arguments(arguments.as_object().unwrap().clone())
}

/// The payload of a compact JWS.
fn payload(jws: &str) -> Value {
    let part = jws.split('.').nth(1).unwrap();
    serde_json::from_slice(&kest::canon::b64url_decode(part, "payload").unwrap()).unwrap()
}

#[tokio::test]
async fn the_story_over_streamable_http_on_both_sides() {
    let front = front(HttpSettings::new(ISSUER, AUDIENCE)).await;
    let client = sdk_client(&front.url, &token("alice")).await;
    let lineage = KestClient::new(&front.setup.agent(), Flow::new());

    lineage
        .call_tool(&client, params("fetch_page", json!({"text": "shop"})))
        .await
        .unwrap();
    let refused = lineage
        .call_tool(
            &client,
            params("send_email", json!({"to": "owner@shop.example"})),
        )
        .await
        .unwrap_err();
    let data = refused.refusal_of().expect("a Kest refusal");
    assert_eq!(i64::from(data.code.0), REFUSED);
    assert!(
        data.message.contains("policy `send_email`") && !data.message.contains('\n'),
        "{}",
        data.message
    );
    assert_eq!(
        front.tools.ran(),
        ["fetch_page"],
        "the refused email never reached the server"
    );
    lineage
        .call_tool(&client, params("summarize", json!({"text": "a page"})))
        .await
        .unwrap();
    lineage
        .call_tool(
            &client,
            params("send_email", json!({"to": "owner@shop.example"})),
        )
        .await
        .unwrap();
    assert_eq!(
        front.tools.ran(),
        ["fetch_page", "summarize", "send_email owner@shop.example"]
    );

    // The client's lineage and the session's passport file both verify offline.
    let passport = lineage.flow().passport();
    assert_eq!(front.setup.verify(&passport), 3);
    let files: Vec<_> = std::fs::read_dir(front.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "one session, one passport file");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let jws: Vec<String> = serde_json::from_str(&text).unwrap();
    assert_eq!(jws.len(), 3);
    // The user is the token's, and the signer is the proxy's workload.
    let entry = payload(&jws[2]);
    assert_eq!(entry["labels"]["principal"], SERVER, "{entry}");
    assert_eq!(entry["labels"]["user"], "alice", "{entry}");
    assert_eq!(entry["labels"]["agent"], "planner", "{entry}");
    assert_eq!(front.proxy.sessions(), 1);
    client.cancel().await.unwrap();
}

/// A raw streamable HTTP exchange with the proxy.
struct Raw {
    http: reqwest::Client,
    url: String,
}

impl Raw {
    async fn post(
        &self,
        token: Option<&str>,
        session: Option<&str>,
        body: &str,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send().await.unwrap()
    }

    /// Opens `user`'s `GET` stream of `session`.
    async fn stream(&self, user: &str, session: &str) -> reqwest::Response {
        self.http
            .get(&self.url)
            .bearer_auth(token(user))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session)
            .send()
            .await
            .unwrap()
    }

    /// Opens a session for `user`; returns its id.
    async fn open(&self, user: &str) -> String {
        let initialize = initialize(0, "raw");
        let response = self
            .post(Some(&token(user)), None, &initialize.to_string())
            .await;
        assert_eq!(response.status(), 200);
        let session = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let answer = messages(response).await;
        assert!(answer[0]["result"]["serverInfo"].is_object(), "{answer:?}");
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let accepted = self
            .post(Some(&token(user)), Some(&session), &initialized.to_string())
            .await;
        assert_eq!(accepted.status(), 202);
        session
    }
}

/// The JSON-RPC messages of a response, JSON or server-sent events.
async fn messages(response: reqwest::Response) -> Vec<Value> {
    let events = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream");
    let text = response.text().await.unwrap();
    if !events {
        return vec![serde_json::from_str(&text).unwrap()];
    }
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap())
        .collect()
}

fn call(id: u32, name: &str, arguments: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
    .to_string()
}

#[tokio::test]
async fn callers_are_admitted_by_their_token_alone_and_a_session_is_its_owners() {
    let front = front(
        HttpSettings::new(ISSUER, AUDIENCE)
            .with_max_sessions(2)
            .with_allowed_origin("https://agent.example"),
    )
    .await;
    let raw = Raw {
        http: reqwest::Client::new(),
        url: front.url.clone(),
    };
    let initialize = initialize(0, "raw").to_string();

    // No token, a token of another issuer's key, an expired one, another audience.
    let forged = signed(
        &SigningKey::from_ed25519_seed(&[99; 32]).unwrap(),
        &json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 300, "sub": "alice"}),
    );
    let expired = signed(
        &issuer_key(),
        &json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() - 60, "sub": "alice"}),
    );
    let elsewhere = signed(
        &issuer_key(),
        &json!({"iss": ISSUER, "aud": "another-service", "exp": now() + 300, "sub": "alice"}),
    );
    for token in [
        None,
        Some(forged.as_str()),
        Some(expired.as_str()),
        Some(elsewhere.as_str()),
    ] {
        let response = raw.post(token, None, &initialize).await;
        assert_eq!(response.status(), 401, "token {token:?}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    assert_eq!(
        front.proxy.sessions(),
        0,
        "no session for an unauthenticated caller"
    );

    // A page from another origin is refused, whatever its token.
    let cross = raw
        .http
        .post(&raw.url)
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .bearer_auth(token("alice"))
        .body(initialize.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);

    let alice = raw.open("alice").await;
    let good = call(1, "fetch_page", &json!({"text": "shop"}));
    // A page of an allowed origin may call.
    let allowed = raw
        .http
        .post(&raw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("origin", "https://agent.example")
        .header("mcp-session-id", &alice)
        .bearer_auth(token("alice"))
        .body(json!({"jsonrpc": "2.0", "id": 100, "method": "ping"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    // Bob cannot use Alice's session, with a valid token of his own.
    let hijack = raw.post(Some(&token("bob")), Some(&alice), &good).await;
    assert_eq!(hijack.status(), 403);
    // No session, an unknown one, a second initialize inside one.
    assert_eq!(
        raw.post(Some(&token("alice")), None, &good).await.status(),
        400
    );
    let unknown = raw
        .post(Some(&token("alice")), Some("0123456789abcdef"), &good)
        .await;
    assert_eq!(unknown.status(), 404);
    let again = raw
        .post(Some(&token("alice")), Some(&alice), &initialize)
        .await;
    assert_eq!(again.status(), 400);
    // Messages built to slip past the hook: a batch, a guarded notification, duplicate
    // members (`name` twice: which one would the server run?).
    let batch = format!("[{good}]");
    let notification = json!({"jsonrpc": "2.0", "method": "tools/call",
                              "params": {"name": "fetch_page", "arguments": {"text": "x"}}});
    let duplicate = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"summarize","name":"delete_all","arguments":{}}}"#;
    for body in [batch, notification.to_string(), duplicate.to_owned()] {
        let response = raw.post(Some(&token("alice")), Some(&alice), &body).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    assert!(front.tools.ran().is_empty(), "{:?}", front.tools.ran());

    // A forged `_meta` passport: a clean chain signed under the server's name by a key
    // nobody trusts.
    let jws = common::forged_chain().await;
    let mut baggage = kest::propagation::Baggage::new();
    baggage
        .set("kest.passport", serde_json::to_string(&jws).unwrap())
        .unwrap();
    let baggage = baggage.to_header();
    let lying = json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {
        "name": "summarize", "arguments": {"text": "x"}, "_meta": {"baggage": baggage}}});
    let response = raw
        .post(Some(&token("alice")), Some(&alice), &lying.to_string())
        .await;
    assert_eq!(response.status(), 200);
    let answer = messages(response).await;
    assert_eq!(
        answer.last().unwrap()["error"]["code"],
        REFUSED,
        "{answer:?}"
    );
    assert!(
        front.tools.ran().is_empty(),
        "the forged lineage ran nothing"
    );

    // Alice's own call goes through, answered on the request's stream.
    let response = raw.post(Some(&token("alice")), Some(&alice), &good).await;
    let answer = messages(response).await;
    let last = answer.last().unwrap();
    assert_eq!(last["id"], 1);
    assert!(
        last["result"]["_meta"]["baggage"]
            .as_str()
            .unwrap()
            .starts_with("kest.chain_tip="),
        "{last}"
    );
    assert_eq!(front.tools.ran(), ["fetch_page"]);
    // A client that takes JSON only gets the answer as one JSON body.
    let json_only = raw
        .http
        .post(&raw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-session-id", &alice)
        .bearer_auth(token("alice"))
        .body(call(2, "echo", &json!({"text": "plain"})))
        .send()
        .await
        .unwrap();
    assert_eq!(json_only.headers()["content-type"], "application/json");
    let answer: Value = json_only.json().await.unwrap();
    assert_eq!(answer["id"], 2, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "plain", "{answer}");

    // Sessions are bounded; ending one frees its place, and its id is dead.
    let _bob = raw.open("bob").await;
    let third = raw.post(Some(&token("carol")), None, &initialize).await;
    assert_eq!(third.status(), 503);
    let ended = raw
        .http
        .delete(&raw.url)
        .bearer_auth(token("alice"))
        .header("mcp-session-id", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    assert_eq!(
        raw.post(Some(&token("alice")), Some(&alice), &good)
            .await
            .status(),
        404
    );
    // Once the session was initialized, the proxy opened the server's own stream.
    assert!(
        front.upstream.lock().unwrap().iter().any(|m| m == "GET"),
        "{:?}",
        front.upstream.lock().unwrap()
    );
    // Ending the session at the proxy ends it at the server too.
    let mut deleted = false;
    for _ in 0..100 {
        if front.upstream.lock().unwrap().iter().any(|m| m == "DELETE") {
            deleted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(deleted, "{:?}", front.upstream.lock().unwrap());
    let carol = raw.open("carol").await;
    assert_eq!(front.proxy.sessions(), 2);
    let shown = format!("{:?}", front.proxy);
    assert!(
        shown.contains("Url(") && shown.contains("sessions: 2"),
        "{shown}"
    );
    // A shutdown ends every session.
    front.proxy.close();
    assert_eq!(front.proxy.sessions(), 0);
    let after = raw.post(Some(&token("carol")), Some(&carol), &good).await;
    assert_eq!(after.status(), 404);
}

#[tokio::test]
async fn a_server_that_cannot_be_reached_answers_each_request_with_an_error() {
    let (runtime, _) = Setup::server_runtime(false);
    let guard = McpGuard::new(runtime, rules()).await.unwrap();
    // A port nothing listens on.
    let dead = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/mcp", socket.local_addr().unwrap())
    };
    let (client_side, proxy_side) = tokio::io::duplex(1 << 16);
    let (proxy_in, proxy_out) = tokio::io::split(proxy_side);
    let relay = tokio::spawn(Proxy::new(guard).run_to_url(proxy_in, proxy_out, dead));
    let (read, mut write) = tokio::io::split(client_side);
    let initialize = initialize(1, "stdio-agent");
    write
        .write_all(format!("{initialize}\n").as_bytes())
        .await
        .unwrap();
    let mut lines = BufReader::new(read).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let answer: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(answer["error"]["code"], -32_603, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("kest: the server failed"),
        "{answer}"
    );
    write.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), relay)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_idle_session_gives_its_place_to_a_new_one_and_a_busy_one_does_not() {
    let front = front(
        HttpSettings::new(ISSUER, AUDIENCE)
            .with_max_sessions(2)
            .with_session_idle(Duration::from_millis(1000)),
    )
    .await;
    let raw = Raw {
        http: reqwest::Client::new(),
        url: front.url.clone(),
    };
    let initialize = initialize(0, "raw").to_string();
    let ping = json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}).to_string();
    let quiet = Duration::from_millis(1200);
    let alice = raw.open("alice").await;
    tokio::time::sleep(quiet).await;
    // Alice is idle, but there is room: her session is kept.
    let bob = raw.open("bob").await;
    let alive = raw.post(Some(&token("alice")), Some(&alice), &ping).await;
    assert_eq!(
        alive.status(),
        200,
        "an idle session is ended only for a new one"
    );
    // Bob keeps a GET stream open: his session is busy, however long he waits.
    let stream = raw.stream("bob", &bob).await;
    assert_eq!(stream.status(), 200);
    // One GET stream per session.
    let second = raw.stream("bob", &bob).await;
    assert_eq!(second.status(), 409);
    tokio::time::sleep(quiet).await;
    // The sessions are full: the idle one (Alice's) makes room, the busy one stays.
    let _carol = raw.open("carol").await;
    let gone = raw.post(Some(&token("alice")), Some(&alice), &ping).await;
    assert_eq!(gone.status(), 404);
    let kept = raw.post(Some(&token("bob")), Some(&bob), &ping).await;
    assert_eq!(kept.status(), 200);
    // Carol is fresh and Bob's stream is open: no room, nothing to end.
    let refused = raw.post(Some(&token("dave")), None, &initialize).await;
    assert_eq!(refused.status(), 503);
    // Once Bob's stream is closed and he has been quiet long enough, Dave gets his place.
    drop(stream);
    tokio::time::sleep(quiet).await;
    let _dave = raw.open("dave").await;
    let ended = raw.post(Some(&token("bob")), Some(&bob), &ping).await;
    assert_eq!(ended.status(), 404);
}

#[tokio::test]
async fn without_token_settings_the_http_side_does_not_start_and_anonymous_is_named() {
    let (runtime, _) = Setup::server_runtime(false);
    let guard = McpGuard::new(runtime, rules()).await.unwrap();
    let error = HttpProxy::new(guard, Upstream::Url("http://127.0.0.1:1/mcp".into()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("anonymous = true"), "{error}");

    let (runtime, _) = Setup::server_runtime(false);
    let both = McpConfig::from_toml_str(&format!(
        "[mcp.http]\nanonymous = true\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\""
    ))
    .unwrap();
    let guard = McpGuard::new(runtime, both).await.unwrap();
    let error = HttpProxy::new(guard, Upstream::Url("http://127.0.0.1:1/mcp".into()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("cannot be combined"), "{error}");

    let tools = Tools::new();
    let upstream_url = upstream(&tools).await;
    let (runtime, _) = Setup::server_runtime(false);
    let guard = McpGuard::new(runtime, rules().with_http(HttpSettings::anonymous_access()))
        .await
        .unwrap();
    let proxy = HttpProxy::new(guard, Upstream::Url(upstream_url))
        .await
        .unwrap();
    let url = serve(proxy.router()).await;
    let client = ClientConfig::default()
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
        .serve(StreamableHttpClientTransport::from_uri(url.as_str()))
        .await
        .unwrap();
    let echoed = client
        .call_tool(params("echo", json!({"text": "hi"})))
        .await
        .unwrap();
    assert!(format!("{echoed:?}").contains("hi"));
    assert_eq!(tools.ran(), ["echo"]);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_stdio_client_reaches_an_http_server_through_the_hook() {
    let tools = Tools::new();
    let url = upstream(&tools).await;
    let (runtime, setup) = Setup::server_runtime(false);
    let guard = McpGuard::new(runtime, rules()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let passport = dir.path().join("passport.json");
    let (client_side, proxy_side) = tokio::io::duplex(1 << 20);
    let (proxy_in, proxy_out) = tokio::io::split(proxy_side);
    let relay = tokio::spawn(Proxy::new(guard).passport_out(&passport).run_to_url(
        proxy_in,
        proxy_out,
        url.clone(),
    ));
    let (read, mut write) = tokio::io::split(client_side);
    let mut lines = BufReader::new(read).lines();
    let mut send = async |message: Value| {
        write
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
    };
    send(initialize(1, "stdio-agent")).await;
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next().await["result"]["serverInfo"]["name"], "mail-tools");
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "fetch_page", "arguments": {"text": "shop"}}}))
    .await;
    let page = next().await;
    assert_eq!(page["id"], 2, "{page}");
    assert!(page["result"]["_meta"]["baggage"].is_string(), "{page}");
    send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "send_email", "arguments": {"to": "owner@shop.example"}}}))
    .await;
    let refused = next().await;
    assert_eq!(refused["error"]["code"], REFUSED, "{refused}");
    assert_eq!(tools.ran(), ["fetch_page"]);
    let text = std::fs::read_to_string(&passport).unwrap();
    let keys = kest::crypto::StaticKeyResolver::new().with_key(SERVER, setup.key.clone());
    let verified = kest::passport::Verifier::new(&keys)
        .verify_json(&text)
        .unwrap();
    assert_eq!(verified.into_passport().len(), 1);
    write.shutdown().await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), relay)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((report.recorded, report.refused), (1, 1));
}

#[tokio::test]
async fn a_cancelled_request_s_stream_ends_at_once_and_the_session_goes_on() {
    let front = front(HttpSettings::new(ISSUER, AUDIENCE)).await;
    let raw = Raw {
        http: reqwest::Client::new(),
        url: front.url.clone(),
    };
    let alice = raw.open("alice").await;
    let waiting = raw
        .post(
            Some(&token("alice")),
            Some(&alice),
            &call(7, "wait", &json!({})),
        )
        .await;
    assert_eq!(waiting.status(), 200);
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 7, "reason": "the user gave up"}});
    let accepted = raw
        .post(Some(&token("alice")), Some(&alice), &cancel.to_string())
        .await;
    assert_eq!(accepted.status(), 202);
    // The request's stream ends at once, with no answer in it.
    let body = tokio::time::timeout(Duration::from_secs(5), waiting.text())
        .await
        .expect("the cancelled request's stream ends")
        .unwrap();
    assert!(!body.contains("\"id\":7"), "{body}");
    // The SDK server honours the cancellation: it sends no answer, even when its tool
    // goes on to finish, so the proxy has nothing to record for it. The session goes on.
    front.tools.release.notify_one();
    let next = raw
        .post(
            Some(&token("alice")),
            Some(&alice),
            &call(8, "echo", &json!({"text": "on"})),
        )
        .await;
    let answer = messages(next).await;
    assert_eq!(answer.last().unwrap()["result"]["content"][0]["text"], "on");
    let files: Vec<_> = std::fs::read_dir(front.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    let jws: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(jws.len(), 1, "only the answered call is recorded");
    assert_eq!(payload(&jws[0])["operation"], "echo");
}
