//! Collects converted samples into series (one per label set per request), rejected points and problems.

use std::collections::{HashMap, HashSet};

use vigil_proto::prometheus::Histogram;

use super::{Converted, PromExemplar, PromSeries};

/// At most this many problem messages are returned; the rest are summed up in one last line, so that a
/// request with thousands of bad metrics does not produce a response of the same size.
const MAX_PROBLEMS: usize = 16;

#[derive(Debug, Default)]
pub(super) struct Sink {
    series: Vec<PromSeries>,
    /// Label set → index in `series`, so that points of one series in one request share a `PromSeries`.
    index: HashMap<Vec<(String, String)>, usize>,
    rejected_points: u64,
    problems: Vec<String>,
    seen_problems: HashSet<String>,
    /// The latest timestamp (ms) of an accepted point since `start_resource` (for `target_info`).
    latest_ms: Option<i64>,
}

impl Sink {
    /// Appends a float sample to the series with these labels; returns the series' index.
    pub(super) fn sample(&mut self, labels: Vec<(String, String)>, timestamp_ms: i64, value: f64) -> usize {
        let i = self.series_index(labels, timestamp_ms);
        self.series[i].samples.push((timestamp_ms, value));
        i
    }

    /// Appends a native histogram sample to the series with these labels; returns the series' index.
    pub(super) fn histogram(&mut self, labels: Vec<(String, String)>, timestamp_ms: i64, h: Histogram) -> usize {
        let i = self.series_index(labels, timestamp_ms);
        self.series[i].histograms.push((timestamp_ms, h));
        i
    }

    pub(super) fn exemplars(&mut self, series: usize, exemplars: impl IntoIterator<Item = PromExemplar>) {
        if let Some(s) = self.series.get_mut(series) {
            s.exemplars.extend(exemplars);
        }
    }

    /// Whether the series with these labels already has a sample at this timestamp (so that one resource
    /// sent twice in a request gives one `target_info` sample, not two at the same time).
    pub(super) fn has_sample_at(&self, labels: &[(String, String)], timestamp_ms: i64) -> bool {
        self.index
            .get(labels)
            .and_then(|&i| self.series.get(i))
            .is_some_and(|s| s.samples.iter().any(|(t, _)| *t == timestamp_ms))
    }

    /// Counts `points` as not converted, for `why`.
    pub(super) fn reject(&mut self, points: u64, why: String) {
        self.rejected_points = self.rejected_points.saturating_add(points);
        self.problem(why);
    }

    /// Notes a problem that did not cost data points (reported as a warning).
    pub(super) fn problem(&mut self, why: String) {
        if self.seen_problems.insert(why.clone()) {
            self.problems.push(why);
        }
    }

    /// Starts watching for the latest timestamp of a new resource's points.
    pub(super) fn start_resource(&mut self) {
        self.latest_ms = None;
    }

    /// The latest timestamp of a point accepted since `start_resource`.
    pub(super) fn latest(&self) -> Option<i64> {
        self.latest_ms
    }

    pub(super) fn finish(self) -> Converted {
        let mut problems = self.problems;
        if problems.len() > MAX_PROBLEMS {
            let more = problems.len() - MAX_PROBLEMS;
            problems.truncate(MAX_PROBLEMS);
            problems.push(format!("and {more} more problems"));
        }
        Converted { series: self.series, rejected_points: self.rejected_points, problems }
    }

    fn series_index(&mut self, labels: Vec<(String, String)>, timestamp_ms: i64) -> usize {
        self.latest_ms = Some(self.latest_ms.map_or(timestamp_ms, |t| t.max(timestamp_ms)));
        if let Some(&i) = self.index.get(&labels) {
            return i;
        }
        let i = self.series.len();
        self.index.insert(labels.clone(), i);
        self.series.push(PromSeries { labels, samples: Vec::new(), histograms: Vec::new(), exemplars: Vec::new() });
        i
    }
}
