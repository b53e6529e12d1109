//! The configured runtime and the process-wide default.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use kest_identity::IdentityProvider;
use kest_policy::{DecisionCache, PolicyConfig, PolicyEngine};
use kest_propagation::{Ingress, PassportCodec};
use kest_trust::{OriginMap, TrustEvaluator};

use crate::builder::KestBuilder;
use crate::file::FileConfig;
use crate::{KestError, env};

/// The default runtime the attribute macro and [`crate::protect`] use. Set once.
static DEFAULT: OnceLock<Kest> = OnceLock::new();

tokio::task_local! {
    /// A default for the duration of one future ([`Kest::with_default_async`]).
    static SCOPED: Kest;
}

thread_local! {
    /// A default for the duration of one closure ([`Kest::with_default`]).
    static SCOPED_SYNC: RefCell<Option<Kest>> = const { RefCell::new(None) };
}

/// A configured Kest runtime. Cheap to clone; every clone shares the configuration.
///
/// Build one with [`Kest::builder`], [`Kest::from_env`] or [`Kest::from_toml_file`], then
/// [`Kest::install`] it as the default the attribute macro uses, or pass it explicitly
/// with [`Kest::protect`].
#[derive(Clone)]
pub struct Kest {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) identity: Option<Arc<dyn IdentityProvider>>,
    pub(crate) engine: Option<Arc<dyn PolicyEngine>>,
    pub(crate) cache: Option<Arc<DecisionCache>>,
    pub(crate) policies: Arc<PolicyConfig>,
    pub(crate) app: Option<String>,
    pub(crate) evaluator: Arc<dyn TrustEvaluator>,
    pub(crate) origins: OriginMap,
    pub(crate) codec: PassportCodec,
    pub(crate) service_name: String,
    /// Whether the configured identity's signer answers (see [`crate::signer_gate`]).
    pub(crate) signer_gate: Arc<crate::signer_gate::SignerGate>,
}

impl fmt::Debug for Kest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Kest")
            .field("service_name", &inner.service_name)
            .field(
                "identity",
                &inner.identity.as_ref().map(|i| i.name().to_owned()),
            )
            .field("engine", &inner.engine.as_ref().map(|e| e.name()))
            .field("cache", &inner.cache.is_some())
            .field("policies", &inner.policies)
            .field("app", &inner.app)
            .finish_non_exhaustive()
    }
}

// ---- building ----

impl Kest {
    /// A builder with nothing configured but the defaults: the weakest-link evaluator, the
    /// built-in origins, an in-memory claim store, and verified ingress that trusts no
    /// key until told which.
    pub fn builder() -> KestBuilder {
        KestBuilder::default()
    }

    /// A runtime from the process environment: the identity by
    /// [`kest_identity::detect`] (resolved on first use), the engine from
    /// `KEST_POLICY_ENGINE` and `KEST_POLICY_DIR`, the tiers from
    /// [`PolicyConfig::from_env`], the decision cache from `KEST_POLICY_CACHE_TTL`, the
    /// claim store from `KEST_CLAIM_STORE`, trusted keys from `KEST_TRUSTED_JWKS`. A
    /// `KEST_CONFIG` file is read first and the variables override it. The variables are
    /// listed in [`crate::env`].
    ///
    /// # Errors
    /// A [`KestError`] naming the variable or file at fault: [`KestError::Io`],
    /// [`KestError::Toml`], [`KestError::InvalidValue`], [`KestError::Config`],
    /// [`KestError::Engine`], [`KestError::Identity`], [`KestError::Lineage`].
    pub async fn from_env() -> Result<Self, KestError> {
        Self::from_vars(|name| std::env::var(name).ok()).await
    }

    /// As [`Kest::from_env`], reading variables through `var`.
    ///
    /// # Errors
    /// As [`Kest::from_env`].
    pub async fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, KestError> {
        let mut file = match var(env::ENV_CONFIG) {
            Some(path) => FileConfig::read(Path::new(&path))?,
            None => FileConfig::default(),
        };
        file.overlay_env(&var)?;
        file.build(true).await
    }

    /// A runtime from a TOML file (see the configuration chapter of the book for its
    /// sections), with no environment overrides.
    ///
    /// # Errors
    /// As [`Kest::from_env`].
    pub async fn from_toml_file(path: &Path) -> Result<Self, KestError> {
        FileConfig::read(path)?.build(false).await
    }

