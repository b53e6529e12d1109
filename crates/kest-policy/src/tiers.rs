//! Policy tiers and deviations: what the platform requires of every call.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use kest_passport::{Deviation, PolicyContext};
use serde::{Deserialize, Serialize};

use crate::{
    AuthorizationError, ConfigError, Decision, EvaluationContext, PolicyEngine, PolicyTier,
};

/// Where a deviation applies: one function, or every function of one application.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Only this protected function.
    Function(String),
    /// Every protected function of this application.
    App(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Function(name) => write!(f, "function:{name}"),
            Self::App(name) => write!(f, "app:{name}"),
        }
    }
}

impl TryFrom<String> for Scope {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.split_once(':') {
            Some(("function", name)) if !name.is_empty() => Ok(Self::Function(name.to_owned())),
            Some(("app", name)) if !name.is_empty() => Ok(Self::App(name.to_owned())),
            _ => Err(format!(
                "scope `{text}` must be `function:<name>` or `app:<name>`"
            )),
        }
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> Self {
        scope.to_string()
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::try_from(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// An operator-approved exception: skip `policy` of `tier` for `scope`. It is written into
/// the signed entry of every call it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviationRule {
    /// Where it applies.
    pub scope: Scope,
    /// The policy skipped.
    pub policy: String,
    /// The tier of that policy.
    pub tier: PolicyTier,
    /// Why it was approved.
    pub reason: String,
    /// Who approved it.
    pub approver: String,
}

/// The tiers above the function: set by configuration, never by application code.
///
/// From a TOML or JSON file:
///
/// ```toml
/// enterprise = ["enterprise/baseline"]
/// platform = ["platform/egress"]
/// application = ["app/summarizer"]
///
/// [[deviations]]
/// scope = "function:export_report"
/// policy = "platform/egress"
/// tier = "platform"
/// reason = "exports go to the audited bucket"
/// approver = "secops@example.org"
/// ```
///
/// or from the environment (see [`PolicyConfig::from_env`]), or built in code by the
/// deploying binary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Enterprise-tier policies.
    #[serde(default)]
    pub enterprise: Vec<String>,
    /// Platform-tier policies.
    #[serde(default)]
    pub platform: Vec<String>,
    /// Application-tier policies.
    #[serde(default)]
    pub application: Vec<String>,
    /// Approved deviations.
    #[serde(default)]
    pub deviations: Vec<DeviationRule>,
}

/// Environment variable: comma-separated enterprise policies.
pub const ENV_ENTERPRISE: &str = "KEST_ENTERPRISE_POLICIES";
/// Environment variable: comma-separated platform policies.
pub const ENV_PLATFORM: &str = "KEST_PLATFORM_POLICIES";
/// Environment variable: comma-separated application policies.
pub const ENV_APPLICATION: &str = "KEST_APP_POLICIES";
/// Environment variable: deviations as a JSON array of deviation objects.
pub const ENV_DEVIATIONS: &str = "KEST_POLICY_DEVIATIONS";
/// Environment variable: a TOML or JSON file to read the configuration from.
pub const ENV_CONFIG_FILE: &str = "KEST_POLICY_CONFIG";

impl PolicyConfig {
    /// Reads TOML.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or a validation error.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|error| parse_error("TOML", &error))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads JSON.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or a validation error.
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        let config: Self =
            serde_json::from_str(text).map_err(|error| parse_error("JSON", &error))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a `.toml` or `.json` file.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or a validation error.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Parse {
            source_name: path.display().to_string(),
            reason: error.to_string(),
        })?;
        let result = if path.extension().is_some_and(|e| e == "json") {
            Self::from_json_str(&text)
        } else {
            Self::from_toml_str(&text)
        };
        result.map_err(|error| match error {
            ConfigError::Parse { reason, .. } => ConfigError::Parse {
                source_name: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Reads the configuration from the environment: the file named by
    /// `KEST_POLICY_CONFIG`, or else `KEST_ENTERPRISE_POLICIES`, `KEST_PLATFORM_POLICIES`
    /// and `KEST_APP_POLICIES` (comma-separated) and `KEST_POLICY_DEVIATIONS` (a JSON
    /// array). `None` when none is set.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] naming the variable, or a validation error.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`PolicyConfig::from_env`], reading variables through `var`.
    ///
    /// # Errors
    /// As [`PolicyConfig::from_env`].
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        if let Some(path) = var(ENV_CONFIG_FILE) {
            return Self::from_file(Path::new(&path)).map(Some);
        }
        let list = |name: &str| -> Vec<String> {
            var(name)
                .map(|text| {
                    text.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let deviations = match var(ENV_DEVIATIONS) {
            Some(json) => serde_json::from_str(&json).map_err(|error| ConfigError::Parse {
                source_name: ENV_DEVIATIONS.into(),
                reason: error.to_string(),
            })?,
            None => Vec::new(),
        };
        let any = [
            ENV_ENTERPRISE,
            ENV_PLATFORM,
            ENV_APPLICATION,
            ENV_DEVIATIONS,
        ]
        .iter()
        .any(|name| var(name).is_some());
        if !any {
            return Ok(None);
        }
        let config = Self {
            enterprise: list(ENV_ENTERPRISE),
            platform: list(ENV_PLATFORM),
            application: list(ENV_APPLICATION),
            deviations,
        };
        config.validate()?;
        Ok(Some(config))
    }

    /// The policies of one tier above the function.
    #[must_use]
    pub fn tier(&self, tier: PolicyTier) -> &[String] {
        match tier {
            PolicyTier::Enterprise => &self.enterprise,
            PolicyTier::Platform => &self.platform,
            PolicyTier::Application => &self.application,
            PolicyTier::Function => &[],
        }
    }

    /// Checks names and deviations.
    ///
    /// # Errors
    /// [`ConfigError::InvalidPolicyName`], [`ConfigError::UnknownDeviationPolicy`] or
    /// [`ConfigError::UnaccountableDeviation`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        for tier in [
            PolicyTier::Enterprise,
            PolicyTier::Platform,
            PolicyTier::Application,
        ] {
            for name in self.tier(tier) {
                check_name(name, tier)?;
            }
        }
        for deviation in &self.deviations {
            if deviation.reason.trim().is_empty() || deviation.approver.trim().is_empty() {
                return Err(ConfigError::UnaccountableDeviation {
                    policy: deviation.policy.clone(),
                });
            }
            let known = deviation.tier == PolicyTier::Function
                || self.tier(deviation.tier).contains(&deviation.policy);
            if !known {
                return Err(ConfigError::UnknownDeviationPolicy {
                    policy: deviation.policy.clone(),
                    tier: deviation.tier,
                });
            }
        }
        Ok(())
    }
}

fn parse_error(format: &str, error: &dyn fmt::Display) -> ConfigError {
    ConfigError::Parse {
        source_name: format.to_owned(),
        reason: error.to_string(),
    }
}

fn check_name(name: &str, tier: PolicyTier) -> Result<(), ConfigError> {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(ConfigError::InvalidPolicyName {
            name: name.to_owned(),
            tier,
        });
    }
    Ok(())
}

/// What a successful evaluation of all tiers found: ready for the entry's
/// `policy_context`.
#[derive(Debug, Clone, PartialEq)]
pub struct TierOutcome {
    /// The policies evaluated per tier, and the deviations applied.
    pub policy_context: PolicyContext,
    /// Every decision, in evaluation order.
    pub decisions: Vec<(PolicyTier, String, Decision)>,
}

/// The tiers for one protected function: enterprise, platform, application, then the
/// function's own policies. Every policy must allow (logical AND); evaluation stops at the
/// first denial or engine error.
///
/// ```
/// use std::sync::Arc;
/// use kest_policy::{EvaluationContext, MockEngine, PolicyConfig, PolicyTier, TieredPolicies};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Arc::new(PolicyConfig { enterprise: vec!["baseline".into()], ..Default::default() });
/// let tiers = TieredPolicies::new(config, Some("billing"), "refund", vec!["refund_limit".into()])?;
/// let engine = MockEngine::allow_all().denying("refund_limit");
/// let context = EvaluationContext::builder("w").build()?;
/// let error = tiers.evaluate(&engine, &context).await.unwrap_err();
/// assert_eq!(error.policy(), "refund_limit");
/// assert_eq!(engine.evaluated(), ["baseline", "refund_limit"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TieredPolicies {
    config: Arc<PolicyConfig>,
    app: Option<String>,
    function: String,
    function_policies: Vec<String>,
}

/// What [`TieredPolicies::plan`] decides for one tier.
#[derive(Debug, Clone, PartialEq)]
pub struct TierPlan<'a> {
    /// The tier.
    pub tier: PolicyTier,
    /// The policies evaluated, in order, without repeats.
    pub run: Vec<String>,
    /// The deviations that skip a listed policy, with who approved them.
    pub skipped: Vec<&'a DeviationRule>,
}

