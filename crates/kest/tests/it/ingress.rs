//! The hook continues only from lineage it has verified: a passport in OpenTelemetry
//! baggage is checked against the runtime's trusted keys before anything runs, and the
//! trust and taints the policy sees are the ones verification derived.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kest::{Call, Kest, KestError, Values};
use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
use kest_identity::MockIdentity;
use kest_passport::{EntryBuilder, Parents, Passport, Runtime, SignedEntry};
use kest_policy::CedarEngine;
use kest_propagation::Ingress;
use kest_trust::{TaintSet, TrustScore};
use opentelemetry::KeyValue;
use opentelemetry::baggage::BaggageExt as _;

const SELF: &str = "spiffe://kest.test/guarded";
const PEER: &str = "spiffe://kest.test/peer";

/// The guarded action of the issue: trust ≥ 80 and no `unverified` taint.
const GUARDED: &str = r#"
permit (principal, action == Action::"guarded", resource)
when { context.subject.trust_score >= 80 && !context.subject.taints.contains("unverified") };
"#;

fn peer_key() -> SigningKey {
    SigningKey::from_ed25519_seed(&[31; 32]).unwrap()
}

fn runtime(ingress: Option<Ingress>) -> Kest {
    let engine = CedarEngine::builder()
        .policy_source("guarded", GUARDED)
        .build()
        .unwrap();
    let builder = Kest::builder()
        .identity(Arc::new(MockIdentity::new(SELF).unwrap()))
        .engine(Arc::new(engine));
    let builder = match ingress {
        Some(ingress) => builder.ingress(ingress),
        None => builder.trust_keys(
            StaticKeyResolver::new().with_key(PEER, peer_key().verifying_key().clone()),
        ),
    };
    builder.build().unwrap()
}

/// Runs the guarded call with `passport` in OpenTelemetry baggage (no flow open), and
/// returns the result and how many times the operation ran.
async fn guarded_call(kest: &Kest, passport: &Passport) -> (Result<(), KestError>, usize) {
    let runs = Arc::new(AtomicUsize::new(0));
    let hook = kest.protect(Call::new("act").policy("guarded")).unwrap();
    let cx = opentelemetry::Context::current_with_baggage([
        KeyValue::new("kest.passport", passport.to_json()),
        KeyValue::new("kest.chain_tip", passport.tip_hash().unwrap().to_hex()),
    ]);
    let counter = Arc::clone(&runs);
    let result = {
        let _guard = cx.attach();
        hook.run(Values::new(), async move {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .await
    };
    (result, runs.load(Ordering::SeqCst))
}

fn sign(
    builder: EntryBuilder,
    parents: Parents,
    trust: u8,
    taints: &TaintSet,
    key: &SigningKey,
) -> SignedEntry {
    let entry = builder
        .principal(PEER)
        .build_explicit(parents, TrustScore::new(trust).unwrap(), taints)
        .unwrap();
    let signer = KeySigner::new(SigningKey::from_jwk(&key.to_private_jwk()).unwrap(), PEER);
    SignedEntry::sign(entry, &signer).unwrap()
}

fn passport_of(entries: Vec<SignedEntry>) -> Passport {
    let mut passport = Passport::new();
    for entry in entries {
        passport.push(entry).unwrap();
    }
    passport
}

/// Anyone can claim trust 100 and no taints; without a trusted signature it gets nowhere.
#[tokio::test]
async fn a_claimed_trust_of_100_from_an_unknown_signer_runs_nothing() {
    let forger = SigningKey::generate_ed25519().unwrap();
    let claim = passport_of(vec![sign(
        EntryBuilder::new("trust me"),
        Parents::Root,
        100,
        &TaintSet::new(),
        &forger,
    )]);
    let (result, runs) = guarded_call(&runtime(None), &claim).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, KestError::Lineage(e) if e.is_untrusted()),
        "{error}"
    );
    assert!(
        error.to_string().contains("signature does not verify"),
        "{error}"
    );
    assert_eq!(runs, 0);
    // Taken on faith (the explicit insecure setting), the same claim would run.
    let insecure = runtime(Some(Ingress::insecure_unverified(Some("true")).unwrap()));
    let (result, runs) = guarded_call(&insecure, &claim).await;
    result.unwrap();
    assert_eq!(runs, 1);
}

