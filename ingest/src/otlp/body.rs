//! Content negotiation, decompression and answers for OTLP/HTTP, per the spec's "OTLP/HTTP" section.

use std::io::Read;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use prost::Message;
use vigil_proto::google_rpc::Status;

use crate::limits::IngestLimits;
use crate::request_body::{BodyError, read_limited};

/// The two encodings OTLP/HTTP defines; the answer uses the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a request was refused; each maps to the status the spec (or the collector, where the spec only says
/// 4xx) uses.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OtlpError {
    #[error("unsupported media type {0:?}, supported: [application/json, application/x-protobuf]")]
    UnsupportedMediaType(String),
    #[error("unsupported Content-Encoding {0:?}, supported: gzip, identity")]
    UnsupportedEncoding(String),
    #[error("request body of {size} bytes exceeds `limits.max_body_bytes` = {limit}")]
    BodyTooLarge { size: u64, limit: u64 },
    #[error("decompressed body exceeds `limits.max_decompressed_bytes` = {limit}")]
    DecompressedTooLarge { limit: u64 },
    #[error("invalid gzip body: {0}")]
    Gzip(String),
    #[error("reading request body: {0}")]
    BodyRead(String),
    #[error("invalid protobuf: {0}")]
    Protobuf(String),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("buffer is full (`buffer.max_bytes` = {limit} bytes); retry later")]
    BufferFull { limit: u64 },
    #[error("invalid X-Scope-OrgID: {0}")]
    InvalidTenant(String),
    #[error("{0}")]
    TenantLimit(String),
    #[error("{0}")]
    Wal(crate::wal::WalError),
    /// Over the tenant's `limits.max_samples_per_second_per_tenant`: 429, which OTLP clients retry.
    #[error("{0}")]
    RateLimited(crate::rate_limit::RateLimited),
}

impl From<crate::tenant::TenantError> for OtlpError {
    fn from(e: crate::tenant::TenantError) -> Self {
        match e {
            crate::tenant::TenantError::Invalid(m) => Self::InvalidTenant(m),
            limit @ crate::tenant::TenantError::Limit(_) => Self::TenantLimit(limit.to_string()),
        }
    }
}

impl OtlpError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType(_) | Self::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge { .. } | Self::DecompressedTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            // Never fits, however long the client waits: not retried (see `remote_write::error`).
            Self::RateLimited(crate::rate_limit::RateLimited::OverBurst { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            // 503, not 500: OTLP clients retry only 429, 502, 503 and 504.
            Self::BufferFull { .. } | Self::Wal(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TenantLimit(_) | Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType(_) => "unsupported_content_type",
            Self::UnsupportedEncoding(_) => "unsupported_encoding",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::DecompressedTooLarge { .. } => "decompressed_too_large",
            Self::Gzip(_) => "bad_gzip",
            Self::BodyRead(_) => "body_read",
            Self::Protobuf(_) => "bad_protobuf",
            Self::Json(_) => "bad_json",
            Self::BufferFull { .. } => "buffer_full",
            Self::InvalidTenant(_) => "invalid_tenant",
            Self::TenantLimit(_) => "limit",
            Self::Wal(crate::wal::WalError::Full(_)) => "wal_full",
            Self::Wal(_) => "wal_failed",
            Self::RateLimited(_) => "rate_limited",
        }
    }

    /// Seconds the client should wait, when this error says (a rate limit knows when the request fits).
    pub(crate) fn retry_after_seconds(&self) -> Option<u32> {
        match self {
            Self::RateLimited(r @ crate::rate_limit::RateLimited::OverBudget { .. }) => Some(r.retry_after_seconds()),
            _ => None,
        }
    }

    /// `google.rpc.Code` for the `Status` body.
    fn rpc_code(&self) -> i32 {
        if let Self::RateLimited(_) = self {
            return 8; // RESOURCE_EXHAUSTED, as over OTLP/gRPC
        }
        match self.status() {
            StatusCode::SERVICE_UNAVAILABLE => 14,
            StatusCode::PAYLOAD_TOO_LARGE => 8,
            _ => 3,
        }
    }

    /// The answer: a `google.rpc.Status` in the request's encoding (plain text when the encoding itself was
    /// the problem), with `Retry-After` when the client should come back: the error's own wait if it knows
    /// one, else `retry_after_seconds`.
    pub(crate) fn into_response(self, encoding: Option<Encoding>, retry_after_seconds: u32) -> Response {
        let status = self.status();
        let retry_after_seconds = self.retry_after_seconds().unwrap_or(retry_after_seconds);
        let rpc = Status { code: self.rpc_code(), message: self.to_string(), details: Vec::new() };
        let mut response = match encoding {
            Some(Encoding::Protobuf) => {
                (status, [(header::CONTENT_TYPE, Encoding::Protobuf.content_type())], rpc.encode_to_vec())
                    .into_response()
            }
            Some(Encoding::Json) => {
                let body = serde_json::json!({ "code": rpc.code, "message": rpc.message }).to_string();
                (status, [(header::CONTENT_TYPE, Encoding::Json.content_type())], body).into_response()
            }
            None => (status, format!("{}\n", rpc.message)).into_response(),
        };
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response
    }
}

