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
    /// The hash of `key` as a series of `tenant`.
    pub fn of(tenant: Tenant, key: &[u8]) -> Self {
        Self::with_seed(key, tenant.seed)
    }

    fn with_seed(key: &[u8], seed: u64) -> Self {
        let h = xxhash_rust::xxh3::xxh3_128_with_seed(key, seed);
        Self { id: h as u64, check: (h >> 64) as u64 }
    }
}

/// A tenant as the registry knows it: a dense index (stored with each series) and the seed its series'
/// keys are hashed with, so that one label set sent by two tenants is two series with two ids.
///
/// The default tenant hashes with seed 0, so a single-tenant deployment's ids are the plain xxh3 of the key;
/// any other tenant's seed is derived from its name, so ids stay stable across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant {
    index: u32,
    seed: u64,
}

impl Tenant {
    /// The tenant of requests that name none.
    pub const DEFAULT: Tenant = Tenant { index: 0, seed: 0 };

    /// Dense index of the tenant in this process (0 is the default tenant); see [`SeriesRegistry::tenant_name`].
    pub fn index(self) -> u32 {
        self.index
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesRegistryConfig {
    /// Most distinct series kept at once. New series beyond it are rejected (429) and counted.
    pub max_series: u64,
    /// Most distinct tenants (`X-Scope-OrgID` values) whose metrics are kept; requests of further tenants
    /// are refused (429).
    pub max_tenants: u32,
    /// Most distinct series kept at once for one tenant; a tenant at its cap gets no new series (refused
    /// like those over `max_series`), while its known series are still accepted. 0 (the default) means
    /// `max_series`, so a single-tenant setup is only ever bound by the global cap.
    pub max_series_per_tenant: u64,
}

impl Default for SeriesRegistryConfig {
    fn default() -> Self {
        Self { max_series: 5_000_000, max_tenants: 10_000, max_series_per_tenant: 0 }
    }
}

impl SeriesRegistryConfig {
    /// `max_series_per_tenant` with 0 read as `max_series`.
    pub fn series_per_tenant(&self) -> u64 {
        if self.max_series_per_tenant == 0 { self.max_series } else { self.max_series_per_tenant }
    }
}

/// For maps keyed by series id: the id is already a uniformly distributed hash, and hashing it again
/// would be wasted work.
#[derive(Debug, Default)]
pub struct IdHasher(u64);

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
    tenant: u32,
}

impl Entry {
    fn is(&self, h: &KeyHash, tenant: Tenant) -> bool {
        self.check == h.check && self.tenant == tenant.index
    }
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
    /// The tenant's own cap; the name is the validated `X-Scope-OrgID`, safe to send back.
    #[error("series limit reached: tenant {tenant:?} has {series} series, `series.max_series_per_tenant` = {limit}")]
    TooManySeriesForTenant { tenant: String, series: u64, limit: u64 },
    #[error("tenant limit reached: {limit} tenants (`series.max_tenants`)")]
    TooManyTenants { limit: u32 },
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
    /// By slot: the label set and the index of its tenant.
    keys: boxcar::Vec<(LabelSetKey, u32)>,
    count: AtomicU64,
    key_bytes: AtomicU64,
    max_series: u64,
    tenants: RwLock<HashMap<Arc<str>, Tenant>>,
    /// By tenant index: its name and how many series it has.
    tenant_entries: boxcar::Vec<TenantEntry>,
    max_tenants: u32,
    max_series_per_tenant: u64,
}

#[derive(Debug)]
struct TenantEntry {
    name: Arc<str>,
    /// Series registered for this tenant; only grows (the registry never forgets a series).
    series: AtomicU64,
}

impl TenantEntry {
    fn new(name: Arc<str>) -> Self {
        Self { name, series: AtomicU64::new(0) }
    }
}

impl std::fmt::Debug for SeriesRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesRegistry").field("series", &self.len()).finish()
    }
}

