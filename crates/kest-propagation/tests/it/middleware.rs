//! The lineage and identity layers in an axum service, and the reqwest propagator calling
//! it: the passport, the tiers and the caller cross the hop; unreadable lineage is 400,
//! bad tokens 401, a wrong layer order 500. (Lineage that does not verify: `ingress.rs`.)
#![cfg(all(feature = "tower", feature = "oidc", feature = "reqwest"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::Arc;
use std::time::Duration;

use kest_canon::b64url_encode;
use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
use kest_passport::{EntryBuilder, Passport, SignedEntry, UnverifiedPassport};
use kest_propagation::{
    Boundary, Caller, ClaimDefaults, ClaimStore, Flow, IdentityLayer, Ingress, LineageLayer,
    MemoryClaimStore, PassportCodec, PropagateLineage,
};
use kest_trust::WeakestLink;
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.kest.test";
const AUDIENCE: &str = "kest-services";

fn issuer_key() -> SigningKey {
    SigningKey::from_ed25519_seed(&[11; 32]).unwrap()
}

fn jwks() -> String {
    let mut jwk = serde_json::to_value(issuer_key().verifying_key().to_jwk()).unwrap();
    jwk["kid"] = json!("issuer-1");
    jwk["alg"] = json!("EdDSA");
    json!({ "keys": [jwk] }).to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(claims: &Value) -> String {
    let header = json!({"alg": "EdDSA", "kid": "issuer-1", "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(claims.to_string().as_bytes())
    );
    let signature = issuer_key().sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64url_encode(&signature))
}

fn good_claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 300, "sub": "alice", "client_id": "planner", "scope": ["read", "summarize"]})
}

fn signer(principal: &str) -> KeySigner {
    KeySigner::new(SigningKey::from_ed25519_seed(&[12; 32]).unwrap(), principal)
}

/// Appends an entry to the current flow, as a protected call would.
fn append(operation: &str, principal: &str) -> SignedEntry {
    let flow = Flow::current().expect("a flow");
    let entry = EntryBuilder::new(operation)
        .principal(principal)
        .build_on(&flow.passport().head_entries(), &WeakestLink)
        .unwrap();
    let signed = SignedEntry::sign(entry, &signer(principal)).unwrap();
    flow.update(|p| p.push(signed.clone())).unwrap();
    signed
}

/// A service whose handler appends one entry and reports what it saw.
async fn service(store: Arc<dyn ClaimStore>, lineage_outermost: bool) -> String {
    service_with(
        store,
        lineage_outermost,
        Boundary::default(),
        ClaimDefaults::default(),
    )
    .await
}

/// [`service`], at the given boundary and with defaults for claims a token lacks.
async fn service_with(
    store: Arc<dyn ClaimStore>,
    lineage_outermost: bool,
    boundary: Boundary,
    defaults: ClaimDefaults,
) -> String {
    let validator =
        kest_identity::JwtValidator::with_jwks(ISSUER, AUDIENCE, &jwks(), Duration::ZERO).unwrap();
    let handler = axum::routing::post(|| async {
        let flow = Flow::current().expect("the lineage layer opened a flow");
        let before = flow.passport().len();
        let start = flow.start_trust().map(|trust| trust.get());
        append("hop", "spiffe://kest.test/server");
        let caller = flow.caller();
        axum::Json(json!({
            "received": before,
            "passport": flow.passport().to_json(),
            "user": caller.user, "agent": caller.agent, "task": caller.task,
            "jwt": caller.jwt.is_some(),
            "start_trust": start,
        }))
    });
    let router = axum::Router::new().route("/hop", handler);
    // The server trusts the client's key, and only that.
    let trusted = StaticKeyResolver::new().with_key(
        "spiffe://kest.test/client",
        signer("spiffe://kest.test/client")
            .key()
            .verifying_key()
            .clone(),
    );
    let lineage = LineageLayer::new(
        PassportCodec::new()
            .store(store)
            .ingress(Ingress::verify(trusted).boundary(boundary)),
    );
    let identity = IdentityLayer::new(validator).defaults(defaults);
    let router = if lineage_outermost {
        router.layer(identity).layer(lineage)
    } else {
        router.layer(lineage).layer(identity)
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}/hop")
}

fn client(store: Arc<dyn ClaimStore>) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(PropagateLineage::new(PassportCodec::new().store(store)))
        .build()
}

fn passport_of(len: usize) -> Passport {
    let mut passport = Passport::new();
    for i in 0..len {
        passport
            .append(
                EntryBuilder::new(format!("upstream{i}"))
                    .principal("spiffe://kest.test/client")
                    .label("k", "v, w;x"),
                &signer("spiffe://kest.test/client"),
                &WeakestLink,
            )
            .unwrap();
    }
    passport
}

