//! The decision cache: a decision is reused only for exactly the same question.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lru::LruCache;

use crate::ConfigError;
use crate::{Decision, EvaluationContext, PolicyEngine, PolicyError};

/// Environment variable: the cache TTL in seconds; `0` disables the cache.
pub const ENV_CACHE_TTL: &str = "KEST_POLICY_CACHE_TTL";
/// TTL when none is configured.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Entries kept when no capacity is configured.
pub const DEFAULT_CAPACITY: usize = 10_000;

const SHARDS: usize = 8;

/// Hit and miss counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that went to the engine.
    pub misses: u64,
    /// Entries held now.
    pub entries: usize,
}

/// A bounded (LRU), expiring cache of decisions.
///
/// The key is the engine, the policy and the **entire** evaluation context: workload,
/// user, agent, task, trust score, taints, classification, origin, resource id and
/// attributes, caller values, tier and policy names. A decision is therefore reused only
/// for the identical question. (The Python package keys on a few identity fields and
/// serves the decision for `resource=public` to a request for `resource=secret`.) Keys
/// are compared in full, not by hash, so no collision can return another request's
/// decision. Engine errors are never cached.
///
/// The cache is split into shards, each behind its own lock, so concurrent callers rarely
/// wait on each other.
#[derive(Debug)]
pub struct DecisionCache {
    shards: Vec<Mutex<LruCache<String, (Decision, Instant)>>>,
    ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl DecisionCache {
    /// A cache of at most `capacity` decisions, each kept for `ttl`.
    #[must_use]
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let per_shard =
            NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cache `KEST_POLICY_CACHE_TTL` asks for: `None` when it is `0` (disabled), the
    /// default TTL when it is unset.
    ///
    /// # Errors
    /// [`ConfigError::InvalidValue`] naming the variable when it is not a number of seconds.
    pub fn from_env(capacity: usize) -> Result<Option<Self>, ConfigError> {
        Self::from_ttl_setting(std::env::var(ENV_CACHE_TTL).ok().as_deref(), capacity)
    }

    /// As [`DecisionCache::from_env`], from the variable's value.
    ///
    /// # Errors
    /// [`ConfigError::InvalidValue`] when `setting` is not a number of seconds.
    pub fn from_ttl_setting(
        setting: Option<&str>,
        capacity: usize,
    ) -> Result<Option<Self>, ConfigError> {
        let ttl = match setting {
            None => DEFAULT_TTL,
            Some(text) => Duration::from_secs(text.trim().parse::<u64>().map_err(|_| {
                ConfigError::InvalidValue {
                    key: ENV_CACHE_TTL,
                    value: kest_canon::escape_untrusted(text, 40),
                    reason: "is not a whole number of seconds",
                }
            })?),
        };
        Ok((!ttl.is_zero()).then(|| Self::new(capacity, ttl)))
    }

    /// The time a decision is kept.
    #[must_use]
    pub const fn ttl(&self) -> Duration {
        self.ttl
    }

    fn key(engine: &str, policy: &str, context: &EvaluationContext) -> String {
        // The document serializes the same way every time for the same content in the same
        // order; different orders only cost a miss, never a wrong hit.
        let document = serde_json::to_string(context.document()).unwrap_or_default();
        let mut key = String::with_capacity(engine.len() + policy.len() + document.len() + 2);
        key.push_str(engine);
        key.push('\0');
        key.push_str(policy);
        key.push('\0');
        key.push_str(&document);
        key
    }

    fn shard(&self, key: &str) -> Option<&Mutex<LruCache<String, (Decision, Instant)>>> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % SHARDS as u64).unwrap_or(0);
        self.shards.get(index)
    }

    fn get(&self, key: &str) -> Option<Decision> {
        let shard = self.shard(key)?;
        let mut cache = shard.lock().ok()?;
        match cache.get(key) {
            Some((decision, stored)) if stored.elapsed() < self.ttl => Some(decision.clone()),
            Some(_) => {
                cache.pop(key);
                None
            }
            None => None,
        }
    }

    fn put(&self, key: String, decision: Decision) {
        if let Some(mut cache) = self.shard(&key).and_then(|shard| shard.lock().ok()) {
            cache.put(key, (decision, Instant::now()));
        }
    }

    /// Drops every cached decision, for example after a policy update.
    pub fn invalidate(&self) {
        for shard in &self.shards {
            if let Ok(mut cache) = shard.lock() {
                cache.clear();
            }
        }
    }

    /// Hit and miss counts, and the entries held.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self
                .shards
                .iter()
                .filter_map(|shard| shard.lock().ok().map(|cache| cache.len()))
                .sum(),
        }
    }
}

/// An engine whose decisions go through a [`DecisionCache`].
#[derive(Debug)]
pub struct CachedEngine<E> {
    inner: E,
    cache: std::sync::Arc<DecisionCache>,
}

impl<E: PolicyEngine> CachedEngine<E> {
    /// Puts `cache` in front of `inner`.
    pub const fn new(inner: E, cache: std::sync::Arc<DecisionCache>) -> Self {
        Self { inner, cache }
    }

    /// The cache.
    #[must_use]
    pub const fn cache(&self) -> &std::sync::Arc<DecisionCache> {
        &self.cache
    }

    /// The engine behind the cache.
    #[must_use]
    pub const fn inner(&self) -> &E {
        &self.inner
    }
}

#[async_trait]
impl<E: PolicyEngine> PolicyEngine for CachedEngine<E> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }

    async fn evaluate(
        &self,
        policy: &str,
        context: &EvaluationContext,
    ) -> Result<Decision, PolicyError> {
        let key = DecisionCache::key(self.inner.name(), policy, context);
        if let Some(decision) = self.cache.get(&key) {
            self.cache.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(decision);
        }
        self.cache.misses.fetch_add(1, Ordering::Relaxed);
        let decision = self.inner.evaluate(policy, context).await?;
        self.cache.put(key, decision.clone());
        Ok(decision)
    }
}