impl SeriesRegistry {
    /// A registry whose tenant index 0 (hash seed 0) is `default_tenant`, the tenant of requests that name
    /// none.
    pub fn new(config: &SeriesRegistryConfig, default_tenant: &str) -> Self {
        let default: Arc<str> = Arc::from(default_tenant);
        let tenant_entries = boxcar::Vec::new();
        tenant_entries.push(TenantEntry::new(Arc::clone(&default)));
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(IdMap::default())).collect(),
            keys: boxcar::Vec::new(),
            count: AtomicU64::new(0),
            key_bytes: AtomicU64::new(0),
            max_series: config.max_series,
            tenants: RwLock::new(HashMap::from([(default, Tenant { index: 0, seed: 0 })])),
            tenant_entries,
            max_tenants: config.max_tenants.max(1),
            max_series_per_tenant: config.series_per_tenant(),
        }
    }

    /// The tenant of requests that name none.
    pub fn default_tenant(&self) -> Tenant {
        Tenant::DEFAULT
    }

    /// The tenant called `name`, known from now on.
    pub fn tenant(&self, name: &str) -> Result<Tenant, RegistryError> {
        if let Some(t) = self.tenants.read().get(name) {
            return Ok(*t);
        }
        let mut tenants = self.tenants.write();
        if let Some(t) = tenants.get(name) {
            return Ok(*t);
        }
        if tenants.len() >= self.max_tenants as usize {
            return Err(RegistryError::TooManyTenants { limit: self.max_tenants });
        }
        let name: Arc<str> = Arc::from(name);
        let index = self.tenant_entries.push(TenantEntry::new(Arc::clone(&name))) as u32;
        // Never seed 0: that is the default tenant's.
        let tenant = Tenant { index, seed: xxhash_rust::xxh3::xxh3_64(name.as_bytes()) | 1 };
        tenants.insert(name, tenant);
        Ok(tenant)
    }

    /// The name of the tenant with this index.
    pub fn tenant_name(&self, index: u32) -> Option<&Arc<str>> {
        self.tenant_entries.get(index as usize).map(|t| &t.name)
    }

    /// How many series the tenant with this index has.
    pub fn tenant_series(&self, index: u32) -> u64 {
        self.tenant_entries.get(index as usize).map_or(0, |t| t.series.load(Ordering::Relaxed))
    }

    /// The series of an already registered label set, without registering anything.
    pub fn lookup(&self, tenant: Tenant, key: &[u8]) -> Option<SeriesRef> {
        let mut seed = tenant.seed;
        loop {
            let h = KeyHash::with_seed(key, seed);
            match self.shards[shard_of(h.id)].read().get(&h.id) {
                Some(e) if e.is(&h, tenant) => return Some(SeriesRef { id: h.id, slot: e.slot }),
                Some(_) => seed = seed.wrapping_add(1),
                None => return None,
            }
        }
    }

    /// Looks up many keys of one tenant at once (hashed with [`KeyHash::of`] for that tenant), taking each
    /// shard's lock once. `out[i]` answers `hashes[i]`.
    pub fn lookup_batch(&self, tenant: Tenant, hashes: &[KeyHash], order: &mut Vec<u32>, out: &mut Vec<Lookup>) {
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
                    && e.is(&hashes[i], tenant)
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
    pub fn resolve(&self, tenant: Tenant, key: &[u8]) -> Result<SeriesRef, RegistryError> {
        let mut seed = tenant.seed;
        loop {
            let h = KeyHash::with_seed(key, seed);
            let mut map = self.shards[shard_of(h.id)].write();
            match map.get(&h.id) {
                Some(e) if e.is(&h, tenant) => return Ok(SeriesRef { id: h.id, slot: e.slot }),
                Some(_) => seed = seed.wrapping_add(1),
                None => {
                    if self.count.load(Ordering::Relaxed) >= self.max_series {
                        return Err(RegistryError::TooManySeries { limit: self.max_series });
                    }
                    self.count_tenant_series(tenant)?;
                    let slot = self.keys.push((Arc::from(key), tenant.index)) as u32;
                    map.insert(h.id, Entry { check: h.check, slot, tenant: tenant.index });
                    self.count.fetch_add(1, Ordering::Relaxed);
                    self.key_bytes.fetch_add(key.len() as u64, Ordering::Relaxed);
                    return Ok(SeriesRef { id: h.id, slot });
                }
            }
        }
    }

    /// Counts one more series for `tenant`, unless it is at `series.max_series_per_tenant`. Exact (unlike
    /// the global count, which concurrent inserts in other shards may overshoot by a few).
    fn count_tenant_series(&self, tenant: Tenant) -> Result<(), RegistryError> {
        let Some(entry) = self.tenant_entries.get(tenant.index as usize) else { return Ok(()) };
        let limit = self.max_series_per_tenant;
        entry
            .series
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < limit).then_some(n + 1))
            .map(drop)
            .map_err(|series| RegistryError::TooManySeriesForTenant { tenant: entry.name.to_string(), series, limit })
    }

    /// The canonical key of a series by slot: no hashing, no lock.
    pub fn key_by_slot(&self, slot: u32) -> Option<&[u8]> {
        self.keys.get(slot as usize).map(|(k, _)| &k[..])
    }

    /// The canonical key and tenant index of a series by slot: no hashing, no lock.
    pub fn series_by_slot(&self, slot: u32) -> Option<(&[u8], u32)> {
        self.keys.get(slot as usize).map(|(k, t)| (&k[..], *t))
    }

    /// The canonical key of a series by id.
    pub fn key(&self, id: SeriesId) -> Option<LabelSetKey> {
        self.series(id).map(|(k, _)| k)
    }

    /// The canonical key and tenant index of a series by id.
    pub fn series(&self, id: SeriesId) -> Option<(LabelSetKey, u32)> {
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
        let reg = SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous");
        let t = reg.default_tenant();
        let a = key(&[("__name__", "up"), ("job", "a")]);
        let s = reg.resolve(t, &a).unwrap();
        assert_eq!(reg.resolve(t, &a).unwrap(), s);
        assert_eq!(reg.lookup(t, &a), Some(s));
        assert_eq!(s.id, xxhash_rust::xxh3::xxh3_128(&a) as u64, "id must be the plain hash of the key");
        let other = reg.resolve(t, &key(&[("__name__", "up"), ("job", "b")])).unwrap();
        assert_ne!(s.id, other.id);
        assert_ne!(s.slot, other.slot);
        assert_eq!(reg.len(), 2);
        assert_eq!(reg.key_by_slot(s.slot), Some(&a[..]));
        let labels = reg.with_labels(s.id, |it| it.map(|p| format!("{}={}", p.name, p.value)).collect::<Vec<_>>());
        assert_eq!(labels.unwrap(), vec!["__name__=up", "job=a"]);
    }

    #[test]
    fn batch_lookup_matches_single_lookups() {
        let reg = SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous");
        let t = reg.default_tenant();
        let keys: Vec<Vec<u8>> = (0..500).map(|i| key(&[("__name__", "m"), ("i", &i.to_string())])).collect();
        let known: Vec<SeriesRef> = keys.iter().step_by(2).map(|k| reg.resolve(t, k).unwrap()).collect();
        let hashes: Vec<KeyHash> = keys.iter().map(|k| KeyHash::of(t, k)).collect();
        let (mut order, mut out) = (Vec::new(), Vec::new());
        reg.lookup_batch(t, &hashes, &mut order, &mut out);
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
        let reg = SeriesRegistry::new(
            &SeriesRegistryConfig { max_series: 1, max_tenants: 2, ..SeriesRegistryConfig::default() },
            "anonymous",
        );
        let t = reg.default_tenant();
        let a = reg.resolve(t, &key(&[("__name__", "a")])).unwrap();
        assert_eq!(reg.resolve(t, &key(&[("__name__", "a")])), Ok(a));
        assert_eq!(reg.resolve(t, &key(&[("__name__", "b")])), Err(RegistryError::TooManySeries { limit: 1 }));
    }

    #[test]
    fn a_tenant_at_its_cap_gets_no_new_series_and_others_are_unaffected() {
        let config = SeriesRegistryConfig { max_series: 100, max_tenants: 3, max_series_per_tenant: 2 };
        let reg = SeriesRegistry::new(&config, "anonymous");
        let (a, b) = (reg.tenant("team-a").unwrap(), reg.tenant("team-b").unwrap());
        let k = |i: u32| key(&[("__name__", "m"), ("i", &i.to_string())]);
        let (a0, a1) = (reg.resolve(a, &k(0)).unwrap(), reg.resolve(a, &k(1)).unwrap());
        let err = reg.resolve(a, &k(2)).unwrap_err();
        assert_eq!(err, RegistryError::TooManySeriesForTenant { tenant: "team-a".into(), series: 2, limit: 2 });
        assert_eq!(
            err.to_string(),
            "series limit reached: tenant \"team-a\" has 2 series, `series.max_series_per_tenant` = 2"
        );
        // The capped tenant's known series still resolve, and the refusal registered nothing.
        assert_eq!(reg.resolve(a, &k(0)), Ok(a0));
        assert_eq!(reg.resolve(a, &k(1)), Ok(a1));
        assert_eq!(reg.lookup(a, &k(2)), None);
        assert_eq!((reg.len(), reg.tenant_series(a.index())), (2, 2));
        // Another tenant, the same label sets: its own budget.
        for i in 0..2 {
            reg.resolve(b, &k(i)).unwrap();
        }
        assert!(matches!(reg.resolve(b, &k(2)), Err(RegistryError::TooManySeriesForTenant { .. })));
        let d = reg.default_tenant();
        reg.resolve(d, &k(0)).unwrap();
        assert_eq!(
            (reg.tenant_series(a.index()), reg.tenant_series(b.index()), reg.tenant_series(d.index()), reg.len()),
            (2, 2, 1, 5)
        );
    }

    #[test]
    fn the_per_tenant_cap_defaults_to_the_global_cap() {
        let config = SeriesRegistryConfig { max_series: 3, ..SeriesRegistryConfig::default() };
        assert_eq!(config.series_per_tenant(), 3, "0 reads as max_series");
        assert_eq!(SeriesRegistryConfig::default().series_per_tenant(), SeriesRegistryConfig::default().max_series);
        let reg = SeriesRegistry::new(&config, "anonymous");
        let t = reg.default_tenant();
        for i in 0..3 {
            reg.resolve(t, &key(&[("__name__", "m"), ("i", &i.to_string())])).unwrap();
        }
        // The global cap is what a single tenant meets, with the global message.
        assert_eq!(reg.resolve(t, &key(&[("__name__", "x")])), Err(RegistryError::TooManySeries { limit: 3 }));
        assert_eq!(reg.tenant_series(t.index()), 3);
    }

    #[test]
    fn tenants_keep_their_series_apart() {
        let reg = SeriesRegistry::new(
            &SeriesRegistryConfig { max_series: 10, max_tenants: 3, ..SeriesRegistryConfig::default() },
            "anonymous",
        );
        let k = key(&[("__name__", "up")]);
        let (default, a, b) = (reg.default_tenant(), reg.tenant("a").unwrap(), reg.tenant("b").unwrap());
        assert_eq!(reg.tenant("anonymous").unwrap(), default, "the default tenant by name is the default tenant");
        assert_eq!(reg.tenant("a").unwrap(), a);
        let (sd, sa, sb) =
            (reg.resolve(default, &k).unwrap(), reg.resolve(a, &k).unwrap(), reg.resolve(b, &k).unwrap());
        assert!(sd.id != sa.id && sa.id != sb.id && sd.id != sb.id, "one label set per tenant is its own series");
        assert_eq!(reg.resolve(a, &k).unwrap(), sa);
        assert_eq!(reg.lookup(b, &k), Some(sb));
        assert_eq!(reg.series_by_slot(sa.slot), Some((&k[..], a.index())));
        assert_eq!(reg.series(sb.id).map(|(_, t)| t), Some(b.index()));
        assert_eq!(reg.tenant_name(b.index()).map(|n| &**n), Some("b"));
        // Ids are a function of tenant name and labels, not of arrival order.
        let other = SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous");
        let b2 = other.tenant("b").unwrap();
        assert_eq!(other.resolve(b2, &k).unwrap().id, sb.id);
        assert_eq!(reg.tenant("c"), Err(RegistryError::TooManyTenants { limit: 3 }));
    }
}
