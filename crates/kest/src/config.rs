//! The configured runtime: identity, engine, tiers, trust evaluation and propagation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use kest_crypto::{JwksKeyResolver, KeyResolver, ResolverChain};
use kest_identity::IdentityProvider;
use kest_passport::Strictness;
use kest_policy::{CachedEngine, DecisionCache, PolicyConfig, PolicyEngine};
use kest_propagation::{ClaimStore, Ingress, MemoryClaimStore, PassportCodec};
use kest_trust::{OriginMap, TrustEvaluator, WeakestLink};
use serde::Deserialize;

use crate::KestError;

/// Environment variable: the service name spans carry (`service.name`).
pub const ENV_SERVICE_NAME: &str = "KEST_SERVICE_NAME";
/// Environment variable: the application this process belongs to (deviation scope).
pub const ENV_APP: &str = "KEST_APP";
/// Environment variable: the policy engine, `cedar` or `rego`.
pub const ENV_ENGINE: &str = "KEST_POLICY_ENGINE";
/// Environment variable: the directory of `.cedar` or `.rego` files the engine loads.
pub const ENV_POLICY_DIR: &str = "KEST_POLICY_DIR";
/// Environment variable: the claim-check store, `memory` or a `redis://` URL.
pub const ENV_CLAIM_STORE: &str = "KEST_CLAIM_STORE";
/// Environment variable: the largest passport sent inline or compressed, in bytes.
pub const ENV_INLINE_THRESHOLD: &str = "KEST_BAGGAGE_THRESHOLD";
/// Environment variable: a TOML file with the whole configuration.
pub const ENV_CONFIG: &str = "KEST_CONFIG";
/// Environment variable: the keys inbound passports are verified against, as a
/// comma-separated list of JWK Set files and `https://` URLs (peers'
/// `/.well-known/jwks.json`).
pub const ENV_TRUSTED_JWKS: &str = "KEST_TRUSTED_JWKS";

/// The default instance the attribute macro and [`crate::protect`] use.
static DEFAULT: ArcSwapOption<Kest> = ArcSwapOption::const_empty();

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

impl Kest {
    /// A builder with nothing configured but the defaults: the weakest-link evaluator, the
    /// built-in origins, an in-memory claim store, and verified ingress that trusts no
    /// key until told which.
    pub fn builder() -> KestBuilder {
        KestBuilder::default()
    }

    /// How inbound passports are verified (by the lineage layer built from
    /// [`Kest::codec`], and by calls that continue a flow from OpenTelemetry baggage).
    #[must_use]
    pub fn ingress(&self) -> &Ingress {
        self.inner.codec.ingress_config()
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
            .ok_or_else(|| KestError::NotConfigured {
                what: "no identity to publish keys for".into(),
            })?;
        let info = identity.describe().await.map_err(KestError::Identity)?;
        let key = kest_crypto::VerifyingKey::from_jwk(&info.jwk).map_err(|error| {
            KestError::Identity(kest_identity::IdentityError::Key {
                source_name: info.provider.clone(),
                error,
            })
        })?;
        Ok(kest_propagation::PublishKeysLayer::for_workload(
            &info.workload_id,
            [key],
        ))
    }

    /// Makes this the default instance, used by `#[kest::verified]` and
    /// [`crate::protect`]. Replaces any earlier default.
    pub fn install(&self) {
        DEFAULT.store(Some(Arc::new(self.clone())));
    }

    /// The default instance, if one was installed.
    #[must_use]
    pub fn installed() -> Option<Self> {
        DEFAULT.load_full().map(|kest| (*kest).clone())
    }

    /// Removes the default instance (for tests).
    pub fn uninstall() {
        DEFAULT.store(None);
    }

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

    /// The service name spans carry.
    #[must_use]
    pub fn service_name(&self) -> &str {
        &self.inner.service_name
    }

    /// A runtime from the process environment: the identity by
    /// [`kest_identity::detect`] (resolved on first use), the engine from
    /// `KEST_POLICY_ENGINE` and `KEST_POLICY_DIR`, the tiers from
    /// [`PolicyConfig::from_env`], the decision cache from `KEST_POLICY_CACHE_TTL`, the
    /// claim store from `KEST_CLAIM_STORE`. A `KEST_CONFIG` file is read first and the
    /// variables override it.
    ///
    /// # Errors
    /// [`KestError::Config`] or [`KestError::NotConfigured`] naming the variable at fault.
    pub async fn from_env() -> Result<Self, KestError> {
        Self::from_vars(|name| std::env::var(name).ok()).await
    }

