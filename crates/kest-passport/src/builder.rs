//! Building entries, with trust and taints derived from their parents.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use kest_canon::Sha256Digest;
use kest_trust::{TaintSet, TrustEvaluator, TrustScore, derive_trust};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::PassportError;
use crate::entry::{
    Entry, LABEL_PRINCIPAL, LABEL_TRACE_ID, LABEL_TRUST_OVERRIDE, Parents, PolicyContext, Runtime,
    SCHEMA_VERSION,
};
use crate::head::Head;

/// Builds an [`Entry`].
///
/// The usual path is [`EntryBuilder::build_on`], which takes the parent entries and
/// derives `parent_ids`, `trust_score` and `taints` from them by the [trust and taint rules](https://github.com/kest-dev/kest-rust/blob/main/docs/src/wire-format.md#trust-and-taints). A trust
/// override is written to the `kest.trust_override` label so that verifiers can tell a
/// declared raise from a forged one.
///
/// ```
/// use kest_passport::EntryBuilder;
/// use kest_trust::{TrustScore, WeakestLink};
///
/// let root = EntryBuilder::new("ingest")
///     .principal("spiffe://example.org/ingest")
///     .origin_score(TrustScore::new(40)?)
///     .added_taints(["pii"])
///     .build_on(&[], &WeakestLink)?;
/// assert!(root.parents().is_root());
/// assert_eq!(root.trust_score().get(), 40);
/// assert_eq!(root.taints_as_written(), ["pii"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct EntryBuilder {
    operation: String,
    classification: String,
    origin_score: TrustScore,
    trust_override: Option<TrustScore>,
    added: Vec<String>,
    removed: Vec<String>,
    labels: BTreeMap<String, Value>,
    policy_context: PolicyContext,
    environment: Map<String, Value>,
    otel_context: Map<String, Value>,
    metadata: Value,
    content_hash: Option<Sha256Digest>,
    input_hash: Option<Sha256Digest>,
    entry_id: Option<Uuid>,
    timestamp_ms: Option<u64>,
    runtime: Runtime,
}

impl EntryBuilder {
    /// Starts an entry for `operation`.
    pub fn new(operation: impl Into<String>) -> Self {
        Self {
            operation: operation.into(),
            classification: "system".into(),
            origin_score: TrustScore::MAX,
            trust_override: None,
            added: Vec::new(),
            removed: Vec::new(),
            labels: BTreeMap::new(),
            policy_context: PolicyContext::default(),
            environment: Map::new(),
            otel_context: Map::new(),
            metadata: Value::Null,
            content_hash: None,
            input_hash: None,
            entry_id: None,
            timestamp_ms: None,
            runtime: Runtime::default(),
        }
    }

    /// The workload id of the signer (`labels.principal`). Required.
    pub fn principal(self, principal: impl Into<String>) -> Self {
        self.label(LABEL_PRINCIPAL, principal)
    }

    /// The OpenTelemetry trace id, as 32 hex characters (`labels.trace_id`).
    pub fn trace_id(self, trace_id: impl Into<String>) -> Self {
        self.label(LABEL_TRACE_ID, trace_id)
    }