/// A trusted peer's genuine passport is continued from: the new entry chains onto it.
#[tokio::test]
async fn a_trusted_peers_passport_is_continued() {
    let root = sign(
        EntryBuilder::new("fetch"),
        Parents::Root,
        90,
        &TaintSet::new(),
        &peer_key(),
    );
    let passport = passport_of(vec![root.clone()]);
    let kest = runtime(None);
    let hook = kest.protect(Call::new("act").policy("guarded")).unwrap();
    let cx = opentelemetry::Context::current_with_baggage([
        KeyValue::new("kest.passport", passport.to_json()),
        KeyValue::new("kest.chain_tip", root.hash().to_hex()),
    ]);
    // The hook reads baggage only outside a flow: it verifies the passport and continues
    // from it, so the operation sees it as its flow's passport.
    let seen = {
        let _guard = cx.attach();
        hook.run(Values::new(), async { kest::current_passport() })
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(seen, passport);
}

/// A raise another runtime did not declare is let through as a finding, but does not
/// count: the policy sees the parents' bound (40), and the guarded action is refused.
#[tokio::test]
async fn an_undeclared_raise_from_another_runtime_does_not_count() {
    let unverified: TaintSet = ["unverified"].into_iter().collect();
    let root = sign(
        EntryBuilder::new("input"),
        Parents::Root,
        40,
        &unverified,
        &peer_key(),
    );
    let raise = sign(
        EntryBuilder::new("python sanitizer")
            .runtime(Runtime {
                name: "kest-python".into(),
                version: "0.3.0".into(),
                extra: Default::default(),
            })
            .removed_taints(["unverified"]),
        Parents::Hashes(vec![root.hash()]),
        95,
        &TaintSet::new(),
        &peer_key(),
    );
    let (result, runs) = guarded_call(&runtime(None), &passport_of(vec![root, raise])).await;
    let error = result.unwrap_err();
    assert!(error.is_denied(), "{error}");
    assert_eq!(runs, 0);
}

/// A kest-rust entry that raises without declaring it is a failure, not a finding.
#[tokio::test]
async fn an_undeclared_raise_by_kest_rust_is_refused() {
    let unverified: TaintSet = ["unverified"].into_iter().collect();
    let root = sign(
        EntryBuilder::new("input"),
        Parents::Root,
        40,
        &unverified,
        &peer_key(),
    );
    let raise = sign(
        EntryBuilder::new("sanitizer").removed_taints(["unverified"]),
        Parents::Hashes(vec![root.hash()]),
        95,
        &TaintSet::new(),
        &peer_key(),
    );
    let (result, runs) = guarded_call(&runtime(None), &passport_of(vec![root, raise])).await;
    let error = result.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("without a declared `kest.trust_override`"),
        "{error}"
    );
    assert_eq!(runs, 0);
}

/// Ingress from configuration: trusted JWK Sets from files (and the environment), the
/// strictness, and the insecure setting only with its variable.
#[tokio::test]
async fn ingress_from_toml_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let set = kest_propagation::workload_jwks(PEER, [peer_key().verifying_key().clone()]);
    std::fs::write(
        dir.path().join("peers.jwks"),
        serde_json::to_string(&set).unwrap(),
    )
    .unwrap();
    let genuine = passport_of(vec![sign(
        EntryBuilder::new("fetch"),
        Parents::Root,
        90,
        &TaintSet::new(),
        &peer_key(),
    )]);
    let toml = "[identity]\nprovider = \"local\"\n[ingress]\ntrusted_jwks = [\"peers.jwks\"]\nstrictness = \"strict\"\n";
    let kest = Kest::from_toml_str(toml, dir.path()).await.unwrap();
    assert!(kest.ingress().is_verified());
    let keys = kest.ingress().keys().unwrap();
    let query = kest_crypto::KeyQuery::new(PEER, Some(PEER), kest_crypto::Algorithm::EdDSA);
    assert_eq!(&keys.resolve(&query).unwrap(), peer_key().verifying_key());
    let mut baggage = kest_propagation::Baggage::new();
    baggage.set("kest.passport", genuine.to_json()).unwrap();
    let (read, _) = kest.codec().read(&baggage).await.unwrap();
    assert_eq!(read.unwrap(), genuine);
    // The same through KEST_TRUSTED_JWKS.
    let path = dir.path().join("peers.jwks").display().to_string();
    let kest = Kest::from_vars(|name| match name {
        "KEST_TRUSTED_JWKS" => Some(path.clone()),
        "KEST_IDENTITY" => Some("local".into()),
        _ => None,
    })
    .await
    .unwrap();
    assert!(kest.ingress().keys().unwrap().resolve(&query).is_ok());
    // Without keys, the runtime trusts nobody.
    let bare = Kest::from_toml_str("[identity]\nprovider = \"local\"\n", dir.path())
        .await
        .unwrap();
    assert!(bare.ingress().keys().unwrap().resolve(&query).is_err());
    assert!(
        bare.codec()
            .read(&baggage)
            .await
            .unwrap_err()
            .is_untrusted()
    );
    // Errors name what is wrong.
    let error = Kest::from_toml_str("[ingress]\nstrictness = \"sloppy\"\n", dir.path())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("sloppy"), "{error}");
    let error = Kest::from_toml_str("[ingress]\ntrusted_jwks = [\"missing.jwks\"]\n", dir.path())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("missing.jwks"), "{error}");
    // The insecure setting in a file needs the variable too; this process has not set it.
    let error = Kest::from_toml_str("[ingress]\ninsecure_unverified = true\n", dir.path())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("KEST_INSECURE_UNVERIFIED_LINEAGE"),
        "{error}"
    );
}

