//! Why a remote-write request was refused, and the HTTP answer for each reason.

use http::StatusCode;

use crate::protowire::WireError;

#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    #[error(
        "unsupported Content-Type {0:?}: expected application/x-protobuf, optionally with proto=prometheus.WriteRequest or proto=io.prometheus.write.v2.Request"
    )]
    UnsupportedContentType(String),
    #[error("unsupported Content-Encoding {0:?}: remote write bodies must be snappy (block format)")]
    UnsupportedEncoding(String),
    #[error("request body of {size} bytes exceeds `limits.max_body_bytes` = {limit}")]
    BodyTooLarge { size: u64, limit: u64 },
    #[error("decompressed body of {size} bytes exceeds `limits.max_decompressed_bytes` = {limit}")]
    DecompressedTooLarge { size: u64, limit: u64 },
    #[error("reading request body: {0}")]
    BodyRead(String),
    #[error("invalid snappy block: {0}")]
    Snappy(String),
    #[error("invalid protobuf: {0}")]
    Protobuf(#[from] WireError),
    #[error("invalid protobuf: {field} has the wrong wire type")]
    WireType { field: &'static str },
    #[error("timeseries[{series}]: {problem}")]
    InvalidSeries { series: usize, problem: SeriesProblem },
    #[error("symbols[0] must be the empty string")]
    FirstSymbolNotEmpty,
    #[error("symbols[{0}] is not valid UTF-8")]
    SymbolNotUtf8(usize),
    #[error("metadata[{0}]: {1} is not valid UTF-8")]
    MetadataNotUtf8(usize, &'static str),
    #[error("{0}")]
    Limit(String),
    #[error("buffer is full (`buffer.max_bytes` = {limit} bytes); retry later")]
    BufferFull { limit: u64 },
    #[error("invalid X-Scope-OrgID: {0}")]
    InvalidTenant(String),
    #[error("{0}")]
    Wal(crate::wal::WalError),
    #[error("{0}")]
    RateLimited(crate::rate_limit::RateLimited),
}

impl From<crate::tenant::TenantError> for RemoteWriteError {
    fn from(e: crate::tenant::TenantError) -> Self {
        match e {
            crate::tenant::TenantError::Invalid(m) => Self::InvalidTenant(m),
            limit @ crate::tenant::TenantError::Limit(_) => Self::Limit(limit.to_string()),
        }
    }
}

/// What is wrong with one series.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SeriesProblem {
    #[error("no labels")]
    NoLabels,
    #[error("missing __name__ label")]
    MissingName,
    #[error("empty label name")]
    EmptyLabelName,
    #[error("duplicate label name {0:?}")]
    DuplicateLabel(String),
    #[error("labels not sorted by name: {later:?} comes after {earlier:?}")]
    Unsorted { earlier: String, later: String },
    #[error("label {0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("labels_refs has odd length {0}")]
    OddLabelRefs(usize),
    #[error("symbol reference {reference} out of range (symbols has {len} entries)")]
    BadSymbolRef { reference: u64, len: usize },
    #[error("has both samples and histograms")]
    SamplesAndHistograms,
    #[error("has neither samples nor histograms")]
    NoData,
    #[error("samples out of timestamp order ({later} after {earlier})")]
    OutOfOrder { earlier: i64, later: i64 },
    #[error("{count} labels exceed `limits.max_labels_per_series` = {limit}")]
    TooManyLabels { count: usize, limit: usize },
    #[error("label name of {len} bytes exceeds `limits.max_label_name_bytes` = {limit}")]
    NameTooLong { len: usize, limit: usize },
    #[error("value of label {name:?} has {len} bytes, over `limits.max_label_value_bytes` = {limit}")]
    ValueTooLong { name: String, len: usize, limit: usize },
    #[error("exemplar {0}")]
    Exemplar(Box<SeriesProblem>),
    #[error("histogram: {0}")]
    Histogram(String),
}

impl RemoteWriteError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedContentType(_) | Self::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge { .. } | Self::DecompressedTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            // Never fits, however long the sender waits: a 429 would make Prometheus retry it forever and stall
            // its shard; 413 makes it drop the request (counted on its side) while the message says what to
            // change (`max_samples_per_send`, or the burst).
            Self::RateLimited(crate::rate_limit::RateLimited::OverBurst { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BufferFull { .. }
            | Self::Limit(_)
            | Self::Wal(crate::wal::WalError::Full(_))
            | Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            // The disk failed or Vigil is stopping: retried by every remote-write sender.
            Self::Wal(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A short label for the `reason` of the rejected-requests counter.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnsupportedContentType(_) => "unsupported_content_type",
            Self::UnsupportedEncoding(_) => "unsupported_encoding",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::DecompressedTooLarge { .. } => "decompressed_too_large",
            Self::BodyRead(_) => "body_read",
            Self::Snappy(_) => "bad_snappy",
            Self::Protobuf(_) | Self::WireType { .. } => "bad_protobuf",
            Self::InvalidSeries { .. }
            | Self::FirstSymbolNotEmpty
            | Self::SymbolNotUtf8(_)
            | Self::MetadataNotUtf8(..) => "invalid_series",
            Self::Limit(_) => "limit",
            Self::BufferFull { .. } => "buffer_full",
            Self::InvalidTenant(_) => "invalid_tenant",
            Self::Wal(crate::wal::WalError::Full(_)) => "wal_full",
            Self::Wal(_) => "wal_failed",
            Self::RateLimited(_) => "rate_limited",
        }
    }

    /// Seconds the client should wait, when this error says (a rate limit knows when the request fits).
    pub fn retry_after_seconds(&self) -> Option<u32> {
        match self {
            Self::RateLimited(r @ crate::rate_limit::RateLimited::OverBudget { .. }) => Some(r.retry_after_seconds()),
            _ => None,
        }
    }
}
