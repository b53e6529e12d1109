//! Verified ingress: the lineage layer refuses (403) what does not verify, before the
//! handler runs; members are chosen by what verifies; keys are published and fetched.
#![cfg(all(feature = "tower", feature = "oidc", feature = "reqwest"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use kest_crypto::{KeyResolver as _, KeySigner, SigningKey, StaticKeyResolver};
use kest_identity::RemoteJwks;
use kest_passport::{EntryBuilder, Limits, Passport, Verifier};
use kest_propagation::{
    Baggage, Flow, InboundPassport, Ingress, LineageLayer, PassportCodec, PropagationError,
    PublishKeysLayer, compress_passport, keys,
};
use kest_trust::WeakestLink;

const PEER: &str = "spiffe://kest.test/peer";

fn peer_key() -> SigningKey {
    SigningKey::from_ed25519_seed(&[21; 32]).unwrap()
}

fn trusted() -> StaticKeyResolver {
    StaticKeyResolver::new().with_key(PEER, peer_key().verifying_key().clone())
}

fn passport_by(key: SigningKey, len: usize) -> Passport {
    let signer = KeySigner::new(key, PEER);
    let mut passport = Passport::new();
    for i in 0..len {
        passport
            .append(
                EntryBuilder::new(format!("op{i}")).principal(PEER),
                &signer,
                &WeakestLink,
            )
            .unwrap();
    }
    passport
}