impl TieredPolicies {
    /// The tiers for `function` of `app`. Repeated function policies are kept once.
    ///
    /// # Errors
    /// [`ConfigError::EmptyFunctionPolicies`] when `function_policies` is empty (nothing
    /// would be checked), or an invalid name.
    pub fn new(
        config: Arc<PolicyConfig>,
        app: Option<&str>,
        function: &str,
        function_policies: Vec<String>,
    ) -> Result<Self, ConfigError> {
        let mut unique: Vec<String> = Vec::with_capacity(function_policies.len());
        for name in function_policies {
            check_name(&name, PolicyTier::Function)?;
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        if unique.is_empty() {
            return Err(ConfigError::EmptyFunctionPolicies {
                function: function.to_owned(),
            });
        }
        Ok(Self {
            config,
            app: app.map(str::to_owned),
            function: function.to_owned(),
            function_policies: unique,
        })
    }

    fn deviation_for(&self, tier: PolicyTier, policy: &str) -> Option<&DeviationRule> {
        self.config.deviations.iter().find(|d| {
            d.tier == tier
                && d.policy == policy
                && match &d.scope {
                    Scope::Function(name) => *name == self.function,
                    Scope::App(name) => self.app.as_deref() == Some(name.as_str()),
                }
        })
    }

    /// The plan: per tier, the policies to evaluate and the deviations that skip others.
    #[must_use]
    pub fn plan(&self) -> Vec<TierPlan<'_>> {
        PolicyTier::ALL
            .iter()
            .map(|&tier| {
                let listed = match tier {
                    PolicyTier::Function => self.function_policies.as_slice(),
                    other => self.config.tier(other),
                };
                let mut run = Vec::new();
                let mut skipped = Vec::new();
                for policy in listed {
                    match self.deviation_for(tier, policy) {
                        Some(deviation) => skipped.push(deviation),
                        None if !run.contains(policy) => run.push(policy.clone()),
                        None => {}
                    }
                }
                TierPlan { tier, run, skipped }
            })
            .collect()
    }