    /// As [`Kest::from_toml_file`], from the text; relative paths in it are taken from
    /// `base`.
    ///
    /// # Errors
    /// As [`Kest::from_env`].
    pub async fn from_toml_str(text: &str, base: &Path) -> Result<Self, KestError> {
        FileConfig::parse(text, base, "TOML text")?
            .build(false)
            .await
    }
}

// ---- the default runtime ----

impl Kest {
    /// Makes this the process-wide default, used by `#[kest::verified]` and
    /// [`crate::protect`]. It succeeds once: a process has one configuration, and a
    /// second call that silently replaced it would change what every protected function
    /// checks. Tests use [`Kest::with_default`] or [`Kest::with_default_async`] instead.
    ///
    /// # Errors
    /// [`KestError::AlreadyInstalled`] when a default is installed already.
    pub fn install(&self) -> Result<(), KestError> {
        DEFAULT
            .set(self.clone())
            .map_err(|_| KestError::AlreadyInstalled)
    }

    /// The default runtime here: the one a surrounding [`Kest::with_default_async`] or
    /// [`Kest::with_default`] gives, else the installed one.
    #[must_use]
    pub fn installed() -> Option<Self> {
        SCOPED
            .try_with(Clone::clone)
            .ok()
            .or_else(|| SCOPED_SYNC.with(|scoped| scoped.borrow().clone()))
            .or_else(|| DEFAULT.get().cloned())
    }

    /// Runs `f` with this runtime as the default on this thread, then restores the one
    /// before: a scope for tests and tools, instead of a process-wide install.
    pub fn with_default<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<Kest>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                SCOPED_SYNC.with(|scoped| *scoped.borrow_mut() = previous);
            }
        }
        let previous = SCOPED_SYNC.with(|scoped| scoped.borrow_mut().replace(self.clone()));
        let _restore = Restore(previous);
        f()
    }

    /// Runs `future` with this runtime as the default for as long as it runs, on whatever
    /// thread it is polled.
    pub async fn with_default_async<F: Future>(&self, future: F) -> F::Output {
        SCOPED.scope(self.clone(), future).await
    }
}

// ---- what it holds ----

impl Kest {
    /// The identity protected calls sign as.
    #[must_use]
    pub fn identity(&self) -> Option<&Arc<dyn IdentityProvider>> {
        self.inner.identity.as_ref()
    }

    /// The decision cache, if there is one.
    #[must_use]
    pub fn decision_cache(&self) -> Option<&Arc<DecisionCache>> {
        self.inner.cache.as_ref()
    }

    /// Drops every cached policy decision (after a policy change).
    pub fn invalidate_decisions(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate();
        }
    }

    /// The passport codec the propagation layers use.
    #[must_use]
    pub fn codec(&self) -> &PassportCodec {
        &self.inner.codec
    }

    /// How inbound passports are verified (by the lineage layer built from
    /// [`Kest::codec`], and by calls that continue a flow from OpenTelemetry baggage).
    #[must_use]
    pub fn ingress(&self) -> &Ingress {
        self.inner.codec.ingress_config()
    }

    /// The service name spans carry.
    #[must_use]
    pub fn service_name(&self) -> &str {
        &self.inner.service_name
    }

    /// A tower layer answering `GET /.well-known/jwks.json` with this runtime's public
    /// key, under its workload id, so that peers can verify what it signs.
    ///
    /// # Errors
    /// [`KestError::NotConfigured`] without an identity, [`KestError::Identity`] when it
    /// cannot describe itself.
    #[cfg(feature = "tower")]
    pub async fn publish_keys_layer(
        &self,
    ) -> Result<kest_propagation::PublishKeysLayer, KestError> {
        let identity = self
            .inner
            .identity
            .as_ref()
            .ok_or(KestError::NotConfigured(crate::Missing::PublishedIdentity))?;
        let info = identity.describe().await?;
        let key = kest_crypto::VerifyingKey::from_jwk(&info.jwk).map_err(|error| {
            kest_identity::IdentityError::Key {
                source_name: info.provider.clone(),
                error,
            }
        })?;
        Ok(kest_propagation::PublishKeysLayer::for_workload(
            &info.workload_id,
            [key],
        ))
    }
}
