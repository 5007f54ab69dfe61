//! `vigil eval`: replay labelled series through the detector and score them the way the Numenta Anomaly
//! Benchmark does.
//!
//! - [`corpus`] reads NAB's layout: `timestamp,value` CSVs under a data folder, the label windows, the cost
//!   profiles.
//! - [`replay`] runs one series through [`crate::SeriesDetector`] as a causal stream and writes its scores.
//! - [`nab`] is NAB's scoring: sweep scores, the corpus-wide threshold per profile, normalisation between
//!   the null and the perfect detector, and plain event precision/recall beside it.
//!
//! [`run`] does all of it over a folder, one file per core at a time.

pub mod corpus;
pub mod nab;
pub mod replay;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::Settings;
use corpus::Profile;
use nab::{ProfileScore, ScoredFile};

/// What can stop an evaluation; each names the file (and line) at fault.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {message}", path.display())]
    Parse { path: PathBuf, line: usize, message: String },
    #[error("{}: {message}", path.display())]
    Labels { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Profiles { path: PathBuf, message: String },
    #[error("{}: no entry {name:?} in the label file {}", data.display(), labels.display())]
    Unlabelled { data: PathBuf, name: String, labels: PathBuf },
    #[error("{}: no .csv file under it", path.display())]
    NoData { path: PathBuf },
}

/// What to evaluate and where the scores go.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The data folder: `*.csv` files, in sub-folders or not.
    pub data_dir: &'a Path,
    /// The label file (NAB's `combined_windows.json`); every data file must have an entry.
    pub labels: &'a Path,
    /// Where `timestamp,value,anomaly_score` files go, under the same relative paths as in `data_dir`.
    pub out_dir: &'a Path,
    pub settings: &'a Settings,
    pub profiles: &'a [Profile],
    /// Files replayed at once.
    pub threads: usize,
}

/// The outcome of [`run`].
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub files: usize,
    pub rows: usize,
    /// Label windows of the evaluated files (NAB's `tpCount`).
    pub windows: usize,
    /// One per profile, in the order given.
    pub profiles: Vec<ProfileScore>,
}

/// Replays every file of `files` (paths relative to `options.data_dir`, from [`corpus::discover`]) through
/// the detector, writes its scores under `options.out_dir` and scores the whole set on each profile.
/// `on_file` is called (from worker threads) as each file is done, with its name and row count. Files are
/// scored in the order given whatever order the workers finish in, so the report is deterministic.
pub fn run(
    options: &Options<'_>,
    files: &[String],
    on_file: &(dyn Fn(&str, usize) + Sync),
) -> Result<Report, EvalError> {
    if files.is_empty() {
        return Err(EvalError::NoData { path: options.data_dir.to_owned() });
    }
    let labels = corpus::read_labels(options.labels)?;
    let mut windows = Vec::with_capacity(files.len());
    for name in files {
        let Some(w) = labels.windows.get(name) else {
            return Err(EvalError::Unlabelled {
                data: options.data_dir.join(name),
                name: name.clone(),
                labels: options.labels.to_owned(),
            });
        };
        windows.push(w.as_slice());
    }

    let one = |i: usize| -> Result<(ScoredFile, usize), EvalError> {
        let series = corpus::read_series(options.data_dir, &files[i])?;
        let scores = replay::replay(options.settings, &series);
        replay::write_scores(options.out_dir, &series, &scores)?;
        let windows = corpus::row_windows(&series.timestamps_us, windows[i]);
        on_file(&files[i], series.len());
        Ok((ScoredFile { scores, windows }, series.len()))
    };
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut results: Vec<Option<Result<(ScoredFile, usize), EvalError>>> = (0..files.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..options.threads.clamp(1, files.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= files.len() {
                            break;
                        }
                        let r = one(i);
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        done.push((i, r));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(done) => done.into_iter().for_each(|(i, r)| results[i] = Some(r)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    let mut scored = Vec::with_capacity(files.len());
    let mut rows = 0;
    // The first failure in file order; files after a failure may not have been run.
    for r in results.into_iter().flatten() {
        let (file, n) = r?;
        rows += n;
        scored.push(file);
    }
    let label_windows = windows.iter().map(|w| w.len()).sum();
    Ok(Report {
        files: scored.len(),
        rows,
        windows: label_windows,
        profiles: nab::score_corpus(&scored, label_windows, options.profiles),
    })
}
