//! Sharded map from stable series id to canonical label set.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::LabelPair;
use super::key::{LabelSetKey, decode_label_key};

/// Stable 64-bit series identifier: xxh3-64 of the canonical label-set key. It does not depend on the
/// process, the protocol or arrival order, so it survives restarts and can be shared with other systems.
pub type SeriesId = u64;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesRegistryConfig {
    /// Most distinct series kept at once. New series beyond it are rejected (429) and counted.
    pub max_series: u64,
}

impl Default for SeriesRegistryConfig {
    fn default() -> Self {
        Self { max_series: 5_000_000 }
    }
}

/// The map key is already a uniformly distributed hash; hashing it again would be wasted work.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type IdMap = HashMap<SeriesId, LabelSetKey, BuildHasherDefault<IdHasher>>;

const SHARDS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("series limit reached: {limit} active series (`series.max_series`)")]
    TooManySeries { limit: u64 },
}

/// The set of known series. Lookups of known series take a shared lock on one of 64 shards; only a new
/// series takes a write lock.
pub struct SeriesRegistry {
    shards: Box<[RwLock<IdMap>]>,
    count: AtomicU64,
    key_bytes: AtomicU64,
    max_series: u64,
}

impl std::fmt::Debug for SeriesRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesRegistry").field("series", &self.len()).finish()
    }
}

impl SeriesRegistry {
    pub fn new(config: &SeriesRegistryConfig) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(IdMap::default())).collect(),
            count: AtomicU64::new(0),
            key_bytes: AtomicU64::new(0),
            max_series: config.max_series,
        }
    }

    fn shard(&self, id: SeriesId) -> &RwLock<IdMap> {
        // The low bits pick the buffer shard; use high bits here so the two spreads are independent.
        &self.shards[(id >> 58) as usize % SHARDS]
    }

    /// Returns the id of the series whose canonical key is `key`, registering it if new.
    ///
    /// On the (astronomically rare) event of two label sets sharing an xxh3 hash, the later one is re-hashed
    /// with the next seed, so ids stay unique and deterministic for a given set of series.
    pub fn resolve(&self, key: &[u8]) -> Result<SeriesId, RegistryError> {
        let mut seed = 0u64;
        loop {
            let id = xxhash_rust::xxh3::xxh3_64_with_seed(key, seed);
            let shard = self.shard(id);
            if let Some(existing) = shard.read().get(&id) {
                if **existing == *key {
                    return Ok(id);
                }
                seed += 1;
                continue;
            }
            let mut map = shard.write();
            match map.get(&id) {
                Some(existing) if **existing == *key => return Ok(id),
                Some(_) => {
                    seed += 1;
                    continue;
                }
                None => {
                    if self.count.load(Ordering::Relaxed) >= self.max_series {
                        return Err(RegistryError::TooManySeries { limit: self.max_series });
                    }
                    map.insert(id, Arc::from(key));
                    self.count.fetch_add(1, Ordering::Relaxed);
                    self.key_bytes.fetch_add(key.len() as u64, Ordering::Relaxed);
                    return Ok(id);
                }
            }
        }
    }

    /// The id of an already registered label set, without registering anything.
    pub fn lookup(&self, key: &[u8]) -> Option<SeriesId> {
        let mut seed = 0u64;
        loop {
            let id = xxhash_rust::xxh3::xxh3_64_with_seed(key, seed);
            match self.shard(id).read().get(&id) {
                Some(existing) if **existing == *key => return Some(id),
                Some(_) => seed += 1,
                None => return None,
            }
        }
    }

    /// The canonical key of a series, if known.
    pub fn key(&self, id: SeriesId) -> Option<LabelSetKey> {
        self.shard(id).read().get(&id).cloned()
    }

    /// Calls `f` with the labels of a series, if known.
    pub fn with_labels<R>(
        &self,
        id: SeriesId,
        f: impl FnOnce(&mut dyn Iterator<Item = LabelPair<'_>>) -> R,
    ) -> Option<R> {
        let key = self.key(id)?;
        Some(f(&mut decode_label_key(&key)))
    }

    pub fn len(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap held by the registry.
    pub fn memory_bytes(&self) -> u64 {
        // key bytes + Arc header + map slot (id, fat pointer) with hashbrown's load factor.
        self.key_bytes.load(Ordering::Relaxed) + self.len() * (16 + 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::key::push_label;

    fn key(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut k = Vec::new();
        for (n, v) in pairs {
            push_label(&mut k, n.as_bytes(), v.as_bytes());
        }
        k
    }

    #[test]
    fn same_labels_same_id_and_stable() {
        let reg = SeriesRegistry::new(&SeriesRegistryConfig::default());
        let a = key(&[("__name__", "up"), ("job", "a")]);
        let id = reg.resolve(&a).unwrap();
        assert_eq!(reg.resolve(&a).unwrap(), id);
        assert_eq!(id, xxhash_rust::xxh3::xxh3_64(&a), "id must be the plain hash of the key");
        let other = reg.resolve(&key(&[("__name__", "up"), ("job", "b")])).unwrap();
        assert_ne!(id, other);
        assert_eq!(reg.len(), 2);
        let labels = reg.with_labels(id, |it| it.map(|p| format!("{}={}", p.name, p.value)).collect::<Vec<_>>());
        assert_eq!(labels.unwrap(), vec!["__name__=up", "job=a"]);
    }

    #[test]
    fn limit_is_enforced() {
        let reg = SeriesRegistry::new(&SeriesRegistryConfig { max_series: 1 });
        reg.resolve(&key(&[("__name__", "a")])).unwrap();
        assert_eq!(reg.resolve(&key(&[("__name__", "a")])), Ok(xxhash_rust::xxh3::xxh3_64(&key(&[("__name__", "a")]))));
        assert_eq!(reg.resolve(&key(&[("__name__", "b")])), Err(RegistryError::TooManySeries { limit: 1 }));
    }
}