    /// Evaluates every tier in order with `engine`.
    ///
    /// # Errors
    /// [`AuthorizationError::Denied`] at the first denial, [`AuthorizationError::Engine`]
    /// at the first engine failure. Either way the operation must not run.
    pub async fn evaluate(
        &self,
        engine: &dyn PolicyEngine,
        context: &EvaluationContext,
    ) -> Result<TierOutcome, AuthorizationError> {
        let mut policy_context = PolicyContext::default();
        let mut decisions = Vec::new();
        for TierPlan { tier, run, skipped } in self.plan() {
            let active: Vec<String> = skipped.iter().map(|d| d.policy.clone()).collect();
            // A tier with nothing to evaluate needs no context of its own.
            let tier_context = if run.is_empty() {
                context.clone()
            } else {
                context.for_tier(tier, &run, &active)
            };
            for policy in &run {
                let decision = engine
                    .evaluate(policy, &tier_context)
                    .await
                    .map_err(|error| AuthorizationError::Engine {
                        tier,
                        policy: policy.clone(),
                        error,
                    })?;
                if !decision.allow {
                    tracing::warn!(
                        tier = tier.as_str(),
                        policy = %policy,
                        workload = context.principal().unwrap_or_default(),
                        reasons = ?decision.reasons,
                        "kest: policy denied the call"
                    );
                    return Err(AuthorizationError::Denied {
                        tier,
                        policy: policy.clone(),
                        reasons: decision.reasons,
                        saw: context.seen(),
                    });
                }
                decisions.push((tier, policy.clone(), decision));
            }
            let list = match tier {
                PolicyTier::Enterprise => &mut policy_context.enterprise_policies,
                PolicyTier::Platform => &mut policy_context.platform_policies,
                PolicyTier::Application => &mut policy_context.app_policies,
                PolicyTier::Function => &mut policy_context.function_policies,
            };
            *list = run;
            policy_context
                .deviations
                .extend(skipped.into_iter().map(|rule| Deviation {
                    policy: rule.policy.clone(),
                    tier: rule.tier.as_str().to_owned(),
                    reason: Some(rule.reason.clone()),
                    approver: Some(rule.approver.clone()),
                    extra: Default::default(),
                }));
        }
        Ok(TierOutcome {
            policy_context,
            decisions,
        })
    }
}
