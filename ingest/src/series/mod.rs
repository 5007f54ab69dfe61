//! The series registry: every distinct label set stored once, named by a stable 64-bit id.
//!
//! Rows in the columnar buffer carry only the id; consumers (forwarders, detectors, the query API) resolve it
//! here. The stored form of a label set is its canonical remote-write 1.0 encoding (a run of `Label` fields,
//! sorted by name), so the forwarder copies it verbatim and the id is the same whichever protocol delivered
//! the series.

mod key;
mod metadata;
mod registry;

pub(crate) use key::push_label;
pub use key::{LabelPair, LabelSetKey, decode_label_key};
pub use metadata::{FamilyMetadata, MetadataStore};
pub use registry::{
    IdHasher, KeyHash, Lookup, RegistryError, SeriesId, SeriesRef, SeriesRegistry, SeriesRegistryConfig, Tenant,
};
