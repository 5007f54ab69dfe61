//! P0–P3 from how far out and how long: a huge deviation is urgent at once, a mild one becomes urgent by
//! lasting.
//!
//! | severity | peak score (ensemble, > 1 anomalous) | or anomalous for |
//! |---|---|---|
//! | P0 | ≥ 5 | ≥ 15 min |
//! | P1 | ≥ 3 | ≥ 5 min |
//! | P2 | ≥ 1.5 | ≥ 1 min |
//! | P3 | anything else | |

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    P0,
    P1,
    P2,
    P3,
}

const MINUTE_MS: i64 = 60_000;

/// Score floors and durations per severity, most severe first.
const STEPS: [(Severity, f64, i64); 3] =
    [(Severity::P0, 5.0, 15 * MINUTE_MS), (Severity::P1, 3.0, 5 * MINUTE_MS), (Severity::P2, 1.5, MINUTE_MS)];

impl Severity {
    /// The severity of an anomaly whose peak score is `peak_score` and that has lasted `duration_ms` (from
    /// its first to its last anomalous sample).
    pub fn of(peak_score: f64, duration_ms: i64) -> Self {
        STEPS
            .iter()
            .find(|(_, score, duration)| peak_score >= *score || duration_ms >= *duration)
            .map_or(Severity::P3, |(s, _, _)| *s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P0 => "P0",
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Severity::P0, Severity::P1, Severity::P2, Severity::P3].into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_or_duration_escalates() {
        assert_eq!(Severity::of(1.2, 0), Severity::P3);
        assert_eq!(Severity::of(1.5, 0), Severity::P2);
        assert_eq!(Severity::of(3.0, 0), Severity::P1);
        assert_eq!(Severity::of(50.0, 0), Severity::P0);
        assert_eq!(Severity::of(1.1, MINUTE_MS), Severity::P2);
        assert_eq!(Severity::of(1.1, 5 * MINUTE_MS), Severity::P1);
        assert_eq!(Severity::of(1.1, 15 * MINUTE_MS), Severity::P0);
        assert_eq!(Severity::of(2.0, 6 * MINUTE_MS), Severity::P1, "the more severe of the two");
        assert_eq!(Severity::parse("P2"), Some(Severity::P2));
        assert_eq!(Severity::parse("p2"), None);
    }
}
