//! Converted spans → the spans log and buffer.

use super::OtlpTracesState;
use super::convert::Converted;
use crate::wal::{Refused, log_and_buffer, spans as spans_record};

/// Stages every kept span by trace, logs them as one record and appends them all at once; returns how
/// many were appended once they are durable.
pub(crate) async fn append(converted: &mut Converted, tenant: &str, state: &OtlpTracesState) -> Result<u64, Refused> {
    if let Some(wal) = &state.wal {
        wal.admit().map_err(Refused::Wal)?;
    }
    let mut staged = state.spans.staged_rows();
    let n = converted.rows.len() as u64;
    for row in converted.rows.drain(..) {
        staged.push(row);
    }
    if n > 0 {
        let record = || spans_record::record(tenant, &staged);
        if let Some(durable) = log_and_buffer(state.wal.as_deref(), record, &state.spans, &staged)? {
            durable.durable().await.map_err(Refused::Wal)?;
        }
    }
    Ok(n)
}
