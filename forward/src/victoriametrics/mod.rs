//! Forwarder to VictoriaMetrics (or any Prometheus remote write 1.0 receiver).
//!
//! VictoriaMetrics has no remote write 2.0 receiver, so this always speaks 1.0:
//! <https://prometheus.io/docs/specs/prw/remote_write_spec/>.
//!
//! One worker per URL reads the metrics write-ahead log from its own position ([`crate::wal_loop`]), so
//! everything leaves in the order it was acknowledged. It gathers entries up to `max_samples_per_request`
//! or `flush_interval`, joins their remote-write bodies into one request per tenant ([`worker`]), sends
//! them with the remote-write headers and classification ([`client`]) and retries in place until the
//! backend answers ([`crate::send`]); only then does it commit its position, letting the log delete what
//! every destination has. A backend that stays down makes its queue grow to `queue.max_bytes`, where
//! receivers answer 429 (or the oldest data is given up, with `wal.full_policy: drop_oldest`).

mod client;
mod config;
mod worker;

pub use crate::handle::ForwarderHandle;

/// The backend kind in metric labels, logs and readiness.
pub(crate) const BACKEND: &str = "victoriametrics";
pub use config::VictoriaMetricsConfig;
pub use worker::spawn;
