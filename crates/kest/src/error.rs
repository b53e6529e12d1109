//! The facade's error type.

use std::path::PathBuf;

use kest_identity::IdentityError;
use kest_passport::PassportError;
use kest_policy::{AuthorizationError, ConfigError, PolicyError};
use kest_propagation::PropagationError;
use kest_trust::TrustError;
use thiserror::Error;

/// Why a runtime could not be built, or a protected call did not run, or ran and could not
/// be recorded.
///
/// Every variant except [`KestError::Record`] is returned *before* the operation runs: the
/// operation did not run. `Record` is returned when the operation ran but its entry could
/// not be signed or appended; its result is withheld, never handed back unrecorded. Each
/// variant carries its cause as its [`std::error::Error::source`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KestError {
    /// Something a call needs is not configured: what, and how to configure it.
    #[error("kest is not configured: {0}")]
    NotConfigured(#[source] Missing),
    /// No runtime is installed as the default (for `#[kest::verified]` and
    /// [`crate::protect`]).
    #[error(
        "no Kest runtime is installed: build one (Kest::builder, Kest::from_env) and call .install()"
    )]
    NotInstalled,
    /// A default runtime was installed already: [`crate::Kest::install`] succeeds once per
    /// process. Tests use [`crate::Kest::with_default`].
    #[error(
        "a Kest runtime is already installed; install succeeds once per process (tests use Kest::with_default)"
    )]
    AlreadyInstalled,
    /// A configuration file or policy directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A TOML configuration does not parse or has unknown keys.
    #[error("{origin}: {source}")]
    Toml {
        /// The file, or `TOML text`.
        origin: String,
        /// What the parser said.
        #[source]
        source: Box<toml::de::Error>,
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
    /// The policy configuration is invalid (tiers, deviations, names).
    #[error("invalid kest configuration: {0}")]
    Config(#[from] ConfigError),
    /// The policy engine could not be loaded, or the evaluation context built.
    #[error("policy engine: {0}")]
    Engine(#[from] PolicyError),
    /// A policy denied the call, or no policy decision could be reached (engine error,
    /// timeout, garbage answer). The operation did not run.
    #[error("not authorized: {0}")]
    Unauthorized(#[from] AuthorizationError),
    /// The workload identity could not be established or configured. The operation did
    /// not run.
    #[error("no identity: {0}")]
    Identity(#[from] IdentityError),
    /// The inbound lineage was refused: it does not verify against the trusted keys
    /// (forged, re-signed, edited, truncated, an undeclared trust raise, a dropped taint),
    /// or it cannot be read (a chain tip without a readable passport, a claim check that
    /// cannot be redeemed). The operation did not run.
    #[error("lineage refused: {0}")]
    Lineage(#[from] PropagationError),
    /// The claim store could not be set up (Redis unreachable, say).
    #[error("claim store: {0}")]
    ClaimStore(#[source] PropagationError),
    /// The call's inputs were invalid: an unknown origin, an override above 100.
    #[error("invalid call: {0}")]
    Call(#[from] TrustError),
    /// A source of trusted keys that cannot be set up: a principal binding that cannot be
    /// read.
    #[error("trusted keys: {0}")]
    TrustedKeys(#[source] kest_crypto::CryptoError),
    /// A synchronous protected call was made where it cannot block: inside a
    /// current-thread Tokio runtime.
    #[error(
        "a synchronous protected call cannot block a current-thread Tokio runtime; use the async API (Protected::run) or a multi-threaded runtime"
    )]
    CannotBlock,
    /// The runtime for synchronous calls outside Tokio could not be started.
    #[error("cannot start the runtime for synchronous calls: {0}")]
    Runtime(#[source] std::io::Error),
    /// The identity's last signature failed, and a probe signature fails too (or another
    /// call's probe is under way): nothing can be signed, so the operation did not run.
    #[error("the signer of `{workload}` is unavailable: {reason}")]
    SignerUnavailable {
        /// The workload whose signer failed (escaped).
        workload: String,
        /// Why the last signature failed.
        reason: String,
    },
    /// The operation ran, but its entry could not be signed or appended. Its result is
    /// withheld.
    #[error("the operation ran but its lineage entry could not be recorded: {0}")]
    Record(#[source] RecordError),
}

/// What a runtime or a call lacks ([`KestError::NotConfigured`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Missing {
    /// A protected call has no identity to sign with.
    #[error(
        "no identity for `{operation}`: configure one (Kest::builder().identity(..), KEST_WORKLOAD_ID and a key, \
         SPIFFE_ENDPOINT_SOCKET, KEST_AWS_KMS_KEY_ID or KEST_OIDC_TOKEN_PATH)"
    )]
    Identity {
        /// The operation.
        operation: String,
    },
    /// A protected call has no policy engine.
    #[error(
        "no policy engine for `{operation}`: configure one (Kest::builder().engine(..), or KEST_POLICY_ENGINE \
         and KEST_POLICY_DIR)"
    )]
    Engine {
        /// The operation.
        operation: String,
    },
    /// An engine is named, but no policy directory.
    #[error("the {engine} engine needs policy files: set KEST_POLICY_DIR (or [policy] dir)")]
    PolicyDir {
        /// The engine named.
        engine: kest_policy::EngineKind,
    },
    /// A policy directory is given, but no engine.
    #[error("policies in {} but no engine: set KEST_POLICY_ENGINE (or [policy] engine) to cedar or rego", dir.display())]
    EngineKind {
        /// The directory given.
        dir: PathBuf,
    },
    /// Keys are to be published, but the runtime has no identity.
    #[error("no identity to publish keys for: configure one with Kest::builder().identity(..)")]
    PublishedIdentity,
}

/// Why an entry could not be recorded after its operation ran.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The entry could not be built or appended.
    #[error(transparent)]
    Passport(#[from] PassportError),
    /// The identity could not sign it.
    #[error(transparent)]
    Identity(#[from] IdentityError),
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

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<RecordError> for KestError {
    fn from(error: RecordError) -> Self {
        Self::Record(error)
    }
}