#[tokio::test]
async fn lineage_and_identity_cross_the_hop_in_every_tier() {
    let store: Arc<dyn ClaimStore> = Arc::new(MemoryClaimStore::default());
    let url = service(store.clone(), true).await;
    let client = client(store);
    for len in [1, 12, 60] {
        let upstream = passport_of(len);
        // Baggage that agrees with the token is kept.
        let flow = Flow::with_passport(
            upstream.clone(),
            Caller {
                user: Some("alice".into()),
                ..Caller::default()
            },
        );
        let response: Value = flow
            .scope(async {
                client
                    .post(&url)
                    .header("authorization", format!("Bearer {}", token(&good_claims())))
                    .header("baggage", "tenant=acme,kest.passport=stale")
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap()
                    .json()
                    .await
                    .unwrap()
            })
            .await;
        assert_eq!(response["received"], len, "{len} entries arrive");
        let after =
            UnverifiedPassport::decode(response["passport"].as_str().unwrap(), &Default::default())
                .unwrap();
        assert_eq!(after.len(), len + 1);
        assert_eq!(
            after.tip().unwrap().entry().parents().hashes(),
            [upstream.tip_hash().unwrap()]
        );
        // The caller is the verified token's.
        assert_eq!(response["user"], "alice");
        assert_eq!(response["agent"], "planner");
        assert_eq!(response["task"], "read summarize");
        assert_eq!(response["jwt"], true);
    }
}

#[tokio::test]
async fn bad_tokens_are_401_and_bad_lineage_400() {
    let store: Arc<dyn ClaimStore> = Arc::new(MemoryClaimStore::default());
    let url = service(store.clone(), true).await;
    let plain = reqwest::Client::new();
    let status = |response: reqwest::Response| response.status().as_u16();
    // No token.
    assert_eq!(status(plain.post(&url).send().await.unwrap()), 401);
    // Expired, wrong audience, wrong issuer, forged.
    let mut expired = good_claims();
    expired["exp"] = json!(now() - 60);
    let mut audience = good_claims();
    audience["aud"] = json!("someone-else");
    let mut issuer = good_claims();
    issuer["iss"] = json!("https://evil.kest.test");
    let forged = {
        let real = token(&good_claims());
        let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
        let mut claims = good_claims();
        claims["sub"] = json!("admin");
        parts[1] = b64url_encode(claims.to_string().as_bytes());
        parts.join(".")
    };
    for bad in [
        token(&expired),
        token(&audience),
        token(&issuer),
        forged,
        "not-a-jwt".into(),
    ] {
        let response = plain
            .post(&url)
            .header("authorization", format!("Bearer {bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(status(response), 401);
    }
    // A chain tip with no passport: 400, never a fresh root.
    let response = plain
        .post(&url)
        .header("authorization", format!("Bearer {}", token(&good_claims())))
        .header("baggage", format!("kest.chain_tip={}", "ab".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(status(response), 400);
    // A claim check the server's store does not have: 400.
    let other_store: Arc<dyn ClaimStore> = Arc::new(MemoryClaimStore::default());
    let flow = Flow::with_passport(passport_of(60), Caller::default());
    let response = flow
        .scope(
            client(other_store)
                .post(&url)
                .header("authorization", format!("Bearer {}", token(&good_claims())))
                .send(),
        )
        .await
        .unwrap();
    assert_eq!(status(response), 400);
    assert!(
        response_text(&url, &plain)
            .await
            .contains("missing bearer token")
    );
}

/// Finding 4: the caller comes from the validated token alone. Baggage that names another
/// user (or a user the token does not name) is 401 naming the claim; a claim the token
/// lacks is absent, or the configured default, never baggage's.
#[tokio::test]
async fn the_caller_comes_from_the_token_alone() {
    let store: Arc<dyn ClaimStore> = Arc::new(MemoryClaimStore::default());
    let url = service(store.clone(), true).await;
    let plain = reqwest::Client::new();
    let send = |claims: Value, baggage: &'static str| {
        let request = plain
            .post(&url)
            .header("authorization", format!("Bearer {}", token(&claims)));
        let request = if baggage.is_empty() {
            request
        } else {
            request.header("baggage", baggage)
        };
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let mut no_sub = good_claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut numeric_sub = good_claims();
    numeric_sub["sub"] = json!(42);
    let mut no_scope = good_claims();
    no_scope.as_object_mut().unwrap().remove("scope");
    for (claims, baggage, member, claim) in [
        (good_claims(), "kest.user=mallory", "kest.user", "sub"),
        (no_sub.clone(), "kest.user=mallory", "kest.user", "sub"),
        (numeric_sub, "kest.user=mallory", "kest.user", "sub"),
        (
            no_scope.clone(),
            "kest.task=wire-money",
            "kest.task",
            "scope",
        ),
        (
            good_claims(),
            "kest.agent=other-agent",
            "kest.agent",
            "client_id",
        ),
    ] {
        let (status, body) = send(claims, baggage).await;
        assert_eq!(status, 401, "{baggage}: {body}");
        assert!(body.contains(member) && body.contains(claim), "{body}");
        assert!(!body.contains("mallory"), "values are not echoed: {body}");
    }
    // Without baggage, a claim the token lacks is absent.
    let (status, body) = send(no_sub, "").await;
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["user"], Value::Null);
    assert_eq!(seen["agent"], "planner");

    // A configured default fills a claim the token lacks; baggage still cannot.
    let url = service_with(
        store,
        true,
        Boundary::default(),
        ClaimDefaults {
            task: Some("support".into()),
            ..ClaimDefaults::default()
        },
    )
    .await;
    let response = plain
        .post(&url)
        .header("authorization", format!("Bearer {}", token(&no_scope)))
        .send()
        .await
        .unwrap();
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["task"], "support");
    let response = plain
        .post(&url)
        .header("authorization", format!("Bearer {}", token(&no_scope)))
        .header("baggage", "kest.task=wire-money")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

/// Finding 3: no lineage is not full trust. At an edge a request without a passport
/// starts a chain held to `user_input`; at an internal service it is refused with 403
/// before the handler runs; a `baggage` header holding a raw byte is 400, never dropped.
#[tokio::test]
async fn missing_or_unreadable_lineage_is_never_full_trust() {
    let store: Arc<dyn ClaimStore> = Arc::new(MemoryClaimStore::default());
    let edge = service(store.clone(), true).await;
    let internal = service_with(
        store.clone(),
        true,
        Boundary::Internal,
        ClaimDefaults::default(),
    )
    .await;
    let plain = reqwest::Client::new();
    let bearer = format!("Bearer {}", token(&good_claims()));

    let response = plain
        .post(&edge)
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["received"], 0);
    assert_eq!(seen["start_trust"], 40);

    // Internal: no baggage, unrelated baggage, an empty passport: 403, nothing runs.
    for baggage in [
        None,
        Some("tenant=acme"),
        Some("kest.passport=%5B%5D,kest.chain_tip=0"),
    ] {
        let mut request = plain.post(&internal).header("authorization", &bearer);
        if let Some(baggage) = baggage {
            request = request.header("baggage", baggage);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 403, "{baggage:?}");
        assert!(response.text().await.unwrap().contains("no lineage"));
    }
    // With a verified passport the internal service serves, and nothing caps its trust.
    let flow = Flow::with_passport(passport_of(1), Caller::default());
    let response = flow
        .scope(
            client(store)
                .post(&internal)
                .header("authorization", &bearer)
                .send(),
        )
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["received"], 1);
    assert_eq!(seen["start_trust"], Value::Null);

    // Bytes that are not visible ASCII, at either service: 400, never ignored.
    for url in [&edge, &internal] {
        for raw in [&b"\xff"[..], b"kest.user=al\xc3\xa9", b"tenant=\x80abc"] {
            let value = reqwest::header::HeaderValue::from_bytes(raw).unwrap();
            let response = plain
                .post(url.as_str())
                .header("authorization", &bearer)
                .header("baggage", value)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 400, "{raw:?} at {url}");
            assert!(response.text().await.unwrap().contains("not visible ASCII"));
        }
        // Bad percent-encoding and a member without `=`: 400 too.
        for bad in ["kest.user=%zz", "kest.user", "=x"] {
            let response = plain
                .post(url.as_str())
                .header("authorization", &bearer)
                .header("baggage", bad)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 400, "{bad} at {url}");
        }
    }
}

