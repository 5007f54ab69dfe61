//! One SQL query: checked to be a single read-only statement, the tables it names converted
//! ([`super::tables`]) and registered, run by polars' SQL context, its first rows written as JSON.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use chrono::{DateTime, SecondsFormat, Utc};
use polars::prelude::{AnyValue, DataFrame, IdxSize, IntoLazy, TimeUnit};
use polars::sql::SQLContext;
use serde::Serialize;
use serde_json::Value;
use sqlparser::ast::{Statement, visit_relations};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserOptions};

use super::tables::{Table, to_frame};

/// Why a query has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// Not one read-only statement, a syntax error, an unknown table, column or function, a type error: polars'
    /// or the parser's message, which names the problem.
    #[error("{0}")]
    BadQuery(String),
    /// Past the deadline.
    #[error("query timed out after {0:?}")]
    Timeout(Duration),
    /// polars panicked on the query (a polars bug, caught): its message.
    #[error("the query engine failed on this query: {0}")]
    Panicked(String),
}

/// A query's answer: its columns (name and polars type), its first rows, whether there were more.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub columns: Vec<ColumnJson>,
    /// Row-major; times in RFC 3339 (UTC), non-finite floats as `"NaN"`, `"+Inf"`, `"-Inf"`.
    pub rows: Vec<Vec<Value>>,
    /// More rows than the limit: only the first `limit` are here.
    pub truncated: bool,
    pub stats: Stats,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnJson {
    pub name: String,
    /// polars' name of the type: `str`, `bool`, `i32`, `i64`, `u64`, `f32`, `f64`, `datetime[ms]`, `datetime[ns]`,
    /// `u32` (counts), …
    #[serde(rename = "type")]
    pub ty: String,
}

/// What the query cost: converting each table it names, then running it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub tables: Vec<TableStats>,
    pub query_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableStats {
    pub name: &'static str,
    /// The tenant's rows converted.
    pub rows: usize,
    pub convert_ms: f64,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A table a query names, with each spelling it uses (`logs`, `Logs`, …): polars looks names up as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub table: Table,
    pub spellings: BTreeSet<String>,
}

