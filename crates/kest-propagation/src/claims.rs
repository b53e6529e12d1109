//! Claim-check stores: where passports too large for a header wait for the next hop.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lru::LruCache;

use crate::PropagationError;

/// How long a claimed passport is kept by default: five minutes.
pub const DEFAULT_CLAIM_TTL: Duration = Duration::from_secs(300);

/// A store for claim-checked passports, keyed `kest.claim.<id>`.
///
/// Services that hand each other claim checks must share one store (Redis); Python and
/// Rust services sharing a Redis read each other's claims.
#[async_trait]
pub trait ClaimStore: Send + Sync + fmt::Debug {
    /// Stores `value` under `key` for `ttl`.
    ///
    /// # Errors
    /// [`PropagationError::Store`] when the store cannot take it.
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), PropagationError>;

    /// The value under `key`, if it is there and has not expired. A value longer than
    /// `max_bytes` is refused without being read or copied.
    ///
    /// # Errors
    /// [`PropagationError::Store`] when the store cannot be read,
    /// [`PropagationError::ClaimTooLarge`] for a value over `max_bytes`, and
    /// [`PropagationError::ClaimUnreadable`] for one that is not UTF-8 text.
    async fn get(&self, key: &str, max_bytes: usize) -> Result<Option<String>, PropagationError>;
}

/// An in-process store: bounded (least recently used entries go first) and expiring. For
/// one process, or tests; services on several hosts need a shared store.
pub struct MemoryClaimStore {
    entries: Mutex<Claims>,
}

/// Claimed passports and when they expire, least recently used first out.
type Claims = LruCache<String, (String, Instant)>;

impl fmt::Debug for MemoryClaimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.entries.lock().map_or(0, |entries| entries.len());
        f.debug_struct("MemoryClaimStore")
            .field("entries", &len)
            .finish()
    }
}

impl Default for MemoryClaimStore {
    fn default() -> Self {
        Self::new(NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN))
    }
}

impl MemoryClaimStore {
    /// A store holding at most `capacity` passports.
    #[must_use]
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    fn locked(&self) -> Result<std::sync::MutexGuard<'_, Claims>, PropagationError> {
        self.entries.lock().map_err(|_| PropagationError::Store {
            reason: "the in-memory claim store is poisoned".into(),
        })
    }
}

#[async_trait]
impl ClaimStore for MemoryClaimStore {
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), PropagationError> {
        let expires = Instant::now()
            .checked_add(ttl)
            .ok_or_else(|| PropagationError::Store {
                reason: format!("TTL {ttl:?} is too long"),
            })?;
        self.locked()?
            .put(key.to_owned(), (value.to_owned(), expires));
        Ok(())
    }

    async fn get(&self, key: &str, max_bytes: usize) -> Result<Option<String>, PropagationError> {
        let mut entries = self.locked()?;
        match entries.get(key) {
            Some((value, expires)) if *expires > Instant::now() => {
                if value.len() > max_bytes {
                    return Err(too_large(key, value.len() as u64, max_bytes));
                }
                Ok(Some(value.clone()))
            }
            Some(_) => {
                entries.pop(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }
}

fn too_large(key: &str, size: u64, limit: usize) -> PropagationError {
    PropagationError::ClaimTooLarge {
        claim: kest_canon::escape_untrusted(key, 80),
        size,
        limit,
    }
}

/// A Redis store, shared by every service that points at the same server (feature
/// `redis`). Values are written with `SET key value EX ttl`.
#[cfg(feature = "redis")]
#[derive(Clone)]
pub struct RedisClaimStore {
    connection: redis::aio::ConnectionManager,
    url: String,
}

#[cfg(feature = "redis")]
impl fmt::Debug for RedisClaimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: show only where it points.
        let shown = self.url.rsplit('@').next().unwrap_or_default();
        f.debug_struct("RedisClaimStore")
            .field("server", &shown)
            .finish()
    }
}

#[cfg(feature = "redis")]
impl RedisClaimStore {
    /// Connects to the Redis server at `url` (`redis://host:port/db`).
    ///
    /// # Errors
    /// [`PropagationError::Store`] when the URL is malformed or the server does not answer.
    pub async fn connect(url: &str) -> Result<Self, PropagationError> {
        let store_error = |error: redis::RedisError| PropagationError::Store {
            reason: format!("redis: {error}"),
        };
        let client = redis::Client::open(url).map_err(store_error)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let connection = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(store_error)?;
        Ok(Self {
            connection,
            url: url.to_owned(),
        })
    }
}

