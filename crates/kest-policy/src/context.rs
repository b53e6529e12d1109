//! The evaluation context every engine receives (the [evaluation context](https://github.com/kest-dev/kest-rust/blob/main/docs/src/crates/kest-policy.md#the-evaluation-context)).

use std::sync::Arc;

use kest_passport::EntryHash;
use kest_trust::{TaintSet, TrustScore};
use serde_json::{Map, Value, json};

use crate::{PolicyError, PolicyTier};

/// Top-level keys the context itself writes. Caller-supplied values may not use them: a
/// caller must not be able to pass its own `trust_score` or `principal` to a policy.
pub const RESERVED_KEYS: [&str; 16] = [
    "subject",
    "object",
    "environment",
    "identity",
    "trust_score",
    "principal",
    "jwt",
    "chain_tip",
    "is_root",
    "origin",
    "user",
    "agent",
    "task",
    "scope",
    "classification",
    "derived",
];

/// Computes attributes for policies an engine cannot express directly (a walk over a
/// history, say). Cedar engines place the result under `context.derived`.
pub type Enricher = fn(&EvaluationContext) -> Map<String, Value>;

/// The context a policy is evaluated against: one JSON document.
///
/// It has the the [evaluation context](https://github.com/kest-dev/kest-rust/blob/main/docs/src/crates/kest-policy.md#the-evaluation-context) structure, the nested `subject`, `object` and `environment`
/// sections, plus the flat keys the Python package passes (`principal`, `jwt`,
/// `chain_tip`, `is_root`, `origin`, `trust_score`, `user`, `agent`, `task`, `scope`), plus
/// caller-supplied values at the top level:
///
/// ```json
/// {
///   "subject": {"workload": "spiffe://…", "user": "alice", "agent": null, "task": null,
///               "trust_score": 36, "taints": ["pii"]},
///   "object": {"id": "doc-42", "classification": "internal", "attributes": {"owner": "team-a"}},
///   "environment": {"is_root": false, "source_type": "verified_rag", "parent_hash": "dc78…",
///                   "policy_names": ["read_doc"], "policy_tier": "function",
///                   "active_deviations": []},
///   "identity": "spiffe://…", "trust_score": 36,
///   "principal": "spiffe://…", "jwt": null, "chain_tip": "dc78…", "is_root": false,
///   "origin": "verified_rag", "user": "alice", "agent": "", "task": "", "scope": "",
///   "resource": "doc-42"
/// }
/// ```
///
/// As in the Python package, the flat `user`, `agent`, `task` and `scope` are `""` when
/// unknown and `jwt`/`origin` are `null`; in `subject`, unknown values are `null` (which
/// Cedar leaves out, so Cedar policies test them with `has`).
///
/// The document is shared (`Arc`); cloning a context is cheap.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationContext {
    document: Arc<Map<String, Value>>,
}

impl EvaluationContext {
    /// Starts a context for the workload `workload` (the signer's workload id).
    pub fn builder(workload: impl Into<String>) -> ContextBuilder {
        ContextBuilder::new(workload.into())
    }

    /// Takes a complete context document as an engine would receive it, as
    /// `kest policy eval` reads it from a file. It is used as is.
    ///
    /// # Errors
    /// [`PolicyError::Context`] when the document is not a JSON object.
    pub fn from_document(document: Value) -> Result<Self, PolicyError> {
        match document {
            Value::Object(map) => Ok(Self {
                document: Arc::new(map),
            }),
            other => Err(PolicyError::Context {
                reason: format!(
                    "the context must be a JSON object, found {}",
                    type_name(&other)
                ),
            }),
        }
    }

