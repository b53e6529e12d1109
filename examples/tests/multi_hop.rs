//! The multi-hop example: four services, one entry per hop, the user carried through,
//! every tier of propagation, tokens and policies enforced, published keys, and every
//! hop refusing forged lineage with 403 before anything runs. With `KEST_LIVE=1` and the
//! `redis` feature, claim checks go through a real Redis.
#![cfg(feature = "multi-hop")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::Arc;
use std::time::Duration;

use kest::crypto::{KeySigner, SigningKey};
use kest::passport::{EntryBuilder, Head, Parents, Passport, SignedEntry, Verifier};
use kest::trust::{OriginMap, TaintSet, TrustScore, WeakestLink};
use kest_examples::hops::{
    Deployment, HOPS, Options, baggage_of, gateway_only_baggage, load, workload,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_entry_per_hop_with_the_user_carried_through() {
    // Inline, compressed and claim-checked passports.
    for threshold in [None, Some(1200), Some(300)] {
        let deployment = Deployment::start(Options {
            inline_threshold: threshold,
            ..Options::default()
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
        for index in 0..4 {
            assert_eq!(deployment.runs(index), 1);
        }
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
    assert_eq!(deployment.runs(0), 0);
    deployment.shutdown();
}

/// Every service publishes its key under its workload id; a peer's set is what the
/// others verify with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_publishes_its_key() {
    let deployment = Deployment::start(Options::default()).await.unwrap();
    let auditor = deployment.resolver();
    for (index, url) in deployment.urls().iter().enumerate() {
        let text = reqwest::get(format!("{url}.well-known/jwks.json"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let set = kest::crypto::JwksKeyResolver::from_json(&text).unwrap();
        let name = workload(HOPS[index]);
        let query = kest::crypto::KeyQuery::new(&name, Some(&name), kest::crypto::Algorithm::EdDSA);
        use kest::crypto::KeyResolver as _;
        assert_eq!(
            set.resolve(&query).unwrap(),
            auditor.resolve(&query).unwrap()
        );
        assert!(!text.contains("\"d\""), "{text}");
    }
    deployment.shutdown();
}

/// What an attacker can send a hop: each forged passport, the hop it targets, and the
/// cause the refusal must name.
struct Forgery {
    name: &'static str,
    hop: usize,
    baggage: String,
    cause: &'static str,
}

fn sign(entry: kest::passport::Entry, signer: &KeySigner) -> SignedEntry {
    SignedEntry::sign(entry, signer).unwrap()
}

/// The gateway's entry, as the gateway makes it.
fn gateway_entry(signer: &KeySigner) -> SignedEntry {
    sign(
        EntryBuilder::new("gateway")
            .principal(workload("gateway"))
            .origin_score(OriginMap::new().score("user_input").unwrap())
            .added_taints(["unverified"])
            .build_on(&[], &WeakestLink)
            .unwrap(),
        signer,
    )
}

fn passport_of(entries: &[SignedEntry]) -> Passport {
    let mut passport = Passport::new();
    for entry in entries {
        passport.push(entry.clone()).unwrap();
    }
    passport
}

fn forgeries(deployment: &Deployment) -> Vec<Forgery> {
    let gateway = deployment.stolen_signer(0).unwrap();
    let hop1 = deployment.stolen_signer(1).unwrap();
    let root = gateway_entry(&gateway);
    let mut forged = Vec::new();

    // 1. Re-signed by a key nobody trusts, claiming to be the gateway.
    let stranger = KeySigner::new(SigningKey::generate_ed25519().unwrap(), workload("gateway"));
    let resigned = gateway_entry(&stranger);
    for hop in [1, 2, 3] {
        forged.push(Forgery {
            name: "re-signed by an unknown key",
            hop,
            baggage: baggage_of(&passport_of(std::slice::from_ref(&resigned))).unwrap(),
            cause: "signature does not verify",
        });
    }

    // 2. A genuine sanitizer entry whose payload was edited afterwards (trust 90 → 100).
    let sanitizer = sign(
        EntryBuilder::new("hop1")
            .principal(workload("hop1"))
            .removed_taints(["unverified"])
            .trust_override(TrustScore::new(90).unwrap())
            .build_on(&[Head::from(&root)], &WeakestLink)
            .unwrap(),
        &hop1,
    );
    let edited = {
        let jws = sanitizer.jws();
        let parts: Vec<&str> = jws.split('.').collect();
        let payload = String::from_utf8(kest::canon::b64url_decode(parts[1], "p").unwrap())
            .unwrap()
            .replace("\"trust_score\":90", "\"trust_score\":100")
            .replace(
                "\"kest.trust_override\":\"90\"",
                "\"kest.trust_override\":\"100\"",
            );
        format!(
            "{}.{}.{}",
            parts[0],
            kest::canon::b64url_encode(payload.as_bytes()),
            parts[2]
        )
    };
    let edited_json = serde_json::to_string(&[root.jws().as_ref(), edited.as_str()]).unwrap();
    let mut baggage = kest::propagation::Baggage::new();
    baggage
        .set(kest::propagation::keys::PASSPORT, edited_json)
        .unwrap();
    for hop in [2, 3] {
        forged.push(Forgery {
            name: "payload edited after signing",
            hop,
            baggage: baggage.to_header(),
            cause: "entry 1",
        });
    }

    // 3. A trust raise without a declared override, signed with hop1's stolen key.
    let raise = sign(
        EntryBuilder::new("hop1")
            .principal(workload("hop1"))
            .removed_taints(["unverified"])
            .build_explicit(
                Parents::Hashes(vec![root.hash()]),
                TrustScore::new(95).unwrap(),
                &TaintSet::new(),
            )
            .unwrap(),
        &hop1,
    );
    for hop in [2, 3] {
        forged.push(Forgery {
            name: "trust raised without a declared override",
            hop,
            baggage: baggage_of(&passport_of(&[root.clone(), raise.clone()])).unwrap(),
            cause: "without a declared `kest.trust_override`",
        });
    }

    // 4a. The sanitizer skipped: the gateway's genuine entry straight to hop3, whose
    //     policy then sees trust 40 and `unverified`.
    forged.push(Forgery {
        name: "sanitizer skipped (genuine gateway entry sent to hop3)",
        hop: 3,
        baggage: gateway_only_baggage(deployment).unwrap(),
        cause: "denied by function policy `guarded`",
    });
    // 4b. The sanitizer skipped by dropping the taint silently, with hop1's stolen key.
    let laundered = sign(
        EntryBuilder::new("hop1")
            .principal(workload("hop1"))
            .trust_override(TrustScore::new(90).unwrap())
            .build_explicit(
                Parents::Hashes(vec![root.hash()]),
                TrustScore::new(90).unwrap(),
                &TaintSet::new(),
            )
            .unwrap(),
        &hop1,
    );
    for hop in [2, 3] {
        forged.push(Forgery {
            name: "taint dropped without removed_taints",
            hop,
            baggage: baggage_of(&passport_of(&[root.clone(), laundered.clone()])).unwrap(),
            cause: "vanished without being listed in `removed_taints`",
        });
    }

    // 5. Truncation: a genuine two-entry passport cut back to one, with the tip kept.
    let full = passport_of(&[root.clone(), sanitizer.clone()]);
    let mut cut = kest::propagation::Baggage::new();
    cut.set(
        kest::propagation::keys::PASSPORT,
        passport_of(std::slice::from_ref(&root)).to_json(),
    )
    .unwrap();
    cut.set(
        kest::propagation::keys::CHAIN_TIP,
        full.tip_hash().unwrap().to_hex(),
    )
    .unwrap();
    forged.push(Forgery {
        name: "truncated, tip kept",
        hop: 2,
        baggage: cut.to_header(),
        cause: "no passport in the baggage ends at",
    });
    forged
}

/// A forged passport is refused with 403 at whichever hop it reaches, naming the cause,
/// and nothing runs there or after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_refuses_forged_lineage_and_runs_nothing() {
    let deployment = Deployment::start(Options::default()).await.unwrap();
    let token = deployment.token("mallory", "bot", "refunds").unwrap();
    let cases = forgeries(&deployment);
    assert_eq!(cases.len(), 11);
    for case in &cases {
        let (status, body) = deployment
            .call_hop(case.hop, &token, Some(&case.baggage))
            .await
            .unwrap();
        assert_eq!(status, 403, "{} at hop {}: {body}", case.name, case.hop);
        assert!(
            body.contains(case.cause),
            "{} at hop {}: expected `{}` in {body}",
            case.name,
            case.hop,
            case.cause
        );
        for index in 0..4 {
            assert_eq!(
                deployment.runs(index),
                0,
                "{}: service {index} ran",
                case.name
            );
        }
    }
    // The honest request still goes through afterwards.
    let (status, body) = deployment.call(&token).await.unwrap();
    assert_eq!(status, 200, "{body}");
    deployment.check(&body, "mallory").unwrap();
    deployment.shutdown();
}

/// Finding 3 of the authority report: stripping lineage skips nothing. A valid token and
/// no passport sent straight to any hop behind the gateway is refused with 403 before
/// anything runs; a `baggage` header that is not text is 400 everywhere; at the gateway,
/// the edge, a request without lineage starts at `user_input` trust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hops_behind_the_gateway_refuse_requests_without_lineage() {
    let deployment = Deployment::start(Options::default()).await.unwrap();
    let token = deployment.token("alice", "bot", "refunds").unwrap();
    for hop in 1..4 {
        for baggage in [None, Some("tenant=acme")] {
            let (status, body) = deployment.call_hop(hop, &token, baggage).await.unwrap();
            assert_eq!(status, 403, "hop {hop}, {baggage:?}: {body}");
            assert!(body.contains("no lineage"), "{body}");
        }
    }
    for index in 0..4 {
        assert_eq!(deployment.runs(index), 0, "service {index} ran");
    }
    let url = &deployment.urls()[3];
    let response = reqwest::Client::new()
        .post(url)
        .header("authorization", format!("Bearer {token}"))
        .header(
            "baggage",
            reqwest::header::HeaderValue::from_bytes(b"\xff").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(deployment.runs(3), 0);
    // The honest story: the gateway's entry starts at the edge's user_input (40).
    let (status, body) = deployment.call(&token).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let passport = deployment.check(&body, "alice").unwrap();
    assert_eq!(passport.entries()[0].entry().trust_score().get(), 40);
    deployment.shutdown();
}

/// With verification off (the explicit insecure setting), the same forgery gets through:
/// the test above is not passing for some other reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_verification_a_forged_raise_would_get_through() {
    let deployment = Deployment::start(Options {
        verify_ingress: false,
        ..Options::default()
    })
    .await
    .unwrap();
    let token = deployment.token("mallory", "bot", "refunds").unwrap();
    let case = forgeries(&deployment)
        .into_iter()
        .find(|case| case.name.starts_with("trust raised") && case.hop == 3)
        .unwrap();
    let (status, body) = deployment
        .call_hop(3, &token, Some(&case.baggage))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(deployment.runs(3), 1);
    deployment.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_load_run_breaks_no_chain() {
    let deployment = Arc::new(Deployment::start(Options::default()).await.unwrap());
    let report = load(Arc::clone(&deployment), 4, Duration::from_secs(2), None)
        .await
        .unwrap();
    assert!(report.requests > 10, "{report:?}");
    assert_eq!(report.broken, 0, "{report:?}");
    assert!(report.p50 <= report.p99);
    // Paced at 20 requests a second for 2 s: each of the 4 clients sends every 200 ms,
    // the first at once, so at most 44 in all, however fast the services answer.
    let paced = load(
        Arc::clone(&deployment),
        4,
        Duration::from_secs(2),
        Some(20.0),
    )
    .await
    .unwrap();
    assert!(
        (4..=44).contains(&paced.requests),
        "{} requests at 20/s for 2 s",
        paced.requests
    );
    assert_eq!(paced.broken, 0, "{paced:?}");
    // Every final passport verifies with the services' keys alone.
    let token = deployment.token("bob", "bot", "t").unwrap();
    let (_, body) = deployment.call(&token).await.unwrap();
    let resolver = deployment.resolver();
    assert_eq!(
        Verifier::new(&resolver).verify_json(&body).unwrap().len(),
        4
    );
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
        ..Options::default()
    })
    .await
    .unwrap();
    let token = deployment.token("alice", "support-bot", "refunds").unwrap();
    let (status, body) = deployment.call(&token).await.unwrap();
    assert_eq!(status, 200, "{body}");
    deployment.check(&body, "alice").unwrap();
    deployment.shutdown();
}

/// `multi_hop --serve` prints one line per service, then a token, and serves until its
/// standard input closes.
#[test]
fn serve_prints_the_services_and_a_token_then_serves() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};
    let Some(exe) = example_binary() else {
        panic!("the multi_hop example binary was not built");
    };
    let mut child = Command::new(exe)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut urls = Vec::new();
    for name in HOPS {
        let line = lines.next().unwrap().unwrap();
        let (got, url) = line.split_once(' ').unwrap();
        assert_eq!(got, name);
        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
        urls.push(url.to_owned());
    }
    let line = lines.next().unwrap().unwrap();
    let token = line.strip_prefix("token ").unwrap().to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (status, body) = runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(&urls[0])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Vec<String>>(&body).unwrap().len(), 4);
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// The example binary cargo built beside this test (`target/<profile>/examples/`).
fn example_binary() -> Option<String> {
    let test = std::env::current_exe().ok()?;
    let profile = test.parent()?.parent()?;
    let path = profile.join("examples").join("multi_hop");
    path.exists().then(|| path.display().to_string())
}
