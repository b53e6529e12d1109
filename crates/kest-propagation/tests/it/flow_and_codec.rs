//! The ambient flow (chaining, forks, joins, scopes) and the outbound/inbound passport
//! codec with its claim-check stores.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
use kest_passport::{EntryBuilder, Passport, SignedEntry};
use kest_propagation::{
    Baggage, BaggageTier, Caller, ClaimStore, Flow, Ingress, MemoryClaimStore, PassportCodec,
    PropagationError, current_passport, current_user,
};
use kest_trust::WeakestLink;

const W: &str = "spiffe://kest.test/flow";

fn signer() -> KeySigner {
    KeySigner::new(SigningKey::from_ed25519_seed(&[9; 32]).unwrap(), W)
}

/// Verified ingress trusting `signer()` for `W`.
fn trusting() -> Ingress {
    Ingress::verify(StaticKeyResolver::new().with_key(W, signer().key().verifying_key().clone()))
}

/// Appends one entry to the current flow, as the hook does: build on the heads, sign,
/// push.
fn protected_call(operation: &str) -> SignedEntry {
    let flow = Flow::current().expect("inside a flow");
    let heads = flow.passport();
    let entry = EntryBuilder::new(operation)
        .principal(W)
        .build_on(&heads.head_entries(), &WeakestLink)
        .unwrap();
    let signed = SignedEntry::sign(entry, &signer()).unwrap();
    flow.update(|passport| passport.push(signed.clone()))
        .unwrap();
    signed
}

fn passport_of(len: usize) -> Passport {
    let mut passport = Passport::new();
    for i in 0..len {
        passport
            .append(
                EntryBuilder::new(format!("op{i}"))
                    .principal(W)
                    .label("note", "a, b; c=d %"),
                &signer(),
                &WeakestLink,
            )
            .unwrap();
    }
    passport
}

