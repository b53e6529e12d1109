//! `#[kest::verified]` on synchronous and asynchronous functions and methods: parameters,
//! resolver closures over the arguments, input and output hashes, and denial before the
//! body runs.
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

use kest::{Flow, Kest, KestError};
use kest_identity::MockIdentity;
use kest_policy::MockEngine;
use serde::Serialize;

static BODY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
enum AppError {
    Kest(KestError),
    NotFound,
}

impl From<KestError> for AppError {
    fn from(error: KestError) -> Self {
        Self::Kest(error)
    }
}

#[derive(Debug, Clone, Serialize)]
struct Ticket {
    id: String,
    owner: String,
}

#[kest::verified(policy = "read_ticket", origin = "user_input", added_taints = ["unverified"],
    user = |ticket: &Ticket, _: &u32| ticket.owner.clone(),
    resource_id = ticket.id.clone(),
    resource_attr = [("priority", priority), ("kind", "support")])]
async fn read_ticket(ticket: Ticket, priority: u32) -> Result<String, AppError> {
    BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    if ticket.id == "missing" {
        return Err(AppError::NotFound);
    }
    Ok(format!("ticket {} for {}", ticket.id, ticket.owner))
}

#[kest::verified(policy = ["scrub", "pii_ok"], name = "scrub_text", removed_taints = ["unverified"], trust_override = 90)]
fn scrub(text: &str) -> Result<String, AppError> {
    BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(text.replace("alice", "[user]"))
}

#[kest::verified(policy = "forbidden")]
async fn forbidden() -> Result<(), AppError> {
    BODY_RUNS.fetch_add(1_000, Ordering::SeqCst);
    Ok(())
}

struct NotSerializable;

#[kest::verified(policy = "read_ticket", task = "triage")]
async fn opaque(_handle: NotSerializable) -> Result<NotSerializable, AppError> {
    Ok(NotSerializable)
}

struct Service {
    name: String,
}

impl Service {
    #[kest::verified(policy = "read_ticket", agent = self.name.clone())]
    async fn handle(&self, request: u64) -> Result<u64, AppError> {
        Ok(request * 2)
    }
}

fn runtime(engine: Arc<MockEngine>) -> Kest {
    Kest::builder()
        .identity(MockIdentity::new("spiffe://kest.test/macros").unwrap())
        .engine(engine)
        .build()
        .unwrap()
}

// One test: the installed runtime is process-wide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attribute_runs_the_whole_lifecycle() {
    let ticket = Ticket {
        id: "T-1".into(),
        owner: "alice".into(),
    };
    // Without a runtime, calls fail and bodies do not run.
    let before = BODY_RUNS.load(Ordering::SeqCst);
    let not_installed = || async {
        let error = Flow::new()
            .scope(read_ticket(ticket.clone(), 1))
            .await
            .unwrap_err();
        assert!(
            matches!(error, AppError::Kest(KestError::NotInstalled)),
            "{error:?}"
        );
    };
    not_installed().await;
    assert_eq!(BODY_RUNS.load(Ordering::SeqCst), before);

    // A scoped default applies inside its scope only, async and sync.
    let denying = runtime(Arc::new(MockEngine::deny_all()));
    let error = denying
        .with_default_async(Flow::new().scope(read_ticket(ticket.clone(), 1)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AppError::Kest(e) if e.is_denied()),
        "{error:?}"
    );
    let scoped = runtime(Arc::new(MockEngine::allow_all()));
    let sync = std::thread::spawn(move || {
        let flow = Flow::new();
        let _guard = flow.enter();
        let inside = scoped.with_default(|| scrub("alice"));
        let outside = scrub("alice");
        (inside, outside, flow.passport().len())
    })
    .join()
    .unwrap();
    assert_eq!(sync.0.unwrap(), "[user]");
    assert!(matches!(
        sync.1,
        Err(AppError::Kest(KestError::NotInstalled))
    ));
    assert_eq!(sync.2, 1);
    assert_eq!(BODY_RUNS.load(Ordering::SeqCst), before + 1);
    not_installed().await;

    // Installed: process-wide, once.
    let engine = Arc::new(MockEngine::allow_all().denying("forbidden"));
    runtime(engine.clone()).install().unwrap();
    assert!(matches!(
        runtime(Arc::new(MockEngine::deny_all())).install(),
        Err(KestError::AlreadyInstalled)
    ));
    let flow = Flow::new();
    flow.scope(async {
        let text = read_ticket(ticket.clone(), 3).await.unwrap();
        assert_eq!(text, "ticket T-1 for alice");
        let clean = tokio::task::block_in_place(|| {
            let _guard = Flow::current().unwrap().enter();
            scrub(&text)
        })
        .unwrap();
        assert_eq!(clean, "ticket T-1 for [user]");
        // Denied: the body never runs, the caller's error type carries the reason.
        let before = BODY_RUNS.load(Ordering::SeqCst);
        let error = forbidden().await.unwrap_err();
        assert!(
            matches!(&error, AppError::Kest(e) if e.is_denied()),
            "{error:?}"
        );
        assert_eq!(BODY_RUNS.load(Ordering::SeqCst), before);
        // The body's own error comes back unchanged and leaves no entry.
        let missing = Ticket {
            id: "missing".into(),
            owner: "bob".into(),
        };
        assert!(matches!(
            read_ticket(missing, 1).await,
            Err(AppError::NotFound)
        ));
        // Arguments that do not serialize: no input hash, but the call is recorded.
        opaque(NotSerializable).await.unwrap();
        let service = Service {
            name: "triage-bot".into(),
        };
        assert_eq!(service.handle(21).await.unwrap(), 42);
    })
    .await;

    let passport = flow.passport();
    let entries = passport.entries();
    let ops: Vec<_> = entries
        .iter()
        .map(|e| e.entry().operation().to_owned())
        .collect();
    assert_eq!(ops, ["read_ticket", "scrub_text", "opaque", "handle"]);
    let read = entries[0].entry();
    assert_eq!(read.trust_score().get(), 40);
    assert_eq!(read.taints_as_written(), ["unverified"]);
    assert_eq!(read.label("user"), Some("alice"));
    assert_eq!(
        read.input_hash(),
        kest::hash_serialized(&(ticket.clone(), 3_u32))
    );
    assert_eq!(
        read.content_hash(),
        kest::hash_serialized(&"ticket T-1 for alice")
    );
    let scrubbed = entries[1].entry();
    assert_eq!(scrubbed.trust_score().get(), 90);
    assert!(scrubbed.taints().is_empty());
    assert_eq!(
        scrubbed.policy_context().function_policies,
        ["scrub", "pii_ok"]
    );
    assert_eq!(entries[2].entry().input_hash(), None);
    assert_eq!(entries[2].entry().content_hash(), None);
    assert_eq!(entries[2].entry().label("task"), Some("triage"));
    assert_eq!(entries[3].entry().label("agent"), Some("triage-bot"));
    // What the policy saw for read_ticket.
    let context = &engine.contexts()[0];
    let document = context.document();
    assert_eq!(document["object"]["id"], "T-1");
    assert_eq!(document["object"]["attributes"]["priority"], 3);
    assert_eq!(document["object"]["attributes"]["kind"], "support");
    assert_eq!(document["subject"]["user"], "alice");
    // A scope still overrides the installed default.
    let error = denying
        .with_default_async(Flow::new().scope(read_ticket(ticket, 1)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AppError::Kest(e) if e.is_denied()),
        "{error:?}"
    );
}
