//! Forwarder to VictoriaMetrics (or any Prometheus remote write 1.0 receiver).
//!
//! VictoriaMetrics has no remote write 2.0 receiver, so this always speaks 1.0:
//! <https://prometheus.io/docs/specs/prw/remote_write_spec/>.
//!
//! One worker per buffer shard and URL reads the shard through a lossless subscription, so a series (which
//! always lives in one shard) is delivered in order. The worker gathers sealed batches up to
//! `max_samples_per_request` or `flush_interval` ([`crate::batching`]), encodes them ([`encode`]) into
//! requests of at most `max_samples_per_request` rows ([`worker`]), sends them with the remote-write headers
//! and classification ([`client`]) and retries in place until the backend answers ([`crate::send`]); only
//! then does it commit, releasing the batches for eviction. A backend that stays down therefore fills the
//! buffer, and receivers answer 429.

mod client;
mod config;
mod encode;
mod worker;

pub use crate::handle::ForwarderHandle;
pub use config::VictoriaMetricsConfig;
pub use encode::{TenantRequest, encode_write_requests};
pub use worker::spawn;
