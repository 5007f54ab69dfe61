//! Metric family metadata (type, help, unit) as last reported by senders, per tenant and bounded.
//!
//! Families are not series: a sender can name any number of them in metadata alone, request after request,
//! so the store holds at most [`MetadataStore::max_families`] (all tenants together) and refuses new ones
//! beyond that, counting them ([`MetadataStore::dropped`]); known families are still updated. Help and unit
//! texts are cut to [`MAX_TEXT_BYTES`]: Prometheus' own are a line, and the request size limit alone would
//! let each family hold megabytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::RwLock;

use super::Tenant;

/// Families kept (all tenants) unless told otherwise: about 20 MiB at the longest texts.
pub(crate) const DEFAULT_MAX_FAMILIES: usize = 100_000;
/// Longest help or unit text kept, in bytes (cut on a character boundary).
pub(crate) const MAX_TEXT_BYTES: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyMetadata {
    /// Remote-write 1.0 `MetricType` number (0 unknown, 1 counter, 2 gauge, …).
    pub metric_type: i32,
    pub help: String,
    pub unit: String,
}

/// Latest metadata per tenant and metric family. Updates that change nothing take only a shared lock.
#[derive(Debug)]
pub struct MetadataStore {
    /// By tenant index, then family name.
    tenants: RwLock<HashMap<u32, HashMap<String, FamilyMetadata>>>,
    families: AtomicUsize,
    max_families: usize,
    dropped: AtomicU64,
    warned: AtomicBool,
}

impl Default for MetadataStore {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FAMILIES)
    }
}

impl MetadataStore {
    /// A store that keeps at most `max_families` families, all tenants together.
    pub fn new(max_families: usize) -> Self {
        Self {
            tenants: RwLock::new(HashMap::new()),
            families: AtomicUsize::new(0),
            max_families,
            dropped: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        }
    }

    pub fn update(&self, tenant: Tenant, family: &str, metric_type: i32, help: &str, unit: &str) {
        if family.is_empty() {
            return;
        }
        let (help, unit) = (cut(help), cut(unit));
        let index = tenant.index();
        if let Some(m) = self.tenants.read().get(&index).and_then(|t| t.get(family))
            && m.metric_type == metric_type
            && m.help == help
            && m.unit == unit
        {
            return;
        }
        let entry = FamilyMetadata { metric_type, help: help.to_owned(), unit: unit.to_owned() };
        let mut tenants = self.tenants.write();
        let families = tenants.entry(index).or_default();
        if let Some(known) = families.get_mut(family) {
            *known = entry;
            return;
        }
        if self.families.load(Ordering::Relaxed) >= self.max_families {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_families = self.max_families,
                    "Metric metadata limit reached: metadata of further metric families is not kept."
                );
            }
            return;
        }
        families.insert(family.to_owned(), entry);
        self.families.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, tenant: Tenant, family: &str) -> Option<FamilyMetadata> {
        self.tenants.read().get(&tenant.index()).and_then(|t| t.get(family)).cloned()
    }

    /// Families kept, all tenants.
    pub fn len(&self) -> usize {
        self.families.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most families kept.
    pub fn max_families(&self) -> usize {
        self.max_families
    }

    /// Updates refused because the store was full (each names a family not kept).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// `text` cut to at most [`MAX_TEXT_BYTES`], on a character boundary.
fn cut(text: &str) -> &str {
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_do_not_see_each_others_metadata() {
        let store = MetadataStore::default();
        let registry = super::super::SeriesRegistry::new(&super::super::SeriesRegistryConfig::default(), "default");
        let (a, b) = (Tenant::DEFAULT, registry.tenant("team-b").unwrap_or_else(|e| panic!("{e}")));
        assert_ne!(a.index(), b.index());
        store.update(a, "up", 2, "Target is up.", "");
        store.update(b, "up", 1, "Something else.", "");
        assert_eq!(store.get(a, "up").map(|m| m.metric_type), Some(2));
        assert_eq!(store.get(b, "up").map(|m| m.help), Some("Something else.".to_owned()));
        store.update(b, "jobs_total", 1, "", "");
        assert_eq!(store.get(a, "jobs_total"), None);
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn new_families_beyond_the_limit_are_refused_and_counted_while_known_ones_still_change() {
        let store = MetadataStore::new(3);
        for i in 0..10 {
            store.update(Tenant::DEFAULT, &format!("family_{i}"), 2, "help", "");
        }
        assert_eq!((store.len(), store.dropped()), (3, 7));
        assert_eq!(store.get(Tenant::DEFAULT, "family_5"), None);
        store.update(Tenant::DEFAULT, "family_1", 1, "now a counter", "");
        assert_eq!(store.get(Tenant::DEFAULT, "family_1").map(|m| m.metric_type), Some(1));
        assert_eq!((store.len(), store.dropped()), (3, 7));
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let store = MetadataStore::default();
        let help = "é".repeat(MAX_TEXT_BYTES);
        store.update(Tenant::DEFAULT, "temperature", 2, &help, "celsius");
        let kept = store.get(Tenant::DEFAULT, "temperature").unwrap_or_else(|| panic!("not kept"));
        assert!(kept.help.len() <= MAX_TEXT_BYTES && kept.help.len() >= MAX_TEXT_BYTES - 1);
        assert!(kept.help.chars().all(|c| c == 'é'));
        assert_eq!(kept.unit, "celsius");
    }
}