    /// The subject's trust score and taints, as a denial reports them.
    #[must_use]
    pub fn seen(&self) -> crate::error::Seen {
        let subject = self.document.get("subject");
        crate::error::Seen {
            trust_score: subject
                .and_then(|s| s.get("trust_score"))
                .and_then(Value::as_u64),
            taints: subject
                .and_then(|s| s.get("taints"))
                .and_then(Value::as_array)
                .map(|taints| {
                    taints
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The whole document.
    #[must_use]
    pub fn document(&self) -> &Map<String, Value> {
        &self.document
    }

    /// The document as a JSON value (a copy).
    #[must_use]
    pub fn to_value(&self) -> Value {
        Value::Object((*self.document).clone())
    }

    /// The workload: `principal`, or `subject.workload`.
    #[must_use]
    pub fn principal(&self) -> Option<&str> {
        self.document
            .get("principal")
            .and_then(Value::as_str)
            .or_else(|| self.section_str("subject", "workload"))
    }

    /// The resource id: `object.id`.
    #[must_use]
    pub fn resource_id(&self) -> Option<&str> {
        self.section_str("object", "id")
    }

    fn section_str(&self, section: &str, key: &str) -> Option<&str> {
        self.document.get(section)?.get(key)?.as_str()
    }

    /// A copy with `environment.policy_names`, `policy_tier` and `active_deviations` set,
    /// for evaluating one tier.
    #[must_use]
    pub fn for_tier(
        &self,
        tier: PolicyTier,
        policy_names: &[String],
        deviations: &[String],
    ) -> Self {
        // Callers that built the context for this tier already share it: no copy.
        let environment = self.document.get("environment");
        let same = |key: &str, expected: &[String]| {
            environment
                .and_then(|e| e.get(key))
                .and_then(Value::as_array)
                .is_some_and(|items| {
                    items.len() == expected.len()
                        && items
                            .iter()
                            .zip(expected)
                            .all(|(item, name)| item.as_str() == Some(name))
                })
        };
        if environment
            .and_then(|e| e.get("policy_tier"))
            .and_then(Value::as_str)
            == Some(tier.as_str())
            && same("policy_names", policy_names)
            && same("active_deviations", deviations)
        {
            return self.clone();
        }
        let mut document = (*self.document).clone();
        let environment = document
            .entry("environment")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(environment) = environment {
            environment.insert("policy_names".into(), json!(policy_names));
            environment.insert("policy_tier".into(), json!(tier.as_str()));
            environment.insert("active_deviations".into(), json!(deviations));
        }
        Self {
            document: Arc::new(document),
        }
    }

    /// A copy with `derived` set: attributes Rust computes for engines that cannot compute
    /// them (see the model library).
    #[must_use]
    pub fn with_derived(&self, derived: Map<String, Value>) -> Self {
        let mut document = (*self.document).clone();
        document.insert("derived".into(), Value::Object(derived));
        Self {
            document: Arc::new(document),
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Builds an [`EvaluationContext`] with the the [evaluation context](https://github.com/kest-dev/kest-rust/blob/main/docs/src/crates/kest-policy.md#the-evaluation-context) structure.
///
/// ```
/// use kest_policy::EvaluationContext;
/// use kest_trust::TrustScore;
///
/// let context = EvaluationContext::builder("spiffe://example.org/reader")
///     .user("alice")
///     .trust_score(TrustScore::new(36)?)
///     .origin("verified_rag")
///     .resource_id("doc-42")
///     .value("txn_amount", 250)
///     .build()?;
/// let doc = context.document();
/// assert_eq!(doc["subject"]["user"], "alice");
/// assert_eq!(doc["trust_score"], 36);
/// assert_eq!(doc["chain_tip"], "0");
/// assert_eq!(doc["txn_amount"], 250);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ContextBuilder {
    workload: String,
    user: Option<String>,
    agent: Option<String>,
    task: Option<String>,
    jwt: Option<String>,
    scope: Option<String>,
    trust_score: TrustScore,
    taints: TaintSet,
    resource_id: Option<String>,
    classification: String,
    attributes: Map<String, Value>,
    parents: Vec<EntryHash>,
    origin: Option<String>,
    policy_names: Vec<String>,
    policy_tier: Option<PolicyTier>,
    deviations: Vec<String>,
    values: Vec<(String, Value)>,
}

impl ContextBuilder {
    fn new(workload: String) -> Self {
        Self {
            workload,
            user: None,
            agent: None,
            task: None,
            jwt: None,
            scope: None,
            trust_score: TrustScore::MAX,
            taints: TaintSet::new(),
            resource_id: None,
            classification: "system".into(),
            attributes: Map::new(),
            parents: Vec::new(),
            origin: None,
            policy_names: Vec::new(),
            policy_tier: None,
            deviations: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The end user (`kest.user`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The agent (`kest.agent`).
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// The task (`kest.task`).
    pub fn task(mut self, task: impl Into<String>) -> Self {
        self.task = Some(task.into());
        self
    }

    /// The caller's bearer token (`kest.jwt`).
    pub fn jwt(mut self, jwt: impl Into<String>) -> Self {
        self.jwt = Some(jwt.into());
        self
    }

    /// The OAuth scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The trust score the new entry will carry.
    pub const fn trust_score(mut self, score: TrustScore) -> Self {
        self.trust_score = score;
        self
    }

    /// The taints the new entry will carry.
    pub fn taints(mut self, taints: TaintSet) -> Self {
        self.taints = taints;
        self
    }

    /// The resource being acted on (`object.id`).
    pub fn resource_id(mut self, id: impl Into<String>) -> Self {
        self.resource_id = Some(id.into());
        self
    }

    /// One resource attribute (`object.attributes`).
    pub fn resource_attribute(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// All resource attributes, replacing any set before.
    pub fn resource_attributes(mut self, attributes: Map<String, Value>) -> Self {
        self.attributes = attributes;
        self
    }

    /// The data classification (`object.classification`); `system` by default.
    pub fn classification(mut self, classification: impl Into<String>) -> Self {
        self.classification = classification.into();
        self
    }

    /// The parents of the new entry; none for a root.
    pub fn parents(mut self, parents: Vec<EntryHash>) -> Self {
        self.parents = parents;
        self
    }

    /// The origin of the data (`environment.source_type`, flat `origin`).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// The policies being evaluated.
    pub fn policy_names(mut self, names: Vec<String>) -> Self {
        self.policy_names = names;
        self
    }

    /// The tier being evaluated.
    pub const fn policy_tier(mut self, tier: PolicyTier) -> Self {
        self.policy_tier = Some(tier);
        self
    }

    /// The deviations in force.
    pub fn active_deviations(mut self, deviations: Vec<String>) -> Self {
        self.deviations = deviations;
        self
    }

    /// A caller-supplied value at the top level of the context.
    pub fn value(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.values.push((key.into(), value.into()));
        self
    }

    /// Builds the document.
    ///
    /// # Errors
    /// [`PolicyError::Context`] when a caller-supplied key is reserved or repeated.
    pub fn build(self) -> Result<EvaluationContext, PolicyError> {
        // Built by moving values in, not through `json!`, which clones each one: this runs
        // for every protected call.
        fn text(value: Option<String>) -> Value {
            value.map_or(Value::Null, Value::String)
        }
        fn strings(values: Vec<String>) -> Value {
            Value::Array(values.into_iter().map(Value::String).collect())
        }
        let is_root = self.parents.is_empty();
        let chain_tip = if is_root {
            "0".to_owned()
        } else {
            self.parents
                .iter()
                .map(EntryHash::to_hex)
                .collect::<Vec<_>>()
                .join(",")
        };
        let parent_hash = self.parents.first().map(EntryHash::to_hex);
        let trust = Value::from(self.trust_score.get());
        let flat = |value: &Option<String>| Value::String(value.clone().unwrap_or_default());
        let (user, agent, task, scope) = (
            flat(&self.user),
            flat(&self.agent),
            flat(&self.task),
            flat(&self.scope),
        );

        let mut subject = Map::with_capacity(6);
        subject.insert("workload".into(), Value::String(self.workload.clone()));
        subject.insert("user".into(), text(self.user));
        subject.insert("agent".into(), text(self.agent));
        subject.insert("task".into(), text(self.task));
        subject.insert("trust_score".into(), trust.clone());
        subject.insert(
            "taints".into(),
            Value::Array(
                self.taints
                    .iter()
                    .map(|t| Value::String(t.to_owned()))
                    .collect(),
            ),
        );
        let mut object = Map::with_capacity(3);
        object.insert("id".into(), text(self.resource_id));
        object.insert("classification".into(), Value::String(self.classification));
        object.insert("attributes".into(), Value::Object(self.attributes));
        let mut environment = Map::with_capacity(6);
        environment.insert("is_root".into(), Value::Bool(is_root));
        environment.insert("source_type".into(), text(self.origin.clone()));
        environment.insert("parent_hash".into(), text(parent_hash));
        environment.insert("policy_names".into(), strings(self.policy_names));
        environment.insert(
            "policy_tier".into(),
            self.policy_tier
                .map_or(Value::Null, |tier| Value::String(tier.as_str().to_owned())),
        );
        environment.insert("active_deviations".into(), strings(self.deviations));

        let mut document = Map::with_capacity(19 + self.values.len());
        document.insert("subject".into(), Value::Object(subject));
        document.insert("object".into(), Value::Object(object));
        document.insert("environment".into(), Value::Object(environment));
        document.insert("identity".into(), Value::String(self.workload.clone()));
        document.insert("trust_score".into(), trust);
        document.insert("principal".into(), Value::String(self.workload));
        document.insert("jwt".into(), text(self.jwt));
        document.insert("chain_tip".into(), Value::String(chain_tip));
        document.insert("is_root".into(), Value::Bool(is_root));
        document.insert("origin".into(), text(self.origin));
        document.insert("user".into(), user);
        document.insert("agent".into(), agent);
        document.insert("task".into(), task);
        document.insert("scope".into(), scope);
        for (key, value) in self.values {
            if RESERVED_KEYS.contains(&key.as_str()) {
                return Err(PolicyError::Context {
                    reason: format!(
                        "`{key}` is written by Kest and cannot be supplied by the caller"
                    ),
                });
            }
            if document.insert(key.clone(), value).is_some() {
                return Err(PolicyError::Context {
                    reason: format!("the caller supplied `{key}` twice"),
                });
            }
        }
        Ok(EvaluationContext {
            document: Arc::new(document),
        })
    }
}
