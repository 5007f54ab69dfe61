//! `vigil`: the observability ingest gateway and anomaly engine.

mod alerts;
mod config;
mod correlate;
mod eval;
mod keep_series;
mod own_series;
mod topology;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil_forward::alertmanager::AlertmanagerConfig;
use vigil_forward::loki::LokiConfig;
use vigil_forward::tempo::TempoConfig;
use vigil_forward::victoriametrics::VictoriaMetricsConfig;

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(name = "vigil", version, about = "Observability ingest gateway and anomaly engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway. With no config file it starts on embedded defaults.
    Serve(ServeArgs),
    /// Check a config file and print every problem found.
    CheckConfig {
        /// The YAML file to check.
        file: PathBuf,
    },
    /// Check an alert rule file (as `alerting.rules_file` reads it) and print every problem found.
    CheckRules {
        /// The YAML rule file to check.
        file: PathBuf,
    },
    /// Replay labelled CSV series through the detector and print their NAB scores.
    Eval(eval::EvalArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// YAML config file; flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address for remote write, OTLP/HTTP, the query API, /metrics and health [default: 0.0.0.0:4318].
    #[arg(long)]
    http_listen: Option<String>,
    /// Address for OTLP/gRPC [default: 0.0.0.0:4317].
    #[arg(long)]
    grpc_listen: Option<String>,
    /// Directory for Vigil's on-disk state [default: ./vigil-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// VictoriaMetrics remote-write URL, e.g. http://127.0.0.1:8428/api/v1/write. Repeat for several
    /// destinations; every one gets every sample. Replaces the config file's list (entries with the same URL
    /// keep their settings).
    #[arg(long = "forward-victoriametrics", value_name = "URL")]
    forward_victoriametrics: Vec<String>,
    /// Tempo OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces. Repeatable, like
    /// --forward-victoriametrics.
    #[arg(long = "forward-tempo", value_name = "URL")]
    forward_tempo: Vec<String>,
    /// Loki push endpoint, e.g. http://127.0.0.1:3100/loki/api/v1/push. Repeatable, like
    /// --forward-victoriametrics.
    #[arg(long = "forward-loki", value_name = "URL")]
    forward_loki: Vec<String>,
    /// Alertmanager alerts endpoint, e.g. http://127.0.0.1:9093/api/v2/alerts, where the alert rules'
    /// alerts go. Repeatable, like --forward-victoriametrics.
    #[arg(long = "forward-alertmanager", value_name = "URL")]
    forward_alertmanager: Vec<String>,
    /// Log filter, e.g. `info` or `vigil=debug` (RUST_LOG wins when set).
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::CheckRules { file } => check_rules(&file),
        Command::Serve(args) => serve(args),
        Command::Eval(args) => eval::run(&args),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::from_yaml_file(file).and_then(|c| c.validate()) {
        Ok(()) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn check_rules(file: &std::path::Path) -> ExitCode {
    let group_by = vigil_query::alerting::AlertingConfig::default().group_by;
    match vigil_query::alerting::check_rules_file(file, &group_by) {
        Ok(n) => {
            println!("{}: ok, {n} rules", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn apply_flags(mut config: Config, args: &ServeArgs) -> Config {
    if let Some(a) = &args.http_listen {
        config.server.http_listen = a.clone();
    }
    if let Some(a) = &args.grpc_listen {
        config.server.grpc_listen = a.clone();
    }
    if let Some(d) = &args.data_dir {
        config.server.data_dir = d.clone();
    }
    override_destinations(
        &mut config.forward.victoriametrics,
        &args.forward_victoriametrics,
        |c| &c.url,
        |u| VictoriaMetricsConfig::with_url(u),
    );
    override_destinations(&mut config.forward.loki, &args.forward_loki, |c| &c.url, |u| LokiConfig::with_url(u));
    override_destinations(
        &mut config.forward.alertmanager,
        &args.forward_alertmanager,
        |c| &c.url,
        |u| AlertmanagerConfig::with_url(u),
    );
    override_destinations(&mut config.forward.tempo, &args.forward_tempo, |c| &c.url, |u| TempoConfig::with_url(u));
    config
}

/// `--forward-*` URLs, when given, replace the config file's list of that kind; an entry of the file with the
/// same URL keeps its settings, other URLs get the defaults.
fn override_destinations<C: Clone>(
    list: &mut Vec<C>,
    urls: &[String],
    url_of: impl Fn(&C) -> &String,
    with_url: impl Fn(&str) -> C,
) {
    if urls.is_empty() {
        return;
    }
    let from_file = std::mem::take(list);
    *list = urls
        .iter()
        .map(|url| from_file.iter().find(|c| url_of(c) == url).cloned().unwrap_or_else(|| with_url(url)))
        .collect();
}

fn serve(args: ServeArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&args.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();

    let config = match &args.config {
        Some(path) => match Config::from_yaml_file(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::default(),
    };
    let config = apply_flags(config, &args);
    if let Err(e) = config.validate() {
        tracing::error!("{e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(topology::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("Shutdown requested.");
}
