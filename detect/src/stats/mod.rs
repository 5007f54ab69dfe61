//! The streaming statistics each series keeps: O(1) work and a few words of state per sample, so the
//! ensemble runs at millions of samples per second per core. Each detector reports a deviation in its own
//! noise units (a z-like number); [`crate::series`] combines them.
//!
//! Why not a crate: these are a handful of recurrences each (an EWMA, a Huber M-estimator, a CUSUM); the
//! crates that offer them (e.g. `augurs-outlier`, `statrs`) work on whole batches of history, which a
//! streaming scorer with ≤ 2 KiB per series cannot keep. augurs' MSTL/ETS is used where history is available
//! by design: forecasts ([`crate::forecast`]).

pub(crate) mod calibrate;
pub(crate) mod ewma;
pub(crate) mod rate;
pub(crate) mod robust;
pub(crate) mod seasonal;
pub(crate) mod shift;
