//! The write-ahead log: what Vigil acknowledged, on disk until every forwarder has delivered it.
//!
//! One log per signal (`<data dir>/wal/metrics`, ...; `wal/alerts` holds the rule evaluator's alerts, which
//! are only delivered, never replayed: [`alerts`]), a directory of segment files ([`segments`]) of
//! framed, CRC-checked records ([`frame`]). A receiver appends one record per accepted request
//! ([`Wal::append`]) and answers 2xx only once the writer thread ([`writer`]) reports it durable; many
//! requests share one sync (group commit). Each forwarder is a [`Consumer`]: it reads records from its own
//! persisted position ([`WalReader`]), delivers them, and commits the new position; a segment is deleted
//! once every consumer is past it. A restart resumes each consumer at its position (at-least-once: data
//! is never lost, and may be sent twice).
//!
//! Size: `wal.max_bytes` bounds all logs together and `queue.max_bytes` what one consumer has undelivered;
//! past either, `wal.full_policy` refuses new writes (backpressure) or gives up the oldest segment
//! (`drop_oldest`), see [`Wal::admit`].

mod ages;
pub mod alerts;
mod append;
mod config;
mod consumer;
mod entry;
pub(crate) mod frame;
pub(crate) mod logs;
pub(crate) mod metrics;
mod reader;
pub mod replay;
mod segments;
pub(crate) mod spans;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};

pub(crate) use append::{Refused, log_and_buffer};
pub use config::{FsyncPolicy, FullPolicy, QueueConfig, WalConfig};
pub use consumer::Consumer;
use consumer::ConsumerState;
pub use entry::{Entry, EntryError};
pub use frame::MAX_RECORD_BYTES;
pub use reader::{WalReader, WalRecord};
use segments::Segment;
pub use segments::{Damage, DamageKind};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WalError {
    #[error("{0}; retry later")]
    Full(String),
    #[error("record of {size} bytes exceeds the log's limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("{0}")]
    Failed(String),
    #[error("the {0} log is closed (shutting down)")]
    Closed(&'static str),
}

#[derive(Debug, thiserror::Error)]
#[error("opening the log in {dir}: {source}")]
pub struct OpenError {
    dir: PathBuf,
    source: std::io::Error,
}

impl OpenError {
    pub fn new(dir: &Path, source: std::io::Error) -> Self {
        Self { dir: dir.to_owned(), source }
    }
}

/// What start-up found: intact records, and damage repaired or skipped.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    pub segments: usize,
    /// Intact records in the newest segment.
    pub records: u64,
    /// Damage in the newest segment (the older ones: [`Wal::verify_sealed_segments`]).
    pub damage: Vec<Damage>,
}

/// State shared by the writer, the readers and the consumers of one log.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) signal: &'static str,
    pub(crate) config: WalConfig,
    pub(crate) queue: QueueConfig,
    pub(crate) segments: Mutex<Vec<Segment>>,
    /// End of what has been written.
    pub(crate) head: AtomicU64,
    /// End of what readers may read (the head, published after each write).
    pub(crate) visible: watch::Sender<u64>,
    pub(crate) consumers: Mutex<Vec<Arc<ConsumerState>>>,
    /// Bytes of all logs together (shared between the logs of one process).
    pub(crate) total_bytes: Arc<AtomicU64>,
    /// Bytes consumers never got: given up by `drop_oldest`.
    pub(crate) dropped_bytes: AtomicU64,
    /// Damaged bytes readers stepped over.
    pub(crate) skipped_bytes: AtomicU64,
    pub(crate) failed: Mutex<Option<String>>,
    /// Set once the writer has stopped: readers that reach the head stop waiting.
    pub(crate) closed: std::sync::atomic::AtomicBool,
    /// When positions were written, for the age of what a consumer has not delivered.
    pub(crate) ages: ages::WriteAges,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("signal", &self.signal).field("head", &self.head()).finish()
    }
}

impl Shared {
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    pub(crate) fn visible(&self) -> u64 {
        *self.visible.borrow()
    }

    pub(crate) fn visible_rx(&self) -> watch::Receiver<u64> {
        self.visible.subscribe()
    }

