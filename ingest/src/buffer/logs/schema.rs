//! Arrow schema of the logs table, and the column positions consumers read by.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const TIMESTAMP: usize = 0;
pub const OBSERVED_TIMESTAMP: usize = 1;
pub const TENANT: usize = 2;
pub const SERVICE: usize = 3;
pub const SEVERITY: usize = 4;
pub const BODY: usize = 5;
pub const TRACE_ID: usize = 6;
pub const SPAN_ID: usize = 7;
pub const LABELS: usize = 8;
pub const ATTRIBUTES: usize = 9;

/// `logs`: `labels` is the Loki stream label set in Prometheus syntax (`{a="b", c="d"}`, sorted), which is
/// what the Loki forwarder sends; `attributes` is a JSON object of everything else (Loki structured metadata,
/// or the OTLP resource and record attributes not made labels), `{}` when there is nothing.
pub static LOGS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("observed_timestamp", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("tenant", DataType::Utf8, false),
        Field::new("service", DataType::Utf8, true),
        Field::new("severity", DataType::Utf8, true),
        Field::new("body", DataType::Utf8, false),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
        Field::new("labels", DataType::Utf8, false),
        Field::new("attributes", DataType::Utf8, false),
    ]))
});
