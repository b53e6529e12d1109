//! Errors: engines, configuration and the authorization outcome.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use crate::PolicyTier;

/// Why an engine could not give an answer, or could not be built.
///
/// Every variant means **deny** to the caller: there is no answer that lets an operation
/// run except an explicit allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A policy source that does not parse or compile. Reported when the engine is built.
    #[error("invalid {engine} policy `{name}`: {reason}")]
    InvalidPolicy {
        /// The engine.
        engine: &'static str,
        /// The policy (or file) name.
        name: String,
        /// The parser's message.
        reason: String,
    },
    /// An entity store, schema or other engine input that does not load.
    #[error("invalid {engine} {what}: {reason}")]
    InvalidInput {
        /// The engine.
        engine: &'static str,
        /// What was being loaded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A policy file or directory that cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What kind of failure.
        kind: std::io::ErrorKind,
        /// The system's message.
        reason: String,
    },
    /// The evaluation context cannot be built or converted for the engine.
    #[error("invalid evaluation context: {reason}")]
    Context {
        /// What is wrong.
        reason: String,
    },
    /// The engine failed while evaluating.
    #[error("{engine} failed to evaluate `{policy}`: {reason}")]
    Evaluation {
        /// The engine.
        engine: &'static str,
        /// The policy.
        policy: String,
        /// What failed.
        reason: String,
    },
    /// A remote engine could not be reached.
    #[error("{engine} at {endpoint} is unreachable: {reason}")]
    Unreachable {
        /// The engine.
        engine: &'static str,
        /// Where it was called.
        endpoint: String,
        /// The transport error.
        reason: String,
    },
    /// A remote engine did not answer in time.
    #[error("{engine} at {endpoint} did not answer within {after:?}")]
    Timeout {
        /// The engine.
        engine: &'static str,
        /// Where it was called.
        endpoint: String,
        /// The timeout.
        after: Duration,
    },
    /// A remote engine answered with something that is not a decision.
    #[error("{engine} answered garbage: {reason}")]
    MalformedAnswer {
        /// The engine.
        engine: &'static str,
        /// What was wrong with the answer.
        reason: String,
    },
}

/// Why a tier configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A function with no policies: nothing would be checked, so nothing may run.
    #[error(
        "function `{function}` has an empty policy list; every protected function needs at least one policy"
    )]
    EmptyFunctionPolicies {
        /// The function.
        function: String,
    },
    /// A policy name that is empty or holds whitespace.
    #[error("invalid policy name `{name}` in the {tier} tier")]
    InvalidPolicyName {
        /// The name.
        name: String,
        /// The tier it was listed in.
        tier: PolicyTier,
    },
    /// A deviation that names no policy of its tier.
    #[error("deviation for `{policy}` ({tier}) matches no configured {tier} policy")]
    UnknownDeviationPolicy {
        /// The policy.
        policy: String,
        /// The tier.
        tier: PolicyTier,
    },
    /// A deviation without a reason or an approver: exceptions must be accountable.
    #[error("deviation for `{policy}` needs both a reason and an approver")]
    UnaccountableDeviation {
        /// The policy.
        policy: String,
    },
    /// A setting whose value is not what it must be.
    #[error("{key}=`{value}` {reason}")]
    InvalidValue {
        /// The variable or configuration key.
        key: &'static str,
        /// The value given, escaped and shortened.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// A configuration file or variable that does not parse.
    #[error("invalid policy configuration in {source_name}: {reason}")]
    Parse {
        /// The file or variable.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
}

/// The outcome of evaluating the tiers for one call, when it is not an allow.
///
/// Not `#[non_exhaustive]`: the authorization path should notice new variants.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthorizationError {
    /// A policy denied. The operation must not run.
    #[error(
        "denied by {tier} policy `{policy}`{} ({saw})",
        reasons_suffix(reasons)
    )]
    Denied {
        /// The tier of the denying policy.
        tier: PolicyTier,
        /// The policy.
        policy: String,
        /// The engine's reasons, when it gave any.
        reasons: Vec<String>,
        /// What the policy saw of the call: its trust and taints.
        saw: Seen,
    },
    /// An engine failed. Treated as a denial; the operation must not run.
    #[error("{tier} policy `{policy}` could not be evaluated: {error}")]
    Engine {
        /// The tier of the policy.
        tier: PolicyTier,
        /// The policy.
        policy: String,
        /// What failed.
        error: PolicyError,
    },
}

impl AuthorizationError {
    /// The policy that stopped the call.
    #[must_use]
    pub fn policy(&self) -> &str {
        match self {
            Self::Denied { policy, .. } | Self::Engine { policy, .. } => policy,
        }
    }
}

fn reasons_suffix(reasons: &[String]) -> String {
    if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", reasons.join("; "))
    }
}

/// What a denying policy saw of the call, so that a developer can tell why without
/// reading the context: the subject's trust score and taints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// `subject.trust_score`.
    pub trust_score: Option<u64>,
    /// `subject.taints`.
    pub taints: Vec<String>,
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the policy saw trust ")?;
        match self.trust_score {
            Some(trust) => write!(f, "{trust}")?,
            None => f.write_str("(none)")?,
        }
        if self.taints.is_empty() {
            f.write_str(", no taints")
        } else {
            f.write_str(", taints ")?;
            for (index, taint) in self.taints.iter().enumerate() {
                if index > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "`{}`", kest_canon::Untrusted::new(taint).max_chars(40))?;
            }
            Ok(())
        }
    }
}
