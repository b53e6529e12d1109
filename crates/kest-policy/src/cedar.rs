//! Cedar, in process (`cedar-policy`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Entities, EntityId,
    EntityTypeName, EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema,
};
use kest_canon::Sha256Digest;
use serde_json::{Map, Value};

use crate::cedar_number::{CedarNumber, cedar_number};
use crate::{Decision, Enricher, EvaluationContext, PolicyEngine, PolicyError};

const ENGINE: &str = "cedar";

/// Parsed policy sets, shared by every engine built from the same sources: parsing is
/// done once per distinct source, keyed by its SHA-256.
fn parsed_sets() -> &'static Mutex<HashMap<Sha256Digest, Arc<PolicySet>>> {
    static SETS: OnceLock<Mutex<HashMap<Sha256Digest, Arc<PolicySet>>>> = OnceLock::new();
    SETS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Cedar evaluated in process.
///
/// A request is `principal = Workload::"<principal>"`, `action = Action::"<policy name>"`,
/// `resource = Resource::"<object.id>"`, and the whole evaluation context as the context
/// record: nested sections stay nested (`context.subject.taints`), flat keys sit at the top
/// (`context.trust_score`), lists become sets and `null` members are left out. Because the
/// action is the policy name, a rule written for one policy never matches another (the
/// Python package sends `execute` for every policy, so rules keyed on actions never
/// match).
///
/// ```
/// use kest_policy::{CedarEngine, EvaluationContext, PolicyEngine};
/// use kest_trust::TrustScore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = CedarEngine::builder()
///     .policy_source("trust.cedar", r#"permit(principal, action == Action::"read", resource)
///                                      when { context.subject.trust_score >= 50 };"#)
///     .build()?;
/// let trusted = EvaluationContext::builder("w").trust_score(TrustScore::new(80)?).build()?;
/// let untrusted = EvaluationContext::builder("w").trust_score(TrustScore::new(20)?).build()?;
/// assert!(engine.evaluate("read", &trusted).await?.allow);
/// assert!(!engine.evaluate("read", &untrusted).await?.allow);
/// assert!(!engine.evaluate("write", &trusted).await?.allow); // no rule for this action
/// # Ok(()) }
/// ```
pub struct CedarEngine {
    policies: Arc<PolicySet>,
    /// For each action id a policy names with `action == Action::"…"`: its policies plus
    /// those not scoped to one action. Cedar evaluates every policy of the set it is
    /// given, so handing it only these is much faster, and gives the same answer: a
    /// policy scoped to another action cannot apply.
    by_action: HashMap<String, Scoped>,
    /// The policies not scoped to one action, for actions no policy names.
    unscoped: Scoped,
    entities: Entities,
    schema: Option<Schema>,
    authorizer: Authorizer,
    principal_type: EntityTypeName,
    action_type: EntityTypeName,
    resource_type: EntityTypeName,
    enrichers: HashMap<String, Enricher>,
}

