//! Push bodies → streams: `Content-Encoding`, then snappy + protobuf or JSON, as Loki's
//! `pkg/loghttp/push/push.go` reads them.

use std::collections::BTreeMap;
use std::io::Read;

use prost::Message;
use vigil_proto::loki::PushRequest;

use super::error::LokiError;
use super::labels::{self, LabelPairs};
use crate::limits::IngestLimits;

/// One stream of a push, in whichever format it came.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Stream {
    pub(crate) labels: LabelPairs,
    pub(crate) entries: Vec<Entry>,
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Entry {
    pub(crate) timestamp_ns: i64,
    pub(crate) line: String,
    pub(crate) metadata: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Protobuf,
    Json,
}

pub(crate) fn format_of(content_type: Option<&str>) -> Result<Format, LokiError> {
    let raw = content_type.unwrap_or("");
    let media = raw.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/x-protobuf") {
        Ok(Format::Protobuf)
    } else if media.eq_ignore_ascii_case("application/json") {
        Ok(Format::Json)
    } else {
        Err(LokiError::UnsupportedMediaType(raw.to_owned()))
    }
}

/// Undoes `Content-Encoding`. `snappy` is accepted and left alone: a protobuf body is always snappy and is
/// decoded as such below (Loki does the same; some clients set the header, most do not).
pub(crate) fn decode_content_encoding(
    encoding: Option<&str>,
    body: bytes::Bytes,
    limits: &IngestLimits,
) -> Result<bytes::Bytes, LokiError> {
    let encoding = encoding.map(str::trim).unwrap_or("").to_ascii_lowercase();
    let limit = limits.max_decompressed_bytes;
    let inflate = |reader: &mut dyn Read, name: &'static str| {
        let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit as usize));
        // One byte past the limit tells "exactly at" from "over"; a compression bomb stops here.
        reader.take(limit + 1).read_to_end(&mut out).map_err(|e| LokiError::Compression(name, e.to_string()))?;
        if out.len() as u64 > limit {
            return Err(LokiError::DecompressedTooLarge { limit });
        }
        Ok(bytes::Bytes::from(out))
    };
    match encoding.as_str() {
        "" | "identity" | "snappy" => Ok(body),
        "gzip" => inflate(&mut flate2::read::GzDecoder::new(&body[..]), "gzip"),
        "deflate" => inflate(&mut flate2::read::DeflateDecoder::new(&body[..]), "deflate"),
        _ => Err(LokiError::UnsupportedEncoding(encoding)),
    }
}

/// Raw snappy, then `logproto.PushRequest`; stream label strings are parsed here.
pub(crate) fn decode_protobuf(body: &[u8], limits: &IngestLimits) -> Result<Vec<Stream>, LokiError> {
    let len = snap::raw::decompress_len(body).map_err(|e| LokiError::Compression("snappy", e.to_string()))?;
    if len as u64 > limits.max_decompressed_bytes {
        return Err(LokiError::DecompressedTooLarge { limit: limits.max_decompressed_bytes });
    }
    let raw =
        snap::raw::Decoder::new().decompress_vec(body).map_err(|e| LokiError::Compression("snappy", e.to_string()))?;
    let request = PushRequest::decode(raw.as_slice()).map_err(|e| LokiError::Protobuf(e.to_string()))?;
    request
        .streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let labels = labels::parse(&s.labels)
                .map_err(|e| LokiError::Malformed { stream: i, what: format!("invalid labels: {e}") })?;
            let entries = s
                .entries
                .into_iter()
                .map(|e| Entry {
                    timestamp_ns: e.timestamp.map_or(0, |t| t.unix_nanos()),
                    line: e.line,
                    metadata: e.structured_metadata.into_iter().map(|p| (p.name, p.value)).collect(),
                })
                .collect();
            Ok(Stream { labels, entries })
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct JsonPush {
    #[serde(default)]
    streams: Vec<JsonStream>,
}

#[derive(serde::Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

/// `{"streams":[{"stream":{...},"values":[["<ns>","<line>",{<metadata>}?]]}]}`. Entries are checked by hand
/// so errors name the stream and entry and never quote a line.
pub(crate) fn decode_json(body: &[u8]) -> Result<Vec<Stream>, LokiError> {
    let push: JsonPush = serde_json::from_slice(body).map_err(|e| LokiError::Json(e.to_string()))?;
    push.streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let entries = s
                .values
                .into_iter()
                .enumerate()
                .map(|(j, v)| {
                    json_entry(v).map_err(|what| LokiError::Malformed { stream: i, what: format!("entry {j}: {what}") })
                })
                .collect::<Result<_, _>>()?;
            Ok(Stream { labels: s.stream.into_iter().collect(), entries })
        })
        .collect()
}

fn json_entry(values: Vec<serde_json::Value>) -> Result<Entry, &'static str> {
    use serde_json::Value;
    if !(2..=3).contains(&values.len()) {
        return Err("an entry must be [\"<unix ns>\", \"<line>\"] or [\"<unix ns>\", \"<line>\", {<metadata>}]");
    }
    let mut it = values.into_iter();
    let timestamp_ns = match it.next() {
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        // Not what Loki documents, but some clients send a number; accept it when it is exact.
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
    .ok_or("the timestamp must be unix nanoseconds, as a string")?;
    let Some(Value::String(line)) = it.next() else { return Err("the line must be a string") };
    let metadata = match it.next() {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err("structured metadata values must be strings"),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("structured metadata must be an object of strings"),
    };
    Ok(Entry { timestamp_ns, line, metadata })
}
