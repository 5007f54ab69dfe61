//! Configuration of the Loki push receiver.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LokiReceiverConfig {
    /// HTTP path of the receiver.
    pub path: String,
    /// Longest log line accepted, in bytes (Loki's `max_line_size`, 256 KiB by default).
    pub max_line_bytes: usize,
    /// Seconds a client is told to wait (`Retry-After`) when the buffer is full.
    pub retry_after_seconds: u32,
}

impl Default for LokiReceiverConfig {
    fn default() -> Self {
        Self { path: "/loki/api/v1/push".into(), max_line_bytes: 256 << 10, retry_after_seconds: 1 }
    }
}

impl LokiReceiverConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.path.starts_with('/') {
            return Err(format!("loki.path {:?} must start with '/'", self.path));
        }
        if self.max_line_bytes == 0 {
            return Err("loki.max_line_bytes must be > 0".into());
        }
        Ok(())
    }
}
