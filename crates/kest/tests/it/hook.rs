//! The verification hook: the lifecycle in order, chaining, overrides, configuration, and
//! a test per fail-closed case proving the operation did not run.
#![allow(
    clippy::unreachable,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kest::{Call, Flow, Kest, KestError, Missing, Protected, Values};
use kest_crypto::StaticKeyResolver;
use kest_identity::{IdentityError, IdentityInfo, IdentityProvider, MockIdentity};
use kest_passport::Verifier;
use kest_policy::{MockEngine, PolicyConfig, PolicyError};

const W: &str = "spiffe://kest.test/hook";

fn identity() -> Arc<MockIdentity> {
    Arc::new(MockIdentity::new(W).unwrap())
}

fn resolver() -> StaticKeyResolver {
    StaticKeyResolver::new().with_key(W, identity().verifying_key())
}

fn kest_with(engine: MockEngine) -> Kest {
    Kest::builder()
        .identity(identity())
        .engine(Arc::new(engine))
        .build()
        .unwrap()
}

/// Counts how often an operation actually ran.
#[derive(Default, Clone)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    fn op(&self) -> impl std::future::Future<Output = &'static str> + use<> {
        let runs = self.0.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            "done"
        }
    }
    /// Runs `hook` in a new flow and returns the error it must fail with.
    async fn refused(&self, hook: &Protected) -> KestError {
        Flow::new()
            .scope(hook.run(Values::new(), self.op()))
            .await
            .unwrap_err()
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn sequential_and_nested_calls_chain_and_verify() {
    let kest = kest_with(MockEngine::allow_all());
    let outer = kest.protect(Call::new("outer").policy("p")).unwrap();
    let inner = kest
        .protect(Call::new("inner").policy("p").added_taints(["pii"]))
        .unwrap();
    let scrub = kest
        .protect(Call::new("scrub").policy("p").removed_taints(["pii"]))
        .unwrap();
    let flow = Flow::new();
    flow.scope(async {
        inner.run(Values::new(), async {}).await.unwrap();
        // Nested: the inner call inside `outer` chains onto the flow, and `outer`'s own
        // entry follows it.
        outer
            .run(Values::new(), async {
                inner.run(Values::new(), async {}).await.unwrap()
            })
            .await
            .unwrap();
        scrub.run(Values::new(), async {}).await.unwrap();
    })
    .await;
    let passport = flow.passport();
    let ops: Vec<_> = passport
        .entries()
        .iter()
        .map(|e| e.entry().operation().to_owned())
        .collect();
    assert_eq!(ops, ["inner", "inner", "outer", "scrub"]);
    // One chain: every entry's parent is the one before.
    let entries = passport.entries();
    for pair in entries.windows(2) {
        assert_eq!(pair[1].entry().parents().hashes(), [pair[0].hash()]);
    }
    assert!(passport.current_taints().is_empty());
    let report = Verifier::new(&resolver())
        .verify_json(&passport.to_json())
        .unwrap();
    assert_eq!(report.len(), 4);
    assert_eq!(entries[0].entry().principal(), Some(W));
    assert_eq!(entries[0].entry().policy_context().function_policies, ["p"]);
}

#[tokio::test]
async fn a_denial_stops_the_call_before_it_runs() {
    let runs = Runs::default();
    let kest = kest_with(MockEngine::allow_all().denying("guard"));
    let hook = kest.protect(Call::new("act").policy("guard")).unwrap();
    let flow = Flow::new();
    let error = flow
        .scope(hook.run(Values::new(), runs.op()))
        .await
        .unwrap_err();
    assert!(error.is_denied(), "{error}");
    assert!(error.stopped_before_running());
    assert_eq!(runs.count(), 0);
    assert!(flow.passport().is_empty());
}

#[tokio::test]
async fn an_engine_error_is_a_denial_too() {
    let runs = Runs::default();
    let engine = MockEngine::allow_all().failing(
        "guard",
        PolicyError::Timeout {
            engine: "mock",
            endpoint: "test".into(),
            after: std::time::Duration::from_secs(1),
        },
    );
    let hook = kest_with(engine)
        .protect(Call::new("act").policy("guard"))
        .unwrap();
    let error = runs.refused(&hook).await;
    assert!(
        matches!(error, KestError::Unauthorized(_)) && !error.is_denied(),
        "{error}"
    );
    // A garbage answer, too.
    let engine = MockEngine::allow_all().failing(
        "guard",
        PolicyError::MalformedAnswer {
            engine: "mock",
            reason: "`result` is a string".into(),
        },
    );
    let hook = kest_with(engine)
        .protect(Call::new("act").policy("guard"))
        .unwrap();
    let error = runs.refused(&hook).await;
    assert!(matches!(error, KestError::Unauthorized(_)), "{error}");
    assert_eq!(runs.count(), 0);
}

/// Denials are logged with the entry id, the policy and the workload.
#[test]
fn denials_are_logged_with_entry_policy_and_workload() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let hook = kest_with(MockEngine::allow_all().denying("guard"))
        .protect(Call::new("wire_money").policy("guard"))
        .unwrap();
    let ((), lines) = kest_testkit::logs::logged(|| {
        runtime
            .block_on(Flow::new().scope(hook.run(Values::new(), async {})))
            .unwrap_err();
    });
    let refused = lines
        .iter()
        .find(|l| l.contains("refused before it ran"))
        .expect("a denial line");
    assert!(refused.contains("entry_id="), "{refused}");
    assert!(refused.contains("policy=\"guard\""), "{refused}");
    assert!(refused.contains(&format!("workload={W}")), "{refused}");
    assert!(refused.contains("operation=wire_money"), "{refused}");
}

