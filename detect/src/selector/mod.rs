//! PromQL series selectors (`metric{a="x", b!="y", c=~"re", d!~"re"}`), parsed once and matched against a
//! series' labels with Prometheus' semantics: regular expressions are anchored at both ends (and `.` matches
//! a newline), and a label a series does not have reads as the empty string, so `{a=""}` matches series
//! without `a` and `{a!=""}` only series with it.
//!
//! Grammar: <https://prometheus.io/docs/prometheus/latest/querying/basics/#time-series-selectors>.

mod parse;

use std::fmt;

use regex::Regex;

pub use parse::SelectorError;

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One `name op "value"` of a selector.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// The anchored form of `value`, for `=~` and `!~`.
    regex: Option<Regex>,
}

impl Matcher {
    /// Whether a label value (the empty string for a label the series does not have) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            // A regex matcher is only ever built with its regex.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

/// A parsed series selector: every matcher must hold.
#[derive(Debug, Clone)]
pub struct Selector {
    matchers: Vec<Matcher>,
}

impl Selector {
    /// Parses a selector; the error names the position (1-based, in characters) and the problem.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        parse::parse(text).map(|matchers| Self { matchers })
    }

    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// Whether the series whose label values `label` returns (by name, `None` when absent) is selected.
    pub fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.matchers.iter().all(|m| m.matches(label(&m.name).unwrap_or("")))
    }

    /// [`Selector::matches`] over a list of `(name, value)` pairs.
    pub fn matches_pairs<'a>(&self, labels: &[(&'a str, &'a str)]) -> bool {
        self.matches(|name| labels.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}{}{:?}", m.name, m.op.as_str(), m.value)?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests;