    /// Deletes every segment but the active one that all consumers are past.
    pub(crate) fn release(&self) {
        let min = self.consumers.lock().iter().map(|c| c.position.load(Ordering::Acquire)).min();
        let min = min.unwrap_or_else(|| self.head());
        let mut segments = self.segments.lock();
        while segments.len() > 1 && segments[0].end() <= min {
            let s = segments.remove(0);
            self.delete(&s);
        }
        self.ages.forget_before(min);
    }

    fn delete(&self, s: &Segment) {
        // Saturating in one step: another log may be adding or removing at the same time.
        let _ = self.total_bytes.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| Some(t.saturating_sub(s.len)));
        if let Err(e) = std::fs::remove_file(&s.path) {
            tracing::warn!(log = self.signal, segment = %s.path.display(), error = %e, "Could not delete a delivered log segment.");
        }
    }

    /// Gives up the oldest closed segment: every consumer still in it moves past it. False if only the
    /// active segment is left.
    fn drop_oldest(&self) -> bool {
        let end = {
            let segments = self.segments.lock();
            if segments.len() < 2 {
                return false;
            }
            segments[0].end()
        };
        for c in self.consumers.lock().iter() {
            let before = c.position.fetch_max(end, Ordering::AcqRel);
            if before < end {
                self.dropped_bytes.fetch_add(end - before, Ordering::Relaxed);
                if let Err(e) = c.store(end) {
                    tracing::warn!(consumer = %c.name, error = %e, "Could not persist a position.");
                }
            }
        }
        self.release();
        true
    }
}

/// One signal's write-ahead log.
pub struct Wal {
    shared: Arc<Shared>,
    tx: RwLock<Option<crossbeam_channel::Sender<writer::Append>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// When the last `drop_oldest` was logged (logged once per interval).
    last_drop_log: Mutex<Option<std::time::Instant>>,
    /// Segments before the newest one at start-up, not yet checked.
    sealed_at_open: Mutex<Vec<Segment>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("signal", &self.shared.signal).field("head", &self.shared.head()).finish()
    }
}

