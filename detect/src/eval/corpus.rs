//! Reading a labelled corpus in NAB's layout: `timestamp,value` CSVs under a data folder (sub-folders
//! allowed), the label windows (NAB's `labels/combined_windows.json`: `"sub/file.csv"` → `[[start, end], …]`)
//! and the cost profiles (NAB's `config/profiles.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::EvalError;

/// One series as read: the timestamp and value fields' text exactly as in the file (written back unchanged
/// beside the score), and their parsed forms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Path relative to the data folder with `/` separators, e.g. `realKnownCause/nyc_taxi.csv`: the key
    /// of the label file and the path of the output file under `--out`.
    pub name: String,
    pub timestamp_text: Vec<String>,
    pub value_text: Vec<String>,
    /// Microseconds since 1970-01-01 00:00:00 (see [`parse_timestamp`]).
    pub timestamps_us: Vec<i64>,
    pub values: Vec<f64>,
}

impl Series {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// A label window `[start, end]` (both inclusive), in microseconds like [`Series::timestamps_us`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_us: i64,
    pub end_us: i64,
}

/// A window as the rows of one series it covers, `start..=end` (indices into the series).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowWindow {
    pub start: usize,
    pub end: usize,
}

/// The windows of every labelled file, by file name (the label file's keys), each list sorted by start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labels {
    pub windows: BTreeMap<String, Vec<Window>>,
}

/// A cost profile: the weights of NAB's `CostMatrix` that the score uses (`tnWeight` is read and unused,
/// as in NAB).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub tp_weight: f64,
    pub fp_weight: f64,
    pub fn_weight: f64,
}

impl Profile {
    /// NAB's three profiles (its `config/profiles.json`), in the order NAB's results table lists them.
    pub fn nab() -> Vec<Profile> {
        let p = |name: &str, fp_weight, fn_weight| Profile { name: name.into(), tp_weight: 1.0, fp_weight, fn_weight };
        vec![p("standard", 0.11, 1.0), p("reward_low_FP_rate", 0.22, 1.0), p("reward_low_FN_rate", 0.11, 2.0)]
    }
}

/// Every `*.csv` file under `dir`, recursively, as `/`-separated paths relative to `dir`, sorted.
pub fn discover(dir: &Path) -> Result<Vec<String>, EvalError> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let entries = std::fs::read_dir(&abs).map_err(|source| EvalError::Io { path: abs.clone(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| EvalError::Io { path: abs.clone(), source })?;
            let file_type = entry.file_type().map_err(|source| EvalError::Io { path: entry.path(), source })?;
            let child = rel.join(entry.file_name());
            // Symlinks are followed for files and folders alike.
            let is_dir = file_type.is_dir() || (file_type.is_symlink() && entry.path().is_dir());
            if is_dir {
                stack.push(child);
            } else if child.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
                let parts: Vec<String> =
                    child.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                found.push(parts.join("/"));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Reads `dir/name`: an optional header line (a first line whose first field is not a timestamp), then
/// `timestamp,value[,…]` rows; blank lines are skipped, further columns ignored, fields may be quoted.
pub fn read_series(dir: &Path, name: &str) -> Result<Series, EvalError> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(|source| EvalError::Io { path: path.clone(), source })?;
    let mut series = Series { name: name.to_owned(), ..Series::default() };
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (ts_field, rest) = line.split_once(',').unwrap_or((line, ""));
        let value_field = rest.split(',').next().unwrap_or("");
        let Some(ts) = parse_timestamp(unquote(ts_field)) else {
            if series.is_empty() && index == 0 {
                continue; // the header
            }
            return Err(EvalError::Parse {
                path,
                line: line_no,
                message: format!("bad timestamp {ts_field:?} (want YYYY-MM-DD HH:MM:SS[.ffffff])"),
            });
        };
        let value: f64 = unquote(value_field).parse().map_err(|_| EvalError::Parse {
            path: path.clone(),
            line: line_no,
            message: format!("bad value {value_field:?}"),
        })?;
        series.timestamp_text.push(ts_field.to_owned());
        series.value_text.push(value_field.to_owned());
        series.timestamps_us.push(ts);
        series.values.push(value);
    }
    Ok(series)
}

