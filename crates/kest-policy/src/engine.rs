//! The engine trait, decisions and tiers.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{EvaluationContext, PolicyError};

/// The policy tiers, evaluated in this order; every one must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyTier {
    /// Set by the enterprise; applies to every call.
    Enterprise,
    /// Set by the platform team; applies to every call.
    Platform,
    /// Set for the application; applies to every call it makes.
    Application,
    /// Listed on the protected function itself.
    Function,
}

impl PolicyTier {
    /// All tiers, in evaluation order.
    pub const ALL: [Self; 4] = [
        Self::Enterprise,
        Self::Platform,
        Self::Application,
        Self::Function,
    ];

    /// The tier's name as written in configuration and entries.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Enterprise => "enterprise",
            Self::Platform => "platform",
            Self::Application => "application",
            Self::Function => "function",
        }
    }
}

impl fmt::Display for PolicyTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An engine's answer for one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the policy allows the call.
    pub allow: bool,
    /// Why, as the engine tells it: Cedar's determining policies and errors, Rego's output.
    pub reasons: Vec<String>,
}

impl Decision {
    /// An allow.
    #[must_use]
    pub fn allow(reasons: Vec<String>) -> Self {
        Self {
            allow: true,
            reasons,
        }
    }

    /// A deny.
    #[must_use]
    pub fn deny(reasons: Vec<String>) -> Self {
        Self {
            allow: false,
            reasons,
        }
    }
}

/// Evaluates one named policy against an evaluation context.
///
/// An `Ok` decision may allow or deny; an `Err` is an engine failure, which callers treat
/// as a denial. A policy the engine does not know is a deny, not an error.
#[async_trait]
pub trait PolicyEngine: Send + Sync + fmt::Debug {
    /// The engine's name: `mock`, `cedar`, `rego`, `opa`, `cedar-agent`, `avp`.
    fn name(&self) -> &'static str;

    /// Whether each evaluation crosses the network (remote engines are cached by default).
    fn is_remote(&self) -> bool {
        false
    }

    /// Evaluates `policy` against `context`.
    ///
    /// # Errors
    /// A [`PolicyError`] when no decision could be reached.
    async fn evaluate(
        &self,
        policy: &str,
        context: &EvaluationContext,
    ) -> Result<Decision, PolicyError>;
}

#[async_trait]
impl<E: PolicyEngine + ?Sized> PolicyEngine for std::sync::Arc<E> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn is_remote(&self) -> bool {
        (**self).is_remote()
    }

    async fn evaluate(
        &self,
        policy: &str,
        context: &EvaluationContext,
    ) -> Result<Decision, PolicyError> {
        (**self).evaluate(policy, context).await
    }
}
