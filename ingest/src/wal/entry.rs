//! What one record holds: one accepted request of one tenant, already in the form its backend takes.
//!
//! `version (1) | tenant length (1) | tenant | counts (3 × u32 LE) | payload`. For metrics the payload is a
//! snappy-compressed remote write 1.0 `WriteRequest` (counts: samples, exemplars, histograms); protobuf
//! messages concatenate by merging repeated fields, so a forwarder builds one request from many records by
//! decompressing and appending their payloads, with no decoding.

use bytes::Bytes;

const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub tenant: String,
    /// What the payload carries, by signal (metrics: samples, exemplars, histograms).
    pub counts: [u32; 3],
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("log entry is malformed: {0}")]
pub struct EntryError(pub(crate) &'static str);

impl Entry {
    pub fn encode(tenant: &str, counts: [u32; 3], payload: &[u8]) -> Result<Vec<u8>, EntryError> {
        let tenant_len = u8::try_from(tenant.len()).map_err(|_| EntryError("tenant longer than 255 bytes"))?;
        let mut out = Vec::with_capacity(2 + tenant.len() + 12 + payload.len());
        out.push(VERSION);
        out.push(tenant_len);
        out.extend_from_slice(tenant.as_bytes());
        for c in counts {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out.extend_from_slice(payload);
        Ok(out)
    }

    /// Decodes without copying the payload.
    pub fn decode(body: &Bytes) -> Result<Self, EntryError> {
        let (&version, rest) = body.split_first().ok_or(EntryError("empty"))?;
        if version != VERSION {
            return Err(EntryError("unknown version"));
        }
        let (&len, rest) = rest.split_first().ok_or(EntryError("no tenant"))?;
        let tenant = rest.get(..len as usize).ok_or(EntryError("tenant cut short"))?;
        let tenant = std::str::from_utf8(tenant).map_err(|_| EntryError("tenant not UTF-8"))?.to_owned();
        let counts_at = 2 + len as usize;
        let counts_bytes = body.get(counts_at..counts_at + 12).ok_or(EntryError("counts cut short"))?;
        let count = |i: usize| {
            u32::from_le_bytes([counts_bytes[i], counts_bytes[i + 1], counts_bytes[i + 2], counts_bytes[i + 3]])
        };
        Ok(Entry { tenant, counts: [count(0), count(4), count(8)], payload: body.slice(counts_at + 12..) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let body = Bytes::from(Entry::encode("team-a", [3, 1, 0], b"payload").unwrap());
        let e = Entry::decode(&body).unwrap();
        assert_eq!((e.tenant.as_str(), e.counts, &e.payload[..]), ("team-a", [3, 1, 0], &b"payload"[..]));
        for cut in 0..body.len() - 7 {
            assert!(Entry::decode(&body.slice(..cut)).is_err(), "cut at {cut}");
        }
    }
}
