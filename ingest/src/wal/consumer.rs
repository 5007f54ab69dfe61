//! A forwarder's delivered position in one log, kept in `cursors/<name>` so a restart resumes where
//! delivery stopped. Writes go to a temporary file renamed over the old one, so a crash leaves either the
//! old or the new position, never a torn one; a position that lags only means data is sent twice.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Shared;
use super::reader::WalReader;

#[derive(Debug)]
pub(crate) struct ConsumerState {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    /// Everything before this log position is delivered (or given up).
    pub(crate) position: AtomicU64,
}

impl ConsumerState {
    pub(crate) fn load(dir: &Path, name: &str) -> Option<u64> {
        let text = fs::read_to_string(dir.join(name)).ok()?;
        let (value, check) = text.trim().split_once(' ')?;
        let position: u64 = value.parse().ok()?;
        (check.parse::<u32>().ok()? == crc32fast::hash(value.as_bytes())).then_some(position)
    }

    pub(crate) fn store(&self, position: u64) -> std::io::Result<()> {
        let value = position.to_string();
        let tmp = self.path.with_extension("tmp");
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{value} {}", crc32fast::hash(value.as_bytes()))?;
        drop(f);
        fs::rename(&tmp, &self.path)
    }
}

/// One forwarder's handle on a log: read from its position, and move the position on after delivery.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) state: Arc<ConsumerState>,
}

impl Consumer {
    pub fn name(&self) -> &str {
        &self.state.name
    }

    pub fn position(&self) -> u64 {
        self.state.position.load(Ordering::Acquire)
    }

    /// Bytes of log written but not yet delivered to this consumer.
    pub fn lag_bytes(&self) -> u64 {
        self.shared.head().saturating_sub(self.position())
    }

    /// How long the oldest record this consumer has not delivered has been in the log; `None` when it is
    /// up to date.
    pub fn oldest_undelivered_age(&self) -> Option<std::time::Duration> {
        let position = self.position();
        if position >= self.shared.head() {
            return None;
        }
        let written = self.shared.ages.written_at(position)?;
        Some(std::time::SystemTime::now().duration_since(written).unwrap_or_default())
    }

    /// A reader from this consumer's position.
    pub fn reader(&self) -> WalReader {
        WalReader::new(Arc::clone(&self.shared), self.position())
    }

    /// Records that everything before `position` is delivered; segments nobody needs any more are deleted.
    pub fn commit(&self, position: u64) {
        let previous = self.state.position.fetch_max(position, Ordering::AcqRel);
        if position <= previous {
            return;
        }
        if let Err(e) = self.state.store(position) {
            tracing::warn!(consumer = %self.state.name, error = %e, "Could not persist the delivered position; data after the last saved one will be sent again after a restart.");
        }
        self.shared.release();
    }
}
