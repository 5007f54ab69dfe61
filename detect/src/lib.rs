//! Vigil's detect stage: anomaly detectors over the columnar buffer (issue 5).
//!
//! [`SeriesDetector`] scores one series a sample at a time with the statistical detectors and their
//! ensemble, as configured by [`Settings`]; [`iforest`] is the isolation forest (with linfa's
//! `Fit`/`Predict`) and [`roc::auroc`] judges detectors on labelled data.
//!
//! Online, [`engine::Engine`] runs them over the metrics buffer: [`config::DetectConfig`] (`detect:`) picks
//! each series' [`Settings`] by [`selector::Selector`], scores are written back as `anomaly_*` series and
//! anomalies kept as [`events`] in an Arrow table, read through [`engine::DetectHandle`].
//!
//! Beside it, [`incidents::Correlator`] (`correlate:`) indexes trace ids over spans, logs and exemplars,
//! derives RED series and the service graph from spans ([`traces`]), and groups anomalies, failed and slow
//! spans and error logs into incidents with a ranked root cause ([`incidents`]).

pub mod config;
pub mod engine;
pub mod eval;
pub mod events;
mod features;
pub mod forecast;
pub mod iforest;
pub mod incidents;
mod peers;
pub mod roc;
pub mod rules;
pub mod selector;
mod series;
mod settings;
mod stats;
pub mod telemetry;
pub mod traces;
mod verdict;

pub use config::DetectConfig;
pub use engine::{DetectHandle, Engine, EngineInputs, WriteBack};
pub use incidents::{CorrelateConfig, CorrelateHandle, CorrelateInputs, CorrelateMetrics, Correlator};
pub use series::SeriesDetector;
pub use settings::{DetectorSet, Direction, Seasonality, Settings};
pub use telemetry::DetectMetrics;
pub use verdict::{Contributions, ForecastPoint, Verdict};
