//! Vigil's own series on their way to the store behind the Prometheus API.
//!
//! Everything Vigil computes itself — the engine's `anomaly_*` scores, span RED and service-graph series,
//! incident counts — reaches the metrics path as write-back bodies (snappy remote-write 1.0, one tenant
//! each) through `topology::write_back_scores`; that loop also hands each body, decoded here, to the
//! [`OwnSeriesSink`]. So one tee catches every producer, and no producer depends on the store.
//!
//! Vigil's self-metrics (`vigil_*`) join them every `own_series.self_metrics_interval`
//! ([`record_self_metrics`]), read from the same exposition `/metrics` serves.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use vigil_ingest::own_series::{OwnSeries, OwnSeriesSink};
use vigil_proto::prometheus::WriteRequest;
use vigil_query::SelfMetrics;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("write-back body: {0}")]
    Snappy(#[from] snap::Error),
    #[error("write-back body decompresses to {0} bytes, more than {1}")]
    TooLarge(usize, usize),
    #[error("write-back body: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// The series of one write-back body. Bodies come from Vigil's own encoders, so an error is a bug; the
/// size check keeps even that from costing more than `max_bytes`.
pub(crate) fn decode_write_back(body: &[u8], max_bytes: usize) -> Result<Vec<OwnSeries>, DecodeError> {
    let len = snap::raw::decompress_len(body)?;
    if len > max_bytes {
        return Err(DecodeError::TooLarge(len, max_bytes));
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    let request = WriteRequest::decode(raw.as_slice())?;
    Ok(request
        .timeseries
        .into_iter()
        .map(|ts| OwnSeries {
            labels: ts.labels.into_iter().map(|l| (l.name, l.value)).collect(),
            samples: ts.samples.into_iter().map(|s| (s.timestamp, s.value)).collect(),
        })
        .collect())
}

/// The samples of a Prometheus/OpenMetrics text exposition as own series, all at `now_ms`. Written by hand
/// because the only exposition read is Vigil's own, from prometheus-client: `name{label="value",…} value`
/// lines, `#` lines skipped; a line that does not read so is skipped too.
pub(crate) fn parse_exposition(text: &str, now_ms: i64) -> Vec<OwnSeries> {
    text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).filter_map(|l| parse_line(l, now_ms)).collect()
}

fn parse_line(line: &str, now_ms: i64) -> Option<OwnSeries> {
    let name_end = line.find(['{', ' '])?;
    let mut labels = vec![("__name__".to_owned(), line[..name_end].to_owned())];
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels.extend(parsed);
        rest = after;
    }
    let value = match rest.split_whitespace().next()? {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(OwnSeries { labels, samples: vec![(now_ms, value)] })
}

/// `name="value",…}` with `\\`, `\"` and `\n` escapes; the labels and what follows the `}`.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(after) = text.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.trim().to_owned(), value));
        text = &after[end + 1..];
    }
}

/// Records `metrics` into `sink` as `tenant`'s series every `every`, until aborted.
pub(crate) async fn record_self_metrics(
    metrics: Arc<SelfMetrics>,
    sink: Arc<dyn OwnSeriesSink>,
    tenant: String,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        (metrics.before_scrape)();
        let mut text = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::text::encode(&mut text, &metrics.registry).is_err() {
            continue;
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        sink.append(&tenant, parse_exposition(&text, now_ms));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use vigil_proto::prometheus::{Label, Sample, TimeSeries};

    use super::*;

    type Series<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

    fn body(series: &[Series<'_>]) -> Vec<u8> {
        let timeseries = series
            .iter()
            .map(|(labels, samples)| TimeSeries {
                labels: labels.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }).collect(),
                samples: samples.iter().map(|&(timestamp, value)| Sample { value, timestamp }).collect(),
                ..Default::default()
            })
            .collect();
        let raw = WriteRequest { timeseries, metadata: vec![] }.encode_to_vec();
        snap::raw::Encoder::new().compress_vec(&raw).unwrap()
    }

    #[test]
    fn a_write_back_body_becomes_own_series() {
        let b = body(&[
            (&[("__name__", "anomaly_score"), ("for", "latency")], &[(1000, 4.5)]),
            (&[("__name__", "anomaly_expected"), ("for", "latency")], &[(1000, 0.1), (2000, 0.2)]),
        ]);
        let got = decode_write_back(&b, 1 << 20).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].labels,
            [("__name__".to_owned(), "anomaly_score".to_owned()), ("for".into(), "latency".into())]
        );
        assert_eq!(got[0].samples, [(1000, 4.5)]);
        assert_eq!(got[1].samples, [(1000, 0.1), (2000, 0.2)]);
        assert!(matches!(decode_write_back(&b, 10), Err(DecodeError::TooLarge(_, 10))));
        assert!(decode_write_back(b"\x05nope", 1 << 20).is_err());
    }

    #[test]
    fn the_self_metrics_exposition_becomes_own_series() {
        let text = "# HELP vigil_x X.\n# TYPE vigil_x counter\nvigil_x_total{protocol=\"remote_write\",code=\"204\"} 4\n\
                    vigil_up 1.5\nvigil_h_bucket{le=\"+Inf\",path=\"a\\\"b\\\\c\\nd\"} 7\nvigil_inf +Inf\nbroken{a=\"1\" \n# EOF\n";
        let got = parse_exposition(text, 1000);
        let shown: Vec<(Vec<(&str, &str)>, f64)> = got
            .iter()
            .map(|s| (s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(), s.samples[0].1))
            .collect();
        assert_eq!(
            shown,
            [
                (vec![("__name__", "vigil_x_total"), ("protocol", "remote_write"), ("code", "204")], 4.0),
                (vec![("__name__", "vigil_up")], 1.5),
                (vec![("__name__", "vigil_h_bucket"), ("le", "+Inf"), ("path", "a\"b\\c\nd")], 7.0),
                (vec![("__name__", "vigil_inf")], f64::INFINITY),
            ]
        );
        assert!(got.iter().all(|s| s.samples == [(1000, s.samples[0].1)]));
    }
}
