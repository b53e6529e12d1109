//! Configuration from a TOML file and the environment.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kest_crypto::JwksKeyResolver;
use kest_passport::Strictness;
use kest_policy::{DecisionCache, EngineKind, PolicyConfig};
use kest_propagation::{Ingress, PropagationError};
use serde::Deserialize;

use crate::builder::KestBuilder;
use crate::env::{
    ENV_APP, ENV_BOUNDARY, ENV_CLAIM_STORE, ENV_EDGE_ORIGIN, ENV_ENGINE, ENV_INLINE_THRESHOLD,
    ENV_POLICY_DIR, ENV_SERVICE_NAME, ENV_TRUSTED_JWKS, ENV_TRUSTED_PEERS,
};
use crate::runtime::Kest;
use crate::{KestError, Missing};

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
/// inline_tier = true         # false: small passports go compressed (peers on the Python package)
///
/// [ingress]
/// boundary = "internal"      # or "edge" (the default; edge_origin = "user_input")
/// trusted_jwks = ["ops.jwks"]   # the operator's own key files
///
/// [[ingress.peers]]          # a peer's published keys, for that peer only
/// principal = "spiffe://example.org/gateway"
/// jwks = "https://gateway.internal.example/.well-known/jwks.json"
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
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
    /// `[mcp]`: read by `kest-mcp` (the MCP boundary and `kest mcp proxy`), which checks
    /// it against its own schema; the runtime itself has no use for it.
    #[serde(default, rename = "mcp")]
    _mcp: Option<toml::Table>,
    #[serde(skip)]
    base: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngressSection {
    /// The operator's JWK Set files (relative to the file): each key for the principal
    /// its `kid` names.
    #[serde(default)]
    trusted_jwks: Vec<String>,
    /// Peers' published key sets, each bound to the principals it may speak for.
    #[serde(default)]
    peers: Vec<PeerSection>,
    /// `edge` (the default) or `internal`.
    boundary: Option<String>,
    /// The origin an edge's new chains start from (`user_input` by default).
    edge_origin: Option<String>,
    /// Whether `peers` came from the environment (for naming it in errors).
    #[serde(skip)]
    peers_from_env: bool,
    /// `auto`, `strict` or `lenient`.
    strictness: Option<String>,
    /// Accept inbound passports unverified (needs KEST_INSECURE_UNVERIFIED_LINEAGE=true).
    #[serde(default)]
    insecure_unverified: bool,
}

/// `[[ingress.peers]]`: one peer's published keys and whom they may speak for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerSection {
    /// The peer's principal, or a SPIFFE ID prefix `spiffe://domain/path/*`.
    principal: String,
    /// Its JWK Set: an `https://` URL (`http://` to this machine), or a file relative to
    /// the configuration file.
    jwks: String,
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
    /// Whether `claim_store` came from the environment (for naming it in errors).
    #[serde(skip)]
    claim_store_from_env: bool,
    inline_threshold: Option<usize>,
    inline_tier: Option<bool>,
    claim_ttl_secs: Option<u64>,
}