#[cfg(feature = "redis")]
#[async_trait]
impl ClaimStore for RedisClaimStore {
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), PropagationError> {
        let mut connection = self.connection.clone();
        let seconds = ttl.as_secs().max(1);
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(seconds)
            .query_async::<()>(&mut connection)
            .await
            .map_err(|error| PropagationError::Store {
                reason: format!("redis SET {key}: {error}"),
            })
    }

    async fn get(&self, key: &str, max_bytes: usize) -> Result<Option<String>, PropagationError> {
        let mut connection = self.connection.clone();
        // One atomic script: the type and size are checked in the server, and the value
        // is sent only when it is a string within the limit, so a huge or foreign value
        // never crosses the connection (and cannot be swapped between check and read).
        let answer: (i64, redis::Value) = redis::cmd("EVAL")
            .arg(BOUNDED_GET)
            .arg(1)
            .arg(key)
            .arg(max_bytes)
            .query_async(&mut connection)
            .await
            .map_err(|error| PropagationError::Store {
                reason: format!(
                    "redis GET {}: {error}",
                    kest_canon::escape_untrusted(key, 80)
                ),
            })?;
        let unreadable = |reason: String| PropagationError::ClaimUnreadable {
            claim: kest_canon::escape_untrusted(key, 80),
            reason,
        };
        match answer {
            (0, _) => Ok(None),
            (1, redis::Value::BulkString(kind)) => Err(unreadable(format!(
                "it is a Redis {}, not a string",
                kest_canon::escape_untrusted(&String::from_utf8_lossy(&kind), 20)
            ))),
            (2, redis::Value::Int(size)) => Err(too_large(
                key,
                u64::try_from(size).unwrap_or(u64::MAX),
                max_bytes,
            )),
            (3, redis::Value::BulkString(bytes)) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| unreadable("it is not UTF-8 text".into())),
            (status, _) => Err(PropagationError::Store {
                reason: format!("redis: unexpected answer {status} to the bounded read"),
            }),
        }
    }
}

/// The bounded read of a claim, a script run in Redis (`EVAL`, atomic): `{0}` when the
/// key is absent, `{1, type}` for a value that is not a string, `{2, size}` for one over
/// the limit, and `{3, value}` otherwise. Small enough to send with every read.
#[cfg(feature = "redis")]
const BOUNDED_GET: &str = r"local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then return {0, ''} end
if kind ~= 'string' then return {1, kind} end
local size = redis.call('STRLEN', KEYS[1])
if size > tonumber(ARGV[1]) then return {2, size} end
return {3, redis.call('GET', KEYS[1])}";

/// The claim store a setting names, as `KEST_CLAIM_STORE` and configuration files spell
/// it: `memory`, or a `redis://` (or `rediss://`) URL, which needs the `redis` feature.
///
/// # Errors
/// [`PropagationError::InvalidSetting`] for anything else or a Redis URL in a build
/// without `redis`, and the store's error when Redis cannot be reached.
pub async fn claim_store_from_setting(
    setting: &str,
) -> Result<std::sync::Arc<dyn ClaimStore>, PropagationError> {
    let setting = setting.trim();
    if setting == "memory" {
        return Ok(std::sync::Arc::new(MemoryClaimStore::default()));
    }
    if setting.starts_with("redis://") || setting.starts_with("rediss://") {
        #[cfg(feature = "redis")]
        {
            return Ok(std::sync::Arc::new(
                RedisClaimStore::connect(setting).await?,
            ));
        }
        #[cfg(not(feature = "redis"))]
        {
            return Err(PropagationError::InvalidSetting {
                what: "claim store",
                value: kest_canon::escape_untrusted(setting, 80),
                reason: "a Redis store needs kest-propagation's `redis` feature",
            });
        }
    }
    Err(PropagationError::InvalidSetting {
        what: "claim store",
        value: kest_canon::escape_untrusted(setting, 80),
        reason: "must be `memory` or a redis:// URL",
    })
}
