//! Sharded map from stable series id to canonical label set, with the label sets in a slot arena.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::LabelPair;
use super::key::{LabelSetKey, decode_label_key};

/// Stable 64-bit series identifier: the low half of the xxh3-128 hash of the canonical label-set key. It does
/// not depend on the process, the protocol or arrival order, so it survives restarts.
pub type SeriesId = u64;

/// A resolved series: its stable id, and its slot in this process' registry (a dense index that reaches the
/// label set without hashing; not stable across restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRef {
    pub id: SeriesId,
    pub slot: u32,
}

/// The two halves of a key's xxh3-128 hash: the id, and a check value compared instead of the key bytes.
/// Two different label sets agreeing on all 128 bits is not a practical concern (p ≈ n²/2¹²⁹).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash {
    id: u64,
    check: u64,
}

impl KeyHash {
    pub fn of(key: &[u8]) -> Self {
        Self::with_seed(key, 0)
    }

    fn with_seed(key: &[u8], seed: u64) -> Self {
        let h = xxhash_rust::xxh3::xxh3_128_with_seed(key, seed);
        Self { id: h as u64, check: (h >> 64) as u64 }
    }
}

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

#[derive(Debug, Clone, Copy)]
struct Entry {
    check: u64,
    slot: u32,
}

type IdMap = HashMap<SeriesId, Entry, BuildHasherDefault<IdHasher>>;

const SHARDS: usize = 64;

fn shard_of(id: SeriesId) -> usize {
    // The low bits pick the buffer shard; use high bits here so the two spreads are independent.
    (id >> 58) as usize % SHARDS
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("series limit reached: {limit} active series (`series.max_series`)")]
    TooManySeries { limit: u64 },
}

/// What a batched lookup found for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found(SeriesRef),
    /// Not registered (or its id collides with another set's): resolve it with [`SeriesRegistry::resolve`].
    Missing,
}

