//! `synth --out DIR`: writes labelled synthetic series in NAB's layout: `DIR/data/<kind>/<kind>_<n>.csv` and
//! `DIR/labels/combined_windows.json` (keys `<kind>/<kind>_<n>.csv`, as NAB keys its files).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use vigil_datasets::{Kind, Shape, csv, generate, windows_json};

#[derive(Parser, Debug)]
#[command(about = "Labelled synthetic series (NAB format) for the anomaly engine")]
struct Args {
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
    /// Series per kind of anomaly.
    #[arg(long, default_value_t = 3)]
    per_kind: usize,
    /// Days per series.
    #[arg(long, default_value_t = 14)]
    days: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 300)]
    interval: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(n) => {
            println!("wrote {n} series under {}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("synth: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> std::io::Result<usize> {
    let interval = args.interval.max(1);
    let shape = Shape {
        interval: Duration::from_secs(interval),
        points: usize::try_from(args.days * 86_400 / interval).unwrap_or(usize::MAX),
        ..Shape::default()
    };
    let mut labels = serde_json::Map::new();
    let mut written = 0;
    for (k, kind) in Kind::ALL.into_iter().enumerate() {
        let dir = args.out.join("data").join(kind.name());
        std::fs::create_dir_all(&dir)?;
        for i in 0..args.per_kind {
            let seed = args.seed.wrapping_mul(1_000_003).wrapping_add((k * 1000 + i) as u64);
            let series = generate(kind, &shape, seed);
            let file = format!("{}_{i}.csv", kind.name());
            std::fs::write(dir.join(&file), csv(&series))?;
            labels.insert(format!("{}/{file}", kind.name()), windows_json(&series));
            written += 1;
        }
    }
    std::fs::create_dir_all(args.out.join("labels"))?;
    let json = serde_json::to_string_pretty(&serde_json::Value::Object(labels)).map_err(std::io::Error::other)?;
    std::fs::write(args.out.join("labels").join("combined_windows.json"), json + "\n")?;
    Ok(written)
}