impl fmt::Debug for CedarEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CedarEngine")
            .field("policies", &self.policies.policies().count())
            .field("schema", &self.schema.is_some())
            .field("enrichers", &self.enrichers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Builds a [`CedarEngine`].
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct CedarEngineBuilder {
    sources: Vec<(String, String)>,
    entities: Option<String>,
    schema_json: Option<String>,
    schema_cedar: Option<String>,
    enrichers: HashMap<String, Enricher>,
}

impl CedarEngineBuilder {
    /// Adds Cedar policies. `name` appears in error messages and policy ids.
    pub fn policy_source(mut self, name: impl Into<String>, source: impl Into<String>) -> Self {
        self.sources.push((name.into(), source.into()));
        self
    }

    /// The entity store, as Cedar's entity JSON.
    pub fn entities_json(mut self, json: impl Into<String>) -> Self {
        self.entities = Some(json.into());
        self
    }

    /// A schema in Cedar's JSON format. Requests and entities are validated against it.
    pub fn schema_json(mut self, json: impl Into<String>) -> Self {
        self.schema_json = Some(json.into());
        self
    }

    /// A schema in Cedar's schema syntax.
    pub fn schema_cedar(mut self, text: impl Into<String>) -> Self {
        self.schema_cedar = Some(text.into());
        self
    }

    /// Registers a function computing `context.derived` for `policy`.
    pub fn enricher(mut self, policy: impl Into<String>, enricher: Enricher) -> Self {
        self.enrichers.insert(policy.into(), enricher);
        self
    }

    /// Parses everything. Policies that do not parse are reported here, with their file.
    ///
    /// # Errors
    /// [`PolicyError::InvalidPolicy`] or [`PolicyError::InvalidInput`].
    pub fn build(self) -> Result<CedarEngine, PolicyError> {
        let policies = self.policy_set()?;
        let schema = match (&self.schema_json, &self.schema_cedar) {
            (Some(json), _) => {
                Some(Schema::from_json_str(json).map_err(|e| invalid_input("schema", &e))?)
            }
            (None, Some(text)) => Some(
                Schema::from_cedarschema_str(text)
                    .map(|(schema, _warnings)| schema)
                    .map_err(|e| invalid_input("schema", &e))?,
            ),
            (None, None) => None,
        };
        let entities = match &self.entities {
            Some(json) => Entities::from_json_str(json, schema.as_ref())
                .map_err(|e| invalid_input("entities", &e))?,
            None => Entities::empty(),
        };
        let type_name = |name: &str| {
            EntityTypeName::from_str(name).map_err(|e| invalid_input("entity type", &e))
        };
        let (by_action, unscoped) = split_by_action(&policies)?;
        Ok(CedarEngine {
            policies,
            by_action,
            unscoped,
            entities,
            schema,
            authorizer: Authorizer::new(),
            principal_type: type_name("Workload")?,
            action_type: type_name("Action")?,
            resource_type: type_name("Resource")?,
            enrichers: self.enrichers,
        })
    }

    fn policy_set(&self) -> Result<Arc<PolicySet>, PolicyError> {
        let mut key_material = Vec::new();
        for (name, source) in &self.sources {
            key_material.extend_from_slice(name.as_bytes());
            key_material.push(0);
            key_material.extend_from_slice(source.as_bytes());
            key_material.push(0);
        }
        let key = kest_canon::sha256(&key_material);
        if let Some(cached) = parsed_sets()
            .lock()
            .ok()
            .and_then(|sets| sets.get(&key).cloned())
        {
            return Ok(cached);
        }
        let mut combined = PolicySet::new();
        for (name, source) in &self.sources {
            let set = PolicySet::from_str(source).map_err(|error| PolicyError::InvalidPolicy {
                engine: ENGINE,
                name: name.clone(),
                reason: error.to_string(),
            })?;
            for policy in set.policies() {
                // Prefix ids with the file name so that two files' `policy0` do not clash
                // and diagnostics say where a rule came from; `@id` annotations win.
                let id = policy
                    .annotation("id")
                    .map_or_else(|| format!("{name}:{}", policy.id()), str::to_owned);
                combined
                    .add(policy.new_id(PolicyId::new(id)))
                    .map_err(|error| PolicyError::InvalidPolicy {
                        engine: ENGINE,
                        name: name.clone(),
                        reason: error.to_string(),
                    })?;
            }
            if set.templates().next().is_some() {
                return Err(PolicyError::InvalidPolicy {
                    engine: ENGINE,
                    name: name.clone(),
                    reason: "templates are not supported; link them into policies first".into(),
                });
            }
        }
        let combined = Arc::new(combined);
        if let Ok(mut sets) = parsed_sets().lock() {
            // Bounded: a process that builds engines from endless distinct sources starts over.
            if sets.len() >= 256 {
                sets.clear();
            }
            sets.insert(key, Arc::clone(&combined));
        }
        Ok(combined)
    }
}

/// The context members a set of policies reads: top-level members, each either whole
/// (`None`) or only some of its own members (`context.subject.trust_score` needs only
/// `trust_score` of `subject`).
type Members = BTreeMap<String, Option<BTreeSet<String>>>;

/// The policies that can apply to one action, and the context members they read.
struct Scoped {
    policies: PolicySet,
    /// What the policies read of the context, or `None` when one uses `context` as a
    /// whole. Converting only that is most of the cost saved: the context record is the
    /// expensive part of a Cedar request, and a policy cannot observe a member it never
    /// names.
    members: Option<Members>,
}

impl Scoped {
    fn new(policies: PolicySet) -> Result<Self, PolicyError> {
        let mut members = Members::new();
        let mut whole = false;
        for policy in policies.policies() {
            let est = policy
                .to_json()
                .map_err(|error| PolicyError::InvalidPolicy {
                    engine: ENGINE,
                    name: policy.id().to_string(),
                    reason: error.to_string(),
                })?;
            if !context_paths(&est, &mut members) {
                whole = true;
                break;
            }
        }
        Ok(Self {
            policies,
            members: (!whole).then_some(members),
        })
    }
}

/// The attribute path of `context.a.b…` / `context.a has b` expressions, if `node` is one.
fn context_path(node: &Value) -> Option<Vec<&str>> {
    if node.get("Var").and_then(Value::as_str) == Some("context") {
        return Some(Vec::new());
    }
    let map = node.as_object()?;
    let (op, inner) = map.iter().next().filter(|_| map.len() == 1)?;
    if op != "." && op != "has" {
        return None;
    }
    let mut path = context_path(inner.get("left")?)?;
    path.push(inner.get("attr")?.as_str()?);
    Some(path)
}

/// Records every context path in a policy's JSON form. Returns false if `context` is
/// used other than through attribute access.
fn context_paths(est: &Value, members: &mut Members) -> bool {
    if let Some(path) = context_path(est) {
        match path.as_slice() {
            [] => return false,
            [top] => {
                members.insert((*top).to_owned(), None);
            }
            [top, member, ..] => {
                let entry = members
                    .entry((*top).to_owned())
                    .or_insert_with(|| Some(BTreeSet::new()));
                if let Some(set) = entry {
                    set.insert((*member).to_owned());
                }
            }
        }
        return true;
    }
    match est {
        Value::Object(map) => map.values().all(|value| context_paths(value, members)),
        Value::Array(items) => items.iter().all(|item| context_paths(item, members)),
        _ => true,
    }
}

/// Groups policies by the single action their scope names.
fn split_by_action(policies: &PolicySet) -> Result<(HashMap<String, Scoped>, Scoped), PolicyError> {
    let add = |set: &mut PolicySet, policy: &cedar_policy::Policy| {
        set.add(policy.clone())
            .map_err(|error| PolicyError::InvalidPolicy {
                engine: ENGINE,
                name: policy.id().to_string(),
                reason: error.to_string(),
            })
    };
    let mut unscoped = PolicySet::new();
    let mut scoped: HashMap<String, Vec<&cedar_policy::Policy>> = HashMap::new();
    for policy in policies.policies() {
        match policy.action_constraint() {
            // Requests always name `Action::"<policy>"`, so index by that id; a policy
            // scoped to an action of another type can never apply.
            ActionConstraint::Eq(action) => {
                if action.type_name().to_string() == "Action" {
                    scoped
                        .entry(action.id().unescaped().to_owned())
                        .or_default()
                        .push(policy);
                }
            }
            ActionConstraint::Any | ActionConstraint::In(_) => add(&mut unscoped, policy)?,
        }
    }
    let mut by_action = HashMap::with_capacity(scoped.len());
    for (action, own) in scoped {
        let mut set = unscoped.clone();
        for policy in own {
            add(&mut set, policy)?;
        }
        by_action.insert(action, Scoped::new(set)?);
    }
    Ok((by_action, Scoped::new(unscoped)?))
}

fn invalid_input(what: &'static str, error: &dyn fmt::Display) -> PolicyError {
    PolicyError::InvalidInput {
        engine: ENGINE,
        what,
        reason: error.to_string(),
    }
}

impl CedarEngine {
    /// Starts a builder.
    pub fn builder() -> CedarEngineBuilder {
        CedarEngineBuilder::default()
    }

    fn request(
        &self,
        policy: &str,
        context: &EvaluationContext,
    ) -> Result<(Request, &PolicySet), PolicyError> {
        let enriched;
        let context = match self.enrichers.get(policy) {
            Some(enrich) => {
                enriched = context.with_derived(enrich(context));
                &enriched
            }
            None => context,
        };
        let principal = context.principal().ok_or_else(|| PolicyError::Context {
            reason: "no `principal` (or `subject.workload`) to authorize".into(),
        })?;
        let uid = |kind: &EntityTypeName, id: &str| {
            EntityUid::from_type_name_and_id(kind.clone(), EntityId::new(id))
        };
        let action = uid(&self.action_type, policy);
        let scoped = self.by_action.get(policy).unwrap_or(&self.unscoped);
        let record = match &scoped.members {
            Some(members) => to_context_members(context.document(), members)?,
            None => to_context(context.document())?,
        };
        let policies = &scoped.policies;
        let request = Request::new(
            uid(&self.principal_type, principal),
            action,
            uid(
                &self.resource_type,
                context.resource_id().unwrap_or_default(),
            ),
            record,
            self.schema.as_ref(),
        )
        .map_err(|error| PolicyError::Context {
            reason: format!("the request does not match the schema: {error}"),
        })?;
        Ok((request, policies))
    }

    /// Evaluates synchronously; [`PolicyEngine::evaluate`] wraps this.
    ///
    /// # Errors
    /// [`PolicyError::Context`] when the context cannot be expressed in Cedar, or
    /// [`PolicyError::Evaluation`] when Cedar reports evaluation errors and denies.
    pub fn decide(
        &self,
        policy: &str,
        context: &EvaluationContext,
    ) -> Result<Decision, PolicyError> {
        let (request, policies) = self.request(policy, context)?;
        let response = self
            .authorizer
            .is_authorized(&request, policies, &self.entities);
        let diagnostics = response.diagnostics();
        let mut reasons: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
        let errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
        match response.decision() {
            CedarDecision::Allow => Ok(Decision::allow(reasons)),
            CedarDecision::Deny if reasons.is_empty() && !errors.is_empty() => {
                // Denied only because rules failed to evaluate: say so, as an error.
                Err(PolicyError::Evaluation {
                    engine: ENGINE,
                    policy: policy.to_owned(),
                    reason: errors.join("; "),
                })
            }
            CedarDecision::Deny => {
                if reasons.is_empty() {
                    reasons.push(format!("no policy permits Action::\"{policy}\""));
                } else {
                    reasons = reasons
                        .into_iter()
                        .map(|id| format!("forbidden by {id}"))
                        .collect();
                }
                reasons.extend(errors);
                Ok(Decision::deny(reasons))
            }
        }
    }
}

#[async_trait]
impl PolicyEngine for CedarEngine {
    fn name(&self) -> &'static str {
        ENGINE
    }

    async fn evaluate(
        &self,
        policy: &str,
        context: &EvaluationContext,
    ) -> Result<Decision, PolicyError> {
        self.decide(policy, context)
    }
}

