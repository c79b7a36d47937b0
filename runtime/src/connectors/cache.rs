//! The read cache in front of remote dimension stores: bounded by entry
//! count and time to live, and written through, so a job reads its own
//! writes (premium-drop looks up a user and then updates the same row).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use serde::{Deserialize, Serialize};

use super::{ConnectorError, DimensionStore};

/// `cache = { max_entries = 100000, ttl = "60s" }` on a dimension store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Most rows kept; 0 turns the cache off.
    pub max_entries: u64,
    /// How long a cached row (or a cached miss) is trusted: rows changed in
    /// the store by someone else are seen after at most this long.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { max_entries: 100_000, ttl: Duration::from_secs(60) }
    }
}

/// A dimension store behind a cache. Misses are cached too (as `None`), so
/// a stream of keys absent from the store does not hit it every time.
pub struct CachedDimension {
    store: Arc<dyn DimensionStore>,
    cache: Option<RowCache>,
}

/// Key -> row, or `None` for a key the store does not have.
type RowCache = Cache<Vec<u8>, Option<Arc<[u8]>>>;

impl CachedDimension {
    pub fn new(store: Arc<dyn DimensionStore>, config: &CacheConfig) -> Self {
        let cache = (config.max_entries > 0)
            .then(|| Cache::builder().max_capacity(config.max_entries).time_to_live(config.ttl).build());
        CachedDimension { store, cache }
    }
}

#[async_trait]
impl DimensionStore for CachedDimension {
    async fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ConnectorError> {
        let Some(cache) = &self.cache else { return self.store.lookup(key).await };
        if let Some(hit) = cache.get(key).await {
            return Ok(hit.map(|row| row.to_vec()));
        }
        let row = self.store.lookup(key).await?;
        cache.insert(key.to_vec(), row.as_deref().map(Arc::from)).await;
        Ok(row)
    }

    async fn upsert(&self, key: &[u8], row: &[u8]) -> Result<(), ConnectorError> {
        // The store first: if it fails, the cache does not claim a write
        // that did not happen.
        self.store.upsert(key, row).await?;
        if let Some(cache) = &self.cache {
            cache.insert(key.to_vec(), Some(Arc::from(row))).await;
        }
        Ok(())
    }

    async fn rows(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ConnectorError> {
        self.store.rows().await
    }

    /// The store's own fenced commit (the default's upserts would bypass
    /// its fence), then the cache, as for [`upsert`](Self::upsert).
    async fn commit_fenced(
        &self,
        fences: &[(String, u64)],
        writes: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), ConnectorError> {
        self.store.commit_fenced(fences, writes).await?;
        if let Some(cache) = &self.cache {
            for (key, row) in writes {
                cache.insert(key.clone(), Some(Arc::from(row.as_slice()))).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::connectors::memory::MemoryDimension;

    /// Counts the lookups that reach the store.
    #[derive(Default)]
    struct Counting {
        inner: MemoryDimension,
        lookups: AtomicUsize,
    }

    #[async_trait]
    impl DimensionStore for Counting {
        async fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ConnectorError> {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            self.inner.lookup(key).await
        }
        async fn upsert(&self, key: &[u8], row: &[u8]) -> Result<(), ConnectorError> {
            self.inner.upsert(key, row).await
        }
        async fn rows(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ConnectorError> {
            self.inner.rows().await
        }
    }

    #[tokio::test]
    async fn hits_and_misses_are_cached_and_writes_go_through() {
        let store = Arc::new(Counting::default());
        store.inner.upsert(b"a", b"1").await.unwrap();
        let cached = CachedDimension::new(store.clone(), &CacheConfig::default());
        for _ in 0..3 {
            assert_eq!(cached.lookup(b"a").await.unwrap(), Some(b"1".to_vec()));
            assert_eq!(cached.lookup(b"missing").await.unwrap(), None);
        }
        assert_eq!(store.lookups.load(Ordering::Relaxed), 2);

        cached.upsert(b"missing", b"2").await.unwrap();
        assert_eq!(cached.lookup(b"missing").await.unwrap(), Some(b"2".to_vec()), "reads its own write");
        assert_eq!(store.inner.lookup(b"missing").await.unwrap(), Some(b"2".to_vec()), "written through");
        assert_eq!(store.lookups.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn entries_expire_after_the_ttl() {
        let store = Arc::new(Counting::default());
        let cached =
            CachedDimension::new(store.clone(), &CacheConfig { max_entries: 10, ttl: Duration::from_millis(50) });
        cached.lookup(b"a").await.unwrap();
        store.inner.upsert(b"a", b"changed elsewhere").await.unwrap();
        assert_eq!(cached.lookup(b"a").await.unwrap(), None, "within the ttl the cached miss holds");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(cached.lookup(b"a").await.unwrap(), Some(b"changed elsewhere".to_vec()));
    }
}
