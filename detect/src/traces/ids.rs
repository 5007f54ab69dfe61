//! Trace and span ids as the buffers hold them (lower-case hex) and as the index keys them (bytes).

/// A W3C trace id: 16 bytes, never all zero.
pub type TraceId = [u8; 16];

/// Why a trace id given to the query API is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceIdError {
    #[error("a trace id has 32 hexadecimal characters, got {0}")]
    Length(usize),
    #[error("a trace id has hexadecimal characters only (0-9, a-f)")]
    NotHex,
    #[error("the all-zero trace id is invalid (W3C Trace Context)")]
    Zero,
}

/// Parses 32 hex characters (either case) into a trace id.
pub fn parse_trace_id(text: &str) -> Result<TraceId, TraceIdError> {
    let bytes = text.as_bytes();
    if bytes.len() != 32 {
        return Err(TraceIdError::Length(text.chars().count()));
    }
    let mut id = [0u8; 16];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        id[i] = (nibble(pair[0]).ok_or(TraceIdError::NotHex)? << 4) | nibble(pair[1]).ok_or(TraceIdError::NotHex)?;
    }
    if id == [0; 16] {
        return Err(TraceIdError::Zero);
    }
    Ok(id)
}

/// A span id (16 hex characters) as a number; `None` when malformed or zero (no span).
pub(crate) fn parse_span_id(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 {
        return None;
    }
    let mut v = 0u64;
    for &b in bytes {
        v = (v << 4) | u64::from(nibble(b)?);
    }
    (v != 0).then_some(v)
}

pub fn trace_hex(id: &TraceId) -> String {
    let mut s = String::with_capacity(32);
    for b in id {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

pub(crate) fn span_hex(id: u64) -> String {
    format!("{id:016x}")
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn trace_ids_round_trip_and_bad_ones_say_why() {
        let text = "5b8efff798038103d269b633813fc60c";
        let id = parse_trace_id(text).unwrap();
        assert_eq!(id[0], 0x5b);
        assert_eq!(trace_hex(&id), text);
        assert_eq!(parse_trace_id(&text.to_uppercase()).unwrap(), id);
        assert_eq!(parse_trace_id("abc"), Err(TraceIdError::Length(3)));
        assert_eq!(parse_trace_id("5b8efff798038103d269b633813fc60g"), Err(TraceIdError::NotHex));
        assert_eq!(parse_trace_id(&"0".repeat(32)), Err(TraceIdError::Zero));
        // Multi-byte characters are counted as characters in the message, and never sliced.
        assert_eq!(parse_trace_id(&"é".repeat(16)), Err(TraceIdError::NotHex));
    }

    #[test]
    fn span_ids() {
        assert_eq!(parse_span_id("eee19b7ec3c1b174"), Some(0xeee1_9b7e_c3c1_b174));
        assert_eq!(span_hex(0xeee1_9b7e_c3c1_b174), "eee19b7ec3c1b174");
        assert_eq!(parse_span_id("0000000000000000"), None);
        assert_eq!(parse_span_id("xyz"), None);
    }
}
