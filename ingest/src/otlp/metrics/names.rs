//! Metric names: OTLP name + unit + kind → Prometheus metric family name.
//!
//! This follows Prometheus' own OTLP receiver (`github.com/prometheus/otlptranslator`, `MetricNamer` with
//! the default `UnderscoreEscapingWithSuffixes` strategy) rather than only the spec text, so that a series
//! written through Vigil has the name Prometheus would have given it. Where the two read differently:
//! - the name is split into tokens on every character outside `[a-zA-Z0-9:]` (`_` included) and joined
//!   with `_`, which collapses runs of `_` and drops leading and trailing ones;
//! - the unit word is left out when it is *any* token of the name, not only the last
//!   (`seconds_in_queue` with unit `s` stays `seconds_in_queue`);
//! - a counter's `total` token is removed wherever it is and put back at the end (`total_requests` →
//!   `requests_total`); the same for `ratio` on gauges;
//! - `ratio` is added only for OTLP gauges with unit exactly `1`, not for non-monotonic sums.

/// What an OTLP metric is, as far as naming cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    ExponentialHistogram,
    Summary,
}

/// The Prometheus metric family name for an OTLP metric, or `None` when nothing valid is left of it
/// (e.g. a name made only of punctuation): Prometheus refuses such a metric too.
pub(super) fn metric_name(name: &str, unit: &str, kind: Kind) -> Option<String> {
    let mut tokens: Vec<String> =
        name.split(|c: char| !is_name_char(c)).filter(|t| !t.is_empty()).map(str::to_owned).collect();

    let (main, per) = unit_suffixes(unit);
    add_unit_tokens(&mut tokens, clean_up_unit(&main), clean_up_unit(&per));

    if kind == Kind::MonotonicCounter {
        move_to_end(&mut tokens, "total");
    }
    // Prometheus adds `ratio` for gauges only: some receivers wrongly give counters of things unit `1`.
    if unit == "1" && kind == Kind::Gauge {
        move_to_end(&mut tokens, "ratio");
    }

    let mut out = tokens.join("_");
    if out.is_empty() {
        return None;
    }
    // A Prometheus metric name cannot start with a digit.
    if out.as_bytes()[0].is_ascii_digit() {
        out.insert(0, '_');
    }
    Some(out)
}

/// Characters kept in metric name tokens. `_` is not among them: it separates tokens.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Removes every `word` token and appends one at the end.
fn move_to_end(tokens: &mut Vec<String>, word: &str) {
    tokens.retain(|t| t != word);
    tokens.push(word.to_owned());
}

/// Splits a UCUM unit at its first `/` into the main suffix (`By` → `bytes`) and the "per" suffix
/// (`s` → `per_second`). A part containing `{` or `}` is an annotation ("count of …") and gives no suffix.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or_default().trim();
    let main = if main.is_empty() || main.contains(['{', '}']) {
        String::new()
    } else {
        unit_word(main).unwrap_or(main).to_owned()
    };

    let per = match parts.next().map(str::trim) {
        Some(per) if !per.is_empty() && !per.contains(['{', '}']) => {
            format!("per_{}", per_unit_word(per).unwrap_or(per))
        }
        _ => String::new(),
    };
    (main, per)
}

/// Appends the unit tokens unless the name already holds them (see the module comment).
fn add_unit_tokens(tokens: &mut Vec<String>, main: String, per: String) {
    let mut main = if tokens.contains(&main) { String::new() } else { main };
    let per = if per == "per_" {
        String::new()
    } else {
        let per = per.strip_suffix('_').unwrap_or(&per).to_owned();
        if tokens.contains(&per) { String::new() } else { per }
    };
    if !per.is_empty()
        && let Some(trimmed) = main.strip_suffix('_')
    {
        main = trimmed.to_owned();
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
}

/// Makes a unit word fit a metric name: characters outside `[a-zA-Z0-9:]` become `_`, runs of `_`
/// collapse, and a leading `_` goes.
fn clean_up_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_name_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_owned(),
        None => out,
    }
}

/// UCUM main units Prometheus spells out (otlptranslator's `unitMap`). `1` maps to nothing: a ratio gets
/// its `ratio` word from the gauge rule instead.
fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        // Time
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        // Bytes
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tebibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        // SI
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        // Misc
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        _ => return None,
    })
}

/// The singular words used after `per_` (otlptranslator's `perUnitMap`).
fn per_unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}