/// The runtime publishes its identity's key under its workload id.
#[cfg(feature = "tower")]
#[tokio::test]
async fn the_runtime_publishes_its_key() {
    let kest = runtime(None);
    let layer = kest.publish_keys_layer().await.unwrap();
    let set = kest_crypto::JwksKeyResolver::from_json(layer.body()).unwrap();
    let query = kest_crypto::KeyQuery::new(SELF, Some(SELF), kest_crypto::Algorithm::EdDSA);
    let identity = MockIdentity::new(SELF).unwrap();
    use kest_crypto::KeyResolver as _;
    assert_eq!(set.resolve(&query).unwrap(), identity.verifying_key());
}

/// Finding 3, in the hook: a chain started by a request that reached an edge without
/// lineage is held to the edge's origin, whatever the call's own origin; a plain flow is
/// not.
#[tokio::test]
async fn a_chain_started_at_an_edge_is_held_to_the_edge_origin() {
    let engine = CedarEngine::builder()
        .policy_source("all", "permit(principal, action, resource);")
        .build()
        .unwrap();
    let kest = Kest::builder()
        .identity(Arc::new(MockIdentity::new(SELF).unwrap()))
        .engine(Arc::new(engine))
        .edge("third_party_api")
        .build()
        .unwrap();
    let start = kest.ingress().boundary_config().start_trust().unwrap();
    assert_eq!(start.get(), 60);
    for (origin, plain, at_edge) in [(None, 100, 60), (Some("internet"), 10, 10)] {
        let mut call = Call::new("ingest").policy("all");
        if let Some(origin) = origin {
            call = call.origin(origin);
        }
        let hook = kest.protect(call).unwrap();
        for (flow, expected) in [
            (kest_propagation::Flow::new(), plain),
            (
                kest_propagation::Flow::at_edge(start, kest_propagation::Caller::default()),
                at_edge,
            ),
        ] {
            flow.scope(hook.run(Values::new(), async {})).await.unwrap();
            let tip = flow.passport().tip().unwrap().entry().trust_score().get();
            assert_eq!(tip, expected, "{origin:?}");
            // The next entry in the flow has a parent; the edge no longer applies.
            flow.scope(hook.run(Values::new(), async {})).await.unwrap();
            assert_eq!(flow.passport().len(), 2);
        }
    }
    // A typo in the edge origin fails when the runtime is built, never means 100.
    let error = Kest::builder().edge("usr_input").build().unwrap_err();
    assert!(matches!(error, KestError::Call(_)), "{error}");
    // An `Ingress` given whole keeps its own boundary; the builder's word wins when said.
    let internal =
        Ingress::verify(StaticKeyResolver::new()).boundary(kest_propagation::Boundary::Internal);
    let kept = Kest::builder().ingress(internal.clone()).build().unwrap();
    assert_eq!(
        kept.ingress().boundary_config(),
        &kest_propagation::Boundary::Internal
    );
    let edged = Kest::builder()
        .ingress(internal)
        .edge("user_input")
        .build()
        .unwrap();
    assert_eq!(
        edged
            .ingress()
            .boundary_config()
            .start_trust()
            .map(TrustScore::get),
        Some(40)
    );
    let default = Kest::builder().build().unwrap();
    assert_eq!(
        default.ingress().boundary_config(),
        &kest_propagation::Boundary::default()
    );
}