    /// As [`Kest::from_env`], reading variables through `var`.
    ///
    /// # Errors
    /// As [`Kest::from_env`].
    pub async fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, KestError> {
        let mut file = match var(ENV_CONFIG) {
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

    /// As [`Kest::from_toml_file`], from the text.
    ///
    /// # Errors
    /// As [`Kest::from_env`].
    pub async fn from_toml_str(text: &str, base: &Path) -> Result<Self, KestError> {
        FileConfig::parse(text, base, "TOML text")?
            .build(false)
            .await
    }
}

/// Builds a [`Kest`].
#[must_use]
pub struct KestBuilder {
    identity: Option<Arc<dyn IdentityProvider>>,
    engine: Option<Arc<dyn PolicyEngine>>,
    cache: CacheChoice,
    policies: PolicyConfig,
    app: Option<String>,
    evaluator: Arc<dyn TrustEvaluator>,
    origins: OriginMap,
    store: Option<Arc<dyn ClaimStore>>,
    threshold: Option<usize>,
    claim_ttl: Option<Duration>,
    service_name: Option<String>,
    trusted: Vec<Arc<dyn KeyResolver>>,
    ingress: Option<Ingress>,
    strictness: Option<Strictness>,
}

enum CacheChoice {
    /// On for remote engines, off for in-process ones.
    Default,
    Off,
    With(Arc<DecisionCache>),
}

impl Default for KestBuilder {
    fn default() -> Self {
        Self {
            identity: None,
            engine: None,
            cache: CacheChoice::Default,
            policies: PolicyConfig::default(),
            app: None,
            evaluator: Arc::new(WeakestLink),
            origins: OriginMap::new(),
            store: None,
            threshold: None,
            claim_ttl: None,
            service_name: None,
            trusted: Vec::new(),
            ingress: None,
            strictness: None,
        }
    }
}

impl KestBuilder {
    /// The identity protected calls sign as.
    pub fn identity(mut self, identity: Arc<dyn IdentityProvider>) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The policy engine.
    pub fn engine(mut self, engine: Arc<dyn PolicyEngine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Caches decisions in `cache` (keyed by the whole context). By default remote
    /// engines get a cache with `KEST_POLICY_CACHE_TTL` (60 s) and in-process ones none.
    pub fn decision_cache(mut self, cache: Arc<DecisionCache>) -> Self {
        self.cache = CacheChoice::With(cache);
        self
    }

    /// No decision cache, whatever the engine.
    pub fn no_decision_cache(mut self) -> Self {
        self.cache = CacheChoice::Off;
        self
    }

    /// The enterprise, platform and application tiers and the approved deviations.
    pub fn policies(mut self, policies: PolicyConfig) -> Self {
        self.policies = policies;
        self
    }

    /// The application this process belongs to (deviations may be scoped to it).
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// How trust propagates (weakest link by default).
    pub fn trust_evaluator(mut self, evaluator: Arc<dyn TrustEvaluator>) -> Self {
        self.evaluator = evaluator;
        self
    }

    /// The origins and their trust scores (the built-ins by default).
    pub fn origins(mut self, origins: OriginMap) -> Self {
        self.origins = origins;
        self
    }

    /// Where passports too large for a header are stored (in memory by default).
    pub fn claim_store(mut self, store: Arc<dyn ClaimStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The largest passport sent in a header, in bytes (4096 by default).
    pub const fn inline_threshold(mut self, bytes: usize) -> Self {
        self.threshold = Some(bytes);
        self
    }

    /// How long claimed passports are kept (300 s by default).
    pub const fn claim_ttl(mut self, ttl: Duration) -> Self {
        self.claim_ttl = Some(ttl);
        self
    }

    /// The `service.name` of spans (the program's name by default).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Trusts the keys `keys` knows for inbound passports (repeatable: each source is
    /// asked in turn). Static JWKs ([`kest_crypto::StaticKeyResolver`]), a JWK Set
    /// ([`kest_crypto::JwksKeyResolver`]), peers' published sets
    /// (`kest_identity::RemoteJwks`, or [`KestBuilder::trust_jwks_url`]), the SPIFFE trust
    /// bundle (`kest_identity::TrustBundleResolver`).
    pub fn trust_keys(self, keys: impl KeyResolver + 'static) -> Self {
        self.trust_keys_shared(Arc::new(keys))
    }

    /// As [`KestBuilder::trust_keys`], with a shared resolver.
    pub fn trust_keys_shared(mut self, keys: Arc<dyn KeyResolver>) -> Self {
        self.trusted.push(keys);
        self
    }

    /// Trusts the keys a peer publishes at `url` (its `/.well-known/jwks.json`), fetched
    /// when first needed and again when a new key appears, at most once a second.
    ///
    /// # Errors
    /// [`KestError::Identity`] when `url` is not an `https` URL (or `http` to this
    /// machine).
    #[cfg(feature = "jwks")]
    pub fn trust_jwks_url(self, url: impl Into<String>) -> Result<Self, KestError> {
        let keys = kest_identity::RemoteJwks::new(url).map_err(KestError::Identity)?;
        Ok(self.trust_keys(keys))
    }

    /// How undeclared trust raises in inbound passports are treated (per entry by
    /// default).
    pub const fn ingress_strictness(mut self, strictness: Strictness) -> Self {
        self.strictness = Some(strictness);
        self
    }

    /// Replaces the inbound verification settings outright, e.g. with
    /// [`Ingress::insecure_unverified`]. Keys given with [`KestBuilder::trust_keys`] are
    /// then ignored.
    pub fn ingress(mut self, ingress: Ingress) -> Self {
        self.ingress = Some(ingress);
        self
    }

    /// The runtime.
    ///
    /// # Errors
    /// [`KestError::Config`] when the policy tiers are invalid.
    pub fn build(self) -> Result<Kest, KestError> {
        self.policies.validate()?;
        let cache = match self.cache {
            CacheChoice::Off => None,
            CacheChoice::With(cache) => Some(cache),
            CacheChoice::Default => match &self.engine {
                Some(engine) if engine.is_remote() => {
                    DecisionCache::from_env(kest_policy::DEFAULT_CAPACITY)
                        .map_err(|what| KestError::NotConfigured { what })?
                        .map(Arc::new)
                }
                _ => None,
            },
        };
        let engine = match (self.engine, &cache) {
            (Some(engine), Some(cache)) => {
                Some(Arc::new(CachedEngine::new(engine, Arc::clone(cache))) as Arc<dyn PolicyEngine>)
            }
            (engine, _) => engine,
        };
        let ingress = match self.ingress {
            Some(ingress) => ingress,
            None => {
                let mut chain = ResolverChain::new();
                for keys in self.trusted {
                    chain = chain.then(keys);
                }
                Ingress::verify(chain)
            }
        };
        let ingress = match self.strictness {
            Some(strictness) => ingress.strictness(strictness),
            None => ingress,
        };
        let mut codec =
            PassportCodec::new()
                .store(self.store.unwrap_or_else(|| {
                    Arc::new(MemoryClaimStore::default()) as Arc<dyn ClaimStore>
                }))
                .ingress(ingress);
        if let Some(threshold) = self.threshold {
            codec = codec.threshold(threshold);
        }
        if let Some(ttl) = self.claim_ttl {
            codec = codec.ttl(ttl);
        }
        Ok(Kest {
            inner: Arc::new(Inner {
                identity: self.identity,
                engine,
                cache,
                policies: Arc::new(self.policies),
                app: self.app,
                evaluator: self.evaluator,
                origins: self.origins,
                codec,
                service_name: self.service_name.unwrap_or_else(default_service_name),
            }),
        })
    }
}

fn default_service_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "kest".into())
}

/// The TOML configuration file.
///
/// ```toml
/// service_name = "billing"
/// app = "billing"
///
/// [policy]
/// engine = "cedar"           # or "rego"
/// dir = "policies"           # relative to the file
/// enterprise = ["baseline"]
/// cache_ttl_secs = 60        # 0 disables the decision cache
///
/// [identity]
/// provider = "static"        # or local, mock, oidc, spiffe, aws-kms, bedrock-agent, detect
/// workload_id = "spiffe://example.org/billing"
/// key_file = "billing.jwk"
///
/// [propagation]
/// claim_store = "redis://127.0.0.1:6379/"   # or "memory"
/// inline_threshold = 4096
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    service_name: Option<String>,
    app: Option<String>,
    #[serde(default)]
    policy: PolicySection,
    #[serde(default)]
    identity: IdentitySection,
    #[serde(default)]
    propagation: PropagationSection,
    #[serde(default)]
    ingress: IngressSection,
    #[serde(skip)]
    base: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngressSection {
    /// JWK Set files (relative to the file) and `https://` URLs.
    #[serde(default)]
    trusted_jwks: Vec<String>,
    /// `auto`, `strict` or `lenient`.
    strictness: Option<String>,
    /// Accept inbound passports unverified (needs KEST_INSECURE_UNVERIFIED_LINEAGE=true).
    #[serde(default)]
    insecure_unverified: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    engine: Option<String>,
    dir: Option<PathBuf>,
    #[serde(default)]
    enterprise: Vec<String>,
    #[serde(default)]
    platform: Vec<String>,
    #[serde(default)]
    application: Vec<String>,
    #[serde(default)]
    deviations: Vec<kest_policy::DeviationRule>,
    cache_ttl_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentitySection {
    provider: Option<String>,
    workload_id: Option<String>,
    key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PropagationSection {
    claim_store: Option<String>,
    inline_threshold: Option<usize>,
    claim_ttl_secs: Option<u64>,
}

impl FileConfig {
    fn read(path: &Path) -> Result<Self, KestError> {
        let text = std::fs::read_to_string(path).map_err(|error| KestError::NotConfigured {
            what: format!("cannot read {}: {error}", path.display()),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &base, &path.display().to_string())
    }

    fn parse(text: &str, base: &Path, source: &str) -> Result<Self, KestError> {
        let mut config: Self = toml::from_str(text).map_err(|error| KestError::NotConfigured {
            what: format!("{source}: {error}"),
        })?;
        config.base = base.to_path_buf();
        Ok(config)
    }

    /// Environment variables win over the file.
    fn overlay_env(&mut self, var: &impl Fn(&str) -> Option<String>) -> Result<(), KestError> {
        if let Some(name) = var(ENV_SERVICE_NAME) {
            self.service_name = Some(name);
        }
        if let Some(app) = var(ENV_APP) {
            self.app = Some(app);
        }
        if let Some(engine) = var(ENV_ENGINE) {
            self.policy.engine = Some(engine);
        }
        if let Some(dir) = var(ENV_POLICY_DIR) {
            self.policy.dir = Some(PathBuf::from(dir));
        }
        if let Some(tiers) = PolicyConfig::from_vars(var)? {
            self.policy.enterprise = tiers.enterprise;
            self.policy.platform = tiers.platform;
            self.policy.application = tiers.application;
            self.policy.deviations = tiers.deviations;
        }
        if let Some(ttl) = var(kest_policy::ENV_CACHE_TTL) {
            self.policy.cache_ttl_secs =
                Some(ttl.trim().parse().map_err(|_| KestError::NotConfigured {
                    what: format!(
                        "{}=`{ttl}` is not a whole number of seconds",
                        kest_policy::ENV_CACHE_TTL
                    ),
                })?);
        }
        if let Some(store) = var(ENV_CLAIM_STORE) {
            self.propagation.claim_store = Some(store);
        }
        if let Some(threshold) = var(ENV_INLINE_THRESHOLD) {
            self.propagation.inline_threshold =
                Some(
                    threshold
                        .trim()
                        .parse()
                        .map_err(|_| KestError::NotConfigured {
                            what: format!(
                                "{ENV_INLINE_THRESHOLD}=`{threshold}` is not a number of bytes"
                            ),
                        })?,
                );
        }
        if let Some(list) = var(ENV_TRUSTED_JWKS) {
            self.ingress.trusted_jwks = list
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if var(kest_propagation::ENV_INSECURE_UNVERIFIED_LINEAGE).is_some() {
            self.ingress.insecure_unverified = true;
        }
        // The identity comes from the environment by detection unless the file names one.
        if self.identity.provider.is_none() {
            self.identity.provider = Some("detect".into());
        }
        Ok(())
    }

    async fn build(self, detect_by_default: bool) -> Result<Kest, KestError> {
        let mut builder = Kest::builder();
        if let Some(name) = self.service_name {
            builder = builder.service_name(name);
        }
        if let Some(app) = self.app {
            builder = builder.app(app);
        }
        builder = builder.policies(PolicyConfig {
            enterprise: self.policy.enterprise,
            platform: self.policy.platform,
            application: self.policy.application,
            deviations: self.policy.deviations,
        });
        let dir = self.policy.dir.map(|dir| self.base.join(dir));
        if let Some(engine) = load_engine(self.policy.engine.as_deref(), dir.as_deref())? {
            builder = builder.engine(engine);
        }
        match self.policy.cache_ttl_secs {
            Some(0) => builder = builder.no_decision_cache(),
            Some(seconds) => {
                builder = builder.decision_cache(Arc::new(DecisionCache::new(
                    kest_policy::DEFAULT_CAPACITY,
                    Duration::from_secs(seconds),
                )));
            }
            None => {}
        }
        if let Some(store) = self.propagation.claim_store {
            builder = builder.claim_store(claim_store(&store).await?);
        }
        if let Some(threshold) = self.propagation.inline_threshold {
            builder = builder.inline_threshold(threshold);
        }
        if let Some(ttl) = self.propagation.claim_ttl_secs {
            builder = builder.claim_ttl(Duration::from_secs(ttl));
        }
        builder = self.ingress.apply(builder, &self.base)?;
        let provider = self
            .identity
            .provider
            .or_else(|| detect_by_default.then(|| "detect".to_owned()));
        if let Some(provider) = provider {
            builder = builder.identity(identity(
                &provider,
                self.identity.workload_id,
                self.identity.key_file.map(|file| self.base.join(file)),
            )?);
        }
        builder.build()
    }
}

/// The identity the configuration names. Detected and environment-configured providers
/// are resolved on first use, so a service can start before its identity source is up;
/// until it resolves, nothing is signed and nothing runs.
fn identity(
    provider: &str,
    workload_id: Option<String>,
    key_file: Option<PathBuf>,
) -> Result<Arc<dyn IdentityProvider>, KestError> {
    let identity_error = KestError::Identity;
    match provider {
        "static" => {
            let (Some(workload_id), Some(key_file)) = (workload_id, key_file) else {
                return Err(KestError::NotConfigured {
                    what: "[identity] provider = \"static\" needs workload_id and key_file".into(),
                });
            };
            Ok(Arc::new(
                kest_identity::StaticIdentity::from_key_file(workload_id, &key_file)
                    .map_err(identity_error)?,
            ))
        }
        "local" => Ok(Arc::new(
            kest_identity::LocalEd25519::new(
                workload_id.unwrap_or_else(|| format!("local:{}", default_service_name())),
            )
            .map_err(identity_error)?,
        )),
        "mock" => Ok(Arc::new(
            kest_identity::MockIdentity::new(workload_id.unwrap_or_else(|| "mock://kest".into()))
                .map_err(identity_error)?,
        )),
        "detect" => Ok(Arc::new(kest_identity::LazyIdentity::new(
            kest_identity::detect,
        ))),
        other => {
            let detected = kest_identity::Detected::from_vars(|name| {
                if name == kest_identity::env::ENV_PROVIDER {
                    Some(other.to_owned())
                } else {
                    std::env::var(name).ok()
                }
            })
            .map_err(identity_error)?;
            Ok(Arc::new(kest_identity::LazyIdentity::new(move || {
                kest_identity::make(detected)
            })))
        }
    }
}

/// The engine named `engine`, loaded with the policy files in `dir`.
fn load_engine(
    engine: Option<&str>,
    dir: Option<&Path>,
) -> Result<Option<Arc<dyn PolicyEngine>>, KestError> {
    let Some(engine) = engine else {
        return match dir {
            Some(dir) => Err(KestError::NotConfigured {
                what: format!(
                    "policies in {} but no engine: set {ENV_ENGINE} to cedar or rego",
                    dir.display()
                ),
            }),
            None => Ok(None),
        };
    };
    let files = |extension: &str| -> Result<Vec<(String, String)>, KestError> {
        let Some(dir) = dir else {
            return Err(KestError::NotConfigured {
                what: format!("the {engine} engine needs policy files: set {ENV_POLICY_DIR}"),
            });
        };
        policy_files(dir, extension)
    };
    match engine {
        #[cfg(feature = "cedar")]
        "cedar" => {
            let mut builder = kest_policy::CedarEngine::builder();
            for (name, source) in files("cedar")? {
                builder = builder.policy_source(name, source);
            }
            Ok(Some(Arc::new(builder.build()?)))
        }
        #[cfg(feature = "rego")]
        "rego" => {
            let mut builder = kest_policy::RegoEngine::builder();
            for (name, source) in files("rego")? {
                builder = builder.policy_source(name, source);
            }
            Ok(Some(Arc::new(builder.build()?)))
        }
        other => Err(KestError::NotConfigured {
            what: format!(
                "policy engine `{other}` is unknown or not built in (this build has: {})",
                built_in_engines().join(", ")
            ),
        }),
    }
}

fn built_in_engines() -> Vec<&'static str> {
    let mut engines = Vec::new();
    if cfg!(feature = "cedar") {
        engines.push("cedar");
    }
    if cfg!(feature = "rego") {
        engines.push("rego");
    }
    engines
}

/// `(name, source)` of every `*.extension` file in `dir`, the name being the file stem.
fn policy_files(dir: &Path, extension: &str) -> Result<Vec<(String, String)>, KestError> {
    let unreadable = |error: std::io::Error| KestError::NotConfigured {
        what: format!("cannot read policy directory {}: {error}", dir.display()),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.extension().is_some_and(|e| e == extension) {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let source = std::fs::read_to_string(&path).map_err(unreadable)?;
            files.push((name, source));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(KestError::NotConfigured {
            what: format!("no .{extension} files in {}", dir.display()),
        });
    }
    Ok(files)
}

/// The claim store `setting` names: `memory` or a `redis://` URL.
async fn claim_store(setting: &str) -> Result<Arc<dyn ClaimStore>, KestError> {
    if setting == "memory" {
        return Ok(Arc::new(MemoryClaimStore::default()));
    }
    if setting.starts_with("redis://") || setting.starts_with("rediss://") {
        #[cfg(feature = "redis")]
        {
            return Ok(Arc::new(
                kest_propagation::RedisClaimStore::connect(setting).await?,
            ));
        }
        #[cfg(not(feature = "redis"))]
        {
            return Err(KestError::NotConfigured {
                what: "a Redis claim store needs kest's `redis` feature".into(),
            });
        }
    }
    Err(KestError::NotConfigured {
        what: format!("{ENV_CLAIM_STORE} must be `memory` or a redis:// URL, not `{setting}`"),
    })
}

impl IngressSection {
    fn apply(self, mut builder: KestBuilder, base: &Path) -> Result<KestBuilder, KestError> {
        if self.insecure_unverified {
            let setting = std::env::var(kest_propagation::ENV_INSECURE_UNVERIFIED_LINEAGE).ok();
            return Ok(builder.ingress(Ingress::insecure_unverified(setting.as_deref())?));
        }
        for source in self.trusted_jwks {
            if source.starts_with("https://") || source.starts_with("http://") {
                #[cfg(feature = "jwks")]
                {
                    builder = builder.trust_jwks_url(source)?;
                }
                #[cfg(not(feature = "jwks"))]
                {
                    return Err(KestError::NotConfigured {
                        what: format!(
                            "trusted JWK Set `{source}` is a URL; fetching it needs kest's `jwks` feature"
                        ),
                    });
                }
            } else {
                let path = base.join(&source);
                let text =
                    std::fs::read_to_string(&path).map_err(|error| KestError::NotConfigured {
                        what: format!("cannot read trusted JWK Set {}: {error}", path.display()),
                    })?;
                let keys = JwksKeyResolver::from_json(&text).map_err(|error| {
                    KestError::NotConfigured {
                        what: format!("trusted JWK Set {}: {error}", path.display()),
                    }
                })?;
                builder = builder.trust_keys(keys);
            }
        }
        if let Some(strictness) = self.strictness {
            builder = builder.ingress_strictness(match strictness.as_str() {
                "auto" => Strictness::Auto,
                "strict" => Strictness::Strict,
                "lenient" => Strictness::Lenient,
                other => {
                    return Err(KestError::NotConfigured {
                        what: format!(
                            "[ingress] strictness must be auto, strict or lenient, not `{other}`"
                        ),
                    });
                }
            });
        }
        Ok(builder)
    }
}