impl Wal {
    /// Opens (or creates) the log in `dir`: scans the newest segment, cuts a torn tail off, reports damage,
    /// and starts a new segment at the end (the older segments: [`Wal::verify_sealed_segments`]). `total_bytes` is shared by all logs of the process.
    pub fn open(
        dir: &Path,
        signal: &'static str,
        config: &WalConfig,
        queue: &QueueConfig,
        total_bytes: Arc<AtomicU64>,
    ) -> Result<(Self, OpenReport), OpenError> {
        let io = |source| OpenError { dir: dir.to_owned(), source };
        std::fs::create_dir_all(dir.join("cursors")).map_err(io)?;
        let mut found = segments::list(dir).map_err(io)?;
        let mut report = OpenReport { segments: found.len(), ..OpenReport::default() };
        // Empty segments are only clutter (each start makes a new one).
        found.retain(|s| {
            if s.len == 0 {
                let _ = std::fs::remove_file(&s.path);
            }
            s.len > 0
        });
        // Only the newest segment can end in a record cut off by a crash: it is scanned and repaired now.
        // The older ones were complete when the writer moved on; checking them is left to
        // [`Wal::verify_sealed_segments`], off the way to readiness (readers check every record anyway).
        if let Some(s) = found.last_mut() {
            let (records, damage) = segments::scan(s, &mut Vec::new()).map_err(io)?;
            report.records += records;
            for d in damage {
                tracing::warn!(log = signal, segment = %d.segment, offset = d.offset, bytes = d.bytes, kind = ?d.kind, "Damaged log data found at start-up; it is skipped.");
                if d.kind == DamageKind::TornTail {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&s.path)
                        .and_then(|f| f.set_len(d.offset))
                        .map_err(io)?;
                    s.len = d.offset;
                }
                report.damage.push(d);
            }
        }
        let sealed = found.iter().rev().skip(1).rev().cloned().collect();
        let segments_end = found.last().map_or(0, Segment::end);
        let positions: Vec<(String, u64)> = std::fs::read_dir(dir.join("cursors"))
            .map_err(io)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                (!name.ends_with(".tmp"))
                    .then(|| ConsumerState::load(&dir.join("cursors"), &name).map(|p| (name, p)))?
            })
            .collect();
        // Positions only grow, even across a log that was emptied.
        let head = positions.iter().map(|(_, p)| *p).chain([segments_end]).max().unwrap_or(0);
        let bytes: u64 = found.iter().map(|s| s.len).sum();
        total_bytes.fetch_add(bytes, Ordering::AcqRel);
        let (visible, _) = watch::channel(head);
        let ages = ages::WriteAges::default();
        for s in &found {
            let modified = std::fs::metadata(&s.path).and_then(|m| m.modified());
            ages.mark(s.end(), modified.unwrap_or_else(|_| std::time::SystemTime::now()));
        }
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            signal,
            config: config.clone(),
            queue: queue.clone(),
            segments: Mutex::new(found),
            head: AtomicU64::new(head),
            visible,
            consumers: Mutex::new(Vec::new()),
            total_bytes,
            dropped_bytes: AtomicU64::new(0),
            skipped_bytes: AtomicU64::new(0),
            failed: Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
            ages,
        });
        let file = writer::open_segment(&shared, head).map_err(io)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("wal-{signal}"))
            .spawn(move || writer::run(thread_shared, rx, file))
            .map_err(io)?;
        let wal = Self {
            shared,
            tx: RwLock::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            last_drop_log: Mutex::new(None),
            sealed_at_open: Mutex::new(sealed),
        };
        Ok((wal, report))
    }

    pub fn signal(&self) -> &'static str {
        self.shared.signal
    }

    /// The consumer called `name` (e.g. a forwarder's destination), at its persisted position, or at the
    /// oldest data still in the log if it is new (so a forwarder added while data waits gets that data).
    pub fn consumer(&self, name: &str) -> Consumer {
        let name: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let cursors = self.shared.dir.join("cursors");
        let oldest = self.shared.segments.lock().first().map_or(self.shared.head(), |s| s.start);
        let position = ConsumerState::load(&cursors, &name).unwrap_or(oldest).max(oldest);
        let state = Arc::new(ConsumerState { path: cursors.join(&name), name, position: AtomicU64::new(position) });
        if let Err(e) = state.store(position) {
            tracing::warn!(consumer = %state.name, error = %e, "Could not persist a position.");
        }
        self.shared.consumers.lock().push(Arc::clone(&state));
        Consumer { shared: Arc::clone(&self.shared), state }
    }

    /// Forgets the positions of consumers that were not asked for since start-up (forwarders removed from
    /// the configuration), so their old positions no longer hold segments back.
    pub fn forget_other_consumers(&self) {
        let known: Vec<String> = self.shared.consumers.lock().iter().map(|c| c.name.clone()).collect();
        if let Ok(entries) = std::fs::read_dir(self.shared.dir.join("cursors")) {
            for e in entries.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().into_owned();
                if !known.contains(&name) {
                    tracing::info!(log = self.shared.signal, consumer = %name, "Forgetting the position of a forwarder no longer configured.");
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        self.shared.release();
    }

    /// A reader from the start of the oldest segment within the newest `bytes` of the log (at least the
    /// newest segment): start-up replay of the recent window into the buffer.
    pub fn reader_from_recent(&self, bytes: u64) -> WalReader {
        let head = self.shared.head();
        let segments = self.shared.segments.lock();
        let start = segments
            .iter()
            .find(|s| head.saturating_sub(s.start) <= bytes)
            .or(segments.last())
            .map_or(head, |s| s.start);
        WalReader::new(Arc::clone(&self.shared), start)
    }

    /// Checks the segments that were complete at start-up (once; later calls find nothing), logging and
    /// returning what is damaged. Readers step over damage anyway; this reports it without waiting for a
    /// forwarder to get there. A segment deleted meanwhile (delivered) is passed over.
    pub fn verify_sealed_segments(&self) -> Vec<Damage> {
        let sealed = std::mem::take(&mut *self.sealed_at_open.lock());
        let (mut data, mut found) = (Vec::new(), Vec::new());
        for s in &sealed {
            match segments::scan(s, &mut data) {
                Ok((_, damage)) => found.extend(damage),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(log = self.shared.signal, segment = %s.path.display(), error = %e, "Could not check a log segment.");
                }
            }
        }
        for d in &found {
            tracing::warn!(log = self.shared.signal, segment = %d.segment, offset = d.offset, bytes = d.bytes, kind = ?d.kind, "Damaged log data found at start-up; it is skipped.");
        }
        found
    }

    /// Whether a new write may come in, applying `wal.full_policy` when the log or a consumer's queue is
    /// at its limit.
    pub fn admit(&self) -> Result<(), WalError> {
        if let Some(failed) = self.shared.failed.lock().clone() {
            return Err(WalError::Failed(failed));
        }
        loop {
            let Some(problem) = self.over_limit() else { return Ok(()) };
            match self.shared.config.full_policy {
                FullPolicy::Backpressure => return Err(WalError::Full(problem)),
                FullPolicy::DropOldest => {
                    if !self.shared.drop_oldest() {
                        return Ok(());
                    }
                    let mut last = self.last_drop_log.lock();
                    if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10)) {
                        *last = Some(std::time::Instant::now());
                        tracing::warn!(
                            log = self.shared.signal,
                            problem,
                            dropped_bytes = self.dropped_bytes(),
                            "Log full: the oldest undelivered segment was given up (`wal.full_policy: drop_oldest`)."
                        );
                    }
                }
            }
        }
    }

    /// Why a write would be refused now under `backpressure`, without acting on it.
    pub fn full_reason(&self) -> Option<String> {
        match self.shared.config.full_policy {
            FullPolicy::Backpressure => self.over_limit(),
            FullPolicy::DropOldest => None,
        }
    }

    fn over_limit(&self) -> Option<String> {
        let total = self.shared.total_bytes.load(Ordering::Acquire);
        if total >= self.shared.config.max_bytes {
            return Some(format!(
                "write-ahead log is full ({total} bytes, `wal.max_bytes` = {})",
                self.shared.config.max_bytes
            ));
        }
        let head = self.shared.head();
        let limit = self.shared.queue.max_bytes;
        self.shared.consumers.lock().iter().find_map(|c| {
            let lag = head.saturating_sub(c.position.load(Ordering::Acquire));
            (lag >= limit)
                .then(|| format!("forwarder {} has {lag} bytes undelivered (`queue.max_bytes` = {limit})", c.name))
        })
    }

    /// Hands `body` to the writer. The returned [`Pending`] resolves once it is durable: acknowledge the
    /// request only then.
    pub fn append(&self, body: Vec<u8>) -> Result<Pending, WalError> {
        if body.len() > MAX_RECORD_BYTES {
            return Err(WalError::TooLarge { size: body.len(), limit: MAX_RECORD_BYTES });
        }
        let (done, rx) = oneshot::channel();
        let tx = self.tx.read();
        let tx = tx.as_ref().ok_or(WalError::Closed(self.shared.signal))?;
        tx.send(writer::Append { body, done }).map_err(|_| WalError::Closed(self.shared.signal))?;
        Ok(Pending { rx, signal: self.shared.signal })
    }

    /// Stops the writer after it has written and synced everything handed to it.
    pub fn close(&self) {
        self.tx.write().take();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
        self.shared.closed.store(true, Ordering::Release);
        // Wake readers waiting for more, so they see the log is closed.
        self.shared.visible.send_modify(|_| {});
    }

    /// End of everything written.
    pub fn head(&self) -> u64 {
        self.shared.head()
    }

    /// Bytes of this log on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.shared.segments.lock().iter().map(|s| s.len).sum()
    }

    pub fn dropped_bytes(&self) -> u64 {
        self.shared.dropped_bytes.load(Ordering::Relaxed)
    }

    pub fn skipped_bytes(&self) -> u64 {
        self.shared.skipped_bytes.load(Ordering::Relaxed)
    }

    /// Why the log refuses writes for good, if it does.
    pub fn failure(&self) -> Option<String> {
        self.shared.failed.lock().clone()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

/// A record on its way to disk.
#[derive(Debug)]
pub struct Pending {
    rx: oneshot::Receiver<Result<u64, String>>,
    signal: &'static str,
}

impl Pending {
    /// The log position after the record, once it is durable.
    pub async fn durable(self) -> Result<u64, WalError> {
        match self.rx.await {
            Ok(Ok(end)) => Ok(end),
            Ok(Err(message)) => Err(WalError::Failed(message)),
            Err(_) => Err(WalError::Closed(self.signal)),
        }
    }
}

#[cfg(test)]
mod tests;
