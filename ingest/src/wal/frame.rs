//! How a record sits in a segment: `magic (4) | body length (4) | CRC-32 of body (4) | body`, little-endian.
//!
//! The magic lets a reader find the next record after a damaged one (a flipped byte in a length would
//! otherwise lose the rest of the segment): it scans forward for the magic and accepts a candidate only if
//! its length is sane and its CRC matches.

pub(crate) const MAGIC: u32 = 0x4c57_4756; // "VGWL" read as bytes
pub(crate) const HEADER: usize = 12;
/// Larger bodies are refused on append and treated as damage on read.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

pub(crate) fn put_record(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
}

pub(crate) fn framed_len(body_len: usize) -> u64 {
    (HEADER + body_len) as u64
}

/// What is at `data[at..]`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A whole, intact record: its body is `data[body]`, the next record starts at `next`.
    Record { body: std::ops::Range<usize>, next: usize },
    /// The data ends inside a record (or its header): more may still be written, or it is a torn tail.
    Incomplete,
    /// Not a valid record here.
    Damaged,
}

pub(crate) fn parse(data: &[u8], at: usize) -> Parsed {
    let Some(header) = data.get(at..at + HEADER) else { return Parsed::Incomplete };
    let word = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if word(0) != MAGIC {
        return Parsed::Damaged;
    }
    let len = word(4) as usize;
    if len > MAX_RECORD_BYTES {
        return Parsed::Damaged;
    }
    let body = at + HEADER..at + HEADER + len;
    let Some(bytes) = data.get(body.clone()) else { return Parsed::Incomplete };
    if crc32fast::hash(bytes) != word(8) {
        return Parsed::Damaged;
    }
    Parsed::Record { next: body.end, body }
}

/// The offset of the next intact record after damage at `from`, if any.
pub(crate) fn resync(data: &[u8], from: usize) -> Option<usize> {
    let magic = MAGIC.to_le_bytes();
    let mut at = from + 1;
    while at + HEADER <= data.len() {
        let found = data[at..].windows(4).position(|w| w == magic)?;
        at += found;
        if let Parsed::Record { .. } = parse(data, at) {
            return Some(at);
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_found_and_skipped() {
        let mut data = Vec::new();
        put_record(&mut data, b"first");
        let second = data.len();
        put_record(&mut data, b"second record");
        let third = data.len();
        put_record(&mut data, b"third");
        assert_eq!(parse(&data, 0), Parsed::Record { body: HEADER..HEADER + 5, next: second });
        // A flipped byte in the second body: its CRC fails, resync finds the third.
        data[second + HEADER + 2] ^= 0x40;
        assert_eq!(parse(&data, second), Parsed::Damaged);
        assert_eq!(resync(&data, second), Some(third));
        // A cut in the third: incomplete, not damaged.
        data.truncate(third + HEADER + 2);
        assert_eq!(parse(&data, third), Parsed::Incomplete);
        assert_eq!(parse(&data, third + 1), Parsed::Damaged);
    }
}
