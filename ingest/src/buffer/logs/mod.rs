//! The logs table: one row per log line, from Loki pushes and OTLP logs alike.
//!
//! Rows of one stream (tenant + Loki label set) always land in the same shard, so a forwarder worker (one
//! per shard) sees a stream's lines in arrival order.

mod open;
mod rows;
pub mod schema;
mod sealed;

pub use open::LogsOpen;
pub use rows::{LogRow, LogsShardRows, stream_hash};
pub use sealed::LogsBatch;

#[cfg(test)]
mod tests;
