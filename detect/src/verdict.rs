//! What scoring one sample yields.

/// Each detector's score for one sample, on the ensemble's scale (> 1 is anomalous).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Contributions {
    pub level: f32,
    pub ewma: f32,
    pub seasonal: f32,
    pub shift: f32,
    pub rate: f32,
    /// The group's isolation forest (`detect.iforest`).
    pub iforest: f32,
    /// Unlike its sibling series (`detect.peers`).
    pub peers: f32,
}

impl Contributions {
    /// `(name, score)` for every detector, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f32)> {
        [
            ("level", self.level),
            ("ewma", self.ewma),
            ("seasonal", self.seasonal),
            ("shift", self.shift),
            ("rate", self.rate),
            ("iforest", self.iforest),
            ("peers", self.peers),
        ]
        .into_iter()
    }
}

/// The ensemble's judgement of one sample. `score` ≥ 0, > 1 means anomalous (vmanomaly's convention);
/// `expected` is what the model predicted and `[lower, upper]` the band outside which a sample scores > 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub score: f64,
    /// The score judged against the series' own history, with repeats of an ongoing anomaly suppressed:
    /// what alerting (and `vigil eval`) uses. > 1 fires.
    pub alert: f64,
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub contributions: Contributions,
}

impl Verdict {
    /// The alerting score mapped onto [0, 1] (0.5 at the alerting threshold 1), as `vigil eval` writes it.
    pub fn unit_score(&self) -> f64 {
        if self.alert.is_finite() { self.alert.max(0.0) / (1.0 + self.alert.max(0.0)) } else { 1.0 }
    }
}

/// One step of a forecast: the expected value at `timestamp_ms` and its confidence band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastPoint {
    pub timestamp_ms: i64,
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
}
