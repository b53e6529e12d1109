//! A Cedar agent (`cedar-agent`), over HTTP.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::cedar_number::{CedarNumber, cedar_number};
use crate::http::{DEFAULT_TIMEOUT, Remote};
use crate::{Decision, Enricher, EvaluationContext, PolicyEngine, PolicyError};

const ENGINE: &str = "cedar-agent";

/// A Cedar agent: each evaluation is `POST /v1/is_authorized` with
/// `principal = Workload::"<principal>"`, `action = Action::"<policy name>"`,
/// `resource = Resource::"<object.id>"` and the evaluation context in Cedar's JSON form
/// (`null` members left out, non-integers as `decimal` values). Only `"decision":
/// "Allow"` allows. Errors as for every remote engine: timeouts (default 1 s), connection
/// failures, statuses other than 200 and malformed answers, never retried.
#[derive(Debug, Clone)]
pub struct CedarAgentEngine {
    remote: Remote,
    enrichers: HashMap<String, Enricher>,
}

impl CedarAgentEngine {
    /// An engine for the agent at `url` (e.g. `http://127.0.0.1:8180`).
    ///
    /// # Errors
    /// [`PolicyError::InvalidInput`] for a bad URL.
    pub fn new(url: &str) -> Result<Self, PolicyError> {
        Self::with_timeout(url, DEFAULT_TIMEOUT)
    }

    /// As [`CedarAgentEngine::new`], with a timeout.
    ///
    /// # Errors
    /// [`PolicyError::InvalidInput`] for a bad URL.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self, PolicyError> {
        Ok(Self {
            remote: Remote::new(ENGINE, url, timeout)?,
            enrichers: HashMap::new(),
        })
    }

    /// Computes `context.derived` for `policy` before sending, as the in-process engine
    /// does (the model library's Brewer-Nash needs it).
    #[must_use]
    pub fn enricher(mut self, policy: impl Into<String>, enricher: Enricher) -> Self {
        self.enrichers.insert(policy.into(), enricher);
        self
    }

    /// Replaces the agent's policies: one `(id, text)` per Cedar policy.
    ///
    /// # Errors
    /// As for an evaluation; the agent refuses policies that do not parse with a non-200
    /// status, reported as [`PolicyError::MalformedAnswer`].
    pub async fn put_policies(&self, policies: &[(String, String)]) -> Result<(), PolicyError> {
        let body: Vec<Value> = policies
            .iter()
            .map(|(id, content)| json!({"id": id, "content": content}))
            .collect();
        self.remote
            .put_json("/v1/policies", &Value::Array(body))
            .await
            .map(|_| ())
    }
}

/// Cedar's entity-uid syntax: `Type::"id"`, with the id escaped as a Cedar string.
fn uid(kind: &str, id: &str) -> String {
    format!("{kind}::\"{}\"", id.escape_debug())
}

/// The context in Cedar's JSON form: no nulls; whole numbers as integers; other numbers as
/// `decimal` extension values, or an error when Cedar cannot hold them exactly.
fn cedar_json(value: &Value) -> Result<Option<Value>, PolicyError> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Number(n) => {
            match cedar_number(n).map_err(|reason| PolicyError::Context { reason })? {
                CedarNumber::Long(whole) => json!(whole),
                CedarNumber::Decimal(text) => json!({"__extn": {"fn": "decimal", "arg": text}}),
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(cedar_json)
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect(),
        ),
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, item) in map {
                if let Some(converted) = cedar_json(item)? {
                    out.insert(key.clone(), converted);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }))
}

#[async_trait]
impl PolicyEngine for CedarAgentEngine {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn is_remote(&self) -> bool {
        true
    }

    async fn evaluate(
        &self,
        policy: &str,
        context: &EvaluationContext,
    ) -> Result<Decision, PolicyError> {
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
        let document = Value::Object(context.document().clone());
        let request = json!({
            "principal": uid("Workload", principal),
            "action": uid("Action", policy),
            "resource": uid("Resource", context.resource_id().unwrap_or_default()),
            "context": cedar_json(&document)?.unwrap_or_else(|| json!({})),
        });
        let answer = self.remote.post_json("/v1/is_authorized", &request).await?;
        let strings = |key: &str| -> Vec<String> {
            answer
                .get("diagnostics")
                .and_then(|d| d.get(key))
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (reason, errors) = (strings("reason"), strings("errors"));
        match answer.get("decision").and_then(Value::as_str) {
            Some("Allow") => Ok(Decision::allow(reason)),
            Some("Deny") if reason.is_empty() && !errors.is_empty() => {
                Err(PolicyError::Evaluation {
                    engine: ENGINE,
                    policy: policy.to_owned(),
                    reason: errors.join("; "),
                })
            }
            Some("Deny") => {
                let mut reasons: Vec<String> = if reason.is_empty() {
                    vec![format!("no policy permits Action::\"{policy}\"")]
                } else {
                    reason
                        .into_iter()
                        .map(|id| format!("forbidden by {id}"))
                        .collect()
                };
                reasons.extend(errors);
                Ok(Decision::deny(reasons))
            }
            _ => Err(self.remote.garbage(format!(
                "no `decision` of Allow or Deny in {}",
                answer.to_string().chars().take(200).collect::<String>()
            ))),
        }
    }
}
