//! Arrow schema of the spans table.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Column positions in [`SPANS`], for readers.
pub mod col {
    pub const TENANT: usize = 0;
    pub const TRACE_ID: usize = 1;
    pub const SPAN_ID: usize = 2;
    pub const PARENT_SPAN_ID: usize = 3;
    pub const SERVICE: usize = 4;
    pub const NAME: usize = 5;
    pub const KIND: usize = 6;
    pub const START: usize = 7;
    pub const DURATION_NS: usize = 8;
    pub const STATUS_CODE: usize = 9;
    pub const STATUS_MESSAGE: usize = 10;
    pub const ATTRIBUTES: usize = 11;
    pub const SPAN: usize = 12;
    pub const RESOURCE_SCOPE: usize = 13;
}

/// `spans`: ids are lower-case hex (trace 32 characters, span 16); `kind` and `status_code` are the OTLP
/// enum numbers; `attributes` is a JSON object of the span's attributes. `span` is the encoded OTLP `Span`;
/// `resource_scope` an encoded `ResourceSpans` holding the resource and one `ScopeSpans` (scope and schema
/// URLs, no spans), dictionary-encoded because every span of a request shares it. It is null only if the
/// dictionary overflowed, which `buffer.batch_rows` far below 2^31 rules out.
pub static SPANS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("tenant", DataType::Utf8, false),
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("parent_span_id", DataType::Utf8, true),
        Field::new("service", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Int32, false),
        Field::new("start", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("status_code", DataType::Int32, false),
        Field::new("status_message", DataType::Utf8, true),
        Field::new("attributes", DataType::Utf8, false),
        Field::new("span", DataType::Binary, false),
        Field::new("resource_scope", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Binary)), true),
    ]))
});
