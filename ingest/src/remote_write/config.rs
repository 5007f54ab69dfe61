//! Configuration of the remote-write receiver.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    /// HTTP path of the receiver.
    pub path: String,
    /// Seconds a client is told to wait (`Retry-After`) when the buffer is full.
    pub retry_after_seconds: u32,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        Self { path: "/api/v1/write".into(), retry_after_seconds: 1 }
    }
}

impl RemoteWriteConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.path.starts_with('/') {
            return Err(format!("remote_write.path {:?} must start with '/'", self.path));
        }
        Ok(())
    }
}
