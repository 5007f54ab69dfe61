//! Shared by the forwarder tests: a write-ahead log in a directory that is removed afterwards.

#![allow(dead_code, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use vigil_ingest::wal::{FsyncPolicy, QueueConfig, Wal, WalConfig};

pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("vigil-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A log for `signal` with small segments (so tests cross segment boundaries) and no per-write fsync.
pub(crate) fn wal(signal: &'static str, queue: &QueueConfig) -> (Arc<Wal>, TempDir) {
    let dir = TempDir::new(signal);
    (reopen_wal(signal, queue, &dir), dir)
}

/// The log of [`wal`] in `dir` opened again, as after a restart.
pub(crate) fn reopen_wal(signal: &'static str, queue: &QueueConfig, dir: &TempDir) -> Arc<Wal> {
    let config = WalConfig { fsync: FsyncPolicy::Interval, segment_bytes: 4096, ..WalConfig::default() };
    let (wal, _) = Wal::open(&dir.0, signal, &config, queue, Arc::new(AtomicU64::new(0))).expect("wal");
    Arc::new(wal)
}
