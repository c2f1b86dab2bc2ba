//! A bounded cache of answers keyed by a credential's SHA-256, each kept
//! until its own expiry: verified tokens, introspection answers, Basic
//! verifications. Sharded so workers rarely meet on a lock; a full shard
//! drops its expired entries first, then an eighth of the rest (an evicted
//! credential is just checked again).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

const SHARDS: usize = 16;

struct Entry<V> {
    value: V,
    until: i64,
}

pub struct ExpiringCache<V> {
    shard_capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<[u8; 32], Entry<V>>>>,
}

impl<V: Clone> ExpiringCache<V> {
    /// A cache of about `capacity` entries in all.
    pub fn new(capacity: usize) -> Self {
        ExpiringCache {
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> Option<&Mutex<HashMap<[u8; 32], Entry<V>>>> {
        let i = self.hasher.hash_one(key) % SHARDS as u64;
        self.shards.get(usize::try_from(i).unwrap_or(0))
    }

    /// The value for `key` if it has not expired by `now`.
    pub fn get(&self, key: &[u8; 32], now: i64) -> Option<V> {
        let map = self.shard(key)?.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|e| e.until > now)
            .map(|e| e.value.clone())
    }

    /// Keeps `value` until `until` (nothing is kept past its expiry).
    pub fn insert(&self, key: [u8; 32], value: V, until: i64, now: i64) {
        if until <= now {
            return;
        }
        let Some(shard) = self.shard(&key) else {
            return;
        };
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.shard_capacity && !map.contains_key(&key) {
            map.retain(|_, e| e.until > now);
            if map.len() >= self.shard_capacity {
                let victims: Vec<[u8; 32]> = map
                    .keys()
                    .take(self.shard_capacity.div_ceil(8))
                    .copied()
                    .collect();
                for v in victims {
                    map.remove(&v);
                }
            }
        }
        map.insert(key, Entry { value, until });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let c = ExpiringCache::new(32);
        c.insert([1; 32], "a", 100, 0);
        assert_eq!(c.get(&[1; 32], 99), Some("a"));
        assert_eq!(c.get(&[1; 32], 100), None);
        c.insert([2; 32], "expired", 5, 5);
        assert_eq!(c.get(&[2; 32], 0), None);
        for i in 0..10_000u32 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_be_bytes());
            c.insert(k, "x", 1_000, 0);
        }
        let held: usize = c.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= 32 + SHARDS, "{held}");
    }
}
