//! The forecast (`predict_trend`, `GET /api/v1/forecast`): the next hours of a series with a confidence
//! band.
//!
//! The engine keeps, per scored series, a [`History`] of hourly means over the last week (16-bit codes,
//! about 400 bytes). A forecast fits augurs' MSTL to it — the daily period, and the weekly one once two weeks
//! of history are there (the engine's one-week ring gives daily only) — with an ETS model (additive error,
//! trend by AIC) for the deseasonalised series, and returns augurs' point forecasts and 95 % prediction
//! intervals, widened by the spread of single samples around their hour's mean. With less than two days of
//! history (or too many gaps, or a failed fit) the streaming detector's seasonal profile answers instead
//! ([`crate::SeriesDetector::forecast`]); every answer says which model made it ([`ForecastModel`]).
//!
//! Why two seasonal models: the per-sample detector must stay a hand-written online profile (96 daily plus
//! 168 weekly buckets, updated in O(1) per sample). MSTL is a batch method — each fit is a few STL passes and
//! an ETS optimisation over the whole history, milliseconds per series — so refitting it per sample could
//! never meet the engine's 2 M samples/s per core, and refitting it periodically for every series would spend
//! cores on forecasts nobody asked for. A forecast is asked for rarely and for a few series, so it is fitted
//! then, on demand, outside the shard's lock.

mod history;
mod model;

pub(crate) use history::History;
// `fit`: the forecast from a `Snapshot`, or why there is none and the profile must answer.
pub(crate) use model::{ModelError, forecast as fit};

/// Which model a forecast came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForecastModel {
    /// augurs' MSTL (daily, and weekly with two weeks of history) with an ETS model of the deseasonalised
    /// series.
    MstlEts,
    /// ETS alone on the hourly history: the series' rule turned daily seasonality off.
    Ets,
    /// The streaming detector's seasonal profile (or robust level), ±2σ: too little history for the others.
    Profile,
}

impl ForecastModel {
    /// The name in API answers: `mstl_ets`, `ets` or `profile`.
    pub fn as_str(self) -> &'static str {
        match self {
            ForecastModel::MstlEts => "mstl_ets",
            ForecastModel::Ets => "ets",
            ForecastModel::Profile => "profile",
        }
    }
}

#[cfg(test)]
mod tests;
