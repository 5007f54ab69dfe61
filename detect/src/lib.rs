//! Vigil's detect stage: anomaly detectors over the columnar buffer (issue 5).
//!
//! [`SeriesDetector`] scores one series a sample at a time with the statistical detectors and their
//! ensemble, as configured by [`Settings`]; [`iforest`] is the isolation forest (with linfa's
//! `Fit`/`Predict`) and [`roc::auroc`] judges detectors on labelled data.

pub mod config;
pub mod eval;
pub mod iforest;
pub mod roc;
pub mod rules;
pub mod selector;
mod series;
mod settings;
pub mod telemetry;
mod verdict;

pub use config::DetectConfig;
pub use series::SeriesDetector;
pub use settings::{DetectorSet, Direction, Seasonality, Settings};
pub use telemetry::DetectMetrics;
pub use verdict::{Contributions, ForecastPoint, Verdict};
