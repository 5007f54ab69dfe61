//! Log rows staged by a receiver before they enter the buffer, grouped by shard.

use crate::buffer::staged::Staged;
use crate::buffer::table::ShardRows;

/// One log line as the buffer stores it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogRow {
    pub timestamp_ns: i64,
    /// When Vigil (or the OTLP SDK/collector) saw the line.
    pub observed_timestamp_ns: i64,
    pub tenant: String,
    pub service: Option<String>,
    /// Severity text or level word (`info`, `ERROR`, …) as the sender gave it.
    pub severity: Option<String>,
    pub body: String,
    /// Lower-case hex.
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Loki stream label set, Prometheus syntax, sorted.
    pub labels: String,
    /// JSON object of the remaining attributes / structured metadata; `{}` when none.
    pub attributes: String,
}

/// One shard's staged log rows.
#[derive(Debug, Default)]
pub struct LogsShardRows {
    pub(crate) rows: Vec<LogRow>,
}

impl ShardRows for LogsShardRows {
    fn clear(&mut self) {
        self.rows.clear();
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn estimated_bytes(&self) -> u64 {
        self.rows.iter().map(|r| (LOG_ROW_FIXED_BYTES + log_row_variable_bytes(r)) as u64).sum()
    }
}

/// The shard key of a stream: equal for every line of one (tenant, labels) pair.
pub fn stream_hash(tenant: &str, labels: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(tenant.as_bytes());
    // A byte no tenant ID contains, so ("ab", "c") and ("a", "bc") differ.
    h.update(&[0xff]);
    h.update(labels.as_bytes());
    h.digest()
}

impl Staged<LogsShardRows> {
    /// Stages a row in its stream's shard; rows of one stream keep their order.
    pub fn push(&mut self, row: LogRow) {
        let key = stream_hash(&row.tenant, &row.labels);
        self.shard_for(key).rows.push(row);
    }

    pub fn row_count(&self) -> usize {
        self.shards.iter().map(|s| s.rows.len()).sum()
    }
}

/// Two timestamps (16) plus eight string offsets (32) and validity bits, rounded up.
pub(crate) const LOG_ROW_FIXED_BYTES: usize = 50;

pub(crate) fn log_row_variable_bytes(r: &LogRow) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    r.tenant.len()
        + opt(&r.service)
        + opt(&r.severity)
        + r.body.len()
        + opt(&r.trace_id)
        + opt(&r.span_id)
        + r.labels.len()
        + r.attributes.len()
}
