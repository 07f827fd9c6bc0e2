//! The SLA answer cache: answers the read API computed, kept until the store's data changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many answers the cache keeps before it starts over: enough for the dashboard's and the
/// public API's usual queries, small enough that a crawler's distinct queries cannot grow it.
const CACHE_ENTRIES: usize = 256;

/// SLA answers computed for one data version of the store ([`crate::store::Store::sla_generation`]),
/// by endpoint and parsed query. An answer depends only on the stored sums and the parsed query
/// (whose window is already resolved against the clock), so it stays exact until the data
/// version changes; the cache is then emptied.
#[derive(Debug, Default)]
pub struct ResponseCache {
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    generation: u64,
    bodies: HashMap<String, Arc<str>>,
}

impl ResponseCache {
    /// The answer stored under `key` for data version `generation`.
    pub fn get(&self, generation: u64, key: &str) -> Option<Arc<str>> {
        let inner = self.lock();
        (inner.generation == generation)
            .then(|| inner.bodies.get(key).cloned())
            .flatten()
    }

    /// Stores an answer computed at data version `generation`.
    pub fn put(&self, generation: u64, key: String, body: Arc<str>) {
        let mut inner = self.lock();
        if inner.generation != generation || inner.bodies.len() >= CACHE_ENTRIES {
            inner.bodies.clear();
            inner.generation = generation;
        }
        inner.bodies.insert(key, body);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A panic while holding the lock can only leave a half-updated map of complete answers;
        // every entry is still a whole answer, so the cache stays usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_answers_only_for_the_data_version_it_was_filled_at() {
        let cache = ResponseCache::default();
        assert_eq!(cache.get(1, "a"), None);
        cache.put(1, "a".into(), "one".into());
        assert_eq!(cache.get(1, "a").as_deref(), Some("one"));
        assert_eq!(cache.get(1, "b"), None);
        assert_eq!(cache.get(2, "a"), None, "a new data version misses");
        cache.put(2, "b".into(), "two".into());
        assert_eq!(
            cache.get(1, "a"),
            None,
            "entries of the old version are gone"
        );
        assert_eq!(cache.get(2, "b").as_deref(), Some("two"));
        for index in 0..CACHE_ENTRIES * 2 {
            cache.put(2, format!("k{index}"), "x".into());
        }
        assert!(cache.lock().bodies.len() <= CACHE_ENTRIES, "bounded");
    }
}
