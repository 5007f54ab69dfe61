//! Why a push was refused, and the status Loki answers it with.

use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub(crate) enum LokiError {
    #[error("unsupported Content-Type {0:?}, supported: application/x-protobuf, application/json")]
    UnsupportedMediaType(String),
    #[error("Content-Encoding {0:?} not supported, supported: snappy (protobuf), gzip, deflate, identity")]
    UnsupportedEncoding(String),
    #[error("request body of {size} bytes exceeds `limits.max_body_bytes` = {limit}")]
    BodyTooLarge { size: u64, limit: u64 },
    #[error("decompressed body exceeds `limits.max_decompressed_bytes` = {limit}")]
    DecompressedTooLarge { limit: u64 },
    #[error("reading request body: {0}")]
    BodyRead(String),
    #[error("invalid {0} body: {1}")]
    Compression(&'static str, String),
    #[error("invalid protobuf: {0}")]
    Protobuf(String),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("invalid X-Scope-OrgID: a tenant ID is 1 to 150 characters of [a-zA-Z0-9!_.*'()-]")]
    InvalidTenant,
    /// A stream or entry that cannot be read at all: the whole request is refused.
    #[error("stream {stream}: {what}")]
    Malformed { stream: usize, what: String },
    /// Some streams or lines were refused (and the rest appended), as Loki does.
    #[error("{}", problems.join("\n"))]
    Invalid { problems: Vec<String> },
    #[error("buffer is full (`buffer.max_bytes` = {limit} bytes); retry later")]
    BufferFull { limit: u64 },
    #[error("{0}")]
    Wal(crate::wal::WalError),
}

impl From<crate::wal::Refused> for LokiError {
    fn from(r: crate::wal::Refused) -> Self {
        match r {
            crate::wal::Refused::BufferFull(full) => Self::BufferFull { limit: full.limit },
            crate::wal::Refused::Wal(e) => Self::Wal(e),
        }
    }
}

impl LokiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType(_) | Self::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge { .. } | Self::DecompressedTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            // Loki's own answer to rate limits; Promtail, Alloy and the Loki clients retry it.
            Self::BufferFull { .. } | Self::Wal(crate::wal::WalError::Full(_)) => StatusCode::TOO_MANY_REQUESTS,
            Self::Wal(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType(_) => "unsupported_content_type",
            Self::UnsupportedEncoding(_) => "unsupported_encoding",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::DecompressedTooLarge { .. } => "decompressed_too_large",
            Self::BodyRead(_) => "body_read",
            Self::Compression(..) => "bad_compression",
            Self::Protobuf(_) => "bad_protobuf",
            Self::Json(_) => "bad_json",
            Self::InvalidTenant => "invalid_tenant",
            Self::Malformed { .. } => "malformed_stream",
            Self::Invalid { .. } => "invalid_streams",
            Self::BufferFull { .. } => "buffer_full",
            Self::Wal(crate::wal::WalError::Full(_)) => "wal_full",
            Self::Wal(_) => "wal_failed",
        }
    }
}
