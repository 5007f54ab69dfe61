//! The decoded form of one remote-write request, shared by the 1.0 and 2.0 decoders.
//!
//! Everything is a byte range into the decompressed body, so the struct owns no strings, has no lifetime,
//! and is reused across requests by one worker (its vectors keep their capacity).

use std::ops::Range;

/// `[start, end)` into the decompressed body. Bodies are capped well below 4 GiB.
pub(crate) type Span = (u32, u32);

#[derive(Debug, Clone, Copy)]
pub(crate) struct LabelRef {
    pub(crate) name: Span,
    pub(crate) value: Span,
}

#[derive(Debug, Clone)]
pub(crate) struct SeriesRef {
    pub(crate) labels: Range<u32>,
    pub(crate) samples: Range<u32>,
    pub(crate) exemplars: Range<u32>,
    pub(crate) histograms: Range<u32>,
    /// Where the sender's label bytes are already in canonical key form (see `series::key`): contiguous,
    /// minimal lengths, name before value, no empty values. Then they are the registry key as they are.
    pub(crate) canonical_labels: Option<Span>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SampleRow {
    pub(crate) timestamp_ms: i64,
    pub(crate) value: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct ExemplarRef {
    pub(crate) labels: Range<u32>,
    pub(crate) timestamp_ms: i64,
    pub(crate) value: f64,
}

/// A native histogram kept as its encoded message; 2.0 ones are re-encoded to 1.0 at append time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HistogramRef {
    pub(crate) body: Span,
    pub(crate) timestamp_ms: i64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct MetadataRef {
    pub(crate) family: Span,
    pub(crate) metric_type: i32,
    pub(crate) help: Span,
    pub(crate) unit: Span,
}

/// Which schema the body was decoded with; it decides how histograms are passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteWriteVersion {
    #[default]
    V1,
    V2,
}

impl RemoteWriteVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteWriteVersion::V1 => "1.0",
            RemoteWriteVersion::V2 => "2.0",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct DecodedWrite {
    pub(crate) version: RemoteWriteVersion,
    pub(crate) series: Vec<SeriesRef>,
    pub(crate) labels: Vec<LabelRef>,
    pub(crate) samples: Vec<SampleRow>,
    pub(crate) exemplars: Vec<ExemplarRef>,
    pub(crate) histograms: Vec<HistogramRef>,
    pub(crate) metadata: Vec<MetadataRef>,
    /// 2.0 only: the symbol table as spans.
    pub(crate) symbols: Vec<Span>,
}

impl DecodedWrite {
    pub(crate) fn clear(&mut self, version: RemoteWriteVersion) {
        self.version = version;
        self.series.clear();
        self.labels.clear();
        self.samples.clear();
        self.exemplars.clear();
        self.histograms.clear();
        self.metadata.clear();
        self.symbols.clear();
    }
}

/// Reads a span of a body as `str`. Spans come from the decoder, which checked bounds and UTF-8.
pub(crate) fn span_str(body: &[u8], span: Span) -> &str {
    body.get(span.0 as usize..span.1 as usize).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
}

pub(crate) fn span_bytes(body: &[u8], span: Span) -> &[u8] {
    body.get(span.0 as usize..span.1 as usize).unwrap_or(&[])
}