/// A service behind the lineage layer whose handler counts its runs and returns how many
/// entries it received.
async fn service(ingress: Ingress) -> (String, Arc<AtomicU64>) {
    let runs = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&runs);
    let handler = axum::routing::post(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let flow = Flow::current().expect("a flow");
            flow.passport().len().to_string()
        }
    });
    let router = axum::Router::new()
        .route("/", handler)
        .layer(LineageLayer::new(PassportCodec::new().ingress(ingress)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{address}/"), runs)
}

async fn send(url: &str, baggage: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header("baggage", baggage)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn inline(passport: &Passport) -> String {
    let mut baggage = Baggage::new();
    baggage.set(keys::PASSPORT, passport.to_json()).unwrap();
    baggage
        .set(keys::CHAIN_TIP, passport.tip_hash().unwrap().to_hex())
        .unwrap();
    baggage.to_header()
}

#[tokio::test]
async fn what_does_not_verify_is_403_and_nothing_runs() {
    let (url, runs) = service(Ingress::verify(trusted())).await;
    // Honest lineage goes through.
    let honest = passport_by(peer_key(), 3);
    assert_eq!(send(&url, &inline(&honest)).await, (200, "3".into()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Signed by a key nobody trusts.
    let forged = passport_by(SigningKey::generate_ed25519().unwrap(), 3);
    let (status, body) = send(&url, &inline(&forged)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("entry 0"), "{body}");
    assert!(body.contains("signature does not verify"), "{body}");
    // Truncated: a genuine prefix, with the real tip.
    let mut cut = Baggage::new();
    cut.set(keys::PASSPORT, passport_by(peer_key(), 2).to_json())
        .unwrap();
    cut.set(keys::CHAIN_TIP, honest.tip_hash().unwrap().to_hex())
        .unwrap();
    let (status, body) = send(&url, &cut.to_header()).await;
    assert_eq!(status, 403, "{body}");
    // Nothing ran for either.
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // A malformed chain tip beside a valid passport is named as such: 400.
    let mut bad_tip = Baggage::new();
    bad_tip.set(keys::PASSPORT, honest.to_json()).unwrap();
    bad_tip.set(keys::CHAIN_TIP, "zz").unwrap();
    let (status, body) = send(&url, &bad_tip.to_header()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is not an entry hash"), "{body}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // No lineage at all starts a new chain.
    assert_eq!(send(&url, "tenant=acme").await, (200, "0".into()));
}

/// The default ingress trusts nobody: every passport is refused, naming the signer.
#[tokio::test]
async fn a_service_that_trusts_nobody_refuses_every_passport() {
    let (url, runs) = service(Ingress::default()).await;
    let (status, body) = send(&url, &inline(&passport_by(peer_key(), 1))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("no key is known for principal"), "{body}");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

/// Turning verification off is an explicit, named setting; then anything goes through.
#[tokio::test]
async fn the_insecure_setting_is_explicit() {
    for refused in [None, Some(""), Some("1"), Some("yes"), Some("TRUE ")] {
        assert!(
            matches!(
                Ingress::insecure_unverified(refused),
                Err(PropagationError::InsecureIngress)
            ),
            "{refused:?}"
        );
    }
    let (url, runs) = service(Ingress::insecure_unverified(Some("true")).unwrap()).await;
    let forged = passport_by(SigningKey::generate_ed25519().unwrap(), 2);
    assert_eq!(send(&url, &inline(&forged)).await, (200, "2".into()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A forged member beside a valid one never masks it, in either order and either tier;
/// two valid passports that diverge, with no tip to choose, are a conflict naming both.
#[test]
fn members_are_chosen_by_what_verifies() {
    let keys = trusted();
    let verifier = Verifier::new(&keys);
    let limits = Limits::default();
    let honest = passport_by(peer_key(), 3);
    let forged = passport_by(SigningKey::generate_ed25519().unwrap(), 5);
    for (inline_json, compressed_json) in [
        (forged.to_json(), honest.to_json()),
        (honest.to_json(), forged.to_json()),
    ] {
        for tip in [None, honest.tip_hash()] {
            let inbound = InboundPassport {
                chain_tip: tip.map(|t| t.to_hex()),
                inline: Some(inline_json.clone()),
                compressed: Some(compress_passport(&compressed_json)),
                claim_check: None,
            };
            let report = inbound
                .choose_verified(None, &verifier, &limits)
                .unwrap()
                .unwrap();
            assert_eq!(report.passport(), &honest);
        }
    }
    // A stale shorter copy beside the fresh one, no tip: the fresh one.
    let entries: Vec<String> = serde_json::from_str(&honest.to_json()).unwrap();
    let stale = serde_json::to_string(&entries[..2]).unwrap();
    let inbound = InboundPassport {
        chain_tip: None,
        inline: Some(stale),
        compressed: Some(compress_passport(&honest.to_json())),
        claim_check: None,
    };
    assert_eq!(
        inbound
            .choose_verified(None, &verifier, &limits)
            .unwrap()
            .unwrap()
            .len(),
        3
    );
    // Two valid but diverging passports, no tip: the honest one's first two entries and
    // a different third.
    let keys_for_prefix = trusted();
    let mut other = Verifier::new(&keys_for_prefix)
        .verify_json(&serde_json::to_string(&entries[..2]).unwrap())
        .unwrap()
        .into_passport();
    other
        .append(
            EntryBuilder::new("elsewhere").principal(PEER),
            &KeySigner::new(peer_key(), PEER),
            &WeakestLink,
        )
        .unwrap();
    let inbound = InboundPassport {
        chain_tip: None,
        inline: Some(honest.to_json()),
        compressed: Some(compress_passport(&other.to_json())),
        claim_check: None,
    };
    let error = inbound
        .choose_verified(None, &verifier, &limits)
        .unwrap_err();
    assert!(
        matches!(
            &error,
            PropagationError::ConflictingMembers {
                first: keys::PASSPORT,
                second: keys::PASSPORT_Z,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.is_untrusted());
    // With the tip naming one of them, that one is chosen.
    let inbound = InboundPassport {
        chain_tip: Some(other.tip_hash().unwrap().to_hex()),
        ..inbound
    };
    assert_eq!(
        inbound
            .choose_verified(None, &verifier, &limits)
            .unwrap()
            .unwrap()
            .passport(),
        &other
    );
}

/// The same bad passport gives the same cause as a file and in baggage: the verifier's
/// own, with the entry's index.
#[test]
fn the_cause_does_not_depend_on_the_transport() {
    let keys = trusted();
    let verifier = Verifier::new(&keys);
    let honest = passport_by(peer_key(), 3);
    let mut entries: Vec<String> = serde_json::from_str(&honest.to_json()).unwrap();
    entries[1] = entries[1].replacen(".ey", ".eZ", 1);
    let tampered = serde_json::to_string(&entries).unwrap();
    let direct = verifier.verify_json(&tampered).unwrap_err();
    let inbound = InboundPassport {
        chain_tip: Some(honest.tip_hash().unwrap().to_hex()),
        inline: Some(tampered),
        compressed: None,
        claim_check: None,
    };
    let via_baggage = inbound
        .choose_verified(None, &verifier, &Limits::default())
        .unwrap_err();
    match via_baggage {
        PropagationError::Passport { key, source } => {
            assert_eq!(key, keys::PASSPORT);
            assert_eq!(source, direct);
            assert_eq!(source.index(), Some(1));
        }
        other => panic!("{other}"),
    }
}

/// A service publishes its key; a peer fetches it on first use, and again after a
/// rotation (at most once a second), and many requests that miss a key at once share
/// one fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_keys_are_fetched_and_refetched_after_a_rotation() {
    let old = peer_key();
    let new = SigningKey::from_ed25519_seed(&[22; 32]).unwrap();
    let published = Arc::new(std::sync::Mutex::new(PublishKeysLayer::for_workload(
        PEER,
        [old.verifying_key().clone()],
    )));
    let fetches = Arc::new(AtomicUsize::new(0));
    let layer = Arc::clone(&published);
    let count = Arc::clone(&fetches);
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let body = layer.lock().unwrap().body().to_owned();
            count.fetch_add(1, Ordering::SeqCst);
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let remote = Arc::new(
        RemoteJwks::for_peer(
            PEER.parse().unwrap(),
            format!("http://{address}/.well-known/jwks.json"),
        )
        .unwrap(),
    );
    let ingress = Ingress::verify_shared(remote.clone());
    let codec = PassportCodec::new().ingress(ingress);
    let baggage =
        |passport: &Passport| Baggage::parse(&inline(passport), &Default::default()).unwrap();

    // First use: not fetched yet; eight concurrent requests share one fetch.
    let first = passport_by(old, 2);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let codec = codec.clone();
        let baggage = baggage(&first);
        tasks.push(tokio::spawn(async move { codec.read(&baggage).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().0.unwrap().len(), 2);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // Seen keys need no fetch.
    codec.read(&baggage(&first)).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // The peer rotates: it publishes both keys and signs with the new one.
    *published.lock().unwrap() = PublishKeysLayer::for_workload(
        PEER,
        [
            peer_key().verifying_key().clone(),
            new.verifying_key().clone(),
        ],
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rotated = passport_by(new, 2);
    assert_eq!(
        codec
            .read(&baggage(&rotated))
            .await
            .unwrap()
            .0
            .unwrap()
            .len(),
        2
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // A stranger's entries make it try once more, no sooner than a second later, and
    // stay refused.
    let stranger = passport_by(SigningKey::generate_ed25519().unwrap(), 1);
    for _ in 0..5 {
        let error = codec.read(&baggage(&stranger)).await.unwrap_err();
        assert!(error.is_untrusted(), "{error}");
    }
    assert!(fetches.load(Ordering::SeqCst) <= 3);
    // Plain http to another host is refused outright.
    assert!(
        RemoteJwks::for_peer(
            PEER.parse().unwrap(),
            "http://peer.example.org/.well-known/jwks.json"
        )
        .is_err()
    );
    let query = kest_crypto::KeyQuery::new(PEER, Some(PEER), kest_crypto::Algorithm::EdDSA);
    assert_eq!(remote.candidates(&query).unwrap().len(), 2);
}

/// The publishing layer answers only GET and HEAD on its path, with public keys only.
#[tokio::test]
async fn the_key_endpoint_answers_its_path_only() {
    let key = peer_key();
    // A private key cannot even be put in a set: `Jwks` holds public keys only.
    let layer = PublishKeysLayer::new(&kest_crypto::Jwks {
        keys: vec![key.verifying_key().to_jwk()],
    });
    assert!(!layer.body().contains("\"d\""), "{}", layer.body());
    let app = axum::Router::new()
        .route("/", axum::routing::any(|| async { "service" }))
        .route(
            "/.well-known/jwks.json",
            axum::routing::post(|| async { "service" }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let got = client
        .get(format!("http://{address}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.headers()["content-type"].to_str().unwrap(),
        "application/jwk-set+json"
    );
    let text = got.text().await.unwrap();
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(raw["keys"][0].get("d").is_none(), "{text}");
    let set = kest_crypto::Jwks::from_json(&text).unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.keys[0], key.verifying_key().to_jwk());
    let posted = client
        .post(format!("http://{address}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.text().await.unwrap(), "service");
    let other = client
        .get(format!("http://{address}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.text().await.unwrap(), "service");
}

/// A refusal is logged with the member, the entry's index and `entry_id`, and the cause;
/// turning verification off is logged as a warning.
#[test]
fn refusals_and_the_insecure_setting_are_logged() {
    use tower::{Layer as _, Service as _};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let forged = passport_by(SigningKey::generate_ed25519().unwrap(), 3);
    let (status, events) = kest_testkit::logs::logged(|| {
        runtime.block_on(async {
            let router = axum::Router::new().route("/", axum::routing::post(|| async { "ran" }));
            let mut service =
                LineageLayer::new(PassportCodec::new().ingress(Ingress::verify(trusted())))
                    .layer(router);
            let request = http::Request::post("/")
                .header("baggage", inline(&forged))
                .body(axum::body::Body::empty())
                .unwrap();
            std::future::poll_fn(|cx| {
                tower::Service::<http::Request<axum::body::Body>>::poll_ready(&mut service, cx)
            })
            .await
            .unwrap();
            service.call(request).await.unwrap().status().as_u16()
        })
    });
    assert_eq!(status, 403);
    let refusal = events
        .iter()
        .find(|event| event.contains("refusing a request whose lineage does not verify"))
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(refusal.starts_with("WARN"), "{refusal}");
    assert!(refusal.contains("member=\"kest.passport\""), "{refusal}");
    assert!(refusal.contains("index=0"), "{refusal}");
    let id = forged.entries()[0].entry().entry_id().to_string();
    assert!(refusal.contains(&id), "{refusal}");
    assert!(refusal.contains("signature does not verify"), "{refusal}");
    let (_, events) = kest_testkit::logs::logged(|| Ingress::insecure_unverified(Some("true")));
    assert!(
        events
            .iter()
            .any(|event| event.starts_with("WARN") && event.contains("WITHOUT verification")),
        "{events:?}"
    );
}
