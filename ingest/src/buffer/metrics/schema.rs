//! Arrow schemas of the metrics buffer's three tables.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// `samples`: one row per float sample. `series_slot` is the series' index in this process' registry: it
/// lets consumers reach the labels without a hash lookup, and means nothing outside the process.
pub static SAMPLES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        Field::new("value", DataType::Float64, false),
        Field::new("series_slot", DataType::UInt32, false),
    ]))
});

/// `exemplars`: one row per exemplar; `trace_id`/`span_id` are pulled out of the labels for correlation,
/// `labels` keeps every exemplar label in canonical (remote-write 1.0 `Label`) encoding.
pub static EXEMPLARS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        Field::new("value", DataType::Float64, false),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
        Field::new("labels", DataType::Binary, false),
    ]))
});

/// `histograms`: native histograms, kept as encoded remote-write 1.0 `Histogram` messages and passed
/// through to the forwarders.
pub static HISTOGRAMS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        Field::new("histogram", DataType::Binary, false),
    ]))
});
