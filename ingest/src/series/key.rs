//! Canonical label-set encoding.

use std::sync::Arc;

/// A label set in canonical form: consecutive remote-write 1.0 `Label` messages (field 1 of `TimeSeries`),
/// sorted by name, empty values dropped. Cheap to clone.
pub type LabelSetKey = Arc<[u8]>;

/// One decoded label pair borrowed from a key or a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelPair<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

use crate::protowire::put_varint;

fn varint_len(v: u64) -> usize {
    prost::encoding::encoded_len_varint(v)
}

/// Appends one label as field 1 of a `TimeSeries` (`0x0a len { 0x0a name 0x12 value }`).
pub(crate) fn push_label(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let inner = 1 + varint_len(name.len() as u64) + name.len() + 1 + varint_len(value.len() as u64) + value.len();
    out.push(0x0a);
    put_varint(out, inner as u64);
    out.push(0x0a);
    put_varint(out, name.len() as u64);
    out.extend_from_slice(name);
    out.push(0x12);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Iterates the labels of a canonical key. Keys are produced by this crate, so malformed input only yields
/// a shorter iteration, never a panic.
pub fn decode_label_key(key: &[u8]) -> impl Iterator<Item = LabelPair<'_>> {
    let mut rest = key;
    std::iter::from_fn(move || {
        let (label, tail) = read_len_field(rest, 0x0a)?;
        rest = tail;
        let (name, after_name) = read_len_field(label, 0x0a)?;
        let (value, _) = read_len_field(after_name, 0x12)?;
        Some(LabelPair { name: std::str::from_utf8(name).ok()?, value: std::str::from_utf8(value).ok()? })
    })
}

fn read_len_field(buf: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, mut rest) = buf.split_first()?;
    if first != tag {
        return None;
    }
    let len = usize::try_from(prost::encoding::decode_varint(&mut rest).ok()?).ok()?;
    if len > rest.len() {
        return None;
    }
    Some(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use vigil_proto::prometheus::{Label, TimeSeries};

    #[test]
    fn key_is_the_rw1_label_encoding() {
        let mut key = Vec::new();
        push_label(&mut key, b"__name__", b"up");
        push_label(&mut key, b"job", &[b'x'; 200]);
        let ts = TimeSeries::decode(key.as_slice()).unwrap();
        assert_eq!(
            ts.labels,
            vec![
                Label { name: "__name__".into(), value: "up".into() },
                Label { name: "job".into(), value: "x".repeat(200) }
            ]
        );
        let pairs: Vec<_> = decode_label_key(&key).collect();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[1].value.len(), 200);
    }
}
