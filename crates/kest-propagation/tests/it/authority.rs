//! Authority: a peer's published keys speak only for that peer. Finding 1 (a compromised
//! gateway publishes a key under hop1's and hop3's ids) and finding 2 (one peer's set locks
//! out another principal) of the attack report, against sets served over HTTP.
#![cfg(all(feature = "tower", feature = "oidc", feature = "reqwest"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kest_crypto::{Jwk, Jwks, KeySigner, KeySources, SigningKey};
use kest_identity::RemoteJwks;
use kest_passport::{EntryBuilder, Passport};
use kest_propagation::{Boundary, Flow, Ingress, LineageLayer, PassportCodec};
use kest_trust::WeakestLink;

const GATEWAY: &str = "spiffe://kest.test/gateway";
const HOP1: &str = "spiffe://kest.test/hop1";
const HOP3: &str = "spiffe://kest.test/hop3";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_ed25519_seed(&[seed; 32]).unwrap()
}

fn jwk(key: &SigningKey, kid: &str) -> Jwk {
    let mut jwk = key.verifying_key().to_jwk();
    jwk.kid = Some(kid.into());
    jwk
}

/// Serves `set` at `/.well-known/jwks.json` on 127.0.0.1; returns its URL.
async fn publish(set: Jwks) -> String {
    let body = serde_json::to_string(&set).unwrap();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/.well-known/jwks.json")
}

/// hop3: an internal service trusting the gateway's and hop1's published sets, each for
/// its own principal. Returns its URL and a count of handler runs.
async fn hop3(gateway_set: &str, hop1_set: &str) -> (String, Arc<AtomicU64>) {
    hop3_with(KeySources::new(), gateway_set, hop1_set).await
}

/// [`hop3`], with `sources` asked too.
async fn hop3_with(
    sources: KeySources,
    gateway_set: &str,
    hop1_set: &str,
) -> (String, Arc<AtomicU64>) {
    let keys = sources
        .with(RemoteJwks::for_peer(GATEWAY.parse().unwrap(), gateway_set).unwrap())
        .with(RemoteJwks::for_peer(HOP1.parse().unwrap(), hop1_set).unwrap());
    let ingress = Ingress::verify(keys).boundary(Boundary::Internal);
    let runs = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&runs);
    let router = axum::Router::new()
        .route(
            "/",
            axum::routing::post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { Flow::current().unwrap().passport().len().to_string() }
            }),
        )
        .layer(LineageLayer::new(PassportCodec::new().ingress(ingress)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{address}/"), runs)
}

/// A passport of one entry per `(operation, principal, key)`, in order.
fn signed_by(steps: Vec<(&str, &str, SigningKey)>) -> Passport {
    let mut passport = Passport::new();
    for (operation, principal, key) in steps {
        passport
            .append(
                EntryBuilder::new(operation).principal(principal),
                &KeySigner::new(key, principal),
                &WeakestLink,
            )
            .unwrap();
    }
    passport
}

/// A gateway entry, then an entry signed by `hop1_key` in hop1's name.
fn story(gateway_key: SigningKey, hop1_key: SigningKey) -> Passport {
    signed_by(vec![
        ("ingest", GATEWAY, gateway_key),
        ("sanitize", HOP1, hop1_key),
    ])
}

async fn send(url: &str, passport: &Passport) -> (u16, String) {
    let mut baggage = kest_propagation::Baggage::new();
    baggage
        .set(kest_propagation::keys::PASSPORT, passport.to_json())
        .unwrap();
    let response = reqwest::Client::new()
        .post(url)
        .header("baggage", baggage.to_header())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compromised_peer_cannot_sign_for_the_services_behind_it() {
    let (gateway, hop1, attacker) = (key(1), key(2), key(66));
    // The gateway's set lists its own key, and the attacker's under hop1's and hop3's ids.
    let gateway_set = publish(Jwks {
        keys: vec![
            jwk(&gateway, GATEWAY),
            jwk(&attacker, HOP1),
            jwk(&attacker, HOP3),
        ],
    })
    .await;
    let hop1_set = publish(Jwks {
        keys: vec![jwk(&hop1, HOP1)],
    })
    .await;
    let (url, runs) = hop3(&gateway_set, &hop1_set).await;

    // The honest story passes.
    let (status, body) = send(&url, &story(key(1), key(2))).await;
    assert_eq!((status, body.as_str()), (200, "2"));
    // A real gateway entry, then the attacker's "hop1" sanitizer entry: 403, nothing runs.
    let (status, body) = send(&url, &story(key(1), key(66))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("entry 1"), "{body}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Signing as hop3 itself fails the same way.
    let as_hop3 = signed_by(vec![("guarded", HOP3, attacker)]);
    let (status, _) = send(&url, &as_hop3).await;
    assert_eq!(status, 403);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_lock_another_out() {
    let (gateway, hop1) = (key(1), key(2));
    // The gateway's set lists a wrong key for hop1, and nine more.
    let mut keys = vec![jwk(&gateway, GATEWAY), jwk(&key(77), HOP1)];
    keys.extend((0..9).map(|i| jwk(&key(100 + i), HOP1)));
    let gateway_set = publish(Jwks { keys }).await;
    let hop1_set = publish(Jwks {
        keys: vec![jwk(&hop1, HOP1)],
    })
    .await;
    let (url, runs) = hop3(&gateway_set, &hop1_set).await;
    let (status, body) = send(&url, &story(key(1), key(2))).await;
    assert_eq!((status, body.as_str()), (200, "2"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A source that holds more keys for hop1 than it may offer answers "ambiguous"; that
/// must not keep hop1's own published set, not fetched yet, from being fetched and used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowded_source_does_not_keep_a_peer_set_from_being_fetched() {
    let mut crowded = kest_crypto::StaticKeyResolver::new();
    for i in 0..9 {
        crowded.insert(HOP1, key(150 + i).verifying_key().clone());
    }
    let gateway_set = publish(Jwks {
        keys: vec![jwk(&key(1), GATEWAY)],
    })
    .await;
    let hop1_set = publish(Jwks {
        keys: vec![jwk(&key(2), HOP1)],
    })
    .await;
    let (url, runs) = hop3_with(KeySources::new().with(crowded), &gateway_set, &hop1_set).await;
    // hop1's entry alone: only the crowded source and the sets not fetched yet can answer.
    let (status, body) = send(&url, &signed_by(vec![("sanitize", HOP1, key(2))])).await;
    assert_eq!((status, body.as_str()), (200, "1"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