#[tokio::test]
async fn every_tier_must_allow_and_deviations_are_recorded() {
    let config = PolicyConfig::from_toml_str(
        r#"
        enterprise = ["baseline"]
        platform = ["residency"]
        application = ["billing_rules"]
        [[deviations]]
        policy = "residency"
        tier = "platform"
        scope = "function:export"
        reason = "EU customer migrates for one week"
        approver = "ciso@example.com"
        "#,
    )
    .unwrap();
    let engine = Arc::new(MockEngine::allow_all().denying("residency"));
    let kest = Kest::builder()
        .identity(identity())
        .engine(engine.clone())
        .policies(config)
        .app("billing")
        .build()
        .unwrap();
    // `import` has no deviation: the platform tier denies it.
    let runs = Runs::default();
    let import = kest
        .protect(Call::new("import").policy("fn_import"))
        .unwrap();
    let error = Flow::new()
        .scope(import.run(Values::new(), runs.op()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("residency"), "{error}");
    assert_eq!(runs.count(), 0);
    // `export` has one: it runs, and its entry says so.
    let export = kest
        .protect(Call::new("export").policy("fn_export"))
        .unwrap();
    let flow = Flow::new();
    flow.scope(export.run(Values::new(), runs.op()))
        .await
        .unwrap();
    assert_eq!(runs.count(), 1);
    let passport = flow.passport();
    let context = passport.entries()[0].entry().policy_context().clone();
    assert_eq!(context.enterprise_policies, ["baseline"]);
    assert!(context.platform_policies.is_empty());
    assert_eq!(context.app_policies, ["billing_rules"]);
    assert_eq!(context.function_policies, ["fn_export"]);
    assert_eq!(context.deviations.len(), 1);
    assert_eq!(
        context.deviations[0].approver.as_deref(),
        Some("ciso@example.com")
    );
}

#[tokio::test]
async fn no_identity_means_no_execution() {
    let runs = Runs::default();
    // None configured: the error names what to configure.
    let kest = Kest::builder()
        .engine(Arc::new(MockEngine::allow_all()))
        .build()
        .unwrap();
    let hook = kest.protect(Call::new("act").policy("p")).unwrap();
    let error = runs.refused(&hook).await;
    assert!(
        matches!(&error, KestError::NotConfigured(Missing::Identity { operation }) if operation == "act"),
        "{error}"
    );
    assert!(error.to_string().contains("KEST_WORKLOAD_ID"), "{error}");
    // One that fails to establish itself.
    #[derive(Debug)]
    struct Broken;
    #[async_trait::async_trait]
    impl IdentityProvider for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        async fn describe(&self) -> Result<IdentityInfo, IdentityError> {
            Err(IdentityError::Service {
                service: "SPIFFE Workload API",
                reason: "socket gone".into(),
            })
        }
        async fn sign(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, IdentityError> {
            unreachable!()
        }
    }
    let hook = kest
        .protect(Call::new("act").policy("p").identity(Arc::new(Broken)))
        .unwrap();
    let error = runs.refused(&hook).await;
    assert!(matches!(error, KestError::Identity(_)), "{error}");
    assert_eq!(runs.count(), 0);
    // No engine either.
    let kest = Kest::builder().identity(identity()).build().unwrap();
    let hook = kest.protect(Call::new("act").policy("p")).unwrap();
    let error = runs.refused(&hook).await;
    assert!(
        matches!(&error, KestError::NotConfigured(Missing::Engine { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("KEST_POLICY_ENGINE"), "{error}");
    assert_eq!(runs.count(), 0);
}

#[tokio::test]
async fn signing_that_fails_after_the_run_withholds_the_result() {
    #[derive(Debug)]
    struct CannotSign(MockIdentity);
    #[async_trait::async_trait]
    impl IdentityProvider for CannotSign {
        fn name(&self) -> &str {
            "cannot-sign"
        }
        async fn describe(&self) -> Result<IdentityInfo, IdentityError> {
            self.0.describe().await
        }
        async fn sign(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, IdentityError> {
            Err(IdentityError::Service {
                service: "AWS KMS",
                reason: "throttled".into(),
            })
        }
    }
    let kest = Kest::builder()
        .identity(Arc::new(CannotSign(MockIdentity::new(W).unwrap())))
        .engine(Arc::new(MockEngine::allow_all()))
        .build()
        .unwrap();
    let hook = kest.protect(Call::new("act").policy("p")).unwrap();
    let flow = Flow::new();
    let error = flow
        .scope(hook.run(Values::new(), async { 42 }))
        .await
        .unwrap_err();
    assert!(matches!(error, KestError::Record(_)), "{error}");
    assert!(!error.stopped_before_running());
    assert!(flow.passport().is_empty(), "never an unsigned entry");
}

/// A signer that can be taken down and brought back, counting its signatures, and that
/// can be held mid-signature.
#[derive(Debug)]
struct Flaky {
    inner: MockIdentity,
    down: std::sync::atomic::AtomicBool,
    signatures: AtomicUsize,
    hold: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl IdentityProvider for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn describe(&self) -> Result<IdentityInfo, IdentityError> {
        self.inner.describe().await
    }
    async fn sign(&self, kid: &str, input: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.signatures.fetch_add(1, Ordering::SeqCst);
        let _permit = self.hold.acquire().await.unwrap();
        if self.down.load(Ordering::SeqCst) {
            return Err(IdentityError::Service {
                service: "AWS KMS",
                reason: "connection timed out".into(),
            });
        }
        self.inner.sign(kid, input).await
    }
}

/// A runtime signing with a [`Flaky`] signer, down or up.
fn flaky(down: bool) -> (Arc<Flaky>, Kest) {
    let signer = Arc::new(Flaky {
        inner: MockIdentity::new(W).unwrap(),
        down: down.into(),
        signatures: AtomicUsize::new(0),
        hold: tokio::sync::Semaphore::new(1),
    });
    let kest = Kest::builder()
        .identity(Arc::clone(&signer))
        .engine(Arc::new(MockEngine::allow_all()))
        .build()
        .unwrap();
    (signer, kest)
}

/// After a signature fails, nothing runs until a probe signature goes through: the
/// signer being down stops calls before they run instead of after (found by
/// `cargo xtask chaos`: with KMS frozen, every call ran and then failed to sign).
#[tokio::test]
async fn after_a_failed_signature_nothing_runs_until_a_probe_succeeds() {
    let (signer, kest) = flaky(false);
    let hook = kest.protect(Call::new("act").policy("p")).unwrap();
    let other = kest.protect(Call::new("other").policy("p")).unwrap();
    let runs = Runs::default();
    let flow = Flow::new();
    flow.scope(hook.run(Values::new(), runs.op()))
        .await
        .unwrap();
    assert_eq!((runs.count(), flow.passport().len()), (1, 1));

    // The signer goes down while a call runs: that one ran, and its result is withheld.
    signer.down.store(true, Ordering::SeqCst);
    let error = flow
        .scope(hook.run(Values::new(), runs.op()))
        .await
        .unwrap_err();
    assert!(matches!(error, KestError::Record(_)), "{error}");
    assert_eq!(runs.count(), 2);

    // From then on, calls (of any call site of this runtime) probe and are refused
    // before they run, naming the workload and the cause.
    let signatures = signer.signatures.load(Ordering::SeqCst);
    for hook in [&hook, &other] {
        let error = runs.refused(hook).await;
        assert!(
            matches!(&error, KestError::SignerUnavailable { workload, reason }
                if workload == W && reason.contains("connection timed out")),
            "{error}"
        );
        assert!(error.stopped_before_running());
    }
    assert_eq!(runs.count(), 2, "nothing ran while the signer was down");
    assert_eq!(signer.signatures.load(Ordering::SeqCst), signatures + 2);

    // While one call's probe hangs, the others are refused at once, not queued.
    let held = signer.hold.acquire().await.unwrap();
    let probing = tokio::spawn({
        let hook = hook.clone();
        let op = runs.op();
        async move { Flow::new().scope(hook.run(Values::new(), op)).await }
    });
    while signer.signatures.load(Ordering::SeqCst) < signatures + 3 {
        tokio::task::yield_now().await;
    }
    let error = runs.refused(&other).await;
    assert!(
        matches!(&error, KestError::SignerUnavailable { reason, .. } if reason.contains("probing")),
        "{error}"
    );
    assert_eq!(signer.signatures.load(Ordering::SeqCst), signatures + 3);
    // The signer comes back: the held probe goes through, and calls run and sign again.
    signer.down.store(false, Ordering::SeqCst);
    drop(held);
    assert_eq!(probing.await.unwrap().unwrap(), "done");
    let flow = Flow::new();
    flow.scope(other.run(Values::new(), runs.op()))
        .await
        .unwrap();
    assert_eq!(runs.count(), 4);
    // Probes are not entries: the passport holds the call's entry only, and verifies.
    assert_eq!(flow.passport().len(), 1);
    Verifier::new(&resolver())
        .verify_json(&flow.passport().to_json())
        .unwrap();
}

/// A call with an identity of its own has a gate of its own: the runtime's signer being
/// down does not stop it.
#[tokio::test]
async fn a_call_with_its_own_identity_is_not_gated_by_the_runtime_signer() {
    let (_, kest) = flaky(true);
    let hook = kest.protect(Call::new("act").policy("p")).unwrap();
    let runs = Runs::default();
    let error = runs.refused(&hook).await;
    assert!(matches!(error, KestError::Record(_)), "{error}");
    let error = runs.refused(&hook).await;
    assert!(
        matches!(error, KestError::SignerUnavailable { .. }),
        "{error}"
    );
    let own = kest
        .protect(Call::new("own").policy("p").identity(identity()))
        .unwrap();
    let flow = Flow::new();
    flow.scope(own.run(Values::new(), runs.op())).await.unwrap();
    assert_eq!(runs.count(), 2);
    assert_eq!(flow.passport().len(), 1);
}

#[test]
fn an_empty_policy_list_is_refused_when_the_hook_is_built() {
    let kest = kest_with(MockEngine::allow_all());
    let error = kest.protect(Call::new("act")).unwrap_err();
    assert!(matches!(error, KestError::Config(_)), "{error}");
    let error = kest
        .protect(Call::new("act").policy("p").origin("the_moon"))
        .unwrap_err();
    assert!(matches!(error, KestError::Call(_)), "{error}");
    let error = kest
        .protect(Call::new("act").policy("p").trust_override(101))
        .unwrap_err();
    assert!(matches!(error, KestError::Call(_)), "{error}");
}

#[tokio::test]
async fn per_call_values_override_the_flow_and_reach_the_policy() {
    let engine = Arc::new(MockEngine::allow_all());
    let kest = Kest::builder()
        .identity(identity())
        .engine(engine.clone())
        .build()
        .unwrap();
    let hook = kest
        .protect(
            Call::new("read")
                .policy("p")
                .origin("user_input")
                .added_taints(["unverified"]),
        )
        .unwrap();
    let flow = Flow::with_passport(
        kest_passport::Passport::new(),
        kest::Caller {
            user: Some("from-baggage".into()),
            agent: Some("agent-7".into()),
            ..Default::default()
        },
    );
    flow.scope(
        hook.run_serialized(
            Values::new()
                .user("alice")
                .resource_id("doc-1")
                .resource_attr("owner", "alice")
                .inputs(&("doc-1", 3)),
            async { serde_json::json!({"text": "hello"}) },
        ),
    )
    .await
    .unwrap();
    let contexts = engine.contexts();
    let document = contexts[0].document();
    assert_eq!(document["subject"]["user"], "alice");
    assert_eq!(document["subject"]["agent"], "agent-7");
    assert_eq!(document["subject"]["trust_score"], 40);
    assert_eq!(
        document["subject"]["taints"],
        serde_json::json!(["unverified"])
    );
    assert_eq!(document["object"]["id"], "doc-1");
    assert_eq!(document["object"]["attributes"]["owner"], "alice");
    let entry = flow.passport().entries()[0].entry().into_owned();
    assert_eq!(entry.trust_score().get(), 40);
    assert_eq!(entry.label("user"), Some("alice"));
    assert_eq!(entry.input_hash(), kest::hash_serialized(&("doc-1", 3)));
    assert_eq!(
        entry.content_hash(),
        kest::hash_serialized(&serde_json::json!({"text": "hello"}))
    );
}

#[tokio::test]
async fn per_call_engine_identity_and_evaluator_beat_the_configuration() {
    let configured = Arc::new(MockEngine::allow_all().denying("p"));
    let per_call = Arc::new(MockEngine::allow_all());
    let other = Arc::new(MockIdentity::new("spiffe://kest.test/other").unwrap());
    let kest = Kest::builder()
        .identity(identity())
        .engine(configured.clone())
        .build()
        .unwrap();
    let hook = kest
        .protect(
            Call::new("act")
                .policy("p")
                .engine(per_call.clone())
                .identity(other)
                .trust_evaluator(Arc::new(kest_trust::Weighted::new(
                    kest_trust::TrustScore::new(50).unwrap(),
                ))),
        )
        .unwrap();
    let flow = Flow::new();
    flow.scope(hook.run(Values::new(), async {})).await.unwrap();
    assert_eq!(per_call.evaluated(), ["p"]);
    assert!(configured.evaluated().is_empty());
    assert_eq!(
        flow.passport().entries()[0].entry().principal(),
        Some("spiffe://kest.test/other")
    );
}

#[test]
fn the_synchronous_api_runs_the_same_lifecycle() {
    let runs = Runs::default();
    let kest = kest_with(MockEngine::allow_all().denying("no"));
    let yes = kest.protect(Call::new("yes").policy("ok")).unwrap();
    let no = kest.protect(Call::new("no").policy("no")).unwrap();
    let flow = Flow::new();
    {
        let _guard = flow.enter();
        let value = yes.run_sync(Values::new(), || 7).unwrap();
        assert_eq!(value, 7);
        yes.run_sync(Values::new(), || ()).unwrap();
        let counter = runs.clone();
        let error = no
            .run_sync(Values::new(), move || {
                counter.0.fetch_add(1, Ordering::SeqCst)
            })
            .unwrap_err();
        assert!(error.is_denied());
    }
    assert_eq!(runs.count(), 0);
    assert_eq!(
        flow.passport().len(),
        2,
        "sequential synchronous calls chain"
    );
    // Fallible operations: an Err leaves no entry; hook errors convert into the caller's.
    #[derive(Debug)]
    enum AppError {
        Kest(KestError),
        Io,
    }
    impl From<KestError> for AppError {
        fn from(error: KestError) -> Self {
            Self::Kest(error)
        }
    }
    let _guard = flow.enter();
    let failed: Result<(), AppError> =
        yes.run_result_sync(Values::new(), || Err(AppError::Io), |_| None);
    assert!(matches!(failed, Err(AppError::Io)));
    let denied: Result<(), AppError> = no.run_result_sync(Values::new(), || Ok(()), |_| None);
    assert!(matches!(denied, Err(AppError::Kest(ref e)) if e.is_denied()));
    assert_eq!(flow.passport().len(), 2);
}

#[tokio::test]
async fn a_chain_tip_in_baggage_without_a_passport_stops_the_call() {
    use opentelemetry::baggage::BaggageExt as _;
    let runs = Runs::default();
    let kest = kest_with(MockEngine::allow_all());
    let hook = kest.protect(Call::new("act").policy("p")).unwrap();
    let tip = "ab".repeat(32);
    let cx = opentelemetry::Context::current_with_baggage([opentelemetry::KeyValue::new(
        "kest.chain_tip",
        tip,
    )]);
    let error = {
        let _guard = cx.attach();
        hook.run(Values::new(), runs.op()).await.unwrap_err()
    };
    assert!(matches!(error, KestError::Lineage(_)), "{error}");
    // A claim check the store does not have.
    let cx = opentelemetry::Context::current_with_baggage([
        opentelemetry::KeyValue::new("kest.chain_tip", "cd".repeat(32)),
        opentelemetry::KeyValue::new("kest.claim_check", "7d5c2d3e-0000-4000-8000-000000000000"),
    ]);
    let error = {
        let _guard = cx.attach();
        hook.run(Values::new(), runs.op()).await.unwrap_err()
    };
    assert!(error.to_string().contains("not found"), "{error}");
    assert_eq!(runs.count(), 0);
}

#[tokio::test]
async fn configuration_from_toml_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/invoke.cedar"),
        "permit(principal, action, resource) when { context.subject.trust_score >= 50 };",
    )
    .unwrap();
    let key = kest_crypto::SigningKey::from_ed25519_seed(&[5; 32]).unwrap();
    kest_identity::write_private_jwk(&dir.path().join("svc.jwk"), &key, false).unwrap();
    let toml = r#"
        service_name = "billing"
        [policy]
        engine = "cedar"
        dir = "policies"
        [identity]
        provider = "static"
        workload_id = "spiffe://kest.test/billing"
        key_file = "svc.jwk"
    "#;
    std::fs::write(dir.path().join("kest.toml"), toml).unwrap();
    let kest = Kest::from_toml_file(&dir.path().join("kest.toml"))
        .await
        .unwrap();
    assert_eq!(kest.service_name(), "billing");
    let allowed = kest
        .protect(Call::new("fetch").policy("invoke").origin("verified_rag"))
        .unwrap();
    let denied = kest
        .protect(Call::new("guess").policy("invoke").origin("llm"))
        .unwrap();
    let flow = Flow::new();
    flow.scope(async {
        allowed.run(Values::new(), async {}).await.unwrap();
        assert!(
            denied
                .run(Values::new(), async {})
                .await
                .unwrap_err()
                .is_denied()
        );
    })
    .await;
    let resolver = StaticKeyResolver::new()
        .with_key("spiffe://kest.test/billing", key.verifying_key().clone());
    Verifier::new(&resolver)
        .verify_json(&flow.passport().to_json())
        .unwrap();

    // The environment overrides the file.
    let path = dir.path().join("kest.toml").display().to_string();
    let vars = |name: &str| match name {
        "KEST_CONFIG" => Some(path.clone()),
        "KEST_SERVICE_NAME" => Some("payments".to_owned()),
        "KEST_ENTERPRISE_POLICIES" => Some("invoke".to_owned()),
        _ => None,
    };
    let kest = Kest::from_vars(vars).await.unwrap();
    assert_eq!(kest.service_name(), "payments");
    // A small passport goes inline by default, and compressed with the inline tier off.
    let passport = flow.passport();
    for (text, tier) in [
        ("", kest::propagation::BaggageTier::Inline),
        (
            "inline_tier = false",
            kest::propagation::BaggageTier::Compressed,
        ),
    ] {
        let with = format!("{toml}\n[propagation]\n{text}\n");
        let kest = Kest::from_toml_str(&with, dir.path()).await.unwrap();
        let mut baggage = kest::propagation::Baggage::new();
        let written = kest
            .codec()
            .write(&mut baggage, &passport, &kest::Caller::default())
            .await
            .unwrap();
        assert_eq!(written, Some(tier), "{text:?}");
    }
    // Errors name what is wrong.
    let error = Kest::from_toml_str("[policy]\nengine = \"prolog\"\ndir = \".\"", dir.path())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("prolog"), "{error}");
    let error = Kest::from_toml_str("[policy]\nunknown = 1", dir.path())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("unknown"), "{error}");
    let error = Kest::from_vars(|n| (n == "KEST_CLAIM_STORE").then(|| "memcached://x".to_owned()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, KestError::InvalidValue { key: "KEST_CLAIM_STORE", value, .. } if value == "memcached://x"),
        "{error:?}"
    );
    assert!(error.to_string().contains("KEST_CLAIM_STORE"), "{error}");
    let error = Kest::from_toml_str("[propagation]\nclaim_store = \"etcd://x\"", dir.path())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("[propagation] claim_store"),
        "{error}"
    );
    let error = Kest::from_toml_file(&dir.path().join("absent.toml"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, KestError::Io { path, source } if path.ends_with("absent.toml") && source.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
    assert!(matches!(
        Kest::from_toml_str("[policy\n", dir.path())
            .await
            .unwrap_err(),
        KestError::Toml { .. }
    ));
    let error = Kest::from_vars(|n| (n == "KEST_POLICY_DIR").then(|| "/nonexistent".to_owned()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, KestError::NotConfigured(Missing::EngineKind { dir }) if dir.ends_with("nonexistent")),
        "{error:?}"
    );
    assert!(error.to_string().contains("KEST_POLICY_ENGINE"), "{error}");
    let error = Kest::from_vars(|n| (n == "KEST_POLICY_ENGINE").then(|| "rego".to_owned()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, KestError::NotConfigured(Missing::PolicyDir { .. })),
        "{error:?}"
    );
    let error = Kest::from_vars(|n| match n {
        "KEST_POLICY_ENGINE" => Some("cedar".to_owned()),
        "KEST_POLICY_DIR" => Some("/nonexistent".to_owned()),
        _ => None,
    })
    .await
    .unwrap_err();
    assert!(matches!(&error, KestError::Engine(_)), "{error:?}");
    assert!(error.to_string().contains("/nonexistent"), "{error}");
}

#[tokio::test]
async fn protect_uses_the_scoped_default() {
    let error = kest::protect(Call::new("act").policy("p")).unwrap_err();
    assert!(matches!(error, KestError::NotInstalled), "{error:?}");
    let flow = Flow::new();
    kest_with(MockEngine::allow_all())
        .with_default_async(async {
            let hook = kest::protect(Call::new("act").policy("p")).unwrap();
            flow.scope(hook.run(Values::new(), async {})).await.unwrap();
        })
        .await;
    assert_eq!(flow.passport().len(), 1);
    let hook = kest_with(MockEngine::deny_all())
        .with_default(|| kest::protect(Call::new("act").policy("p")).unwrap());
    assert!(
        Flow::new()
            .scope(hook.run(Values::new(), async {}))
            .await
            .unwrap_err()
            .is_denied()
    );
    assert!(kest::protect(Call::new("act").policy("p")).is_err());
}
