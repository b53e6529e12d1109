//! The rmcp server wrapper and client propagator, end to end over an in-memory transport:
//! the story, and every way a client could lie to the boundary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::{Arc, Mutex};

use kest::crypto::{SigningKey, StaticKeyResolver};
use kest::identity::StaticIdentity;
use kest::passport::Verifier;
use kest::policy::CedarEngine;
use kest::{Flow, Kest};
use kest_mcp::{KestClient, KestServer, McpConfig, McpGuard, REFUSED, Request, Rule, Unlisted};
use rmcp::model::{
    CallToolRequestParams, MetaObject, RequestMetaObject, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::{ServerHandler, ServiceExt};
use serde_json::{Value, json};

mod common;
use common::{SERVER, Setup, Tools, engine, rules};

/// Serves `tools` behind `guard` and connects a plain rmcp client to it.
async fn connect(tools: &Tools, guard: &McpGuard) -> RunningService<RoleClient, ()> {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let server = KestServer::new(tools.clone(), guard);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(client_io).await.unwrap()
}

fn params(name: &'static str, arguments: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name).with_arguments(arguments.as_object().unwrap().clone())
}

fn with_baggage(mut params: CallToolRequestParams, baggage: &str) -> CallToolRequestParams {
    let mut meta = MetaObject::new();
    meta.set_baggage(baggage);
    params.meta = Some(RequestMetaObject::from(meta));
    params
}

/// The payload of a compact JWS.
fn payload(jws: &str) -> Value {
    let part = jws.split('.').nth(1).unwrap();
    serde_json::from_slice(&kest::canon::b64url_decode(part, "payload").unwrap()).unwrap()
}

/// The code and message of a refused call.
fn refusal(result: Result<rmcp::model::CallToolResult, rmcp::ServiceError>) -> (i32, String) {
    match result {
        Err(rmcp::ServiceError::McpError(data)) => (data.code.0, data.message.to_string()),
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_story_refuses_the_tainted_email_and_allows_it_after_the_sanitizer() {
    let (runtime, setup) = Setup::server_runtime(false);
    let guard = McpGuard::new(runtime, rules()).await.unwrap();
    let tools = Tools::new();
    let client = connect(&tools, &guard).await;
    let lineage = KestClient::new(&setup.agent(), Flow::new());

    let page = lineage
        .call_tool(&client, params("fetch_page", json!({"text": "shop"})))
        .await
        .unwrap();
    assert!(
        page.meta
            .as_ref()
            .unwrap()
            .get_baggage()
            .unwrap()
            .contains("kest.chain_tip")
    );
    assert_eq!(lineage.flow().passport().len(), 1);

    let refused = lineage
        .call_tool(
            &client,
            params("send_email", json!({"to": "attacker@shop.example"})),
        )
        .await
        .unwrap_err();
    let data = refused.refusal_of().expect("a Kest refusal");
    assert_eq!(i64::from(data.code.0), REFUSED);
    assert!(
        data.message.contains("policy `send_email`"),
        "{}",
        data.message
    );
    assert!(
        data.message.contains("untrusted_content"),
        "{}",
        data.message
    );
    assert!(!data.message.contains('\n'));
    assert_eq!(data.data.as_ref().unwrap()["kest"]["policy"], "send_email");
    assert_eq!(data.data.as_ref().unwrap()["kest"]["cause"], "denied");
    assert_eq!(
        tools.ran(),
        ["fetch_page"],
        "the refused email was never sent"
    );

    lineage
        .call_tool(&client, params("summarize", json!({"text": "page"})))
        .await
        .unwrap();
    // The policy also reads the arguments: an address outside the shop is refused even
    // from clean data.
    let outside = lineage
        .call_tool(
            &client,
            params("send_email", json!({"to": "someone@evil.example"})),
        )
        .await
        .unwrap_err();
    assert!(outside.refusal_of().is_some());
    lineage
        .call_tool(
            &client,
            params("send_email", json!({"to": "owner@shop.example"})),
        )
        .await
        .unwrap();
    assert_eq!(
        tools.ran(),
        ["fetch_page", "summarize", "send_email owner@shop.example"]
    );

    let passport = lineage.flow().passport();
    assert_eq!(setup.verify(&passport), 3);
    let entries = passport.entries();
    let ops: Vec<String> = entries
        .iter()
        .map(|e| e.entry().operation().to_owned())
        .collect();
    assert_eq!(ops, ["fetch_page", "summarize", "send_email"]);
    let send = payload(&entries[2].jws());
    assert_eq!(
        send["input_hash"],
        kest::hash_serialized(&json!({"to": "owner@shop.example"}))
            .unwrap()
            .to_hex()
    );
    assert_eq!(
        send["content_hash"].as_str().unwrap().len(),
        64,
        "the result is hashed"
    );
    assert_eq!(send["labels"]["mcp.server"], "mail-tools");
    assert!(
        send["labels"]["mcp.client"]
            .as_str()
            .unwrap()
            .contains("rmcp")
    );
    client.cancel().await.unwrap();
}

/// The session's passport after `fetch_page`, as the server returned it.
async fn tainted_session(
    setup: &Setup,
    guard: &McpGuard,
    tools: &Tools,
) -> (RunningService<RoleClient, ()>, KestClient, String) {
    let client = connect(tools, guard).await;
    let lineage = KestClient::new(&setup.agent(), Flow::new());
    let page = lineage
        .call_tool(&client, params("fetch_page", json!({"text": "shop"})))
        .await
        .unwrap();
    let baggage = page.meta.unwrap().get_baggage().unwrap().to_owned();
    (client, lineage, baggage)
}

#[tokio::test]
async fn a_forged_or_edited_meta_passport_is_refused_and_the_tool_does_not_run() {
    let (runtime, setup) = Setup::server_runtime(false);
    let guard = McpGuard::new(runtime, rules()).await.unwrap();
    let tools = Tools::new();
    let (client, _lineage, baggage) = tainted_session(&setup, &guard, &tools).await;
    let json = kest::propagation::Baggage::parse(&baggage, &Default::default())
        .unwrap()
        .get("kest.passport")
        .unwrap()
        .to_owned();
    let passport: Vec<String> = serde_json::from_str(&json).unwrap();
    let encode = |list: &[String]| {
        let mut out = kest::propagation::Baggage::new();
        out.set("kest.passport", serde_json::to_string(list).unwrap())
            .unwrap();
        out.to_header()
    };

    // 1. The taint edited out of the payload, the signature kept.
    let parts: Vec<&str> = passport[0].split('.').collect();
    let bytes = kest::canon::b64url_decode(parts[1], "payload").unwrap();
    let edited = String::from_utf8(bytes)
        .unwrap()
        .replace("\"untrusted_content\"", "\"clean\"");
    let edited_jws = format!(
        "{}.{}.{}",
        parts[0],
        kest::canon::b64url_encode(edited.as_bytes()),
        parts[2]
    );
    // 2. A clean chain signed by an attacker's key under the server's name.
    let forged_list = common::forged_chain().await;

    let lies = [
        ("edited payload", encode(&[edited_jws])),
        ("re-signed by another key", encode(&forged_list)),
        ("truncated JWS", encode(&[passport[0][..40].to_owned()])),
        ("not baggage", "kest.passport=%zz".to_owned()),
        ("a tip with no passport", "kest.chain_tip=00ff".to_owned()),
    ];
    for (lie, header) in lies {
        let result = client
            .call_tool(with_baggage(
                params("send_email", json!({"to": "owner@shop.example"})),
                &header,
            ))
            .await;
        let (code, message) = refusal(result);
        assert_eq!(i64::from(code), REFUSED, "{lie}: {message}");
        assert!(!message.contains('\n'), "{lie}: one line");
    }
    // A `_meta.baggage` that is not a string.
    let mut params_bad = params("send_email", json!({"to": "owner@shop.example"}));
    let mut meta = MetaObject::new();
    meta.0
        .insert("baggage".into(), json!({"kest.passport": "[]"}));
    params_bad.meta = Some(RequestMetaObject::from(meta));
    let _ = client.call_tool(params_bad).await;
    assert_eq!(tools.ran(), ["fetch_page"], "no lie ran the tool");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_client_cannot_roll_the_session_back_or_drop_its_lineage() {
    let (runtime, setup) = Setup::server_runtime(false);
    let guard = McpGuard::new(runtime, rules()).await.unwrap();
    let tools = Tools::new();

    // A clean passport from another session of the same server.
    let (other, other_lineage) = {
        let client = connect(&tools, &guard).await;
        let lineage = KestClient::new(&setup.agent(), Flow::new());
        lineage
            .call_tool(&client, params("summarize", json!({"text": "x"})))
            .await
            .unwrap();
        (client, lineage)
    };
    let clean = other_lineage.request_meta().await.unwrap();
    let clean = clean.get_baggage().unwrap().to_owned();

    let (client, _, _) = tainted_session(&setup, &guard, &tools).await;
    // Sent without any lineage: the session remembers the taint.
    let (_, message) = refusal(
        client
            .call_tool(params("send_email", json!({"to": "owner@shop.example"})))
            .await,
    );
    assert!(message.contains("untrusted_content"), "{message}");
    // Sent with another session's clean, valid passport: refused as a rollback.
    let (code, message) = refusal(
        client
            .call_tool(with_baggage(
                params("send_email", json!({"to": "owner@shop.example"})),
                &clean,
            ))
            .await,
    );
    assert_eq!(i64::from(code), REFUSED);
    assert!(
        message.contains("does not continue this session"),
        "{message}"
    );
    assert_eq!(
        tools.ran(),
        ["summarize", "fetch_page"],
        "neither send_email ran"
    );
    other.cancel().await.unwrap();
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn unlisted_tools_are_refused_unless_guarded_by_their_own_policy() {
    let (runtime, _setup) = Setup::server_runtime(false);
    let tools = Tools::new();
    let deny = McpGuard::new(runtime.clone(), rules()).await.unwrap();
    let client = connect(&tools, &deny).await;
    let (code, message) = refusal(
        client
            .call_tool(CallToolRequestParams::new("delete_all"))
            .await,
    );
    assert_eq!(i64::from(code), REFUSED);
    assert!(message.contains("not listed"), "{message}");
    assert!(tools.ran().is_empty());
    client.cancel().await.unwrap();

    let guard = McpGuard::new(runtime, rules().with_unlisted(Unlisted::Guard))
        .await
        .unwrap();
    let client = connect(&tools, &guard).await;
    client
        .call_tool(CallToolRequestParams::new("delete_all"))
        .await
        .unwrap();
    // Guarded by a policy of its name: one that does not exist denies.
    let (_, message) = refusal(
        client
            .call_tool(CallToolRequestParams::new("no_such_tool"))
            .await,
    );
    assert!(message.contains("no_such_tool"), "{message}");
    assert_eq!(tools.ran(), ["delete_all"]);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_internal_server_refuses_a_session_without_lineage() {
    let (runtime, setup) = Setup::server_runtime(true);
    let guard = McpGuard::new(runtime, rules()).await.unwrap();
    let tools = Tools::new();
    let client = connect(&tools, &guard).await;
    let (code, message) = refusal(client.call_tool(params("echo", json!({"text": "x"}))).await);
    assert_eq!(i64::from(code), REFUSED);
    assert!(message.contains("lineage"), "{message}");
    assert!(tools.ran().is_empty());
    // Caller values in `_meta.baggage` are never taken: no `user` label appears.
    let edge = Setup::server_runtime(false).0;
    let edge_guard = McpGuard::new(edge, rules()).await.unwrap();
    let edge_client = connect(&tools, &edge_guard).await;
    let lineage = KestClient::new(&setup.agent(), Flow::new());
    let mut with_user = params("echo", json!({"text": "x"}));
    let mut meta = MetaObject::new();
    meta.set_baggage("kest.user=admin,kest.agent=root");
    with_user.meta = Some(RequestMetaObject::from(meta));
    let echoed = edge_client.call_tool(with_user).await.unwrap();
    let header = echoed.meta.unwrap().get_baggage().unwrap().to_owned();
    let baggage = kest::propagation::Baggage::parse(&header, &Default::default()).unwrap();
    assert_eq!(baggage.get("kest.user"), None);
    let list: Vec<String> = serde_json::from_str(baggage.get("kest.passport").unwrap()).unwrap();
    assert!(payload(&list[0])["labels"].get("user").is_none());
    drop(lineage);
    client.cancel().await.unwrap();
    edge_client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_passport_of_a_hundred_call_session_verifies() {
    let (runtime, setup) = Setup::server_runtime(false);
    let guard = McpGuard::new(runtime, rules()).await.unwrap();
    let tools = Tools::new();
    let client = connect(&tools, &guard).await;
    let lineage = KestClient::new(&setup.agent(), Flow::new());
    for index in 0..100 {
        lineage
            .call_tool(
                &client,
                params("echo", json!({"text": format!("call {index}")})),
            )
            .await
            .unwrap();
    }
    let passport = lineage.flow().passport();
    assert_eq!(setup.verify(&passport), 100);
    // The lineage went past the inline and compressed tiers: by claim check.
    let meta = lineage.request_meta().await.unwrap();
    assert!(meta.get_baggage().unwrap().contains("kest.claim_check="));
    client.cancel().await.unwrap();
}

/// A server with one resource and one prompt, counting what it serves.
#[derive(Clone, Default)]
struct Library {
    served: Arc<Mutex<Vec<String>>>,
}

impl ServerHandler for Library {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, rmcp::ErrorData> {
        self.served
            .lock()
            .unwrap()
            .push(format!("read {}", request.uri));
        Ok(
            rmcp::model::ReadResourceResult::new(vec![rmcp::model::ResourceContents::text(
                "the handbook",
                request.uri,
            )])
            .into(),
        )
    }

    async fn get_prompt(
        &self,
        request: rmcp::model::GetPromptRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::GetPromptResponse, rmcp::ErrorData> {
        self.served
            .lock()
            .unwrap()
            .push(format!("prompt {}", request.name));
        Ok(
            rmcp::model::GetPromptResult::new(vec![rmcp::model::PromptMessage::new_text(
                rmcp::model::Role::User,
                "hello",
            )])
            .into(),
        )
    }
}

#[tokio::test]
async fn resource_reads_are_decided_and_recorded_and_unlisted_prompts_refused() {
    let signing = SigningKey::generate_ed25519().unwrap();
    let key = signing.verifying_key().clone();
    let engine = CedarEngine::builder()
        .policy_source(
            "read_docs",
            r#"permit(principal, action == Action::"read_docs", resource)
               when { context.resource.uri like "docs://*" && context.resource.server == "library" };"#,
        )
        .build()
        .unwrap();
    let kest = Kest::builder()
        .identity(StaticIdentity::new(SERVER, signing))
        .engine(engine)
        .build()
        .unwrap();
    let config = McpConfig::new()
        .server_name("library")
        .with_resources(Rule::new().policy("read_docs").origin("verified_rag"));
    let guard = McpGuard::new(kest, config).await.unwrap();
    let library = Library::default();
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let server = KestServer::new(library.clone(), &guard);
    let session = server.session().clone();
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client = ().serve(client_io).await.unwrap();

    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "docs://handbook",
        ))
        .await
        .unwrap();
    assert!(
        read.meta
            .unwrap()
            .get_baggage()
            .unwrap()
            .starts_with("kest.chain_tip=")
    );
    let outside = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "file:///etc/shadow",
        ))
        .await;
    assert!(
        matches!(outside, Err(rmcp::ServiceError::McpError(ref e)) if i64::from(e.code.0) == REFUSED)
    );
    let prompt = client
        .get_prompt(rmcp::model::GetPromptRequestParams::new("greeting"))
        .await;
    match prompt {
        Err(rmcp::ServiceError::McpError(error)) => {
            assert_eq!(i64::from(error.code.0), REFUSED);
            assert!(
                error
                    .message
                    .contains("prompts/get `greeting` is not listed"),
                "{}",
                error.message
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(*library.served.lock().unwrap(), ["read docs://handbook"]);

    let passport = session.passport();
    let keys = StaticKeyResolver::new().with_key(SERVER, key);
    assert_eq!(
        Verifier::new(&keys)
            .verify_json(&passport.to_json())
            .unwrap()
            .len(),
        1
    );
    let entry = payload(&passport.entries()[0].jws());
    assert_eq!(entry["operation"], "resources/read");
    assert_eq!(
        entry["trust_score"], 40,
        "verified_rag (90) held to the edge (40)"
    );
    assert_eq!(
        entry["input_hash"],
        kest::hash_serialized(&json!({"uri": "docs://handbook"}))
            .unwrap()
            .to_hex()
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn lineage_that_continues_the_session_from_a_trusted_peer_is_taken() {
    // The agent signs a step of its own (a local sanitizer) between two tool calls; the
    // server trusts the agent's key for the agent's principal and continues from it.
    const AGENT: &str = "spiffe://example.org/agent";
    let agent_key = SigningKey::generate_ed25519().unwrap();
    let agent_public = agent_key.verifying_key().clone();
    let signing = SigningKey::generate_ed25519().unwrap();
    let server_public = signing.verifying_key().clone();
    let server = Kest::builder()
        .identity(StaticIdentity::new(SERVER, signing))
        .engine(engine())
        .trust_keys(StaticKeyResolver::new().with_key(AGENT, agent_public.clone()))
        .build()
        .unwrap();
    let guard = McpGuard::new(server, rules()).await.unwrap();
    let tools = Tools::new();
    let client = connect(&tools, &guard).await;
    let agent = Kest::builder()
        .identity(StaticIdentity::new(AGENT, agent_key))
        .engine(
            CedarEngine::builder()
                .policy_source(
                    "clean",
                    r#"permit(principal, action == Action::"clean", resource);"#,
                )
                .build()
                .unwrap(),
        )
        .trust_keys(
            StaticKeyResolver::new()
                .with_key(SERVER, server_public.clone())
                .with_key(AGENT, agent_public.clone()),
        )
        .build()
        .unwrap();
    let flow = Flow::new();
    let lineage = KestClient::new(&agent, flow.clone());
    lineage
        .call_tool(&client, params("fetch_page", json!({"text": "shop"})))
        .await
        .unwrap();
    let clean = agent
        .protect(
            kest::Call::new("clean")
                .policy("clean")
                .removed_taints(["untrusted_content"])
                .trust_override(80),
        )
        .unwrap();
    flow.scope(clean.run(kest::Values::new(), async {}))
        .await
        .unwrap();
    assert_eq!(flow.passport().len(), 2);
    lineage
        .call_tool(
            &client,
            params("send_email", json!({"to": "owner@shop.example"})),
        )
        .await
        .unwrap();
    assert_eq!(tools.ran(), ["fetch_page", "send_email owner@shop.example"]);
    let passport = lineage.flow().passport();
    let keys = StaticKeyResolver::new()
        .with_key(SERVER, server_public)
        .with_key(AGENT, agent_public);
    assert_eq!(
        Verifier::new(&keys)
            .verify_json(&passport.to_json())
            .unwrap()
            .len(),
        3
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_session_names_itself_and_acts_for_an_authenticated_caller_only() {
    let (runtime, _setup) = Setup::server_runtime(false);
    let guard = McpGuard::new(runtime, rules()).await.unwrap();
    assert!(format!("{guard:?}").contains("send_email"), "{guard:?}");
    assert!(guard.codec().ingress_config().is_verified());
    let session = guard.session();
    session.server_said("first");
    session.server_said("second");
    session.client_said(&json!({"name": "x".repeat(2000)}));
    session.set_caller(kest::Caller {
        user: Some("alice".into()),
        ..kest::Caller::default()
    });
    assert_eq!(session.flow().caller().user.as_deref(), Some("alice"));
    let shown = format!("{session:?}");
    assert!(
        shown.contains("entries: 0") && shown.contains("first"),
        "{shown}"
    );
    let echo = Request {
        kind: kest_mcp::Kind::Tool,
        name: "echo",
        arguments: None,
        baggage: None,
    };
    let recorded = session
        .call(echo, async { Ok::<_, ()>(()) }, |_| None)
        .await
        .unwrap();
    let entry = payload(&recorded.passport.entries()[0].jws());
    assert_eq!(entry["labels"]["user"], "alice");
    assert_eq!(
        entry["labels"]["mcp.server"], "first",
        "the first name given stays"
    );
    let client = entry["labels"]["mcp.client"].as_str().unwrap();
    assert_eq!(
        client.chars().count(),
        512,
        "clientInfo is cut to 512 characters"
    );
}
