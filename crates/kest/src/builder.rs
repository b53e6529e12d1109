//! Building a runtime in code.

use std::sync::Arc;
use std::time::Duration;

use kest_crypto::{KeyResolver, KeySources};
use kest_identity::IdentityProvider;
use kest_passport::Strictness;
use kest_policy::{CachedEngine, DecisionCache, PolicyConfig, PolicyEngine};
use kest_propagation::{
    Boundary, ClaimStore, DEFAULT_EDGE_ORIGIN, Ingress, MemoryClaimStore, PassportCodec,
};
use kest_trust::{OriginMap, TrustEvaluator, WeakestLink};

use crate::KestError;
use crate::runtime::{Inner, Kest};

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
    inline_tier: bool,
    claim_ttl: Option<Duration>,
    service_name: Option<String>,
    trusted: Vec<Arc<dyn KeyResolver>>,
    ingress: Option<Ingress>,
    strictness: Option<Strictness>,
    boundary: Option<BoundaryChoice>,
}

/// What a request without lineage means, as configured (checked against the origin map
/// when the runtime is built).
enum BoundaryChoice {
    Edge(String),
    Internal,
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
            inline_tier: true,
            claim_ttl: None,
            service_name: None,
            trusted: Vec::new(),
            ingress: None,
            strictness: None,
            boundary: None,
        }
    }
}

impl KestBuilder {
    /// The identity protected calls sign as: any provider, or an `Arc` of one.
    pub fn identity(mut self, identity: impl IdentityProvider + 'static) -> Self {
        self.identity = Some(Arc::new(identity));
        self
    }

    /// The policy engine: any engine, or an `Arc` of one.
    pub fn engine(mut self, engine: impl PolicyEngine + 'static) -> Self {
        self.engine = Some(Arc::new(engine));
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
    pub fn trust_evaluator(mut self, evaluator: impl TrustEvaluator + 'static) -> Self {
        self.evaluator = Arc::new(evaluator);
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

    /// Whether small passports may go inline, percent-encoded in `kest.passport` (the
    /// default). Turn it off for services whose peers run the Python package, whose
    /// middleware does not percent-decode baggage: see
    /// [`PassportCodec::inline_tier`](crate::propagation::PassportCodec::inline_tier).
    pub const fn inline_tier(mut self, allowed: bool) -> Self {
        self.inline_tier = allowed;
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

    /// Trusts the keys `keys` knows for inbound passports (repeatable: the sources are
    /// united, and none can shadow another). Static JWKs
    /// ([`kest_crypto::StaticKeyResolver`], each key for its principal), a JWK Set bound to
    /// the principals it may speak for ([`kest_crypto::JwksKeyResolver::bound`]), peers'
    /// published sets (`kest_identity::RemoteJwks`, or [`KestBuilder::trust_peer`]), the
    /// SPIFFE trust bundle (`kest_identity::TrustBundleResolver`, for its trust domain).
    /// The union trusts each source for whatever it answers: bind every source that
    /// someone else writes.
    pub fn trust_keys(self, keys: impl KeyResolver + 'static) -> Self {
        self.trust_keys_shared(Arc::new(keys))
    }

    /// As [`KestBuilder::trust_keys`], with a shared resolver.
    pub fn trust_keys_shared(mut self, keys: Arc<dyn KeyResolver>) -> Self {
        self.trusted.push(keys);
        self
    }

    /// Trusts the keys the peer `peer` publishes at `url` (its `/.well-known/jwks.json`)
    /// for that peer alone. `peer` is its principal, or a SPIFFE ID prefix
    /// (`spiffe://domain/path/*`) for a set that serves several workloads. A key the set
    /// lists for anyone else is never used (logged once, and counted as
    /// `key_outside_binding`). Fetched when first needed and again when a new key appears,
    /// at most once a second.
    ///
    /// # Errors
    /// [`KestError::TrustedKeys`] when `peer` is not a principal or SPIFFE ID prefix,
    /// [`KestError::Identity`] when `url` is not an `https` URL (or `http` to this
    /// machine).
    #[cfg(feature = "jwks")]
    pub fn trust_peer(self, peer: &str, url: impl Into<String>) -> Result<Self, KestError> {
        let binding = peer.parse().map_err(KestError::TrustedKeys)?;
        let keys = kest_identity::RemoteJwks::for_peer(binding, url)?;
        Ok(self.trust_keys(keys))
    }

    /// This service is an edge: a request that arrives without lineage starts a new
    /// chain whose first entry is held to `origin`'s trust (`user_input` by default). The
    /// origin must be one the runtime knows ([`KestBuilder::origins`]).
    pub fn edge(mut self, origin: impl Into<String>) -> Self {
        self.boundary = Some(BoundaryChoice::Edge(origin.into()));
        self
    }

    /// This service is internal: a request that arrives without a verified passport is
    /// refused with 403 before anything runs.
    pub fn internal(mut self) -> Self {
        self.boundary = Some(BoundaryChoice::Internal);
        self
    }

    /// How undeclared trust raises in inbound passports are treated (per entry by
    /// default).
    pub const fn ingress_strictness(mut self, strictness: Strictness) -> Self {
        self.strictness = Some(strictness);
        self
    }

    /// Replaces the inbound verification settings outright, e.g. with
    /// [`Ingress::insecure_unverified`]. Keys given with [`KestBuilder::trust_keys`] are
    /// then ignored. Its boundary is kept unless [`KestBuilder::edge`] or
    /// [`KestBuilder::internal`] says otherwise.
    pub fn ingress(mut self, ingress: Ingress) -> Self {
        self.ingress = Some(ingress);
        self
    }

    /// The runtime.
    ///
    /// # Errors
    /// [`KestError::Config`] when the policy tiers are invalid, [`KestError::Call`] when
    /// the edge origin is not a known origin.
    pub fn build(self) -> Result<Kest, KestError> {
        // Unset, an edge at `user_input` (or the boundary of an `Ingress` given whole).
        let boundary = match &self.boundary {
            Some(BoundaryChoice::Edge(origin)) => Some(Boundary::edge(origin, &self.origins)?),
            Some(BoundaryChoice::Internal) => Some(Boundary::Internal),
            None if self.ingress.is_none() => {
                Some(Boundary::edge(DEFAULT_EDGE_ORIGIN, &self.origins)?)
            }
            None => None,
        };
        self.policies.validate()?;
        let cache = match self.cache {
            CacheChoice::Off => None,
            CacheChoice::With(cache) => Some(cache),
            CacheChoice::Default => match &self.engine {
                Some(engine) if engine.is_remote() => {
                    DecisionCache::from_env(kest_policy::DEFAULT_CAPACITY)?.map(Arc::new)
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
                let mut sources = KeySources::new();
                for keys in self.trusted {
                    sources.push(keys);
                }
                Ingress::verify(sources)
            }
        };
        let ingress = match boundary {
            Some(boundary) => ingress.boundary(boundary),
            None => ingress,
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
        codec = codec.inline_tier(self.inline_tier);
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
                signer_gate: Arc::default(),
            }),
        })
    }
}

/// The program's name, for `service.name` when none is given.
pub(crate) fn default_service_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "kest".into())
}
