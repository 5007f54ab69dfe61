//! Converted spans → the spans buffer.

use super::convert::Converted;
use crate::buffer::{BufferFull, SpansBuffer};

/// Stages every kept span by trace and appends them all at once; returns how many were appended.
pub(crate) fn append(converted: &mut Converted, buffer: &SpansBuffer) -> Result<u64, BufferFull> {
    let mut staged = buffer.staged_rows();
    let n = converted.rows.len() as u64;
    for row in converted.rows.drain(..) {
        staged.push(row);
    }
    if n > 0 {
        buffer.append(&staged)?;
    }
    Ok(n)
}