#[tokio::test]
async fn sequential_and_nested_calls_chain_in_a_flow() {
    let flow = Flow::with_passport(
        Passport::new(),
        Caller {
            user: Some("alice".into()),
            ..Caller::default()
        },
    );
    flow.scope(async {
        let first = protected_call("first");
        tokio::task::yield_now().await;
        assert_eq!(current_user().as_deref(), Some("alice"));
        let second = protected_call("second");
        assert_eq!(second.entry().parents().hashes(), [first.hash()]);
        assert_eq!(current_passport().unwrap().len(), 2);
    })
    .await;
    assert_eq!(flow.passport().len(), 2);
    // Outside the scope there is no current flow.
    assert!(Flow::current().is_none());
    // Synchronous code enters the flow with a guard.
    {
        let _guard = flow.enter();
        protected_call("third");
    }
    assert_eq!(flow.passport().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forks_never_share_a_passport_and_joins_record_every_tip() {
    let flow = Flow::new();
    let root = flow.scope(async { protected_call("root") }).await;
    let (left, left_task) = flow
        .scope(async { kest_propagation::fork_current(async { protected_call("left") }) })
        .await;
    let (right, right_task) = flow
        .scope(async { kest_propagation::fork_current(async { protected_call("right") }) })
        .await;
    let left_entry = tokio::spawn(left_task).await.unwrap();
    let right_entry = tokio::spawn(right_task).await.unwrap();
    // Each branch starts at the shared root and the parent flow did not change.
    assert_eq!(left_entry.entry().parents().hashes(), [root.hash()]);
    assert_eq!(right_entry.entry().parents().hashes(), [root.hash()]);
    assert_eq!(flow.passport().len(), 1);
    assert_eq!(left.passport().len(), 2);
    flow.join(&[left, right]).unwrap();
    let joined = flow.scope(async { protected_call("join") }).await;
    let mut parents = joined.entry().parents().hashes().to_vec();
    parents.sort();
    let mut expected = vec![left_entry.hash(), right_entry.hash()];
    expected.sort();
    assert_eq!(parents, expected);
    assert_eq!(flow.passport().len(), 4);
    // A flow from elsewhere cannot be joined.
    let stranger = Flow::with_passport(passport_of(1), Caller::default());
    let other_root = Flow::new();
    other_root.scope(async { protected_call("x") }).await;
    assert!(other_root.join(&[stranger]).is_err());
}

#[tokio::test]
async fn the_codec_picks_the_tier_by_size_and_reads_every_tier_back() {
    let store = Arc::new(MemoryClaimStore::default());
    let codec = PassportCodec::new()
        .store(store.clone())
        .ingress(trusting());
    let caller = Caller {
        user: Some("alice@example.com".into()),
        agent: Some("planner, v2".into()),
        task: Some("t-1".into()),
        jwt: None,
    };
    for (len, tier) in [
        (1, BaggageTier::Inline),
        (12, BaggageTier::Compressed),
        (60, BaggageTier::ClaimCheck),
    ] {
        let passport = passport_of(len);
        let mut baggage = Baggage::new();
        baggage.set("tenant", "acme").unwrap();
        baggage.set("kest.passport", "stale").unwrap();
        let written = codec.write(&mut baggage, &passport, &caller).await.unwrap();
        assert_eq!(written, Some(tier), "{len} entries");
        // Over the wire and back.
        let header = baggage.to_header();
        assert!(header.contains("tenant=acme"));
        let parsed = Baggage::parse(&header, &Default::default()).unwrap();
        let kest_members = parsed
            .members()
            .iter()
            .filter(|m| m.key.starts_with("kest.passport"))
            .count();
        assert!(kest_members <= 1, "stale members are replaced: {header}");
        let (restored, restored_caller) = codec.read(&parsed).await.unwrap();
        assert_eq!(restored.unwrap(), passport);
        assert_eq!(restored_caller, caller);
        // A receiver that trusts nobody (the default) refuses the same header, in every
        // tier, naming the unknown signer.
        let refusing = PassportCodec::new().store(store.clone());
        let error = refusing.read(&parsed).await.unwrap_err();
        assert!(error.is_untrusted(), "{error}");
        assert!(
            error.to_string().contains("no key is known for principal"),
            "{error}"
        );
    }
    // An empty passport announces tip 0 and restores as none.
    let mut baggage = Baggage::new();
    codec
        .write(&mut baggage, &Passport::new(), &Caller::default())
        .await
        .unwrap();
    assert_eq!(baggage.get("kest.chain_tip"), Some("0"));
    assert!(codec.read(&baggage).await.unwrap().0.is_none());
}

/// With the inline tier off, even a one-entry passport goes compressed, and its member
/// reads the same whether or not the reader percent-decodes it: what the Python
/// package's middleware, which splits the header on `,` and `=` and decodes nothing,
/// needs.
#[tokio::test]
async fn without_the_inline_tier_small_passports_go_compressed_and_need_no_decoding() {
    let store = Arc::new(MemoryClaimStore::default());
    let codec = PassportCodec::new()
        .store(store.clone())
        .ingress(trusting())
        .inline_tier(false);
    for (len, tier) in [
        (1, BaggageTier::Compressed),
        (3, BaggageTier::Compressed),
        (60, BaggageTier::ClaimCheck),
    ] {
        let passport = passport_of(len);
        let mut baggage = Baggage::new();
        let written = codec
            .write(&mut baggage, &passport, &Caller::default())
            .await
            .unwrap();
        assert_eq!(written, Some(tier), "{len} entries");
        let header = baggage.to_header();
        let raw: std::collections::HashMap<&str, &str> = header
            .split(',')
            .filter_map(|member| member.split_once('='))
            .collect();
        assert!(!raw.contains_key("kest.passport"), "{header}");
        let parsed = Baggage::parse(&header, &Default::default()).unwrap();
        for key in ["kest.passport_z", "kest.claim_check", "kest.chain_tip"] {
            assert_eq!(raw.get(key).copied(), parsed.get(key), "{key} in {header}");
        }
        // Every tier still reads back, with the inline tier on or off.
        for reader in [codec.clone(), codec.clone().inline_tier(true)] {
            assert_eq!(reader.read(&parsed).await.unwrap().0.unwrap(), passport);
        }
    }
}

#[tokio::test]
async fn passports_are_never_dropped_silently() {
    let large = passport_of(60);
    // Too large for a header and no store: an error, not a missing passport.
    let error = PassportCodec::new()
        .write(&mut Baggage::new(), &large, &Caller::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, PropagationError::NoClaimStore { .. }),
        "{error}"
    );

    let store = Arc::new(MemoryClaimStore::default());
    let codec = PassportCodec::new()
        .store(store.clone())
        .ingress(trusting());
    let mut baggage = Baggage::new();
    codec
        .write(&mut baggage, &large, &Caller::default())
        .await
        .unwrap();
    // A receiver without the store cannot redeem the claim.
    let error = PassportCodec::new().read(&baggage).await.unwrap_err();
    assert!(
        matches!(error, PropagationError::NoClaimStore { .. }),
        "{error}"
    );
    // A receiver with another (empty) store: the claim is not found.
    let other = PassportCodec::new().store(Arc::new(MemoryClaimStore::default()));
    let error = other.read(&baggage).await.unwrap_err();
    assert!(
        matches!(error, PropagationError::ClaimNotFound { .. }),
        "{error}"
    );
    // A chain tip whose passport is garbage: an error, never a fresh root.
    let mut garbage = Baggage::new();
    garbage
        .set("kest.chain_tip", large.tip_hash().unwrap().to_hex())
        .unwrap();
    garbage.set("kest.passport", "[\"not a jws\"]").unwrap();
    assert!(codec.read(&garbage).await.is_err());
    // A missing claim does not mask a good inline member that ends at the tip.
    let small = passport_of(2);
    let mut both = Baggage::new();
    codec
        .write(&mut both, &small, &Caller::default())
        .await
        .unwrap();
    both.set("kest.claim_check", "00000000-0000-0000-0000-000000000000")
        .unwrap();
    assert_eq!(codec.read(&both).await.unwrap().0.unwrap(), small);
}

#[tokio::test]
async fn the_memory_store_expires_and_is_bounded() {
    let store = MemoryClaimStore::new(NonZeroUsize::new(2).unwrap());
    store
        .put("a", "1", Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(store.get("a", 1 << 20).await.unwrap().as_deref(), Some("1"));
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(store.get("a", 1 << 20).await.unwrap(), None);
    for key in ["x", "y", "z"] {
        store.put(key, key, Duration::from_secs(60)).await.unwrap();
    }
    assert_eq!(
        store.get("x", 1 << 20).await.unwrap(),
        None,
        "the least recently used goes first"
    );
    assert_eq!(store.get("z", 1 << 20).await.unwrap().as_deref(), Some("z"));
    assert!(format!("{store:?}").contains("entries"));
}

/// Against a real Redis (`cargo xtask services`): claims stored by one codec are redeemed
/// by another connection, and expire.
#[cfg(feature = "redis")]
#[tokio::test]
async fn claims_travel_through_redis() {
    if !kest_testkit::live() {
        return;
    }
    let url = kest_testkit::live_env("KEST_REDIS_URL");
    let sender = PassportCodec::new().store(Arc::new(
        kest_propagation::RedisClaimStore::connect(&url)
            .await
            .unwrap(),
    ));
    let receiver = PassportCodec::new()
        .store(Arc::new(
            kest_propagation::RedisClaimStore::connect(&url)
                .await
                .unwrap(),
        ))
        .ingress(trusting());
    let passport = passport_of(60);
    let mut baggage = Baggage::new();
    assert_eq!(
        sender
            .write(&mut baggage, &passport, &Caller::default())
            .await
            .unwrap(),
        Some(BaggageTier::ClaimCheck)
    );
    let header = baggage.to_header();
    let (restored, _) = receiver
        .read(&Baggage::parse(&header, &Default::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(restored.unwrap(), passport);

    let store = kest_propagation::RedisClaimStore::connect(&url)
        .await
        .unwrap();
    store
        .put("kest.claim.ttl-test", "x", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        store
            .get("kest.claim.ttl-test", 1 << 20)
            .await
            .unwrap()
            .as_deref(),
        Some("x")
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        store.get("kest.claim.ttl-test", 1 << 20).await.unwrap(),
        None
    );
    assert!(!format!("{store:?}").contains("password"));
    let error = kest_propagation::RedisClaimStore::connect("redis://127.0.0.1:9")
        .await
        .unwrap_err();
    assert!(matches!(error, PropagationError::Store { .. }), "{error}");
}

/// Finding 6 of the authority report: a claim larger than a passport may be is refused
/// by its size, without being read or copied; the refusal names the claim and is a 4xx
/// (not a store failure).
#[tokio::test]
async fn an_oversized_claim_is_refused_by_its_size() {
    let store = Arc::new(MemoryClaimStore::default());
    let codec = PassportCodec::new()
        .store(store.clone())
        .limits(kest_passport::Limits {
            max_bytes: 1000,
            ..Default::default()
        })
        .ingress(trusting());
    store
        .put("kest.claim.big", &"x".repeat(1001), Duration::from_secs(60))
        .await
        .unwrap();
    let mut baggage = Baggage::new();
    baggage.set("kest.claim_check", "big").unwrap();
    let error = codec.read(&baggage).await.unwrap_err();
    assert!(
        matches!(
            error,
            PropagationError::ClaimTooLarge {
                size: 1001,
                limit: 1000,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("kest.claim.big"), "{error}");
    assert!(!error.is_untrusted());
    assert!(!matches!(error, PropagationError::Store { .. }));
}

/// Finding 6 against a real Redis: a 20 MiB value, a value of another Redis type and one
/// that is not UTF-8 are each refused with an error naming the claim, checked inside
/// Redis so the big value never crosses the connection; the store stays usable.
#[cfg(feature = "redis")]
#[tokio::test]
async fn hostile_claims_in_redis_are_refused_without_being_read() {
    if !kest_testkit::live() {
        return;
    }
    let url = kest_testkit::live_env("KEST_REDIS_URL");
    let store = kest_propagation::RedisClaimStore::connect(&url)
        .await
        .unwrap();
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let id = uuid::Uuid::new_v4();
    let key = |what: &str| format!("kest.claim.{what}-{id}");
    let big = vec![b'['; 20 << 20];
    redis::cmd("SET")
        .arg(key("big"))
        .arg(big)
        .arg("EX")
        .arg(60)
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    redis::cmd("HSET")
        .arg(key("hash"))
        .arg("a")
        .arg("b")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    redis::cmd("SET")
        .arg(key("bytes"))
        .arg(&b"[\xff\xfe]"[..])
        .arg("EX")
        .arg(60)
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    let limit = kest_passport::Limits::default().max_bytes;
    let error = store.get(&key("big"), limit).await.unwrap_err();
    assert!(
        matches!(error, PropagationError::ClaimTooLarge { size, .. } if size == 20 << 20),
        "{error}"
    );
    for (what, says) in [("hash", "hash"), ("bytes", "UTF-8")] {
        let error = store.get(&key(what), limit).await.unwrap_err();
        assert!(
            matches!(error, PropagationError::ClaimUnreadable { .. }),
            "{what}: {error}"
        );
        assert!(error.to_string().contains(says), "{error}");
        assert!(error.to_string().contains(&key(what)), "{error}");
    }
    assert_eq!(store.get(&key("absent"), limit).await.unwrap(), None);
    store
        .put(&key("fine"), "[]", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store.get(&key("fine"), limit).await.unwrap().as_deref(),
        Some("[]")
    );
    // Through the codec, as the lineage layer reads it: a 4xx cause, not a store failure.
    let codec = PassportCodec::new()
        .store(Arc::new(store))
        .ingress(trusting());
    let mut baggage = Baggage::new();
    baggage
        .set("kest.claim_check", format!("hash-{id}"))
        .unwrap();
    let error = codec.read(&baggage).await.unwrap_err();
    assert!(
        matches!(error, PropagationError::ClaimUnreadable { .. }),
        "{error}"
    );
    redis::cmd("DEL")
        .arg(key("big"))
        .arg(key("hash"))
        .arg(key("bytes"))
        .arg(key("fine"))
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
}

/// A store that remembers what was put, so the test can hand it to Python.
#[derive(Debug, Default)]
struct Recording {
    puts: std::sync::Mutex<Vec<(String, String)>>,
    inner: MemoryClaimStore,
}

#[async_trait::async_trait]
impl ClaimStore for Recording {
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), PropagationError> {
        self.puts
            .lock()
            .unwrap()
            .push((key.to_owned(), value.to_owned()));
        self.inner.put(key, value, ttl).await
    }
    async fn get(&self, key: &str, max: usize) -> Result<Option<String>, PropagationError> {
        self.inner.get(key, max).await
    }
}

/// Live tier: the Python package's `BaggageManager.unpack` reads what this codec writes,
/// in all three tiers, including values with commas and semicolons (which the Python
/// package's own interceptor breaks by not percent-encoding).
#[tokio::test]
async fn the_python_package_unpacks_our_baggage() {
    if !kest_testkit::live() {
        return;
    }
    let python = kest_testkit::live_env("KEST_PYTHON");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/unpack_baggage.py");
    let dir = tempfile::tempdir().unwrap();
    for (len, tier) in [
        (3, BaggageTier::Inline),
        (12, BaggageTier::Compressed),
        (60, BaggageTier::ClaimCheck),
    ] {
        let store = Arc::new(Recording::default());
        let codec = PassportCodec::new().store(store.clone());
        let passport = passport_of(len);
        let mut baggage = Baggage::new();
        assert_eq!(
            codec
                .write(&mut baggage, &passport, &Caller::default())
                .await
                .unwrap(),
            Some(tier)
        );
        let header_file = dir.path().join("header");
        std::fs::write(&header_file, baggage.to_header()).unwrap();
        let claims: serde_json::Map<String, serde_json::Value> = store
            .puts
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
            .collect();
        let claims_file = dir.path().join("claims.json");
        std::fs::write(&claims_file, serde_json::Value::Object(claims).to_string()).unwrap();
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg(&header_file)
            .arg(&claims_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["entries"], len, "{tier:?}");
        assert_eq!(
            report["tip"],
            passport.tip_hash().unwrap().to_hex(),
            "{tier:?}"
        );
    }
}
