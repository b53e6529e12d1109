//! The verification hook: authorize, run, sign, append, emit.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kest_canon::Sha256Digest;
use kest_identity::{IdentityInfo, IdentityProvider};
use kest_passport::{EntryBuilder, Head, Passport};
use kest_policy::{EvaluationContext, PolicyEngine, TierOutcome, TieredPolicies};
use kest_propagation::{Caller, Flow};
use kest_trust::{TaintSet, TrustEvaluator, TrustScore};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{Kest, KestError, Missing, RecordError, telemetry};

/// What a protected operation is: its name, the policies it must pass, and what it does
/// to trust and taints. Made once per call site and turned into a [`Protected`] hook with
/// [`Kest::protect`] (or [`crate::protect`] for the installed default).
///
/// ```
/// let call = kest::Call::new("summarize")
///     .policy("invoke")
///     .origin("user_input")
///     .added_taints(["unverified"]);
/// assert_eq!(call.operation(), "summarize");
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct Call {
    operation: String,
    policies: Vec<String>,
    origin: Option<String>,
    added_taints: Vec<String>,
    removed_taints: Vec<String>,
    trust_override: Option<u8>,
    classification: Option<String>,
    engine: Option<Arc<dyn PolicyEngine>>,
    identity: Option<Arc<dyn IdentityProvider>>,
    evaluator: Option<Arc<dyn TrustEvaluator>>,
    defaults: Values,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("operation", &self.operation)
            .field("policies", &self.policies)
            .field("origin", &self.origin)
            .field("added_taints", &self.added_taints)
            .field("removed_taints", &self.removed_taints)
            .field("trust_override", &self.trust_override)
            .field("classification", &self.classification)
            .finish_non_exhaustive()
    }
}

impl Call {
    /// A call of `operation`.
    pub fn new(operation: impl Into<String>) -> Self {
        Self {
            operation: operation.into(),
            ..Self::default()
        }
    }

    /// The operation name.
    #[must_use]
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// A function-tier policy the call must pass (repeatable). At least one is required.
    pub fn policy(mut self, policy: impl Into<String>) -> Self {
        self.policies.push(policy.into());
        self
    }

    /// Several function-tier policies.
    pub fn policies<T: Into<String>>(mut self, policies: impl IntoIterator<Item = T>) -> Self {
        self.policies.extend(policies.into_iter().map(Into::into));
        self
    }

    /// Where the call's data comes from (an origin of the [`kest_trust::OriginMap`]); its
    /// score caps the entry's trust.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Taints the call introduces.
    pub fn added_taints<T: Into<String>>(mut self, taints: impl IntoIterator<Item = T>) -> Self {
        self.added_taints.extend(taints.into_iter().map(Into::into));
        self
    }

    /// Taints the call clears (a declared sanitizer).
    pub fn removed_taints<T: Into<String>>(mut self, taints: impl IntoIterator<Item = T>) -> Self {
        self.removed_taints
            .extend(taints.into_iter().map(Into::into));
        self
    }

    /// Sets the entry's trust outright (a declared sanitizer). Recorded in the entry.
    pub const fn trust_override(mut self, score: u8) -> Self {
        self.trust_override = Some(score);
        self
    }

    /// The data classification (`system` by default).
    pub fn classification(mut self, classification: impl Into<String>) -> Self {
        self.classification = Some(classification.into());
        self
    }

    /// This call's engine, instead of the configured one: any engine, or an `Arc`.
    pub fn engine(mut self, engine: impl PolicyEngine + 'static) -> Self {
        self.engine = Some(Arc::new(engine));
        self
    }

    /// This call's identity, instead of the configured one: any provider, or an `Arc`.
    pub fn identity(mut self, identity: impl IdentityProvider + 'static) -> Self {
        self.identity = Some(Arc::new(identity));
        self
    }

    /// This call's trust evaluator, instead of the configured one.
    pub fn trust_evaluator(mut self, evaluator: impl TrustEvaluator + 'static) -> Self {
        self.evaluator = Some(Arc::new(evaluator));
        self
    }

    /// Fixed per-call values (user, resource, …) used when an invocation gives none.
    pub fn values(mut self, values: Values) -> Self {
        self.defaults = values;
        self
    }
}

