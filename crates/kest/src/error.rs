//! The facade's error type.

use kest_identity::IdentityError;
use kest_passport::PassportError;
use kest_policy::{AuthorizationError, ConfigError, PolicyError};
use kest_propagation::PropagationError;
use kest_trust::TrustError;
use thiserror::Error;

/// Why a protected call did not run, or ran and could not be recorded.
///
/// Every variant except [`KestError::Record`] is returned *before* the operation runs: the
/// operation did not run. `Record` is returned when the operation ran but its entry could
/// not be signed or appended; its result is withheld, never handed back unrecorded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KestError {
    /// Something the call needs is not configured: what, and how to configure it.
    #[error("kest is not configured: {what}")]
    NotConfigured {
        /// What is missing and how to provide it.
        what: String,
    },
    /// The configuration is invalid (policy tiers, deviations, names, files).
    #[error("invalid kest configuration: {0}")]
    Config(#[from] ConfigError),
    /// A policy denied the call, or no policy decision could be reached (engine error,
    /// timeout, garbage answer). The operation did not run.
    #[error("not authorized: {0}")]
    Unauthorized(#[from] AuthorizationError),
    /// The workload identity could not be established or could not sign. The operation
    /// did not run.
    #[error("no identity: {0}")]
    Identity(#[source] IdentityError),
    /// The inbound lineage was refused: it does not verify against the trusted keys
    /// (forged, re-signed, edited, truncated, an undeclared trust raise, a dropped taint),
    /// or it cannot be read (a chain tip without a readable passport, a claim check that
    /// cannot be redeemed). The operation did not run.
    #[error("lineage refused: {0}")]
    Lineage(#[from] PropagationError),
    /// The call's inputs were invalid (an unknown origin, a bad trust override).
    #[error("invalid call: {0}")]
    Call(String),
    /// The evaluation context could not be built.
    #[error("policy context: {0}")]
    Context(#[from] PolicyError),
    /// The operation ran, but its entry could not be signed or appended. Its result is
    /// withheld.
    #[error("the operation ran but its lineage entry could not be recorded: {0}")]
    Record(String),
}

impl KestError {
    /// Whether the operation was stopped before it ran (every variant but `Record`).
    #[must_use]
    pub const fn stopped_before_running(&self) -> bool {
        !matches!(self, Self::Record(_))
    }

    /// Whether a policy denied the call (as opposed to an engine failure or anything
    /// else).
    #[must_use]
    pub const fn is_denied(&self) -> bool {
        matches!(self, Self::Unauthorized(AuthorizationError::Denied { .. }))
    }

    pub(crate) fn record(error: impl std::fmt::Display) -> Self {
        Self::Record(error.to_string())
    }
}

impl From<TrustError> for KestError {
    fn from(error: TrustError) -> Self {
        Self::Call(error.to_string())
    }
}

impl From<PassportError> for KestError {
    fn from(error: PassportError) -> Self {
        Self::Call(error.to_string())
    }
}
