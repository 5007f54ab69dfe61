//! Minimal protobuf wire reader over a borrowed slice.
//!
//! `prost` decodes into owned structs (a `String` per label). The remote-write hot path instead records
//! byte ranges into the request body and only copies label bytes for series it has never seen, so it reads
//! the wire format directly. Varint decoding is delegated to `prost::encoding::decode_varint`.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WireError {
    #[error("truncated protobuf at byte {0}")]
    Truncated(usize),
    #[error("invalid varint at byte {0}")]
    BadVarint(usize),
    #[error("unsupported protobuf wire type {wire_type} at byte {at}")]
    BadWireType { wire_type: u8, at: usize },
    #[error("field number 0 at byte {0}")]
    ZeroField(usize),
}

/// Wire types of the protobuf encoding.
pub(crate) const VARINT: u8 = 0;
pub(crate) const FIXED64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const FIXED32: u8 = 5;

/// A cursor over a protobuf message. Offsets it reports are relative to `base`, the start of the whole
/// decompressed body, so ranges stay valid across nested messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireReader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

/// One field's value as read off the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldValue {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    /// Byte range `[start, end)` in the body.
    Len(usize, usize),
}

impl<'a> WireReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0, end: buf.len() }
    }

    /// A reader over the sub-message stored at `[start, end)` of the same body.
    pub(crate) fn sub(&self, start: usize, end: usize) -> Self {
        Self { buf: self.buf, pos: start, end }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn end(&self) -> usize {
        self.end
    }

    /// The bytes not yet read.
    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..self.end).unwrap_or(&[])
    }

    /// Most varints on this path (tags, lengths under 128) are one byte: take those without a call.
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        if self.pos < self.end
            && let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let at = self.pos;
        let mut slice = self.buf.get(self.pos..self.end).ok_or(WireError::Truncated(at))?;
        let before = slice.len();
        let v = prost::encoding::decode_varint(&mut slice).map_err(|_| {
            if before < 10 && slice.is_empty() { WireError::Truncated(at) } else { WireError::BadVarint(at) }
        })?;
        self.pos += before - slice.len();
        Ok(v)
    }

    #[inline(always)]
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let at = self.pos;
        let end = at.checked_add(N).filter(|e| *e <= self.end).ok_or(WireError::Truncated(at))?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[at..end]);
        self.pos = end;
        Ok(out)
    }

    /// Reads the next field: its number and value. Groups (wire types 3/4) are rejected: no message Vigil
    /// decodes uses them.
    #[inline]
    pub(crate) fn next_field(&mut self) -> Result<(u32, FieldValue), WireError> {
        let at = self.pos;
        let key = self.varint()?;
        let wire_type = (key & 0x7) as u8;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(WireError::ZeroField(at));
        }
        let value = match wire_type {
            VARINT => FieldValue::Varint(self.varint()?),
            FIXED64 => FieldValue::Fixed64(u64::from_le_bytes(self.fixed::<8>()?)),
            FIXED32 => {
                self.fixed::<4>()?;
                FieldValue::Fixed32
            }
            LEN => {
                let len_at = self.pos;
                let len = self.varint()?;
                let start = self.pos;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|l| start.checked_add(l))
                    .filter(|e| *e <= self.end)
                    .ok_or(WireError::Truncated(len_at))?;
                self.pos = end;
                FieldValue::Len(start, end)
            }
            other => return Err(WireError::BadWireType { wire_type: other, at }),
        };
        Ok((field as u32, value))
    }
}

impl FieldValue {
    pub(crate) fn as_f64(self) -> Option<f64> {
        match self {
            FieldValue::Fixed64(bits) => Some(f64::from_bits(bits)),
            _ => None,
        }
    }

    pub(crate) fn as_i64(self) -> Option<i64> {
        match self {
            FieldValue::Varint(v) => Some(v as i64),
            _ => None,
        }
    }

    pub(crate) fn as_u64(self) -> Option<u64> {
        match self {
            FieldValue::Varint(v) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn as_range(self) -> Option<(usize, usize)> {
        match self {
            FieldValue::Len(s, e) => Some((s, e)),
            _ => None,
        }
    }
}

/// Appends `v` as a protobuf varint. (prost's `encode_varint` goes through `BufMut` and was measurably slower
/// on the encode hot path.)
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Iterates a packed repeated varint field stored at `[start, end)`.
pub(crate) fn packed_varints(
    buf: &[u8],
    start: usize,
    end: usize,
    mut f: impl FnMut(u64) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut slice = buf.get(start..end).ok_or(WireError::Truncated(start))?;
    while !slice.is_empty() {
        let at = end - slice.len();
        let v = prost::encoding::decode_varint(&mut slice).map_err(|_| WireError::BadVarint(at))?;
        f(v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_reports_truncation() {
        // field 1 varint 150, field 2 len "hi", field 3 fixed64
        let mut buf = vec![0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x19];
        buf.extend_from_slice(&1.5f64.to_le_bytes());
        let mut r = WireReader::new(&buf);
        assert!(matches!(r.next_field().unwrap(), (1, FieldValue::Varint(150))));
        let (f, v) = r.next_field().unwrap();
        assert_eq!((f, v.as_range()), (2, Some((5, 7))));
        let (f, v) = r.next_field().unwrap();
        assert_eq!((f, v.as_f64()), (3, Some(1.5)));
        assert!(r.is_empty());

        let mut short = WireReader::new(&buf[..6]);
        short.next_field().unwrap();
        assert_eq!(short.next_field().unwrap_err(), WireError::Truncated(4));
    }

    #[test]
    fn rejects_groups_and_field_zero() {
        assert!(matches!(WireReader::new(&[0x0b]).next_field(), Err(WireError::BadWireType { .. })));
        assert!(matches!(WireReader::new(&[0x00, 0x00]).next_field(), Err(WireError::ZeroField(0))));
    }
}
