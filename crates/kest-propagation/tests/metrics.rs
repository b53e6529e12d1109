//! `kest.verification.failures` as inbound passports are admitted: every refusal is
//! counted once, whether the verifier refused the passport (it counts its own) or the
//! baggage failed before a passport reached it. A test binary of its own, because it
//! installs the process-wide meter provider.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::{Arc, Mutex};

use kest_crypto::{SigningKey, StaticKeyResolver};
use kest_passport::Limits;
use kest_propagation::{Baggage, InboundPassport, Ingress, keys};
use opentelemetry::InstrumentationScope;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{
    Counter, InstrumentBuilder, InstrumentProvider, Meter, MeterProvider, SyncInstrument,
};
use serde_json::Value;

/// Every counter measurement: instrument name and `kest.cause`.
type Log = Arc<Mutex<Vec<(String, String)>>>;

struct Recorder(Log);

impl MeterProvider for Recorder {
    fn meter_with_scope(&self, _: InstrumentationScope) -> Meter {
        Meter::new(Arc::new(Instruments(Arc::clone(&self.0))))
    }
}

struct Instruments(Log);

impl InstrumentProvider for Instruments {
    fn u64_counter(&self, builder: InstrumentBuilder<'_, Counter<u64>>) -> Counter<u64> {
        Counter::new(Arc::new(Recording {
            name: builder.name.to_string(),
            log: Arc::clone(&self.0),
        }))
    }
}

struct Recording {
    name: String,
    log: Log,
}

impl SyncInstrument<u64> for Recording {
    fn measure(&self, value: u64, attributes: &[KeyValue]) {
        let cause = attributes
            .iter()
            .find(|kv| kv.key.as_str() == "kest.cause")
            .map(|kv| kv.value.to_string())
            .unwrap_or_default();
        let mut log = self.log.lock().unwrap();
        for _ in 0..value {
            log.push((self.name.clone(), cause.clone()));
        }
    }
}

fn failures(log: &Log) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(name, _)| name == "kest.verification.failures")
        .map(|(_, cause)| cause.clone())
        .collect()
}

fn inbound(members: &[(&str, &str)]) -> InboundPassport {
    let mut baggage = Baggage::new();
    for (key, value) in members {
        baggage.set(*key, *value).unwrap();
    }
    InboundPassport::from_baggage(&baggage)
}

#[tokio::test]
async fn each_refusal_is_counted_once() {
    let log: Log = Arc::default();
    opentelemetry::global::set_meter_provider(Recorder(Arc::clone(&log)));
    let vector: Value = kest_testkit::load_json("python/chain_10.json");
    let serialized = vector["serialized"].as_str().unwrap();
    let key: Value = kest_testkit::load_json("python/key.json");
    let python = SigningKey::from_ed25519_seed_hex(key["seed_hex"].as_str().unwrap()).unwrap();
    let principal = key["principal"].as_str().unwrap();

    // Admitted: nothing counted.
    let trusting = Ingress::verify(
        StaticKeyResolver::new().with_key(principal, python.verifying_key().clone()),
    );
    let admitted = trusting
        .admit(
            &inbound(&[(keys::PASSPORT, serialized)]),
            None,
            &Limits::default(),
        )
        .await
        .unwrap();
    assert_eq!(admitted.unwrap().len(), 10);
    assert!(failures(&log).is_empty(), "{:?}", failures(&log));

    // Refused by the verifier (the signer is not trusted): the verifier counts it, once.
    let stranger = SigningKey::generate_ed25519().unwrap();
    let distrusting = Ingress::verify(
        StaticKeyResolver::new().with_key(principal, stranger.verifying_key().clone()),
    );
    let error = distrusting
        .admit(
            &inbound(&[(keys::PASSPORT, serialized)]),
            None,
            &Limits::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(failures(&log), [error.kind().to_owned()], "{error}");

    // Refused before any passport reaches the verifier (a chain tip with no passport):
    // the ingress counts it, once.
    log.lock().unwrap().clear();
    let tip = "ab".repeat(32);
    let error = trusting
        .admit(
            &inbound(&[(keys::CHAIN_TIP, &tip)]),
            None,
            &Limits::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(failures(&log), [error.kind().to_owned()], "{error}");

    // A peer's set that lists a key for another principal: the key is dropped, and
    // counted once however often the set is fetched.
    #[cfg(all(feature = "oidc", feature = "tower"))]
    {
        log.lock().unwrap().clear();
        let mut own = python.verifying_key().to_jwk();
        own.kid = Some("spiffe://kest.test/gateway".into());
        let mut foreign = stranger.verifying_key().to_jwk();
        foreign.kid = Some("spiffe://kest.test/hop1".into());
        let body = serde_json::to_string(&kest_crypto::Jwks {
            keys: vec![own, foreign],
        })
        .unwrap();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let body = body.clone();
                async move { body }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let remote = kest_identity::RemoteJwks::for_peer(
            "spiffe://kest.test/gateway".parse().unwrap(),
            format!("http://{address}/jwks"),
        )
        .unwrap();
        remote.fetch().await.unwrap();
        remote.fetch().await.unwrap();
        assert_eq!(failures(&log), ["key_outside_binding"]);
    }
}
