//! The multi-hop example's logic: four services, one entry per hop, the user carried
//! through, every tier of propagation, tokens enforced, and a short load run with no
//! broken chains. With `KEST_LIVE=1` and the `redis` feature, claim checks go through a
//! real Redis.
#![cfg(feature = "multi-hop")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;
use std::time::Duration;

use kest_examples::hops::{Deployment, Options, load};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_entry_per_hop_with_the_user_carried_through() {
    // Inline, compressed and claim-checked passports.
    for threshold in [None, Some(1200), Some(300)] {
        let deployment = Deployment::start(Options {
            redis: None,
            inline_threshold: threshold,
        })
        .await
        .unwrap();
        let token = deployment.token("alice", "support-bot", "refunds").unwrap();
        let (status, body) = deployment.call(&token).await.unwrap();
        assert_eq!(status, 200, "{body}");
        let passport = deployment.check(&body, "alice").unwrap();
        let tip = passport.tip().unwrap().entry();
        assert_eq!(tip.label("agent"), Some("support-bot"));
        assert_eq!(tip.label("task"), Some("refunds"));
        deployment.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_policies_are_enforced_at_the_gateway() {
    let deployment = Deployment::start(Options::default()).await.unwrap();
    let (status, _) = deployment.call("garbage").await.unwrap();
    assert_eq!(status, 401);
    // A valid token without a user: the hop policy refuses before anything runs.
    let (status, body) = deployment
        .call(&deployment.token("", "bot", "t").unwrap())
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not authorized"), "{body}");
    deployment.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_load_run_breaks_no_chain() {
    let deployment = Arc::new(Deployment::start(Options::default()).await.unwrap());
    let report = load(Arc::clone(&deployment), 4, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(report.requests > 10, "{report:?}");
    assert_eq!(report.broken, 0, "{report:?}");
    assert!(report.p50 <= report.p99);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_checks_through_redis() {
    if !kest_testkit::live() {
        return;
    }
    let deployment = Deployment::start(Options {
        redis: Some(kest_testkit::live_env("KEST_REDIS_URL")),
        inline_threshold: Some(300),
    })
    .await
    .unwrap();
    let token = deployment.token("alice", "support-bot", "refunds").unwrap();
    let (status, body) = deployment.call(&token).await.unwrap();
    assert_eq!(status, 200, "{body}");
    deployment.check(&body, "alice").unwrap();
    deployment.shutdown();
}
