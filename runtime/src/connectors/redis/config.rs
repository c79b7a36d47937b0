use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::connectors::cache::CacheConfig;
use crate::connectors::staged::WriteMode;

/// `kind = "redis"` dimension: row `key` lives at Redis key `key_prefix + key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisDimensionConfig {
    /// A `redis` connection of the registry.
    pub connection: String,
    /// Put before every row key, e.g. `"user:"`; keeps the store's keys apart
    /// from other data in the same database (and is what `rows()` scans).
    #[serde(default)]
    pub key_prefix: String,
    #[serde(default)]
    pub layout: RedisLayout,
    /// Expiry set on every write; none by default.
    #[serde(default, with = "humantime_serde")]
    pub ttl: Option<Duration>,
    /// The read cache in front of Redis.
    #[serde(default)]
    pub cache: CacheConfig,
    /// When the job's writes reach Redis: `immediate`, or `snapshot` (with
    /// each snapshot, for effectively-once results across restores).
    #[serde(default)]
    pub writes: WriteMode,
}

/// How a row is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisLayout {
    /// The row's JSON text as a string value (GET/SET).
    #[default]
    Json,
    /// A hash, one field per top-level JSON field (HGETALL/HSET); field
    /// values come back as strings.
    Hash,
}
