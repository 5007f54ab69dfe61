//! Vigil's detect stage: streaming anomaly detectors over the columnar buffer.
//!
//! Not built yet (issue 5). Detectors will read the metrics buffer through lossy subscriptions
//! (`vigil_ingest::buffer::SubscriptionMode::Lossy`) and write scores back into the metrics path.
