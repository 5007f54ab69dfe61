//! Metric family metadata (type, help, unit) as last reported by senders.

use std::collections::HashMap;

use parking_lot::RwLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyMetadata {
    /// Remote-write 1.0 `MetricType` number (0 unknown, 1 counter, 2 gauge, …).
    pub metric_type: i32,
    pub help: String,
    pub unit: String,
}

/// Latest metadata per metric family. Updates that change nothing take only a shared lock.
#[derive(Debug, Default)]
pub struct MetadataStore {
    families: RwLock<HashMap<String, FamilyMetadata>>,
}

impl MetadataStore {
    pub fn update(&self, family: &str, metric_type: i32, help: &str, unit: &str) {
        if family.is_empty() {
            return;
        }
        if let Some(m) = self.families.read().get(family)
            && m.metric_type == metric_type
            && m.help == help
            && m.unit == unit
        {
            return;
        }
        self.families
            .write()
            .insert(family.to_owned(), FamilyMetadata { metric_type, help: help.to_owned(), unit: unit.to_owned() });
    }

    pub fn get(&self, family: &str) -> Option<FamilyMetadata> {
        self.families.read().get(family).cloned()
    }

    pub fn len(&self) -> usize {
        self.families.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