impl FileConfig {
    pub(crate) fn read(path: &Path) -> Result<Self, KestError> {
        let text = std::fs::read_to_string(path).map_err(|error| KestError::io(path, error))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &base, &path.display().to_string())
    }

    pub(crate) fn parse(text: &str, base: &Path, origin: &str) -> Result<Self, KestError> {
        let mut config: Self = toml::from_str(text).map_err(|source| KestError::Toml {
            origin: origin.to_owned(),
            source: Box::new(source),
        })?;
        config.base = base.to_path_buf();
        Ok(config)
    }

    /// Environment variables win over the file.
    pub(crate) fn overlay_env(
        &mut self,
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), KestError> {
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
        if let Some(ttl) = var(kest_policy::env::ENV_CACHE_TTL) {
            self.policy.cache_ttl_secs =
                Some(ttl.trim().parse().map_err(|_| KestError::InvalidValue {
                    key: kest_policy::env::ENV_CACHE_TTL,
                    value: kest_canon::escape_untrusted(&ttl, 40),
                    reason: "is not a whole number of seconds",
                })?);
        }
        if let Some(store) = var(ENV_CLAIM_STORE) {
            self.propagation.claim_store = Some(store);
            self.propagation.claim_store_from_env = true;
        }
        if let Some(threshold) = var(ENV_INLINE_THRESHOLD) {
            self.propagation.inline_threshold =
                Some(
                    threshold
                        .trim()
                        .parse()
                        .map_err(|_| KestError::InvalidValue {
                            key: ENV_INLINE_THRESHOLD,
                            value: kest_canon::escape_untrusted(&threshold, 40),
                            reason: "is not a number of bytes",
                        })?,
                );
        }
        if let Some(list) = var(ENV_TRUSTED_JWKS) {
            self.ingress.trusted_jwks = list_items(&list).map(str::to_owned).collect();
        }
        if let Some(list) = var(ENV_TRUSTED_PEERS) {
            self.ingress.peers = list_items(&list)
                .map(|item| {
                    let (principal, jwks) =
                        item.split_once('=')
                            .ok_or_else(|| KestError::InvalidValue {
                                key: ENV_TRUSTED_PEERS,
                                value: kest_canon::escape_untrusted(item, 80),
                                reason: "is not PRINCIPAL=URL",
                            })?;
                    Ok(PeerSection {
                        principal: principal.trim().to_owned(),
                        jwks: jwks.trim().to_owned(),
                    })
                })
                .collect::<Result<_, KestError>>()?;
            self.ingress.peers_from_env = true;
        }
        if let Some(boundary) = var(ENV_BOUNDARY) {
            self.ingress.boundary = Some(boundary);
        }
        if let Some(origin) = var(ENV_EDGE_ORIGIN) {
            self.ingress.edge_origin = Some(origin);
        }
        if var(kest_propagation::env::ENV_INSECURE_UNVERIFIED_LINEAGE).is_some() {
            self.ingress.insecure_unverified = true;
        }
        // The identity comes from the environment by detection unless the file names one.
        if self.identity.provider.is_none() {
            self.identity.provider = Some("detect".into());
        }
        Ok(())
    }

    pub(crate) async fn build(self, detect_by_default: bool) -> Result<Kest, KestError> {
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
        let kind = self
            .policy
            .engine
            .as_deref()
            .map(str::parse::<EngineKind>)
            .transpose()?;
        match (kind, dir) {
            (Some(kind), Some(dir)) => {
                builder = builder.engine(kest_policy::load_engine(kind, &dir)?);
            }
            (Some(engine), None) => {
                return Err(KestError::NotConfigured(Missing::PolicyDir { engine }));
            }
            (None, Some(dir)) => return Err(KestError::NotConfigured(Missing::EngineKind { dir })),
            (None, None) => {}
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
            let made = kest_propagation::claim_store_from_setting(&store)
                .await
                .map_err(|error| match error {
                    PropagationError::InvalidSetting { value, reason, .. } => {
                        KestError::InvalidValue {
                            key: if self.propagation.claim_store_from_env {
                                ENV_CLAIM_STORE
                            } else {
                                "[propagation] claim_store"
                            },
                            value,
                            reason,
                        }
                    }
                    other => KestError::ClaimStore(other),
                })?;
            builder = builder.claim_store(made);
        }
        if let Some(threshold) = self.propagation.inline_threshold {
            builder = builder.inline_threshold(threshold);
        }
        if let Some(allowed) = self.propagation.inline_tier {
            builder = builder.inline_tier(allowed);
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
            let choice: kest_identity::IdentityChoice = provider.parse()?;
            let key_file = self.identity.key_file.map(|file| self.base.join(file));
            builder = builder.identity(kest_identity::configured(
                choice,
                self.identity.workload_id,
                key_file.as_deref(),
            )?);
        }
        builder.build()
    }
}

/// The non-empty items of a comma-separated list.
fn list_items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn is_url(source: &str) -> bool {
    source.starts_with("https://") || source.starts_with("http://")
}

/// A JWK Set file of the configuration's.
fn read_jwks_file(base: &Path, source: &str) -> Result<(PathBuf, JwksKeyResolver), KestError> {
    let path = base.join(source);
    let text = std::fs::read_to_string(&path).map_err(|error| KestError::io(&path, error))?;
    let keys =
        JwksKeyResolver::from_json(&text).map_err(|error| kest_identity::IdentityError::Key {
            source_name: path.display().to_string(),
            error,
        })?;
    Ok((path, keys))
}

