//! The spans table: one row per OTLP span, sharded by trace id so a whole trace lives in one shard.
//!
//! Besides the columns detectors and queries read (ids, service, name, timing, status, attributes as JSON),
//! each row keeps the span as received (`span`, an encoded OTLP `Span`) and its resource and scope
//! (`resource_scope`, an encoded `ResourceSpans` without spans), so forwarders re-export every span
//! faithfully: events, links, trace state, flags and dropped counts included.

mod open;
mod rows;
pub mod schema;
mod sealed;

pub use open::SpansOpen;
pub use rows::{SpanRow, SpansShardRows};
pub use sealed::SealedSpans;

#[cfg(test)]
mod tests;
