//! Fail closed end to end with a real HTTP policy engine: the hook drives the OPA engine
//! against a server (in the test, speaking OPA's Data API) that answers slowly, answers
//! garbage, fails, or is not there at all. Each time the operation must not run; an
//! honest allow from the same server runs it once, so the counter can move.
#![cfg(feature = "opa")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;
use kest::{Call, Flow, Kest, KestError, Values};
use kest_identity::MockIdentity;
use kest_policy::OpaEngine;
use serde_json::{Value, json};

/// An OPA Data API stand-in: one route per way of answering.
async fn server() -> String {
    let app = axum::Router::new()
        .route(
            "/v1/data/kest/allow",
            post(|| async { Json(json!({"result": {"allow": true}})) }),
        )
        .route(
            "/v1/data/kest/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Json(json!({"result": {"allow": true}}))
            }),
        )
        .route(
            "/v1/data/kest/garbage",
            post(|| async { Json(json!({"result": {"allow": "yes"}})) }),
        )
        .route(
            "/v1/data/kest/undefined",
            post(|| async { Json(json!({})) }),
        )
        .route(
            "/v1/data/kest/broken",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/v1/data/kest/not_json", post(|| async { "allow" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn kest_for(url: &str) -> Kest {
    let engine = OpaEngine::builder(url)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    Kest::builder()
        .identity(Arc::new(
            MockIdentity::new("spiffe://kest.test/remote").unwrap(),
        ))
        .engine(Arc::new(engine))
        .build()
        .unwrap()
}

async fn call(kest: &Kest, policy: &str, runs: &Arc<AtomicUsize>) -> Result<Value, KestError> {
    let hook = kest.protect(Call::new("act").policy(policy)).unwrap();
    let runs = Arc::clone(runs);
    Flow::new()
        .scope(hook.run(Values::new(), async move {
            runs.fetch_add(1, Ordering::SeqCst);
            json!("done")
        }))
        .await
}

#[tokio::test]
async fn a_slow_failing_or_garbled_engine_means_the_operation_never_runs() {
    let url = server().await;
    let kest = kest_for(&url);
    let runs = Arc::new(AtomicUsize::new(0));

    for policy in ["slow", "garbage", "undefined", "broken", "not_json"] {
        let error = call(&kest, policy, &runs).await.unwrap_err();
        assert!(
            matches!(error, KestError::Unauthorized(_)),
            "{policy}: {error}"
        );
        // OPA's convention: an undefined decision is a denial; every other answer here is
        // an engine failure, reported as such.
        assert_eq!(
            error.is_denied(),
            policy == "undefined",
            "{policy}: {error}"
        );
        assert_eq!(
            runs.load(Ordering::SeqCst),
            0,
            "{policy} let the operation run"
        );
    }

    // Nothing listening at all.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let error = call(&kest_for(&closed), "allow", &runs).await.unwrap_err();
    assert!(matches!(error, KestError::Unauthorized(_)), "{error}");
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    // The same server allowing honestly: the operation runs, once.
    assert_eq!(call(&kest, "allow", &runs).await.unwrap(), json!("done"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