/// The zero-trust page's TOML builds as it says: an internal service, the operator's key
/// file for the principals its `kid`s name, and peers' sets each for its binding.
#[tokio::test]
async fn zero_trust_page_configuration_builds() {
    use kest_crypto::KeyResolver as _;
    let page = include_str!("../../../../docs/src/zero-trust.md");
    let toml = page
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    assert!(toml.contains("[[ingress.peers]]"), "{toml}");
    let dir = tempfile::tempdir().unwrap();
    let ops = SigningKey::from_ed25519_seed(&[41; 32]).unwrap();
    let ledger = SigningKey::from_ed25519_seed(&[42; 32]).unwrap();
    let intruder = SigningKey::from_ed25519_seed(&[43; 32]).unwrap();
    let write = |name: &str, keys: Vec<(&SigningKey, &str)>| {
        let keys = keys
            .into_iter()
            .map(|(key, kid)| {
                let mut jwk = key.verifying_key().to_jwk();
                jwk.kid = Some(kid.into());
                jwk
            })
            .collect();
        let set = kest_crypto::Jwks { keys };
        std::fs::write(dir.path().join(name), serde_json::to_string(&set).unwrap()).unwrap();
    };
    write("ops.jwks", vec![(&ops, "spiffe://example.org/ops")]);
    write(
        "payments.jwks",
        vec![
            (&ledger, "spiffe://example.org/payments/ledger"),
            (&intruder, "spiffe://example.org/orders"),
        ],
    );
    let kest = Kest::from_toml_str(toml, dir.path()).await.unwrap();
    assert_eq!(
        kest.ingress().boundary_config(),
        &kest_propagation::Boundary::Internal
    );
    let keys = kest.ingress().keys().unwrap();
    let resolve = |principal: &str| {
        let query =
            kest_crypto::KeyQuery::new(principal, Some(principal), kest_crypto::Algorithm::EdDSA);
        keys.resolve(&query)
    };
    assert_eq!(
        &resolve("spiffe://example.org/ops").unwrap(),
        ops.verifying_key()
    );
    assert_eq!(
        &resolve("spiffe://example.org/payments/ledger").unwrap(),
        ledger.verifying_key()
    );
    // The payments set listed a key for `orders`, outside its binding: never used.
    assert!(resolve("spiffe://example.org/orders").is_err());
}

/// What the authority settings refuse at startup, each naming the setting.
#[tokio::test]
async fn authority_settings_refuse_what_they_cannot_mean() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, says) in [
        (
            "[ingress]\ntrusted_jwks = [\"https://peer.example/.well-known/jwks.json\"]\n",
            "[[ingress.peers]]",
        ),
        ("[ingress]\nboundary = \"perimeter\"\n", "edge or internal"),
        ("[ingress]\nedge_origin = \"usr_input\"\n", "usr_input"),
        (
            "[ingress]\nboundary = \"internal\"\nedge_origin = \"user_input\"\n",
            "internal",
        ),
        (
            "[[ingress.peers]]\nprincipal = \"spiffe://example.org/*/x\"\njwks = \"https://x.example/j\"\n",
            "last segment",
        ),
        (
            "[[ingress.peers]]\nprincipal = \"spiffe://example.org/x\"\njwks = \"http://x.example/j\"\n",
            "http",
        ),
        (
            "[[ingress.peers]]\nprincipal = \"spiffe://example.org/x\"\n",
            "jwks",
        ),
    ] {
        let error = Kest::from_toml_str(toml, dir.path()).await.unwrap_err();
        assert!(error.to_string().contains(says), "{toml}: {error}");
    }
    // The environment: peers as PRINCIPAL=URL, and the boundary.
    let kest = Kest::from_vars(|name| match name {
        "KEST_TRUSTED_PEERS" => Some(
            "spiffe://example.org/gateway=http://127.0.0.1:9/.well-known/jwks.json, spiffe://example.org/team/*=http://127.0.0.1:9/team".into(),
        ),
        "KEST_BOUNDARY" => Some("internal".into()),
        "KEST_IDENTITY" => Some("local".into()),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(
        kest.ingress().boundary_config(),
        &kest_propagation::Boundary::Internal
    );
    let error = Kest::from_vars(|name| match name {
        "KEST_TRUSTED_PEERS" => Some("https://no-principal.example/jwks".into()),
        _ => None,
    })
    .await
    .unwrap_err();
    assert!(error.to_string().contains("KEST_TRUSTED_PEERS"), "{error}");
    let error = Kest::from_vars(|name| match name {
        "KEST_TRUSTED_JWKS" => Some("https://peer.example/jwks".into()),
        _ => None,
    })
    .await
    .unwrap_err();
    assert!(error.to_string().contains("[[ingress.peers]]"), "{error}");
    let error = Kest::from_vars(|name| match name {
        "KEST_EDGE_ORIGIN" => Some("usr_input".into()),
        _ => None,
    })
    .await
    .unwrap_err();
    assert!(error.to_string().contains("usr_input"), "{error}");
}