fn unquote(field: &str) -> &str {
    let t = field.trim();
    t.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(t).trim()
}

/// Reads a label file (`{"sub/file.csv": [["start", "end"], …], …}`); each file's windows sorted by start.
/// Overlapping windows are refused: NAB's windows never overlap and its sweep assumes they do not.
pub fn read_labels(path: &Path) -> Result<Labels, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io { path: path.to_owned(), source })?;
    let raw: BTreeMap<String, Vec<Vec<String>>> = serde_json::from_str(&text)
        .map_err(|e| EvalError::Labels { path: path.to_owned(), message: format!("not a label file: {e}") })?;
    let bad = |message: String| EvalError::Labels { path: path.to_owned(), message };
    let mut labels = Labels::default();
    for (name, pairs) in raw {
        let mut windows = Vec::with_capacity(pairs.len());
        for pair in &pairs {
            let [start, end] = pair.as_slice() else {
                return Err(bad(format!("{name}: a window must be [start, end], got {pair:?}")));
            };
            let parse = |t: &String| parse_timestamp(t).ok_or_else(|| bad(format!("{name}: bad timestamp {t:?}")));
            let window = Window { start_us: parse(start)?, end_us: parse(end)? };
            if window.end_us < window.start_us {
                return Err(bad(format!("{name}: window [{start}, {end}] ends before it starts")));
            }
            windows.push(window);
        }
        windows.sort_by_key(|w| w.start_us);
        if let Some(pair) = windows.windows(2).find(|p| p[1].start_us <= p[0].end_us) {
            return Err(bad(format!("{name}: windows overlap ({:?} and {:?})", pair[0], pair[1])));
        }
        labels.windows.insert(name, windows);
    }
    Ok(labels)
}

#[derive(Deserialize)]
struct RawProfile {
    #[serde(rename = "CostMatrix")]
    cost_matrix: RawCostMatrix,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCostMatrix {
    tp_weight: f64,
    fp_weight: f64,
    fn_weight: f64,
}

/// Reads a profiles file in NAB's format (`{"standard": {"CostMatrix": {"tpWeight": 1.0, …}}, …}`). NAB's
/// three come first in NAB's order, any others after them by name.
pub fn read_profiles(path: &Path) -> Result<Vec<Profile>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io { path: path.to_owned(), source })?;
    let raw: BTreeMap<String, RawProfile> = serde_json::from_str(&text)
        .map_err(|e| EvalError::Profiles { path: path.to_owned(), message: e.to_string() })?;
    let rank = |name: &str| Profile::nab().iter().position(|p| p.name == name).unwrap_or(usize::MAX);
    let mut profiles: Vec<Profile> = raw
        .into_iter()
        .map(|(name, p)| Profile {
            name,
            tp_weight: p.cost_matrix.tp_weight,
            fp_weight: p.cost_matrix.fp_weight,
            fn_weight: p.cost_matrix.fn_weight,
        })
        .collect();
    profiles.sort_by(|a, b| rank(&a.name).cmp(&rank(&b.name)).then_with(|| a.name.cmp(&b.name)));
    if profiles.is_empty() {
        return Err(EvalError::Profiles { path: path.to_owned(), message: "no profiles".into() });
    }
    Ok(profiles)
}

/// The rows each window covers: from the first row at or after its start to the last row at or before its
/// end. NAB's sweep enters a window at the row whose timestamp equals its start and leaves it at the row
/// equal to its end (`sweeper.py`, `calcSweepScore`); NAB's windows always sit on row timestamps, where the
/// two agree (checked for nab-dev and the synthetic set). A window over no row is dropped here (NAB's sweep
/// never enters it either).
pub fn row_windows(timestamps_us: &[i64], windows: &[Window]) -> Vec<RowWindow> {
    windows
        .iter()
        .filter_map(|w| {
            let start = timestamps_us.iter().position(|&t| t >= w.start_us)?;
            let end = timestamps_us.iter().rposition(|&t| t <= w.end_us)?;
            (start <= end).then_some(RowWindow { start, end })
        })
        .collect()
}

