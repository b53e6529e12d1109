//! An OPA server, over its Data API.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::http::{DEFAULT_TIMEOUT, Remote, check_policy_name};
use crate::{Decision, EvaluationContext, PolicyEngine, PolicyError};

const ENGINE: &str = "opa";

/// An OPA server: each evaluation is `POST /v1/data/<path>` with `{"input": <context>}`.
///
/// The path is the template with `{policy}` replaced (default `kest/{policy}`, as in the
/// Python package); the decision is the member at the decision path of the answer
/// (default `result.allow`), and only `true` allows. An undefined decision (OPA answers
/// `{}` for a path it has no rules for) is a deny. A status other than 200, a timeout
/// (default 1 s), a connection failure, a body that is not JSON or a decision that is not
/// a boolean is an error, which callers treat as a deny. Nothing is retried.
#[derive(Debug, Clone)]
pub struct OpaEngine {
    remote: Remote,
    path_template: String,
    decision_path: Vec<String>,
}

/// Builds an [`OpaEngine`].
#[derive(Debug, Clone)]
#[must_use]
pub struct OpaEngineBuilder {
    url: String,
    path_template: String,
    decision_path: String,
    timeout: Duration,
}

impl OpaEngineBuilder {
    /// The Data API path, with `{policy}` where the policy name goes.
    pub fn path_template(mut self, template: impl Into<String>) -> Self {
        self.path_template = template.into();
        self
    }

    /// Where the decision is in the answer, dot-separated.
    pub fn decision_path(mut self, path: impl Into<String>) -> Self {
        self.decision_path = path.into();
        self
    }

    /// The timeout of each evaluation.
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the engine.
    ///
    /// # Errors
    /// [`PolicyError::InvalidInput`] for a bad URL or template.
    pub fn build(self) -> Result<OpaEngine, PolicyError> {
        if !self.path_template.contains("{policy}") {
            return Err(PolicyError::InvalidInput {
                engine: ENGINE,
                what: "path template",
                reason: format!("`{}` has no `{{policy}}`", self.path_template),
            });
        }
        let decision_path: Vec<String> = self.decision_path.split('.').map(str::to_owned).collect();
        if decision_path.iter().any(String::is_empty) {
            return Err(PolicyError::InvalidInput {
                engine: ENGINE,
                what: "decision path",
                reason: format!("`{}` has an empty segment", self.decision_path),
            });
        }
        Ok(OpaEngine {
            remote: Remote::new(ENGINE, &self.url, self.timeout)?,
            path_template: self.path_template.trim_matches('/').to_owned(),
            decision_path,
        })
    }
}

impl OpaEngine {
    /// Starts a builder for the server at `url` (e.g. `http://127.0.0.1:8181`).
    pub fn builder(url: impl Into<String>) -> OpaEngineBuilder {
        OpaEngineBuilder {
            url: url.into(),
            path_template: "kest/{policy}".into(),
            decision_path: "result.allow".into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

#[async_trait]
impl PolicyEngine for OpaEngine {
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
        check_policy_name(ENGINE, policy)?;
        let path = format!(
            "/v1/data/{}",
            self.path_template.replace("{policy}", policy)
        );
        let answer = self
            .remote
            .post_json(&path, &json!({ "input": context.document() }))
            .await?;
        if !answer.is_object() {
            return Err(self
                .remote
                .garbage("the answer is not a JSON object".into()));
        }
        let decision = self
            .decision_path
            .iter()
            .try_fold(&answer, |value, key| value.get(key));
        match decision {
            Some(Value::Bool(true)) => Ok(Decision::allow(vec![format!("{path}: allow")])),
            Some(Value::Bool(false)) => Ok(Decision::deny(vec![format!("{path}: denied")])),
            None => Ok(Decision::deny(vec![format!(
                "{path}: no decision (undefined)"
            )])),
            Some(other) => Err(self.remote.garbage(format!(
                "the decision at `{}` is {other}, not a boolean",
                self.decision_path.join(".")
            ))),
        }
    }
}