    /// A string label. Kest writes only string label values.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), Value::String(value.into()));
        self
    }

    /// The data classification; `system` by default.
    pub fn classification(mut self, classification: impl Into<String>) -> Self {
        self.classification = classification.into();
        self
    }

    /// The trust earned by this entry's own source (from the origin map); 100 by default.
    pub const fn origin_score(mut self, score: TrustScore) -> Self {
        self.origin_score = score;
        self
    }

    /// Replaces the derived trust score: the sanitizer. Recorded in the entry.
    pub const fn trust_override(mut self, score: TrustScore) -> Self {
        self.trust_override = Some(score);
        self
    }

    /// Taints introduced by this entry.
    pub fn added_taints<T: Into<String>>(mut self, taints: impl IntoIterator<Item = T>) -> Self {
        self.added.extend(taints.into_iter().map(Into::into));
        self
    }

    /// Taints this entry clears (a declared sanitizer).
    pub fn removed_taints<T: Into<String>>(mut self, taints: impl IntoIterator<Item = T>) -> Self {
        self.removed.extend(taints.into_iter().map(Into::into));
        self
    }

    /// Which policies ran and which deviations applied.
    pub fn policy_context(mut self, policy_context: PolicyContext) -> Self {
        self.policy_context = policy_context;
        self
    }

    /// Free-form environment facts.
    pub fn environment(mut self, environment: Map<String, Value>) -> Self {
        self.environment = environment;
        self
    }

    /// Free-form OpenTelemetry context.
    pub fn otel_context(mut self, otel_context: Map<String, Value>) -> Self {
        self.otel_context = otel_context;
        self
    }

    /// Free-form metadata.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// SHA-256 of the operation's output.
    pub const fn content_hash(mut self, hash: Sha256Digest) -> Self {
        self.content_hash = Some(hash);
        self
    }

    /// SHA-256 of the operation's inputs.
    pub const fn input_hash(mut self, hash: Sha256Digest) -> Self {
        self.input_hash = Some(hash);
        self
    }

    /// A fixed `entry_id` instead of a fresh UUID v7 (for reproducible tests).
    pub const fn entry_id(mut self, id: Uuid) -> Self {
        self.entry_id = Some(id);
        self
    }

    /// A fixed `timestamp_ms` instead of the current time (for reproducible tests).
    pub const fn timestamp_ms(mut self, ms: u64) -> Self {
        self.timestamp_ms = Some(ms);
        self
    }

    /// The `runtime` member; Kest for Rust by default. Other runtimes' entries are only
    /// built this way in tests.
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = runtime;
        self
    }

    /// Builds the entry on `parents` (none for a root; [`crate::Passport::head_entries`]
    /// for the next entry of a passport), deriving `parent_ids`, trust and taints from
    /// them with `evaluator`.
    ///
    /// # Errors
    /// [`PassportError::Build`] when the principal is missing, the operation is empty, or a
    /// free-form value holds an integer outside ±(2^53−1).
    pub fn build_on(
        self,
        parents: &[Head<'_>],
        evaluator: &dyn TrustEvaluator,
    ) -> Result<Entry, PassportError> {
        let scores: Vec<TrustScore> = parents.iter().map(Head::trust).collect();
        let trust = derive_trust(evaluator, self.origin_score, &scores, self.trust_override);
        let parent_taints: Vec<TaintSet> = parents.iter().map(Head::taints).collect();
        let taints = TaintSet::derive(&parent_taints, self.added.iter().cloned(), &self.removed);
        let ids = if parents.is_empty() {
            Parents::Root
        } else {
            Parents::Hashes(parents.iter().map(|p| p.hash()).collect())
        };
        self.build_explicit(ids, trust, &taints)
    }

    /// Builds the entry with the given parents, trust and taints, deriving nothing.
    ///
    /// Verifiers re-derive labels along a chain, so an entry built this way with labels
    /// its parents do not justify is reported (or rejected in strict mode). This exists
    /// for tools that copy entries and for tests.
    ///
    /// # Errors
    /// As [`EntryBuilder::build_on`].
    pub fn build_explicit(
        mut self,
        parents: Parents,
        trust: TrustScore,
        taints: &TaintSet,
    ) -> Result<Entry, PassportError> {
        let build = |reason: &str| PassportError::Build {
            reason: reason.to_owned(),
        };
        if self.operation.is_empty() {
            return Err(build("`operation` must not be empty"));
        }
        if !matches!(self.labels.get(LABEL_PRINCIPAL), Some(Value::String(p)) if !p.is_empty()) {
            return Err(build(
                "no principal: an entry must name the workload that signs it",
            ));
        }
        if let Some(value) = self.trust_override {
            self.labels.insert(
                LABEL_TRUST_OVERRIDE.into(),
                Value::String(value.to_string()),
            );
        }
        if let Parents::Hashes(hashes) = &parents
            && hashes.is_empty()
        {
            return Err(build("a non-root entry needs at least one parent"));
        }
        let entry = Entry {
            schema_version: SCHEMA_VERSION.to_owned(),
            runtime: self.runtime,
            entry_id: self.entry_id.unwrap_or_else(Uuid::now_v7),
            operation: self.operation,
            classification: self.classification,
            trust_score: trust,
            parents,
            added_taints: self.added,
            removed_taints: self.removed,
            taints: taints.iter().map(str::to_owned).collect(),
            labels: self.labels,
            policy_context: self.policy_context,
            environment: self.environment,
            otel_context: self.otel_context,
            metadata: self.metadata,
            content_hash: self.content_hash,
            input_hash: self.input_hash,
            timestamp_ms: self.timestamp_ms.unwrap_or_else(now_ms),
            extra: BTreeMap::new(),
        };
        // Free-form values must canonicalize; find out now rather than at signing.
        entry
            .validate_numbers()
            .map_err(|fault| PassportError::Build {
                reason: fault.to_string(),
            })?;
        Ok(entry)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
