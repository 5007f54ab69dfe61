//! The one thread that writes a log: group commit.
//!
//! Requests queue on a channel; the writer takes everything waiting, writes it with one `write`, syncs
//! once (`fsync: always`), and only then answers each request with its record's end position. Under load
//! many requests share one sync; alone, a request waits for one. A dedicated thread (not a tokio task)
//! because every step blocks on the disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tokio::sync::oneshot;

use super::Shared;
use super::config::FsyncPolicy;
use super::frame;
use super::segments::{self, Segment};

/// Most bytes gathered into one write.
const MAX_GROUP_BYTES: usize = 16 << 20;

pub(crate) struct Append {
    pub(crate) body: Vec<u8>,
    pub(crate) done: oneshot::Sender<Result<u64, String>>,
}

pub(crate) fn open_segment(shared: &Shared, start: u64) -> std::io::Result<File> {
    let path = segments::path_of(&shared.dir, start);
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    // The new file's directory entry must be durable too, or a crash could lose the whole segment.
    File::open(&shared.dir)?.sync_all()?;
    shared.segments.lock().push(Segment { start, len: file.metadata()?.len(), path });
    Ok(file)
}

pub(crate) fn run(shared: Arc<Shared>, rx: Receiver<Append>, mut file: File) {
    let config = shared.config.clone();
    let mut buf = Vec::new();
    let mut group: Vec<Append> = Vec::new();
    let mut dirty_since: Option<Instant> = None;
    let tick = match config.fsync {
        FsyncPolicy::Always => Duration::from_secs(1),
        FsyncPolicy::Interval => config.fsync_interval,
    };
    loop {
        let first = match rx.recv_timeout(tick) {
            Ok(a) => a,
            Err(RecvTimeoutError::Timeout) => {
                if dirty_since.is_some_and(|t| t.elapsed() >= config.fsync_interval) {
                    sync(&shared, &file);
                    dirty_since = None;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        group.clear();
        buf.clear();
        frame::put_record(&mut buf, &first.body);
        group.push(first);
        while buf.len() < MAX_GROUP_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            frame::put_record(&mut buf, &next.body);
            group.push(next);
        }
        let written = file.write_all(&buf).and_then(|()| match config.fsync {
            FsyncPolicy::Always => file.sync_data(),
            FsyncPolicy::Interval => Ok(()),
        });
        if let Err(e) = written {
            fail(&shared, &file, &e, &mut group);
            continue;
        }
        if config.fsync == FsyncPolicy::Interval {
            dirty_since.get_or_insert_with(Instant::now);
            if dirty_since.is_some_and(|t| t.elapsed() >= config.fsync_interval) {
                sync(&shared, &file);
                dirty_since = None;
            }
        }
        let start = shared.head.load(Ordering::Acquire);
        let head = start + buf.len() as u64;
        let active_len = {
            let mut segs = shared.segments.lock();
            let mut len = 0;
            if let Some(active) = segs.last_mut() {
                active.len += buf.len() as u64;
                len = active.len;
            }
            len
        };
        shared.total_bytes.fetch_add(buf.len() as u64, Ordering::AcqRel);
        shared.head.store(head, Ordering::Release);
        shared.ages.mark(head, std::time::SystemTime::now());
        shared.visible.send_replace(head);
        let mut end = start;
        for a in group.drain(..) {
            end += frame::framed_len(a.body.len());
            let _ = a.done.send(Ok(end));
        }
        if active_len >= config.segment_bytes {
            match rotate(&shared, &file, head) {
                Ok(next) => file = next,
                Err(e) => {
                    tracing::error!(log = shared.signal, error = %e, "Could not start a new log segment; writing on in the current one.")
                }
            }
            shared.release();
        }
    }
    sync(&shared, &file);
}

fn rotate(shared: &Shared, file: &File, head: u64) -> std::io::Result<File> {
    file.sync_all()?;
    open_segment(shared, head)
}

fn sync(shared: &Shared, file: &File) {
    if let Err(e) = file.sync_data() {
        tracing::error!(log = shared.signal, error = %e, "Syncing the log failed.");
    }
}

/// A failed write: every waiting request is refused (never acknowledged), and the partial write is cut off
/// so the file ends on a whole record again. If even that fails, the log refuses all further writes.
fn fail(shared: &Shared, file: &File, error: &std::io::Error, group: &mut Vec<Append>) {
    let message = format!("writing the {} log failed: {error}", shared.signal);
    tracing::error!(log = shared.signal, error = %error, "Writing the log failed; the requests are refused.");
    let len = shared.segments.lock().last().map_or(0, |s| s.len);
    if let Err(e) = file.set_len(len) {
        *shared.failed.lock() = Some(format!("{message}; and cutting off the partial write failed: {e}"));
    }
    for a in group.drain(..) {
        let _ = a.done.send(Err(message.clone()));
    }
}
