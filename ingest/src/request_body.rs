//! Reading a request body within `limits.max_body_bytes`, shared by every HTTP receiver.

use axum::body::Body;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("request body of {size} bytes exceeds `limits.max_body_bytes` = {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("reading request body: {0}")]
    Read(String),
}

/// Refuses early on a `Content-Length` over the limit; otherwise reads at most `limit` bytes.
pub(crate) async fn read_limited(headers: &HeaderMap, body: Body, limit: u64) -> Result<bytes::Bytes, BodyError> {
    if let Some(len) =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        return Err(BodyError::TooLarge { size: len, limit });
    }
    match Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        // The body ran past the limit without announcing its length; its true size is unknown.
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge { size: limit + 1, limit }),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}
