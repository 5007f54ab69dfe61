//! Segment files on disk: `{start offset:020}.seg`, where the start offset is the log position of the
//! segment's first byte. Positions grow across segments and restarts and are never reused.

use std::fs;
use std::io;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::frame::{self, Parsed};

#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) start: u64,
    /// Bytes in the file (for the active segment: written so far).
    pub(crate) len: u64,
    pub(crate) path: PathBuf,
}

impl Segment {
    pub(crate) fn end(&self) -> u64 {
        self.start + self.len
    }
}

pub(crate) fn path_of(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}.seg"))
}

/// The segment files in `dir`, oldest first.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(start) = name.to_str().and_then(|n| n.strip_suffix(".seg")).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        out.push(Segment { start, len: entry.metadata()?.len(), path: entry.path() });
    }
    out.sort_by_key(|s| s.start);
    Ok(out)
}

/// What start-up found wrong in one segment, and did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: String,
    /// Offset in the segment file where the damage starts.
    pub offset: u64,
    pub bytes: u64,
    pub kind: DamageKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// Bytes that are not intact records (bad CRC, bad header); readers skip them.
    Corrupt,
    /// A record cut off at the end of the last segment (a crash mid-write); the file was truncated.
    TornTail,
}

/// Scans one segment, read into `data` (reused across segments: a fresh 64 MiB buffer per segment spent
/// more time in page faults than in reading), counting its intact records and finding damaged regions. A
/// cut-off record at the end is a torn tail, which the caller truncates.
pub(crate) fn scan(segment: &Segment, data: &mut Vec<u8>) -> io::Result<(u64, Vec<Damage>)> {
    data.clear();
    fs::File::open(&segment.path)?.read_to_end(data)?;
    let data = &data[..];
    let name = segment.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (mut at, mut records, mut damage) = (0usize, 0u64, Vec::new());
    while at < data.len() {
        match frame::parse(data, at) {
            Parsed::Record { next, .. } => {
                records += 1;
                at = next;
            }
            // Cut off at the end: a torn tail, unless an intact record follows (then a damaged length made
            // this one reach past the end, and cutting here would lose every record after it).
            Parsed::Incomplete if frame::resync(data, at).is_none() => {
                damage.push(Damage {
                    segment: name.clone(),
                    offset: at as u64,
                    bytes: (data.len() - at) as u64,
                    kind: DamageKind::TornTail,
                });
                break;
            }
            Parsed::Incomplete | Parsed::Damaged => {
                let next = frame::resync(data, at).unwrap_or(data.len());
                damage.push(Damage {
                    segment: name.clone(),
                    offset: at as u64,
                    bytes: (next - at) as u64,
                    kind: DamageKind::Corrupt,
                });
                at = next;
            }
        }
    }
    Ok((records, damage))
}