/// Microseconds since 1970-01-01 00:00:00 of `YYYY-MM-DD[( |T)HH:MM[:SS[.fraction]]][Z]`, the time read
/// as UTC (NAB's timestamps are naive; pandas reads both the data's `2014-04-01 00:00:00` and the labels'
/// `2014-04-10 07:15:00.000000` to the same datetimes, and so does this). Digits past the sixth of the
/// fraction are dropped.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let s = text.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim())),
        None => (s, None),
    };
    let mut d = date.split('-');
    let (year, month, day) = (number(d.next()?)?, number(d.next()?)?, number(d.next()?)?);
    if d.next().is_some() || date.len() < 8 || !(1..=12).contains(&month) || day < 1 || day > days_in(year, month) {
        return None;
    }
    let (mut hour, mut minute, mut second, mut micros) = (0, 0, 0, 0);
    if let Some(time) = time {
        let mut t = time.split(':');
        hour = number(t.next()?)?;
        minute = number(t.next()?)?;
        if let Some(sec) = t.next() {
            let (whole, fraction) = sec.split_once('.').unwrap_or((sec, ""));
            second = number(whole)?;
            if !fraction.is_empty() {
                if !fraction.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let six: String = fraction.chars().chain(std::iter::repeat('0')).take(6).collect();
                micros = six.parse().ok()?;
            }
        }
        if t.next().is_some() || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
    }
    let days = days_from_civil(year, month, day);
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1_000_000 + micros)
}

fn number(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn timestamps_of_data_and_labels_agree() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0));
        // 2014-04-10 is day 16170 (1_397_088_000 s), 07:15 adds 26_100 s.
        let expected = (1_397_088_000 + 26_100) * 1_000_000;
        assert_eq!(parse_timestamp("2014-04-10 07:15:00"), Some(expected));
        assert_eq!(parse_timestamp("2014-04-10 07:15:00.000000"), Some(expected));
        assert_eq!(parse_timestamp("2014-04-10T07:15:00Z"), Some(expected));
        assert_eq!(parse_timestamp("2014-04-10 07:15"), Some(expected));
        assert_eq!(parse_timestamp("2014-04-10 07:15:00.25"), Some(expected + 250_000));
        assert_eq!(parse_timestamp("2024-02-29 00:00:00"), Some(1_709_164_800 * 1_000_000));
        for bad in ["timestamp", "", "2014-13-01 00:00:00", "2023-02-29 00:00:00", "2014-04-10 24:00:00", "1.5"] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn windows_cover_the_rows_between_their_limits() {
        let ts: Vec<i64> = (0..10).map(|i| i * 10).collect();
        let w = |start_us, end_us| Window { start_us, end_us };
        assert_eq!(row_windows(&ts, &[w(20, 40)]), vec![RowWindow { start: 2, end: 4 }]);
        assert_eq!(row_windows(&ts, &[w(15, 45)]), vec![RowWindow { start: 2, end: 4 }]);
        assert_eq!(row_windows(&ts, &[w(11, 19), w(200, 300)]), vec![]);
    }

    #[test]
    fn series_keep_their_text_and_name_bad_lines() {
        let dir = std::env::temp_dir().join(format!("vigil-eval-corpus-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a.csv"), "timestamp,value\n2014-04-01 00:00:00,1.50\n\"2014-04-01 00:05:00\",2\n")
            .unwrap();
        std::fs::write(dir.join("b.csv"), "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,x\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "not data").unwrap();
        assert_eq!(discover(&dir).unwrap(), vec!["b.csv".to_owned(), "sub/a.csv".to_owned()]);
        let a = read_series(&dir, "sub/a.csv").unwrap();
        assert_eq!(a.value_text, vec!["1.50", "2"]);
        assert_eq!(a.timestamp_text[1], "\"2014-04-01 00:05:00\"");
        assert_eq!(a.values, vec![1.5, 2.0]);
        let err = read_series(&dir, "b.csv").unwrap_err().to_string();
        assert!(err.contains("b.csv:3") && err.contains("bad value"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
