//! Vigil's detect stage: anomaly detectors over the columnar buffer (issue 5).
//!
//! [`SeriesDetector`] scores one series a sample at a time with the statistical detectors and their
//! ensemble, as configured by [`Settings`]; [`iforest`] is the isolation forest (with linfa's
//! `Fit`/`Predict`) and [`roc::auroc`] judges detectors on labelled data.

pub mod eval;
pub mod iforest;
pub mod roc;
mod series;
mod settings;
mod verdict;

pub use series::SeriesDetector;
pub use settings::{DetectorSet, Direction, Seasonality, Settings};
pub use verdict::{Contributions, ForecastPoint, Verdict};