/// Values of one invocation: who it is for and what it touches, usually taken from the
/// function's arguments. Explicit values win over those in the ambient flow (baggage).
#[derive(Clone, Default, PartialEq)]
#[must_use]
pub struct Values {
    user: Option<String>,
    agent: Option<String>,
    task: Option<String>,
    resource_id: Option<String>,
    resource_attributes: Map<String, Value>,
    input_hash: Option<Sha256Digest>,
    /// Caller-supplied values at the top level of the evaluation context.
    context: Vec<(String, Value)>,
    /// Labels written into the signed entry.
    labels: Vec<(String, String)>,
}

/// Label names the hook writes itself: a caller's [`Values::label`] may not use them.
const RESERVED_LABELS: [&str; 5] = ["principal", "trace_id", "user", "agent", "task"];

/// Whether `name` is a label the hook (or the wire format) owns.
fn is_reserved_label(name: &str) -> bool {
    RESERVED_LABELS.contains(&name) || name.starts_with("kest.")
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Values")
            .field("user", &self.user)
            .field("agent", &self.agent)
            .field("task", &self.task)
            .field("resource_id", &self.resource_id)
            .field(
                "resource_attributes",
                &self.resource_attributes.keys().collect::<Vec<_>>(),
            )
            .field("input_hash", &self.input_hash.map(|h| h.to_hex()))
            .field(
                "context",
                &self.context.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field(
                "labels",
                &self.labels.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Values {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// The end user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The agent.
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// The task.
    pub fn task(mut self, task: impl Into<String>) -> Self {
        self.task = Some(task.into());
        self
    }

    /// The resource the call acts on (`object.id` in policies).
    pub fn resource_id(mut self, id: impl Into<String>) -> Self {
        self.resource_id = Some(id.into());
        self
    }

    /// An attribute of the resource (`object.attributes.<name>` in policies).
    pub fn resource_attr(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.resource_attributes.insert(name.into(), value.into());
        self
    }

    /// The SHA-256 of the call's inputs, recorded as `input_hash`.
    pub const fn input_hash(mut self, hash: Sha256Digest) -> Self {
        self.input_hash = Some(hash);
        self
    }

    /// Hashes `inputs` (their RFC 8785 canonical JSON) as the call's `input_hash`. Inputs
    /// that do not serialize leave no hash.
    pub fn inputs(self, inputs: &impl Serialize) -> Self {
        match hash_serialized(inputs) {
            Some(hash) => self.input_hash(hash),
            None => self,
        }
    }

    /// A caller-supplied value at the top level of the evaluation context
    /// (`context.<key>` in Cedar, `input.<key>` in Rego). A key the context already has
    /// (`subject`, `trust_score`, ...) refuses the call before it runs.
    pub fn context(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.context.push((key.into(), value.into()));
        self
    }

    /// A label written into the signed entry (`labels.<name>`), such as where a request
    /// came from. Kest's own labels (`principal`, `trace_id`, `user`, `agent`, `task` and
    /// every `kest.*`) cannot be set this way: the call is refused before it runs.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }

    fn or(self, defaults: &Self) -> Self {
        let mut attributes = defaults.resource_attributes.clone();
        attributes.extend(self.resource_attributes);
        // The call's own values win over the call site's defaults, key by key.
        let mut context: Vec<(String, Value)> = defaults
            .context
            .iter()
            .filter(|(key, _)| !self.context.iter().any(|(own, _)| own == key))
            .cloned()
            .collect();
        context.extend(self.context);
        let mut labels: Vec<(String, String)> = defaults
            .labels
            .iter()
            .filter(|(name, _)| !self.labels.iter().any(|(own, _)| own == name))
            .cloned()
            .collect();
        labels.extend(self.labels);
        Self {
            user: self.user.or_else(|| defaults.user.clone()),
            agent: self.agent.or_else(|| defaults.agent.clone()),
            task: self.task.or_else(|| defaults.task.clone()),
            resource_id: self.resource_id.or_else(|| defaults.resource_id.clone()),
            resource_attributes: attributes,
            input_hash: self.input_hash.or(defaults.input_hash),
            context,
            labels,
        }
    }
}

/// The SHA-256 of `value`'s canonical JSON, if it serializes and canonicalizes.
#[must_use]
pub fn hash_serialized(value: &impl Serialize) -> Option<Sha256Digest> {
    let value = serde_json::to_value(value).ok()?;
    let bytes = kest_canon::canonicalize(&value).ok()?;
    Some(kest_canon::sha256(&bytes))
}

/// A protected call site: a [`Call`] checked against a [`Kest`] runtime, ready to run any
/// number of times. Building it checks what can be checked once: the function policies
/// (an empty list is an error here, not at the first call), the origin, the override.
#[derive(Clone)]
pub struct Protected {
    kest: Kest,
    call: Arc<Call>,
    tiers: Arc<TieredPolicies>,
    /// The function tier's policies and deviations, set in every context up front so
    /// that evaluating that tier needs no copy of it.
    function_tier: Arc<(Vec<String>, Vec<String>)>,
    origin_score: TrustScore,
    trust_override: Option<TrustScore>,
    /// Metric attribute values fixed for this call site.
    attributes: Arc<crate::metrics::CallAttributes>,
    /// The signer's health: the runtime's, or this call's own for its own identity.
    signer_gate: Arc<crate::signer_gate::SignerGate>,
}

impl std::fmt::Debug for Protected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protected")
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

/// Warns once per process about calls made outside any flow.
static WARNED_NO_FLOW: AtomicBool = AtomicBool::new(false);

/// Everything decided before the operation runs.
struct Authorized {
    flow: Flow,
    identity: Arc<dyn IdentityProvider>,
    info: IdentityInfo,
    entry_id: Uuid,
    /// The passport the call was authorized against.
    before: Passport,
    caller: Caller,
    outcome: TierOutcome,
    input_hash: Option<Sha256Digest>,
    /// The caller's labels for the entry.
    labels: Vec<(String, String)>,
    /// The hook's time authorizing, and the engine that decided (for the metrics).
    authorized_in: std::time::Duration,
    engine: &'static str,
}

impl Kest {
    /// Checks `call` against this runtime and returns the hook that runs it.
    ///
    /// # Errors
    /// [`KestError::Config`] for an empty or invalid policy list, [`KestError::Call`] for
    /// an unknown origin or an override above 100.
    pub fn protect(&self, call: Call) -> Result<Protected, KestError> {
        let tiers = TieredPolicies::new(
            Arc::clone(&self.inner.policies),
            self.inner.app.as_deref(),
            &call.operation,
            call.policies.clone(),
        )?;
        let origin_score = self
            .inner
            .origins
            .score_or_default(call.origin.as_deref())?;
        let trust_override = call.trust_override.map(TrustScore::new).transpose()?;
        let function_tier = tiers
            .plan()
            .into_iter()
            .find(|plan| plan.tier == kest_policy::PolicyTier::Function)
            .map(|plan| {
                let skipped = plan.skipped.iter().map(|d| d.policy.clone()).collect();
                (plan.run, skipped)
            })
            .unwrap_or_default();
        let attributes = Arc::new(crate::metrics::CallAttributes::new(
            &call.operation,
            &call.policies,
        ));
        let signer_gate = if call.identity.is_some() {
            Arc::default()
        } else {
            Arc::clone(&self.inner.signer_gate)
        };
        Ok(Protected {
            attributes,
            signer_gate,
            kest: self.clone(),
            call: Arc::new(call),
            tiers: Arc::new(tiers),
            function_tier: Arc::new(function_tier),
            origin_score,
            trust_override,
        })
    }
}

/// [`Kest::protect`] with the installed default runtime.
///
/// # Errors
/// [`KestError::NotInstalled`] when no runtime is installed, or as [`Kest::protect`].
pub fn protect(call: Call) -> Result<Protected, KestError> {
    Kest::installed()
        .ok_or(KestError::NotInstalled)?
        .protect(call)
}

impl Protected {
    /// The call this hook runs.
    pub fn call(&self) -> &Call {
        &self.call
    }

    /// Runs `operation` under the hook: authorize (every tier must allow), run, then sign
    /// and append the entry to the current flow and emit its span.
    ///
    /// # Errors
    /// Any [`KestError`] before the operation runs (it then does not run), or
    /// [`KestError::Record`] when it ran but could not be recorded.
    pub async fn run<T, F>(&self, values: Values, operation: F) -> Result<T, KestError>
    where
        F: Future<Output = T>,
    {
        let authorized = self.authorize(values).await?;
        let flow = authorized.flow.clone();
        let output = flow.scope(operation).await;
        self.record(authorized, None).await?;
        Ok(output)
    }

    /// As [`Protected::run`], recording the SHA-256 of the output's canonical JSON as the
    /// entry's `content_hash`.
    ///
    /// # Errors
    /// As [`Protected::run`].
    pub async fn run_serialized<T, F>(&self, values: Values, operation: F) -> Result<T, KestError>
    where
        T: Serialize,
        F: Future<Output = T>,
    {
        let authorized = self.authorize(values).await?;
        let flow = authorized.flow.clone();
        let output = flow.scope(operation).await;
        self.record(authorized, hash_serialized(&output)).await?;
        Ok(output)
    }

    /// Runs a fallible operation: the hook's errors become `E` through `From`, and an
    /// operation that returns `Err` leaves no entry (it produced nothing). `output_hash`
    /// hashes a successful output. This is what `#[kest::verified]` expands to.
    ///
    /// # Errors
    /// The operation's own error, or a [`KestError`] converted into `E`.
    pub async fn run_result<T, E, F>(
        &self,
        values: Values,
        operation: F,
        output_hash: impl FnOnce(&T) -> Option<Sha256Digest>,
    ) -> Result<T, E>
    where
        E: From<KestError>,
        F: Future<Output = Result<T, E>>,
    {
        let authorized = self.authorize(values).await?;
        let flow = authorized.flow.clone();
        let output = flow.scope(operation).await?;
        let hash = output_hash(&output);
        self.record(authorized, hash).await?;
        Ok(output)
    }

    /// Runs a synchronous operation under the hook. The policy engine and identity are
    /// driven to completion on this thread: inside a multi-threaded Tokio runtime through
    /// `block_in_place`, elsewhere on a small runtime of the hook's own.
    ///
    /// # Errors
    /// As [`Protected::run`].
    pub fn run_sync<T>(
        &self,
        values: Values,
        operation: impl FnOnce() -> T,
    ) -> Result<T, KestError> {
        let authorized = block_on(self.authorize(values))??;
        let output = {
            let _guard = authorized.flow.enter();
            operation()
        };
        block_on(self.record(authorized, None))??;
        Ok(output)
    }

    /// As [`Protected::run_result`], for a synchronous operation.
    ///
    /// # Errors
    /// As [`Protected::run_result`].
    pub fn run_result_sync<T, E>(
        &self,
        values: Values,
        operation: impl FnOnce() -> Result<T, E>,
        output_hash: impl FnOnce(&T) -> Option<Sha256Digest>,
    ) -> Result<T, E>
    where
        E: From<KestError>,
    {
        let authorized = block_on(self.authorize(values))
            .map_err(E::from)?
            .map_err(E::from)?;
        let output = {
            let _guard = authorized.flow.enter();
            operation()?
        };
        let hash = output_hash(&output);
        block_on(self.record(authorized, hash))
            .map_err(E::from)?
            .map_err(E::from)?;
        Ok(output)
    }

    /// Steps 1 to 4 of the lifecycle: resolve, read the flow, derive trust and taints,
    /// evaluate every tier.
    async fn authorize(&self, values: Values) -> Result<Authorized, KestError> {
        let inner = &self.kest.inner;
        let call = &self.call;
        let started = std::time::Instant::now();
        // 1. Identity, engine, evaluator: per call, then configured, else an error.
        let identity = call
            .identity
            .clone()
            .or_else(|| inner.identity.clone())
            .ok_or_else(|| {
                KestError::NotConfigured(Missing::Identity {
                    operation: call.operation.clone(),
                })
            })?;
        let engine = call
            .engine
            .clone()
            .or_else(|| inner.engine.clone())
            .ok_or_else(|| {
                KestError::NotConfigured(Missing::Engine {
                    operation: call.operation.clone(),
                })
            })?;
        let evaluator = call.evaluator.as_ref().unwrap_or(&inner.evaluator);
        // No identity, no signature, no execution: the identity must describe itself
        // before anything runs.
        let info = identity.describe().await?;
        // ... and its signer must be answering: after a signature failed, nothing runs
        // until a probe goes through.
        self.signer_gate.admit(identity.as_ref(), &info).await?;

        // 2. The flow: the current one, or one restored from OpenTelemetry baggage, or a
        //    new root.
        let flow = match Flow::current() {
            Some(flow) => flow,
            None => self.flow_from_baggage().await?,
        };
        let mut values = values.or(&call.defaults);
        if let Some((name, _)) = values
            .labels
            .iter()
            .find(|(name, _)| is_reserved_label(name))
        {
            return Err(KestError::InvalidValue {
                key: "Values::label",
                value: kest_canon::escape_untrusted(name, 80),
                reason: "is a label Kest writes itself (principal, trace_id, user, agent, task, kest.*)",
            });
        }
        let ambient = flow.caller();
        let caller = ambient.overridden_by(&Caller {
            user: values.user.clone(),
            agent: values.agent.clone(),
            task: values.task.clone(),
            jwt: None,
        });

        // 3. Trust and taints from the heads; a fresh entry id.
        let passport = flow.passport();
        // The heads' trust is what verification allowed them, not what they claim.
        let heads: Vec<Head<'_>> = passport.head_entries();
        let parent_scores: Vec<TrustScore> = heads.iter().map(Head::trust).collect();
        let trust = kest_trust::derive_trust(
            evaluator.as_ref(),
            self.origin_score_in(&flow, heads.is_empty()),
            &parent_scores,
            self.trust_override,
        );
        let parent_taints: Vec<TaintSet> = heads.iter().map(Head::taints).collect();
        let taints = TaintSet::derive(
            &parent_taints,
            call.added_taints.iter().cloned(),
            &call.removed_taints,
        );
        let entry_id = Uuid::now_v7();

        // 4. Every tier, in order; the first denial or engine failure stops the call.
        let mut context = EvaluationContext::builder(info.workload_id.clone())
            .trust_score(trust)
            .taints(taints)
            .classification(
                call.classification
                    .clone()
                    .unwrap_or_else(|| "system".into()),
            )
            .parents(heads.iter().map(|head| head.hash()).collect())
            .resource_attributes(values.resource_attributes.clone())
            .policy_names(self.function_tier.0.clone())
            .policy_tier(kest_policy::PolicyTier::Function)
            .active_deviations(self.function_tier.1.clone());
        if let Some(origin) = &call.origin {
            context = context.origin(origin.clone());
        }
        if let Some(id) = &values.resource_id {
            context = context.resource_id(id.clone());
        }
        if let Some(user) = &caller.user {
            context = context.user(user.clone());
        }
        if let Some(agent) = &caller.agent {
            context = context.agent(agent.clone());
        }
        if let Some(task) = &caller.task {
            context = context.task(task.clone());
        }
        if let Some(jwt) = &caller.jwt {
            context = context.jwt(jwt.clone());
        }
        for (key, value) in std::mem::take(&mut values.context) {
            context = context.value(key, value);
        }
        let context = context.build()?;
        match self.tiers.evaluate(engine.as_ref(), &context).await {
            Ok(outcome) => Ok(Authorized {
                flow,
                identity,
                info,
                entry_id,
                before: passport.clone(),
                caller,
                outcome,
                input_hash: values.input_hash,
                labels: values.labels,
                authorized_in: started.elapsed(),
                engine: engine.name(),
            }),
            Err(error) => {
                tracing::warn!(
                    entry_id = %entry_id,
                    operation = %call.operation,
                    workload = %info.workload_id,
                    policy = error.policy(),
                    error = %error,
                    "kest: call refused before it ran"
                );
                telemetry::denied(
                    &self.kest,
                    &call.operation,
                    &info.workload_id,
                    entry_id,
                    &error,
                    started,
                );
                crate::metrics::refused(
                    &self.attributes,
                    engine.name(),
                    started.elapsed(),
                    &error,
                    passport.len(),
                );
                Err(KestError::Unauthorized(error))
            }
        }
    }

    /// The flow for a call made outside any: restored from `kest.*` members of the
    /// OpenTelemetry baggage when there are some (failing closed if they cannot be read),
    /// otherwise a new root.
    /// The call's origin score, for an entry that is a root (`is_root`) or not. A root in
    /// a flow opened at an edge without lineage is held to the edge's origin: input from
    /// outside never starts at full trust.
    fn origin_score_in(&self, flow: &Flow, is_root: bool) -> TrustScore {
        if !is_root {
            return self.origin_score;
        }
        flow.start_trust()
            .map_or(self.origin_score, |ceiling| self.origin_score.min(ceiling))
    }

    async fn flow_from_baggage(&self) -> Result<Flow, KestError> {
        if let Some(baggage) = telemetry::kest_baggage() {
            let (passport, caller) = self.kest.inner.codec.read(&baggage).await?;
            return Ok(Flow::with_passport(passport.unwrap_or_default(), caller));
        }
        if !WARNED_NO_FLOW.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                operation = %self.call.operation,
                "kest: a protected call ran outside any flow, so it starts a new chain; run related calls inside \
                 one Flow (the lineage layer does this per request) so that they chain"
            );
        }
        Ok(Flow::with_passport(Passport::new(), Caller::default()))
    }

    /// Step 6: build, sign, append, emit.
    async fn record(
        &self,
        authorized: Authorized,
        output_hash: Option<Sha256Digest>,
    ) -> Result<(), KestError> {
        let started = std::time::Instant::now();
        let call = &self.call;
        let Authorized {
            flow,
            identity,
            info,
            entry_id,
            before,
            caller,
            outcome,
            input_hash,
            labels,
            authorized_in,
            engine,
        } = authorized;
        let evaluator = call
            .evaluator
            .as_ref()
            .unwrap_or(&self.kest.inner.evaluator);
        // The entry follows whatever the operation itself appended to the flow (nested
        // protected calls), so it is built on the heads as they are now.
        let now = flow.passport();
        let passport = if now.tip_hash() == before.tip_hash() {
            &before
        } else {
            &now
        };
        let mut builder = EntryBuilder::new(call.operation.clone())
            .principal(info.workload_id.clone())
            .origin_score(self.origin_score_in(&flow, passport.is_empty()))
            .added_taints(call.added_taints.iter().cloned())
            .removed_taints(call.removed_taints.iter().cloned())
            .policy_context(outcome.policy_context)
            .entry_id(entry_id);
        for (name, value) in labels {
            builder = builder.label(name, value);
        }
        if let Some(score) = self.trust_override {
            builder = builder.trust_override(score);
        }
        if let Some(classification) = &call.classification {
            builder = builder.classification(classification.clone());
        }
        if let Some(hash) = input_hash {
            builder = builder.input_hash(hash);
        }
        if let Some(hash) = output_hash {
            builder = builder.content_hash(hash);
        }
        for (label, value) in [
            ("user", &caller.user),
            ("agent", &caller.agent),
            ("task", &caller.task),
        ] {
            if let Some(value) = value {
                builder = builder.label(label, value.clone());
            }
        }
        let signed = passport
            .sign_next(builder, evaluator.as_ref(), |entry| async {
                let signed = identity.sign_entry_as(&info, entry).await;
                match &signed {
                    Ok(_) => self.signer_gate.succeeded(),
                    Err(error) => self.signer_gate.failed(error),
                }
                signed.map_err(RecordError::from)
            })
            .await?;
        let after = flow
            .update(move |passport| {
                passport.push(signed)?;
                Ok(passport.clone())
            })
            .map_err(RecordError::from)?;
        telemetry::recorded(&self.kest, &after);
        if let Some(tip) = after.tip() {
            crate::metrics::allowed(
                &self.attributes,
                engine,
                authorized_in + started.elapsed(),
                tip.trust_score().get(),
                after.len(),
            );
        }
        Ok(())
    }
}

/// Drives `future` to completion from synchronous code.
fn block_on<F: Future>(future: F) -> Result<F::Output, KestError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| handle.block_on(future)))
        }
        Ok(_) => Err(KestError::CannotBlock),
        Err(_) => {
            static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> =
                std::sync::OnceLock::new();
            if let Some(runtime) = RUNTIME.get() {
                return Ok(runtime.block_on(future));
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("kest-sync")
                .enable_all()
                .build()
                .map_err(KestError::Runtime)?;
            // Another thread may have won the race; either runtime serves.
            Ok(RUNTIME.get_or_init(|| runtime).block_on(future))
        }
    }
}
