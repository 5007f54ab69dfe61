//! Prometheus remote write receiver, protocol 1.0 and 2.0.
//!
//! Specs: <https://prometheus.io/docs/specs/prw/remote_write_spec/> and
//! <https://prometheus.io/docs/specs/prw/remote_write_spec_2_0/>.
//!
//! Path of a request: [`handler`] checks headers and reads the body within `limits.max_body_bytes`;
//! [`receive`] snappy-decompresses it into a per-thread buffer, decodes it ([`decode_v1`]/[`decode_v2`]) into
//! spans, takes its samples from the tenant's budget ([`crate::rate_limit`]), validates every series
//! ([`validate`]), resolves each label set to its series id, stages rows per shard and appends them to the
//! [`crate::buffer::MetricsBuffer`] all at once. A request is accepted whole or refused whole.

mod config;
mod content_type;
mod decode_v1;
mod decode_v2;
mod decoded;
mod error;
mod handler;
mod receive;
mod validate;

pub use config::RemoteWriteConfig;
pub use decoded::RemoteWriteVersion;
pub use error::{RemoteWriteError, SeriesProblem};
pub use handler::{RemoteWriteState, router};
pub use receive::{Destination, Received, WriteCounts, receive, receive_logged};

#[cfg(test)]
mod tests;