impl IngressSection {
    fn apply(self, mut builder: KestBuilder, base: &Path) -> Result<KestBuilder, KestError> {
        let peers_key = if self.peers_from_env {
            ENV_TRUSTED_PEERS
        } else {
            "[[ingress.peers]] principal"
        };
        match self.boundary.as_deref().map(str::trim) {
            None | Some("edge") => {
                if let Some(origin) = self.edge_origin {
                    builder = builder.edge(origin.trim());
                }
            }
            Some("internal") => {
                if let Some(origin) = &self.edge_origin {
                    return Err(KestError::InvalidValue {
                        key: "[ingress] edge_origin",
                        value: kest_canon::escape_untrusted(origin, 40),
                        reason: "is set, but the service is internal: it starts no chain",
                    });
                }
                builder = builder.internal();
            }
            Some(other) => {
                return Err(KestError::InvalidValue {
                    key: "[ingress] boundary",
                    value: kest_canon::escape_untrusted(other, 40),
                    reason: "must be edge or internal",
                });
            }
        }
        if self.insecure_unverified {
            let setting =
                std::env::var(kest_propagation::env::ENV_INSECURE_UNVERIFIED_LINEAGE).ok();
            return Ok(builder.ingress(Ingress::insecure_unverified(setting.as_deref())?));
        }
        for source in self.trusted_jwks {
            if is_url(&source) {
                return Err(KestError::InvalidValue {
                    key: ENV_TRUSTED_JWKS,
                    value: kest_canon::escape_untrusted(&source, 80),
                    reason: "is a URL: a peer's published keys are trusted for that peer only, \
                             with [[ingress.peers]] (or KEST_TRUSTED_PEERS=PRINCIPAL=URL)",
                });
            }
            // The operator's own file: whoever wrote it says whom each key speaks for.
            let (_, keys) = read_jwks_file(base, &source)?;
            builder = builder.trust_keys(keys);
        }
        for peer in self.peers {
            let binding: kest_crypto::PrincipalBinding =
                peer.principal
                    .parse()
                    .map_err(|error: kest_crypto::CryptoError| KestError::InvalidValue {
                        key: peers_key,
                        value: kest_canon::escape_untrusted(&peer.principal, 80),
                        reason: match error {
                            kest_crypto::CryptoError::InvalidBinding { reason, .. } => reason,
                            _ => "is not a principal or a SPIFFE ID prefix",
                        },
                    })?;
            if is_url(&peer.jwks) {
                #[cfg(feature = "jwks")]
                {
                    builder = builder
                        .trust_keys(kest_identity::RemoteJwks::for_peer(binding, peer.jwks)?);
                }
                #[cfg(not(feature = "jwks"))]
                {
                    let _ = binding;
                    return Err(KestError::InvalidValue {
                        key: peers_key,
                        value: kest_canon::escape_untrusted(&peer.jwks, 80),
                        reason: "is a URL; fetching it needs kest's `jwks` feature",
                    });
                }
            } else {
                let (path, keys) = read_jwks_file(base, &peer.jwks)?;
                let keys =
                    keys.bound(binding)
                        .map_err(|error| kest_identity::IdentityError::Key {
                            source_name: path.display().to_string(),
                            error,
                        })?;
                for kid in keys.outside_binding() {
                    tracing::warn!(
                        file = %path.display(),
                        %kid,
                        "kest: a peer's key file lists a key for a principal outside its binding; the key is never used"
                    );
                    kest_passport::metrics::verification_failed("key_outside_binding");
                }
                builder = builder.trust_keys(keys);
            }
        }
        if let Some(strictness) = self.strictness {
            builder = builder.ingress_strictness(match strictness.as_str() {
                "auto" => Strictness::Auto,
                "strict" => Strictness::Strict,
                "lenient" => Strictness::Lenient,
                other => {
                    return Err(KestError::InvalidValue {
                        key: "[ingress] strictness",
                        value: kest_canon::escape_untrusted(other, 40),
                        reason: "must be auto, strict or lenient",
                    });
                }
            });
        }
        Ok(builder)
    }
}
