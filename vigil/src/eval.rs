//! `vigil eval`: replays labelled `timestamp,value` CSVs through the detector, writes each file's scores and
//! prints the Numenta Anomaly Benchmark score of the set (`vigil_detect::eval`).

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use vigil_detect::Settings;
use vigil_detect::eval::{self, Options, Report, corpus};

#[derive(Debug, clap::Args)]
pub(crate) struct EvalArgs {
    /// Folder of `timestamp,value` CSV files, searched recursively (NAB's `data/`).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Label windows: a JSON object from each file's path under --data to its `[start, end]` windows (NAB's
    /// `labels/combined_windows.json`).
    #[arg(long, value_name = "FILE")]
    labels: PathBuf,
    /// Where each file's `timestamp,value,anomaly_score` CSV goes, under its path in --data.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Detector settings as YAML (the `Settings` fields, each optional); built-in defaults otherwise.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Cost profiles in NAB's `config/profiles.json` format [default: NAB's standard, reward_low_FP_rate and
    /// reward_low_FN_rate].
    #[arg(long, value_name = "FILE")]
    profiles: Option<PathBuf>,
    /// Files replayed at once [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

pub(crate) fn run(args: &EvalArgs) -> ExitCode {
    match evaluate(args) {
        Ok(report) => {
            print!("{}", render(&report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil eval: {e}");
            ExitCode::FAILURE
        }
    }
}

fn evaluate(args: &EvalArgs) -> Result<Report, String> {
    let settings = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_yaml_ng::from_str::<Settings>(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Settings::default(),
    };
    let profiles = match &args.profiles {
        Some(path) => corpus::read_profiles(path).map_err(|e| e.to_string())?,
        None => corpus::Profile::nab(),
    };
    let files = corpus::discover(&args.data).map_err(|e| e.to_string())?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let options = Options {
        data_dir: &args.data,
        labels: &args.labels,
        out_dir: &args.out,
        settings: &settings,
        profiles: &profiles,
        threads,
    };
    // Drawn on stderr, and only when it is a terminal.
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:40} {pos}/{len} files {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = eval::run(&options, &files, &|name, _rows| {
        bar.set_message(name.to_owned());
        bar.inc(1);
    });
    bar.finish_and_clear();
    let report = report.map_err(|e| e.to_string())?;
    eprintln!(
        "vigil eval: {} files, {} rows, {} label windows; scores in {}",
        report.files,
        report.rows,
        report.windows,
        args.out.display()
    );
    Ok(report)
}

/// The report as printed: one `profile: score` line per profile (the NAB score, 2 decimals), then the
/// events at each profile's threshold, then the raw figures behind each score.
fn render(report: &Report) -> String {
    let two = |x: Option<f64>| x.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.2}"));
    let mut out = String::new();
    for p in &report.profiles {
        out += &format!("{}: {}\n", p.profile.name, two(p.normalised));
    }
    for p in &report.profiles {
        let e = &p.events;
        out += &format!(
            "events: precision {} recall {} f1 {} ({} threshold {:.4})\n",
            two(e.precision()),
            two(e.recall()),
            two(e.f1()),
            p.profile.name,
            p.best.threshold
        );
    }
    for p in &report.profiles {
        let e = &p.events;
        out += &format!(
            "raw: {} {:.4} at threshold {:.4} (null {:.4}, perfect {:.4}); {} events, {} in windows, {} of {} windows found\n",
            p.profile.name,
            p.best.score,
            p.best.threshold,
            p.null,
            p.perfect,
            e.events,
            e.true_events,
            e.recalled,
            e.windows
        );
    }
    out
}