/// The set of known series.
///
/// Reads are cheap: a lookup compares 128 hash bits and never touches the label bytes, and
/// [`SeriesRegistry::lookup_batch`] takes each of the 64 shard locks once per request rather than once per
/// series. Label sets live in an append-only arena ([`boxcar`]: lock-free reads) indexed by slot, so the
/// forwarders reach a series' labels without hashing or locking.
pub struct SeriesRegistry {
    shards: Box<[RwLock<IdMap>]>,
    keys: boxcar::Vec<LabelSetKey>,
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
            keys: boxcar::Vec::new(),
            count: AtomicU64::new(0),
            key_bytes: AtomicU64::new(0),
            max_series: config.max_series,
        }
    }

    /// The series of an already registered label set, without registering anything.
    pub fn lookup(&self, key: &[u8]) -> Option<SeriesRef> {
        let mut seed = 0;
        loop {
            let h = KeyHash::with_seed(key, seed);
            match self.shards[shard_of(h.id)].read().get(&h.id) {
                Some(e) if e.check == h.check => return Some(SeriesRef { id: h.id, slot: e.slot }),
                Some(_) => seed += 1,
                None => return None,
            }
        }
    }

    /// Looks up many keys at once, taking each shard's lock once. `out[i]` answers `hashes[i]`.
    pub fn lookup_batch(&self, hashes: &[KeyHash], order: &mut Vec<u32>, out: &mut Vec<Lookup>) {
        out.clear();
        out.resize(hashes.len(), Lookup::Missing);
        order.clear();
        order.extend(0..hashes.len() as u32);
        order.sort_unstable_by_key(|&i| shard_of(hashes[i as usize].id));
        let mut at = 0;
        while at < order.len() {
            let shard = shard_of(hashes[order[at] as usize].id);
            let map = self.shards[shard].read();
            while at < order.len() && shard_of(hashes[order[at] as usize].id) == shard {
                let i = order[at] as usize;
                if let Some(e) = map.get(&hashes[i].id)
                    && e.check == hashes[i].check
                {
                    out[i] = Lookup::Found(SeriesRef { id: hashes[i].id, slot: e.slot });
                }
                at += 1;
            }
        }
    }

    /// Returns the series whose canonical key is `key`, registering it if new.
    ///
    /// If two label sets ever shared a 64-bit id, the later one is re-hashed with the next seed, so ids stay
    /// unique and deterministic for a given set of series.
    pub fn resolve(&self, key: &[u8]) -> Result<SeriesRef, RegistryError> {
        let mut seed = 0;
        loop {
            let h = KeyHash::with_seed(key, seed);
            let mut map = self.shards[shard_of(h.id)].write();
            match map.get(&h.id) {
                Some(e) if e.check == h.check => return Ok(SeriesRef { id: h.id, slot: e.slot }),
                Some(_) => seed += 1,
                None => {
                    if self.count.load(Ordering::Relaxed) >= self.max_series {
                        return Err(RegistryError::TooManySeries { limit: self.max_series });
                    }
                    let slot = self.keys.push(Arc::from(key)) as u32;
                    map.insert(h.id, Entry { check: h.check, slot });
                    self.count.fetch_add(1, Ordering::Relaxed);
                    self.key_bytes.fetch_add(key.len() as u64, Ordering::Relaxed);
                    return Ok(SeriesRef { id: h.id, slot });
                }
            }
        }
    }

    /// The canonical key of a series by slot: no hashing, no lock.
    pub fn key_by_slot(&self, slot: u32) -> Option<&[u8]> {
        self.keys.get(slot as usize).map(|k| &k[..])
    }

    /// The canonical key of a series by id.
    pub fn key(&self, id: SeriesId) -> Option<LabelSetKey> {
        let slot = self.shards[shard_of(id)].read().get(&id)?.slot;
        self.keys.get(slot as usize).cloned()
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
        // key bytes + Arc header + arena slot + map slot (id, entry) with hashbrown's load factor.
        self.key_bytes.load(Ordering::Relaxed) + self.len() * (16 + 16 + 40)
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
        let s = reg.resolve(&a).unwrap();
        assert_eq!(reg.resolve(&a).unwrap(), s);
        assert_eq!(reg.lookup(&a), Some(s));
        assert_eq!(s.id, xxhash_rust::xxh3::xxh3_128(&a) as u64, "id must be the plain hash of the key");
        let other = reg.resolve(&key(&[("__name__", "up"), ("job", "b")])).unwrap();
        assert_ne!(s.id, other.id);
        assert_ne!(s.slot, other.slot);
        assert_eq!(reg.len(), 2);
        assert_eq!(reg.key_by_slot(s.slot), Some(&a[..]));
        let labels = reg.with_labels(s.id, |it| it.map(|p| format!("{}={}", p.name, p.value)).collect::<Vec<_>>());
        assert_eq!(labels.unwrap(), vec!["__name__=up", "job=a"]);
    }

    #[test]
    fn batch_lookup_matches_single_lookups() {
        let reg = SeriesRegistry::new(&SeriesRegistryConfig::default());
        let keys: Vec<Vec<u8>> = (0..500).map(|i| key(&[("__name__", "m"), ("i", &i.to_string())])).collect();
        let known: Vec<SeriesRef> = keys.iter().step_by(2).map(|k| reg.resolve(k).unwrap()).collect();
        let hashes: Vec<KeyHash> = keys.iter().map(|k| KeyHash::of(k)).collect();
        let (mut order, mut out) = (Vec::new(), Vec::new());
        reg.lookup_batch(&hashes, &mut order, &mut out);
        for (i, r) in out.iter().enumerate() {
            if i % 2 == 0 {
                assert_eq!(*r, Lookup::Found(known[i / 2]));
            } else {
                assert_eq!(*r, Lookup::Missing);
            }
        }
    }

    #[test]
    fn limit_is_enforced() {
        let reg = SeriesRegistry::new(&SeriesRegistryConfig { max_series: 1 });
        let a = reg.resolve(&key(&[("__name__", "a")])).unwrap();
        assert_eq!(reg.resolve(&key(&[("__name__", "a")])), Ok(a));
        assert_eq!(reg.resolve(&key(&[("__name__", "b")])), Err(RegistryError::TooManySeries { limit: 1 }));
    }
}
