//! The step every receiver ends with: log the request's rows, then add them to the buffer. The caller
//! acknowledges only once the returned [`Pending`] is durable.

use super::{EntryError, Pending, Wal, WalError};
use crate::buffer::table::OpenTable;
use crate::buffer::{BufferFull, ColumnarBuffer, Staged};

/// Why a whole request was refused (the client should retry it).
#[derive(Debug)]
pub(crate) enum Refused {
    BufferFull(BufferFull),
    Wal(WalError),
}

/// Appends `record()` (the rows in their backend's form) to `wal`, then `staged` to `buffer`. The log comes
/// first: a refusal by the buffer after it (one request larger than the whole buffer) makes the client
/// retry a request the log already holds — a duplicate downstream, never a loss.
pub(crate) fn log_and_buffer<O: OpenTable>(
    wal: Option<&Wal>,
    record: impl FnOnce() -> Result<Vec<u8>, EntryError>,
    buffer: &ColumnarBuffer<O>,
    staged: &Staged<O::Rows>,
) -> Result<Option<Pending>, Refused> {
    let durable = match wal {
        Some(wal) => {
            let body = record().map_err(|e| Refused::Wal(WalError::Failed(e.to_string())))?;
            Some(wal.append(body).map_err(Refused::Wal)?)
        }
        None => None,
    };
    buffer.append(staged).map_err(Refused::BufferFull)?;
    Ok(durable)
}
