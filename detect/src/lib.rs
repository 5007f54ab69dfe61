//! Vigil's detect stage: anomaly detectors over the columnar buffer (issue 5).
//!
//! Built so far: the [`iforest`] isolation forest (with linfa's `Fit`/`Predict`) and [`roc::auroc`] to
//! judge detectors on labelled data. The streaming detectors will read the metrics buffer through lossy
//! subscriptions (`vigil_ingest::buffer::SubscriptionMode::Lossy`) and write scores back into the
//! metrics path.

pub mod iforest;
pub mod roc;
