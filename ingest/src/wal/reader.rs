//! Reading a log from a position: whole intact records only, up to what the writer has made visible,
//! skipping damaged bytes (counted) and segments given up by `drop_oldest`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;

use super::Shared;
use super::frame::{self, HEADER, MAX_RECORD_BYTES, Parsed};

/// Bytes read from a segment at a time (grown for a larger record).
const CHUNK: usize = 1 << 20;

/// One record as read: where it sits in the log, and its body.
#[derive(Debug, Clone)]
pub struct WalRecord {
    pub start: u64,
    pub end: u64,
    pub body: Bytes,
}

pub struct WalReader {
    shared: Arc<Shared>,
    position: u64,
    file: Option<(u64, File)>,
    chunk: Vec<u8>,
    chunk_size: usize,
}

impl std::fmt::Debug for WalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalReader").field("position", &self.position).finish()
    }
}

impl WalReader {
    pub(crate) fn new(shared: Arc<Shared>, position: u64) -> Self {
        Self { shared, position, file: None, chunk: Vec::new(), chunk_size: CHUNK }
    }

    /// The log position after the last record read.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Appends the records from the position on to `out`, until `max_bytes` of bodies are read (at least
    /// one record, if there is one) or nothing more is visible. Returns how many were added.
    pub fn read(&mut self, out: &mut Vec<WalRecord>, max_bytes: usize) -> std::io::Result<usize> {
        let (before, mut bytes) = (out.len(), 0usize);
        while bytes < max_bytes {
            let visible = self.shared.visible();
            if self.position >= visible {
                break;
            }
            let Some((seg_start, seg_end, path)) = self.segment() else { break };
            let seg_end = seg_end.min(visible);
            if self.position >= seg_end {
                break;
            }
            if self.file.as_ref().is_none_or(|(s, _)| *s != seg_start) {
                self.file = Some((seg_start, File::open(&path)?));
            }
            let want = ((seg_end - self.position) as usize).min(self.chunk_size);
            self.chunk.resize(want, 0);
            let Some((_, file)) = &self.file else { break };
            file.read_exact_at(&mut self.chunk, self.position - seg_start)?;
            let reaches_end = self.position + want as u64 == seg_end;
            let mut at = 0usize;
            let mut progressed = false;
            while at < self.chunk.len() && bytes < max_bytes {
                match frame::parse(&self.chunk, at) {
                    Parsed::Record { body, next } => {
                        let start = self.position + at as u64;
                        out.push(WalRecord {
                            start,
                            end: self.position + next as u64,
                            body: Bytes::copy_from_slice(&self.chunk[body.clone()]),
                        });
                        bytes += body.len();
                        at = next;
                        progressed = true;
                    }
                    Parsed::Incomplete if !reaches_end => break,
                    // Cut off at the end of what is visible: a torn record in a closed segment, or one whose
                    // damaged length reaches past the end, with intact records after it.
                    Parsed::Incomplete => {
                        let next = frame::resync(&self.chunk, at).unwrap_or(self.chunk.len());
                        self.skip(next - at);
                        at = next;
                        progressed = true;
                    }
                    Parsed::Damaged => {
                        let next = frame::resync(&self.chunk, at).unwrap_or(if reaches_end {
                            self.chunk.len()
                        } else {
                            // Keep the last header's worth: a record may start there.
                            (self.chunk.len() - HEADER).max(at + 1)
                        });
                        self.skip(next - at);
                        at = next;
                        progressed = true;
                    }
                }
            }
            self.position += at as u64;
            if !progressed {
                // One record larger than the chunk: read more at once next time.
                if self.chunk_size >= MAX_RECORD_BYTES + HEADER {
                    break;
                }
                self.chunk_size = (self.chunk_size * 2).min(MAX_RECORD_BYTES + HEADER);
            }
        }
        Ok(out.len() - before)
    }

    /// Waits until more of the log than the position is visible, or `deadline`. False once the log is
    /// closed and everything in it has been read.
    pub async fn wait(&self, deadline: Instant) -> bool {
        let mut rx = self.shared.visible_rx();
        loop {
            if *rx.borrow_and_update() > self.position {
                return true;
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return false;
            }
            match tokio::time::timeout_at(deadline.into(), rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return false,
                Err(_) => return true,
            }
        }
    }

    /// The segment holding the position, moving the position past gaps and past segments given up.
    fn segment(&mut self) -> Option<(u64, u64, std::path::PathBuf)> {
        let segments = self.shared.segments.lock();
        let first = segments.first()?;
        if self.position < first.start {
            let skipped = first.start - self.position;
            self.shared.dropped_bytes.fetch_add(skipped, Ordering::Relaxed);
            self.position = first.start;
        }
        for (i, s) in segments.iter().enumerate() {
            if self.position < s.end() || i + 1 == segments.len() {
                if self.position < s.start {
                    self.position = s.start;
                }
                return Some((s.start, s.end(), s.path.clone()));
            }
        }
        None
    }

    fn skip(&self, bytes: usize) {
        self.shared.skipped_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}
