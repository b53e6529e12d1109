//! Test servers that speak the wire protocols of engines no registry here ships: the OPA
//! Data API (backed by regorus) and Amazon Verified Permissions' JSON protocol (backed by
//! the in-process Cedar engine). Also a server that misbehaves on purpose.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use kest_policy::{CedarEngine, EvaluationContext, PolicyEngine};
use serde_json::{Map, Value, json};

/// Serves `router` on a free loopback port; returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{address}")
}

/// A base URL nothing listens on.
pub async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

/// The OPA Data API: `POST /v1/data/<path>` with `{"input": …}` answers
/// `{"result": <data.<path>>}`, or `{}` when the document is undefined.
pub async fn opa_server(sources: Vec<(String, String)>) -> String {
    let mut engine = regorus::Engine::new();
    for (name, source) in sources {
        engine.add_policy(name, source).unwrap();
    }
    let engine = Arc::new(Mutex::new(engine));
    let router = Router::new()
        .route("/v1/data/{*path}", post(opa_data))
        .with_state(engine);
    serve(router).await
}

async fn opa_data(
    State(engine): State<Arc<Mutex<regorus::Engine>>>,
    Path(path): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON").into_response();
    };
    let mut engine = engine.lock().unwrap().clone();
    engine.set_input(regorus::Value::from(request["input"].clone()));
    let query = format!("data.{}", path.trim_matches('/').replace('/', "."));
    let answer = match engine.eval_query(query, false) {
        Ok(results) => match results.result.first().and_then(|r| r.expressions.first()) {
            Some(expression) => {
                let json: Value =
                    serde_json::from_str(&expression.value.to_json_str().unwrap()).unwrap();
                json!({ "result": json })
            }
            None => json!({}),
        },
        Err(error) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
        }
    };
    axum::Json(answer).into_response()
}

/// How [`misbehaving_server`] answers every request.
#[derive(Clone, Copy, Debug)]
pub enum Misbehavior {
    /// Answers a valid allow, but only after this long.
    Slow(Duration),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 500.
    ServerError,
    /// A JSON answer whose decision is not a boolean / not Allow or Deny.
    WrongShape,
}

pub async fn misbehaving_server(kind: Misbehavior) -> String {
    let router = Router::new().fallback(any(move |headers: HeaderMap| async move {
        let avp = headers.contains_key("x-amz-target");
        match kind {
            Misbehavior::Slow(delay) => {
                tokio::time::sleep(delay).await;
                let body = if avp {
                    json!({"decision": "ALLOW", "determiningPolicies": [], "errors": []})
                } else {
                    json!({"result": {"allow": true}, "decision": "Allow", "diagnostics": {"reason": [], "errors": []}})
                };
                amz_json(StatusCode::OK, &body)
            }
            Misbehavior::Garbage => (StatusCode::OK, "<html>not json</html>").into_response(),
            Misbehavior::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
            Misbehavior::WrongShape => amz_json(
                StatusCode::OK,
                &json!({"result": {"allow": "yes"}, "decision": "Maybe", "errors": 7}),
            ),
        }
    }));
    serve(router).await
}

fn amz_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

/// Amazon Verified Permissions' `IsAuthorized` over its JSON protocol (awsJson 1.0),
/// decided by `engine`. The request's context map is turned back into the JSON context.
pub async fn avp_server(engine: CedarEngine) -> String {
    let engine = Arc::new(engine);
    let router = Router::new().route(
        "/",
        post(move |headers: HeaderMap, body: Bytes| {
            let engine = Arc::clone(&engine);
            async move {
                let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
                if target != "VerifiedPermissions.IsAuthorized" {
                    return amz_json(StatusCode::BAD_REQUEST, &json!({"__type": "UnknownOperationException"}));
                }
                let request: Value = serde_json::from_slice(&body).unwrap();
                let mut document = Map::new();
                for (key, value) in request["context"]["contextMap"].as_object().cloned().unwrap_or_default() {
                    document.insert(key, from_attribute(&value));
                }
                document.insert("principal".into(), request["principal"]["entityId"].clone());
                let object = document.entry("object").or_insert_with(|| json!({}));
                object["id"] = request["resource"]["entityId"].clone();
                let context = EvaluationContext::from_document(Value::Object(document)).unwrap();
                let policy = request["action"]["actionId"].as_str().unwrap();
                let answer = match engine.evaluate(policy, &context).await {
                    Ok(decision) if decision.allow => json!({"decision": "ALLOW", "determiningPolicies": decision.reasons.iter().map(|r| json!({"policyId": r})).collect::<Vec<_>>(), "errors": []}),
                    Ok(_) => json!({"decision": "DENY", "determiningPolicies": [], "errors": []}),
                    Err(error) => json!({"decision": "DENY", "determiningPolicies": [], "errors": [{"errorDescription": error.to_string()}]}),
                };
                amz_json(StatusCode::OK, &answer)
            }
        }),
    );
    serve(router).await
}

fn from_attribute(value: &Value) -> Value {
    let (kind, inner) = value.as_object().and_then(|m| m.iter().next()).unwrap();
    match kind.as_str() {
        "string" | "boolean" | "long" => inner.clone(),
        "decimal" => json!(inner.as_str().unwrap().parse::<f64>().unwrap()),
        "set" => Value::Array(
            inner
                .as_array()
                .unwrap()
                .iter()
                .map(from_attribute)
                .collect(),
        ),
        "record" => Value::Object(
            inner
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), from_attribute(v)))
                .collect(),
        ),
        other => panic!("attribute kind {other} not handled by the test server"),
    }
}