/// The tables `query` names, once it is known to be one read-only statement (a query: `SELECT`, `WITH`,
/// `VALUES`, set operations).
pub fn tables_of(query: &str) -> Result<Vec<Named>, SqlError> {
    // As polars' SQL context parses it.
    let options = ParserOptions { trailing_commas: true, ..ParserOptions::default() };
    let statements = Parser::new(&GenericDialect)
        .with_options(options)
        .try_with_sql(query)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| SqlError::BadQuery(format!("invalid SQL: {e}")))?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => return Err(SqlError::BadQuery("no SQL statement in the query".into())),
        more => return Err(SqlError::BadQuery(format!("one statement at a time, got {}", more.len()))),
    };
    if !matches!(statement, Statement::Query(_)) {
        let text = statement.to_string();
        let kind = text.split_whitespace().next().unwrap_or_default();
        return Err(SqlError::BadQuery(format!(
            "only read queries (SELECT …, WITH … SELECT …) are run, not {kind}: the tables are Vigil's buffers"
        )));
    }
    let mut named: Vec<Named> = Vec::new();
    let _ = visit_relations(statement, |name| {
        let ident = name.0.first().and_then(|p| p.as_ident());
        if let Some((ident, table)) = ident.and_then(|i| Table::named(&i.value).map(|t| (i, t))) {
            match named.iter_mut().find(|n| n.table == table) {
                Some(n) => {
                    n.spellings.insert(ident.value.clone());
                }
                None => named.push(Named { table, spellings: BTreeSet::from([ident.value.clone()]) }),
            }
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(named)
}

/// Runs `query` over the tenant's rows of the tables it names (read by `read`), keeping the first `limit`
/// rows. Past `deadline` between steps, it stops with [`SqlError::Timeout`] (`timeout` is what it reports).
/// A panic inside polars is caught and answered as [`SqlError::Panicked`].
pub fn execute(
    query: &str,
    tenant: &str,
    limit: usize,
    (deadline, timeout): (Instant, Duration),
    read: impl Fn(Table) -> Vec<RecordBatch>,
) -> Result<Answer, SqlError> {
    match catch_unwind(AssertUnwindSafe(|| run(query, tenant, limit, (deadline, timeout), read))) {
        Ok(answer) => answer,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            tracing::warn!(message, "polars panicked on a SQL query; answered 500.");
            Err(SqlError::Panicked(message.to_owned()))
        }
    }
}

fn bad(e: impl std::fmt::Display) -> SqlError {
    SqlError::BadQuery(e.to_string())
}

fn run(
    query: &str,
    tenant: &str,
    limit: usize,
    (deadline, timeout): (Instant, Duration),
    read: impl Fn(Table) -> Vec<RecordBatch>,
) -> Result<Answer, SqlError> {
    let check = || if Instant::now() > deadline { Err(SqlError::Timeout(timeout)) } else { Ok(()) };
    let named = tables_of(query)?;
    let mut ctx = SQLContext::new();
    let mut stats = Stats { tables: Vec::with_capacity(named.len()), query_ms: 0.0 };
    for Named { table, spellings } in named {
        check()?;
        let start = Instant::now();
        let frame = to_frame(table, &read(table), tenant).map_err(bad)?;
        stats.tables.push(TableStats { name: table.name(), rows: frame.height(), convert_ms: ms(start.elapsed()) });
        for spelling in spellings {
            // The frame's columns are shared, not copied.
            ctx.register(&spelling, frame.clone().lazy());
        }
    }
    check()?;
    let start = Instant::now();
    let cap = IdxSize::try_from(limit.saturating_add(1)).unwrap_or(IdxSize::MAX);
    let frame = ctx.execute(query).map_err(bad)?.limit(cap).collect().map_err(bad)?;
    let (columns, rows, truncated) = to_json(&frame, limit).map_err(bad)?;
    stats.query_ms = ms(start.elapsed());
    Ok(Answer { columns, rows, truncated, stats })
}

type Rows = (Vec<ColumnJson>, Vec<Vec<Value>>, bool);

fn to_json(frame: &DataFrame, limit: usize) -> polars::prelude::PolarsResult<Rows> {
    let columns = frame.columns();
    let names = columns.iter().map(|c| ColumnJson { name: c.name().to_string(), ty: c.dtype().to_string() }).collect();
    let height = frame.height().min(limit);
    let mut rows = Vec::with_capacity(height);
    for i in 0..height {
        rows.push(columns.iter().map(|c| c.get(i).map(|v| value(&v))).collect::<Result<Vec<_>, _>>()?);
    }
    Ok((names, rows, frame.height() > limit))
}

fn float(v: f64) -> Value {
    match serde_json::Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::String("NaN".into()),
        None if v > 0.0 => Value::String("+Inf".into()),
        None => Value::String("-Inf".into()),
    }
}

fn time(v: i64, unit: TimeUnit) -> Value {
    let (t, format) = match unit {
        TimeUnit::Milliseconds => (DateTime::<Utc>::from_timestamp_millis(v), SecondsFormat::Millis),
        TimeUnit::Microseconds => (DateTime::<Utc>::from_timestamp_micros(v), SecondsFormat::Micros),
        TimeUnit::Nanoseconds => (Some(DateTime::<Utc>::from_timestamp_nanos(v)), SecondsFormat::Nanos),
    };
    t.map_or(Value::from(v), |t| Value::String(t.to_rfc3339_opts(format, true)))
}

/// One cell as JSON.
fn value(v: &AnyValue<'_>) -> Value {
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::String(s) => Value::String((*s).to_owned()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::UInt8(n) => Value::from(*n),
        AnyValue::UInt16(n) => Value::from(*n),
        AnyValue::UInt32(n) => Value::from(*n),
        AnyValue::UInt64(n) => Value::from(*n),
        AnyValue::Int8(n) => Value::from(*n),
        AnyValue::Int16(n) => Value::from(*n),
        AnyValue::Int32(n) => Value::from(*n),
        AnyValue::Int64(n) => Value::from(*n),
        AnyValue::Float32(f) => float(f64::from(*f)),
        AnyValue::Float64(f) => float(*f),
        AnyValue::Datetime(v, unit, _) => time(*v, *unit),
        AnyValue::DatetimeOwned(v, unit, _) => time(*v, *unit),
        // Lists (`ARRAY_AGG`), 128-bit integers, durations, dates: as polars writes them.
        other => Value::String(other.to_string()),
    }
}