/// A request body in its negotiated encoding: protobuf, or OTLP/JSON through the crate's serde mapping (hex
/// trace and span ids, any case; a malformed one fails the whole decode).
pub(crate) fn decode<M: Message + Default + serde::de::DeserializeOwned>(
    encoding: Encoding,
    body: &[u8],
) -> Result<M, OtlpError> {
    match encoding {
        Encoding::Protobuf => M::decode(body).map_err(|e| OtlpError::Protobuf(e.to_string())),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| OtlpError::Json(e.to_string())),
    }
}

pub(crate) fn encoding_of(headers: &HeaderMap) -> Result<Encoding, OtlpError> {
    let raw = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = raw.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/x-protobuf") {
        Ok(Encoding::Protobuf)
    } else if media.eq_ignore_ascii_case("application/json") {
        Ok(Encoding::Json)
    } else {
        Err(OtlpError::UnsupportedMediaType(raw.to_owned()))
    }
}

/// Reads a request body within `limits.max_body_bytes` and undoes its `Content-Encoding`.
pub(crate) async fn read_body(
    limits: &IngestLimits,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<bytes::Bytes, OtlpError> {
    let raw = read_limited(headers, body, limits.max_body_bytes).await.map_err(|e| match e {
        BodyError::TooLarge { size, limit } => OtlpError::BodyTooLarge { size, limit },
        BodyError::Read(m) => OtlpError::BodyRead(m),
    })?;
    decompress(headers, raw, limits)
}

/// Undoes `Content-Encoding` (gzip or none) within `limits.max_decompressed_bytes`.
pub(crate) fn decompress(
    headers: &HeaderMap,
    body: bytes::Bytes,
    limits: &IngestLimits,
) -> Result<bytes::Bytes, OtlpError> {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    match encoding.to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(body),
        "gzip" => {
            let limit = limits.max_decompressed_bytes;
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit as usize));
            // Read one byte past the limit to tell "exactly at" from "over" (gzip bombs stop here).
            flate2::read::GzDecoder::new(&body[..])
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| OtlpError::Gzip(e.to_string()))?;
            if out.len() as u64 > limit {
                return Err(OtlpError::DecompressedTooLarge { limit });
            }
            Ok(out.into())
        }
        other => Err(OtlpError::UnsupportedEncoding(other.to_owned())),
    }
}

/// `Export*ServiceResponse` with `partial_success` when something was rejected. Written by hand for JSON:
/// the crate's serde output spells absent messages as `null` and 64-bit counts must be strings in OTLP/JSON.
pub(crate) fn success(encoding: Encoding, rejected_field: &'static str, rejected: u64, message: &str) -> Response {
    let body = match encoding {
        Encoding::Protobuf => {
            let mut out = Vec::new();
            if rejected > 0 || !message.is_empty() {
                // ExportMetricsServiceResponse { partial_success = 1 { rejected_* = 1 (int64); error_message = 2 } }
                let mut inner = Vec::new();
                if rejected > 0 {
                    inner.push(0x08);
                    crate::put_varint(&mut inner, rejected);
                }
                if !message.is_empty() {
                    inner.push(0x12);
                    crate::put_varint(&mut inner, message.len() as u64);
                    inner.extend_from_slice(message.as_bytes());
                }
                out.push(0x0a);
                crate::put_varint(&mut out, inner.len() as u64);
                out.extend_from_slice(&inner);
            }
            out
        }
        Encoding::Json => {
            if rejected > 0 || !message.is_empty() {
                let mut partial = serde_json::Map::new();
                partial.insert(rejected_field.to_owned(), serde_json::Value::String(rejected.to_string()));
                partial.insert("errorMessage".to_owned(), serde_json::Value::String(message.to_owned()));
                serde_json::json!({ "partialSuccess": partial }).to_string().into_bytes()
            } else {
                b"{}".to_vec()
            }
        }
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}
