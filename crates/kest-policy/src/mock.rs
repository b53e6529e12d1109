//! A configurable engine for tests and development.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::{Decision, EvaluationContext, PolicyEngine, PolicyError};

/// Allows or denies per policy, and counts its calls.
///
/// ```
/// use kest_policy::{EvaluationContext, MockEngine, PolicyEngine};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = MockEngine::deny_all().allowing("read");
/// let context = EvaluationContext::builder("w").build()?;
/// assert!(engine.evaluate("read", &context).await?.allow);
/// assert!(!engine.evaluate("write", &context).await?.allow);
/// assert_eq!(engine.calls(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MockEngine {
    default_allow: bool,
    overrides: HashMap<String, Outcome>,
    calls: AtomicU64,
    seen: Mutex<Vec<String>>,
    contexts: Mutex<Vec<EvaluationContext>>,
}

#[derive(Debug, Clone)]
enum Outcome {
    Allow,
    Deny,
    Fail(PolicyError),
}

impl MockEngine {
    /// Allows every policy unless told otherwise.
    #[must_use]
    pub fn allow_all() -> Self {
        Self::with_default(true)
    }

    /// Denies every policy unless told otherwise.
    #[must_use]
    pub fn deny_all() -> Self {
        Self::with_default(false)
    }

    fn with_default(default_allow: bool) -> Self {
        Self {
            default_allow,
            overrides: HashMap::new(),
            calls: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
            contexts: Mutex::new(Vec::new()),
        }
    }

    /// Allows `policy`.
    #[must_use]
    pub fn allowing(mut self, policy: &str) -> Self {
        self.overrides.insert(policy.to_owned(), Outcome::Allow);
        self
    }

    /// Denies `policy`.
    #[must_use]
    pub fn denying(mut self, policy: &str) -> Self {
        self.overrides.insert(policy.to_owned(), Outcome::Deny);
        self
    }

    /// Fails on `policy` with `error`, as a broken engine would.
    #[must_use]
    pub fn failing(mut self, policy: &str, error: PolicyError) -> Self {
        self.overrides
            .insert(policy.to_owned(), Outcome::Fail(error));
        self
    }

    /// How many evaluations were asked for.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The policies evaluated, in order.
    #[must_use]
    pub fn evaluated(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }

    /// The contexts it was asked about, in order.
    #[must_use]
    pub fn contexts(&self) -> Vec<EvaluationContext> {
        self.contexts
            .lock()
            .map(|contexts| contexts.clone())
            .unwrap_or_default()
    }
}

#[async_trait]
impl PolicyEngine for MockEngine {
    fn name(&self) -> &'static str {
        "mock"
    }

    async fn evaluate(
        &self,
        policy: &str,
        context: &EvaluationContext,
    ) -> Result<Decision, PolicyError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(policy.to_owned());
        }
        if let Ok(mut contexts) = self.contexts.lock() {
            contexts.push(context.clone());
        }
        let outcome = self
            .overrides
            .get(policy)
            .cloned()
            .unwrap_or(if self.default_allow {
                Outcome::Allow
            } else {
                Outcome::Deny
            });
        match outcome {
            Outcome::Allow => Ok(Decision::allow(vec![format!("mock allows `{policy}`")])),
            Outcome::Deny => Ok(Decision::deny(vec![format!("mock denies `{policy}`")])),
            Outcome::Fail(error) => Err(error),
        }
    }
}
