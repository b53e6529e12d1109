//! Amazon Verified Permissions, through the AWS SDK.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_verifiedpermissions::Client;
use aws_sdk_verifiedpermissions::error::SdkError;
use aws_sdk_verifiedpermissions::types::{
    ActionIdentifier, AttributeValue, ContextDefinition, Decision as AvpDecision, EntityIdentifier,
};
use serde_json::Value;

use crate::cedar_number::{CedarNumber, cedar_number};
use crate::{Decision, EvaluationContext, PolicyEngine, PolicyError};

const ENGINE: &str = "avp";

/// Amazon Verified Permissions: each evaluation is `IsAuthorized` against a policy store,
/// with the policy name as the action id (`Action::"<policy>"`), `Workload::"<principal>"`
/// and `Resource::"<object.id>"`, and the evaluation context as the context map (`null`
/// members left out, lists as sets, objects as records, non-integers as decimals). Only
/// `ALLOW` allows. Retries are off, so a failure is reported, never repeated silently; a
/// timeout (default 1 s), a network failure or an unexpected answer is an error, which
/// callers treat as a deny.
#[derive(Debug, Clone)]
pub struct VerifiedPermissionsEngine {
    client: Client,
    policy_store_id: String,
    endpoint: String,
    timeout: Duration,
    action_type: String,
    principal_type: String,
    resource_type: String,
}

impl VerifiedPermissionsEngine {
    /// An engine using the standard AWS configuration of the environment (region,
    /// credentials, `AWS_ENDPOINT_URL`), with retries off and `timeout` per call.
    pub async fn from_env(policy_store_id: impl Into<String>, timeout: Duration) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(timeout)
                    .build(),
            )
            .load()
            .await;
        Self::from_config(&config, policy_store_id, timeout)
    }

    /// An engine from an explicit SDK configuration.
    pub fn from_config(
        config: &aws_config::SdkConfig,
        policy_store_id: impl Into<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            client: Client::new(config),
            policy_store_id: policy_store_id.into(),
            endpoint: config
                .endpoint_url()
                .unwrap_or("the AWS endpoint")
                .to_owned(),
            timeout,
            action_type: "Action".into(),
            principal_type: "Workload".into(),
            resource_type: "Resource".into(),
        }
    }

    /// The entity type of actions, when the policy store uses a namespace
    /// (`MyApp::Action`).
    #[must_use]
    pub fn action_type(mut self, action_type: impl Into<String>) -> Self {
        self.action_type = action_type.into();
        self
    }

    /// The entity types of principals and resources.
    #[must_use]
    pub fn entity_types(
        mut self,
        principal: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        self.principal_type = principal.into();
        self.resource_type = resource.into();
        self
    }

    fn identifier(&self, kind: &str, id: &str) -> Result<EntityIdentifier, PolicyError> {
        EntityIdentifier::builder()
            .entity_type(kind)
            .entity_id(id)
            .build()
            .map_err(|error| PolicyError::Context {
                reason: error.to_string(),
            })
    }
}

/// One JSON value as a Verified Permissions attribute; `None` for `null`.
fn attribute(value: &Value) -> Result<Option<AttributeValue>, PolicyError> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => AttributeValue::Boolean(*b),
        Value::String(s) => AttributeValue::String(s.clone()),
        Value::Number(n) => {
            match cedar_number(n).map_err(|reason| PolicyError::Context { reason })? {
                CedarNumber::Long(whole) => AttributeValue::Long(whole),
                CedarNumber::Decimal(text) => AttributeValue::Decimal(text),
            }
        }
        Value::Array(items) => AttributeValue::Set(
            items
                .iter()
                .map(attribute)
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect(),
        ),
        Value::Object(map) => {
            let mut record = HashMap::with_capacity(map.len());
            for (key, item) in map {
                if let Some(converted) = attribute(item)? {
                    record.insert(key.clone(), converted);
                }
            }
            AttributeValue::Record(record)
        }
    }))
}

#[async_trait]
impl PolicyEngine for VerifiedPermissionsEngine {
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
        let principal = context.principal().ok_or_else(|| PolicyError::Context {
            reason: "no `principal` (or `subject.workload`) to authorize".into(),
        })?;
        let mut map = HashMap::with_capacity(context.document().len());
        for (key, value) in context.document() {
            if let Some(converted) = attribute(value)? {
                map.insert(key.clone(), converted);
            }
        }
        let action = ActionIdentifier::builder()
            .action_type(&self.action_type)
            .action_id(policy)
            .build()
            .map_err(|error| PolicyError::Context {
                reason: error.to_string(),
            })?;
        let output = self
            .client
            .is_authorized()
            .policy_store_id(&self.policy_store_id)
            .principal(self.identifier(&self.principal_type, principal)?)
            .action(action)
            .resource(self.identifier(
                &self.resource_type,
                context.resource_id().unwrap_or_default(),
            )?)
            .context(ContextDefinition::ContextMap(map))
            .send()
            .await
            .map_err(|error| self.sdk_error(&error))?;
        let reasons: Vec<String> = output
            .determining_policies()
            .iter()
            .map(|item| item.policy_id().to_owned())
            .collect();
        let errors: Vec<String> = output
            .errors()
            .iter()
            .map(|item| item.error_description().to_owned())
            .collect();
        match output.decision() {
            AvpDecision::Allow => Ok(Decision::allow(reasons)),
            AvpDecision::Deny if reasons.is_empty() && !errors.is_empty() => {
                Err(PolicyError::Evaluation {
                    engine: ENGINE,
                    policy: policy.to_owned(),
                    reason: errors.join("; "),
                })
            }
            AvpDecision::Deny => {
                let mut all: Vec<String> = if reasons.is_empty() {
                    vec![format!(
                        "no policy permits {}::\"{policy}\"",
                        self.action_type
                    )]
                } else {
                    reasons
                        .into_iter()
                        .map(|id| format!("forbidden by {id}"))
                        .collect()
                };
                all.extend(errors);
                Ok(Decision::deny(all))
            }
            other => Err(PolicyError::MalformedAnswer {
                engine: ENGINE,
                reason: format!("unknown decision {other:?}"),
            }),
        }
    }
}

impl VerifiedPermissionsEngine {
    fn sdk_error<E: std::fmt::Debug, R: std::fmt::Debug>(
        &self,
        error: &SdkError<E, R>,
    ) -> PolicyError {
        match error {
            SdkError::TimeoutError(_) => PolicyError::Timeout {
                engine: ENGINE,
                endpoint: self.endpoint.clone(),
                after: self.timeout,
            },
            SdkError::DispatchFailure(failure) if failure.is_timeout() => PolicyError::Timeout {
                engine: ENGINE,
                endpoint: self.endpoint.clone(),
                after: self.timeout,
            },
            SdkError::DispatchFailure(failure) => PolicyError::Unreachable {
                engine: ENGINE,
                endpoint: self.endpoint.clone(),
                reason: format!("{failure:?}"),
            },
            other => PolicyError::MalformedAnswer {
                engine: ENGINE,
                reason: format!("{other:?}").chars().take(300).collect(),
            },
        }
    }
}
