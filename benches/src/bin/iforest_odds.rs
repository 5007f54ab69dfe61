//! `iforest_odds`: Vigil's isolation forest on labelled CSV sets (the ODDS sets of issue 5).
//!
//! For each CSV (lines starting with `#` skipped; feature columns then a 0/1 label, 1 = outlier) it fits
//! a forest on all rows and scores all rows, once per seed, and reports the mean AUROC and the mean
//! fit + score time, CPU and wall (CSV parsing excluded), as scikit-learn's side
//! (`benches/iforest_sklearn.py`) does. Then it times scoring alone on one thread: all rows scored
//! again and again for `--throughput-secs`. One JSON object per set on stdout; the human summary goes to stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use vigil_benches::thread_cpu_ns;
use vigil_detect::iforest::{IsolationForest, IsolationForestParams};
use vigil_detect::roc::auroc;

#[derive(Parser, Debug)]
#[command(about = "Isolation forest AUROC and speed on labelled CSV sets")]
struct Args {
    /// CSV files: feature columns, then a 0/1 label.
    #[arg(required = true)]
    csv: Vec<PathBuf>,
    /// Seeds 0..N, each one fit + score.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    #[arg(long, default_value_t = 100)]
    trees: usize,
    #[arg(long, default_value_t = 256)]
    sample_size: usize,
    /// How long to time scoring alone (0 skips it).
    #[arg(long, default_value_t = 3.0)]
    throughput_secs: f64,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let args = Args::parse();
    for path in &args.csv {
        if let Err(e) = run(&args, path) {
            eprintln!("iforest_odds: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn run(args: &Args, path: &Path) -> Result<(), BoxError> {
    let (rows, labels, d) = read_csv(path)?;
    let n = labels.len();
    let params = IsolationForestParams::default().n_trees(args.trees).sample_size(args.sample_size);
    let mut scores = vec![0.0; n];

    // One untimed run so that page faults of first touch are not charged to seed 0 (the Python side
    // does the same).
    params.seed(u64::MAX).fit_rows(&rows, d)?.score_into(&rows, &mut scores)?;

    let mut all_scores = vec![vec![0.0; n]; args.seeds as usize];
    let mut secs = Vec::new();
    // The scheduler's CPU clock advances in ticks (a few ms), too coarse for one fit + score: it is
    // read around the whole loop, and AUROC waits until after it.
    let cpu_start = thread_cpu_secs()?;
    for (seed, scores) in (0..).zip(&mut all_scores) {
        let start = Instant::now();
        let forest = params.seed(seed).fit_rows(&rows, d)?;
        forest.score_into(&rows, scores)?;
        secs.push(start.elapsed().as_secs_f64());
    }
    let cpu_mean = (thread_cpu_secs()? - cpu_start) / args.seeds.max(1) as f64;
    let aucs = all_scores
        .iter()
        .map(|scores| auroc(scores, &labels).ok_or("AUROC undefined (one class only?)"))
        .collect::<Result<Vec<_>, _>>()?;
    let (auc_mean, auc_sd) = mean_sd(&aucs);
    let (secs_mean, secs_sd) = mean_sd(&secs);

    let (fit_cpu_secs, (rows_per_s, rows_per_cpu_s)) = if args.throughput_secs > 0.0 {
        let forest = params.seed(0).fit_rows(&rows, d)?;
        (
            fit_cpu_secs(&params, &rows, d, args.throughput_secs)?,
            throughput(&forest, &rows, &mut scores, args.throughput_secs)?,
        )
    } else {
        (0.0, (0.0, 0.0))
    };

    let set = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    eprintln!(
        "{set}: {n} rows × {d} features; AUROC {auc_mean:.4} ± {auc_sd:.4} ({} seeds); fit + score \
         {:.2} ms CPU, {:.2} ± {:.2} ms wall; fit alone {:.2} ms CPU; scoring {:.0} rows per \
         CPU-second ({:.0} per wall second), one thread",
        args.seeds,
        cpu_mean * 1e3,
        secs_mean * 1e3,
        secs_sd * 1e3,
        fit_cpu_secs * 1e3,
        rows_per_cpu_s,
        rows_per_s
    );
    let json = serde_json::json!({
        "set": set, "rows": n, "features": d, "seeds": args.seeds, "trees": args.trees,
        "sample_size": args.sample_size, "auroc_mean": auc_mean, "auroc_sd": auc_sd,
        "aurocs": aucs, "wall_seconds_mean": secs_mean, "wall_seconds_sd": secs_sd,
        "cpu_seconds_mean": cpu_mean, "fit_cpu_seconds": fit_cpu_secs,
        "score_rows_per_cpu_sec": rows_per_cpu_s, "score_rows_per_wall_sec": rows_per_s,
    });
    println!("{json}");
    Ok(())
}

/// Scores all rows repeatedly for about `secs`; rows per wall second and per CPU second of this thread.
fn throughput(forest: &IsolationForest, rows: &[f64], out: &mut [f64], secs: f64) -> Result<(f64, f64), BoxError> {
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let cpu_start = thread_cpu_secs()?;
    let mut passes = 0u64;
    while passes == 0 || start.elapsed() < budget {
        forest.score_into(rows, out)?;
        passes += 1;
    }
    std::hint::black_box(&out);
    let scored = (passes * out.len() as u64) as f64;
    Ok((scored / start.elapsed().as_secs_f64(), scored / (thread_cpu_secs()? - cpu_start)))
}

/// Fits (seeds 1, 2, …) for about `secs`; CPU seconds per fit.
fn fit_cpu_secs(params: &IsolationForestParams, rows: &[f64], d: usize, secs: f64) -> Result<f64, BoxError> {
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let cpu_start = thread_cpu_secs()?;
    let mut fits = 0u64;
    while fits == 0 || start.elapsed() < budget {
        fits += 1;
        std::hint::black_box(params.seed(fits).fit_rows(rows, d)?);
    }
    Ok((thread_cpu_secs()? - cpu_start) / fits as f64)
}

/// CPU time of the calling thread ([`thread_cpu_ns`]: nanoseconds, unlike the 10 ms ticks of
/// `/proc/self/stat`).
fn thread_cpu_secs() -> Result<f64, BoxError> {
    Ok(thread_cpu_ns(None)? as f64 * 1e-9)
}

fn read_csv(path: &Path) -> Result<(Vec<f64>, Vec<bool>, usize), BoxError> {
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    let mut width = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = line.split(',').map(|f| f.trim().parse::<f64>()).collect::<Result<Vec<_>, _>>();
        let fields = fields.map_err(|e| format!("line {}: {e}", i + 1))?;
        let Some((&label, features)) = fields.split_last() else { continue };
        if *width.get_or_insert(features.len()) != features.len() || features.is_empty() {
            return Err(format!("line {}: {} features, expected {:?}", i + 1, features.len(), width).into());
        }
        rows.extend_from_slice(features);
        labels.push(label != 0.0);
    }
    Ok((rows, labels, width.ok_or("no data rows")?))
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}