/// Converts only the members a policy set reads.
fn to_context_members(
    document: &Map<String, Value>,
    members: &Members,
) -> Result<Context, PolicyError> {
    let mut pairs = Vec::with_capacity(members.len());
    for (key, wanted) in members {
        let Some(value) = document.get(key) else {
            continue;
        };
        let expression = match (value, wanted) {
            (Value::Object(record), Some(wanted)) => {
                let mut fields = Vec::with_capacity(wanted.len());
                for name in wanted {
                    if let Some(item) = record.get(name)
                        && let Some(expression) = to_expression(item, name)?
                    {
                        fields.push((name.clone(), expression));
                    }
                }
                Some(RestrictedExpression::new_record(fields).map_err(|error| {
                    PolicyError::Context {
                        reason: format!("`{key}`: {error}"),
                    }
                })?)
            }
            (value, _) => to_expression(value, key)?,
        };
        if let Some(expression) = expression {
            pairs.push((key.clone(), expression));
        }
    }
    Context::from_pairs(pairs).map_err(|error| PolicyError::Context {
        reason: error.to_string(),
    })
}

/// Converts the context document into Cedar's context record, without going through
/// Cedar's JSON parser (several times slower).
///
/// # Errors
/// [`PolicyError::Context`] for a number Cedar cannot represent.
pub fn to_context(document: &Map<String, Value>) -> Result<Context, PolicyError> {
    let mut pairs = Vec::with_capacity(document.len());
    for (key, value) in document {
        if let Some(expression) = to_expression(value, key)? {
            pairs.push((key.clone(), expression));
        }
    }
    Context::from_pairs(pairs).map_err(|error| PolicyError::Context {
        reason: error.to_string(),
    })
}

/// One JSON value as a Cedar expression; `None` for `null`, which Cedar has no value for.
fn to_expression(value: &Value, path: &str) -> Result<Option<RestrictedExpression>, PolicyError> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Number(n) => match cedar_number(n).map_err(|reason| PolicyError::Context {
            reason: format!("`{path}`: {reason}"),
        })? {
            CedarNumber::Long(whole) => RestrictedExpression::new_long(whole),
            CedarNumber::Decimal(text) => RestrictedExpression::new_decimal(text),
        },
        Value::Array(items) => {
            let mut set = Vec::with_capacity(items.len());
            for item in items {
                if let Some(expression) = to_expression(item, path)? {
                    set.push(expression);
                }
            }
            RestrictedExpression::new_set(set)
        }
        Value::Object(map) => {
            let mut fields = Vec::with_capacity(map.len());
            for (key, item) in map {
                if let Some(expression) = to_expression(item, key)? {
                    fields.push((key.clone(), expression));
                }
            }
            RestrictedExpression::new_record(fields).map_err(|error| PolicyError::Context {
                reason: format!("`{path}`: {error}"),
            })?
        }
    }))
}
