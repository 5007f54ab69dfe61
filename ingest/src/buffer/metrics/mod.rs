//! The metrics table: float samples, exemplars and native histograms, keyed by series id.

mod open;
mod rows;
pub mod schema;
mod sealed;

pub use open::MetricsOpen;
pub use rows::{ExemplarRow, HistogramRow, MetricsShardRows, SampleRow};
pub use sealed::SealedBatch;

pub(crate) use rows::SAMPLE_ROW_BYTES;