async fn response_text(url: &str, client: &reqwest::Client) -> String {
    client.post(url).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn the_identity_layer_refuses_to_run_outside_the_lineage_layer() {
    let url = service(Arc::new(MemoryClaimStore::default()), false).await;
    let response = reqwest::Client::new()
        .post(&url)
        .header("authorization", format!("Bearer {}", token(&good_claims())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("inside the lineage layer")
    );
}

#[test]
fn an_unverified_identity_layer_needs_the_explicit_flag() {
    assert!(IdentityLayer::insecure(None).is_err());
    assert!(IdentityLayer::insecure(Some("yes")).is_err());
    assert!(IdentityLayer::insecure(Some("true")).is_ok());
}

#[tokio::test]
async fn outbound_baggage_is_merged_not_piled_up() {
    // A server that echoes the baggage header it got.
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            headers
                .get_all("baggage")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join("|")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = client(Arc::new(MemoryClaimStore::default()));
    let flow = Flow::with_passport(
        passport_of(2),
        Caller {
            user: Some("alice".into()),
            ..Caller::default()
        },
    );
    let echoed = flow
        .scope(async {
            client
                .get(format!("http://{address}/echo"))
                .header(
                    "baggage",
                    "tenant=acme,kest.passport_z=eJstale,kest.user=bob",
                )
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
        .await;
    assert!(!echoed.contains('|'), "one baggage header: {echoed}");
    let baggage = kest_propagation::Baggage::parse(&echoed, &Default::default()).unwrap();
    assert_eq!(baggage.get("tenant"), Some("acme"));
    assert_eq!(baggage.get("kest.user"), Some("alice"));
    assert!(
        baggage.get("kest.passport_z").is_none(),
        "the stale member is gone: {echoed}"
    );
    assert!(baggage.get("kest.passport").is_some());
    // Outside any flow the request goes out untouched.
    let untouched = client
        .get(format!("http://{address}/echo"))
        .header("baggage", "tenant=acme")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(untouched, "tenant=acme");
}
