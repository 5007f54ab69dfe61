//! One series through the detector as a causal stream, and its scores written out.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::EvalError;
use super::corpus::Series;
use crate::{SeriesDetector, Settings};

/// Feeds `series` to a fresh [`SeriesDetector`] one row at a time, in file order, and returns each row's
/// score in [0, 1] ([`crate::Verdict::unit_score`]) as it was given before the detector learnt from the row:
/// no row's score depends on any later row. Rows the detector does not score (warm-up) get 0.
pub fn replay(settings: &Settings, series: &Series) -> Vec<f64> {
    let mut detector = SeriesDetector::new(settings);
    series
        .timestamps_us
        .iter()
        .zip(&series.values)
        .map(|(&t_us, &value)| {
            let score = detector.observe(settings, t_us.div_euclid(1000), value).map_or(0.0, |v| v.unit_score());
            if score.is_nan() { 0.0 } else { score.clamp(0.0, 1.0) }
        })
        .collect()
}

/// Writes `out_dir/<series.name>` (creating its folders): `timestamp,value,anomaly_score`, the timestamp and
/// value fields exactly as read. Returns the path written.
pub fn write_scores(out_dir: &Path, series: &Series, scores: &[f64]) -> Result<PathBuf, EvalError> {
    let path = out_dir.join(&series.name);
    let io = |source| EvalError::Io { path: path.clone(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
    writeln!(w, "timestamp,value,anomaly_score").map_err(io)?;
    for ((ts, value), score) in series.timestamp_text.iter().zip(&series.value_text).zip(scores) {
        writeln!(w, "{ts},{value},{score}").map_err(io)?;
    }
    w.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn scores_are_causal_and_written_beside_the_input_text() {
        let settings = Settings::default();
        let n = 300;
        let series = Series {
            name: "sub/x.csv".into(),
            timestamp_text: (0..n).map(|i| format!("t{i}")).collect(),
            value_text: (0..n).map(|i| format!("{}", i % 7)).collect(),
            timestamps_us: (0..n).map(|i| i * 300_000_000).collect(),
            values: (0..n).map(|i| (i % 7) as f64).collect(),
        };
        let full = replay(&settings, &series);
        assert_eq!(full.len(), n as usize);
        assert!(full.iter().all(|s| (0.0..=1.0).contains(s)));
        // No look-ahead: the first 200 rows score the same whatever follows them.
        let mut cut = series.clone();
        for x in cut.values.iter_mut().skip(200) {
            *x = 1e9;
        }
        assert_eq!(replay(&settings, &cut)[..200], full[..200]);

        let dir = std::env::temp_dir().join(format!("vigil-eval-replay-{}", std::process::id()));
        let path = write_scores(&dir, &series, &full).unwrap();
        assert_eq!(path, dir.join("sub/x.csv"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
        assert_eq!(lines.next(), Some(format!("t0,0,{}", full[0]).as_str()));
        assert_eq!(text.lines().count(), n as usize + 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
