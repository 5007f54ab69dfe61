//! `wal:` and `queue:` configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When an appended record is made durable.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Every acknowledged write is on disk (one `fdatasync` shared by all requests waiting at that moment).
    Always,
    /// Acknowledged once written to the OS; synced every `fsync_interval`. A machine crash (not a process
    /// crash) can lose up to that interval of acknowledged writes.
    Interval,
}

/// What happens when the log or a forwarder's queue reaches its size limit.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FullPolicy {
    /// Refuse new writes (remote write 429, OTLP 503 / `UNAVAILABLE`, with `Retry-After`).
    Backpressure,
    /// Accept new writes and give up the oldest undelivered data (counted and logged).
    DropOldest,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    pub fsync: FsyncPolicy,
    /// With `fsync: interval`, the longest acknowledged data stays unsynced.
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// A segment file is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Most bytes of log kept on disk, over all signals.
    pub max_bytes: u64,
    pub full_policy: FullPolicy,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Always,
            fsync_interval: Duration::from_secs(1),
            segment_bytes: 64 << 20,
            max_bytes: 8 << 30,
            full_policy: FullPolicy::Backpressure,
        }
    }
}

impl WalConfig {
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.segment_bytes < 4096 {
            problems.push("wal.segment_bytes must be at least 4096".to_owned());
        }
        if self.max_bytes < self.segment_bytes.saturating_mul(2) {
            problems.push("wal.max_bytes must be at least twice wal.segment_bytes".to_owned());
        }
        if self.fsync == FsyncPolicy::Interval && self.fsync_interval.is_zero() {
            problems.push("wal.fsync_interval must be > 0".to_owned());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }
}

/// `queue:`: limits on what one forwarder may have outstanding.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Most bytes of log one forwarder may have undelivered; past it `wal.full_policy` applies.
    pub max_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self { max_bytes: 4 << 30 }
    }
}
