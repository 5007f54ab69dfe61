//! Forwarder to Prometheus Alertmanager's alert API (`POST /api/v2/alerts`, a JSON array of
//! `postableAlert`): <https://prometheus.io/docs/alerting/latest/clients/> and prometheus/alertmanager
//! `api/v2/openapi.yaml`.
//!
//! Alerts come from Vigil's rule evaluator, through a channel the binary drains into the alerts write-ahead
//! log (`<data dir>/wal/alerts`, records built by `vigil_ingest::wal::alerts`: JSON objects each followed
//! by a comma). One worker per destination tails that log from its own position, joins records into one
//! request per tenant with `X-Scope-OrgID` up to `max_alerts_per_request` or `flush_interval` ([`worker`],
//! [`crate::wal_loop`]) and retries in place until Alertmanager answers ([`crate::send`]) by the rules in
//! [`client`]: 2xx delivered; 400 and 422 (invalid alerts) dropped and counted — Alertmanager keeps the
//! valid alerts of a request that also holds invalid ones, and its message says how many it refused; 429,
//! 5xx and connection errors retried with backoff. Only then does it commit its position. Alerts have no
//! buffer, so the log is never replayed at start-up; it is only delivered.

mod client;
mod config;
mod worker;

pub use crate::handle::ForwarderHandle;

/// The backend kind in metric labels, logs and readiness.
pub(crate) const BACKEND: &str = "alertmanager";
pub use config::AlertmanagerConfig;
pub use worker::spawn;
