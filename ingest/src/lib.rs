//! Vigil's ingest stage: receivers, decoders, the series registry and the columnar buffer.
//!
//! A sample's way in: `remote_write::handler` (HTTP) → `remote_write::receive` (decompress, decode,
//! validate) → `series::SeriesRegistry` (label set → stable id) → `buffer::MetricsBuffer` (Arrow builders,
//! sealed batches) → subscribers (forwarders, detectors).

pub mod buffer;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod loki;
pub mod otlp;
pub mod own_series;
mod protowire;
pub mod rate_limit;
pub mod remote_write;
mod request_body;
pub mod series;
pub mod telemetry;
pub mod tenant;
pub mod wal;

pub use protowire::{WireError, put_varint};
