//! The four tables SQL reads, converted from the arrow-rs batches Vigil holds into polars DataFrames at query
//! time, one tenant's rows only.
//!
//! Column by column: each arrow-rs array of the tenant's rows is copied into a polars `ChunkedArray` of the same
//! type (primitive values by `memcpy` when every row of a batch is the tenant's, strings into polars' own string
//! views). Not the Arrow C Data Interface: both sides would need `unsafe` imports tied to polars' Arrow fork,
//! the import would bring every tenant's rows only to filter them afterwards, and polars turns `Utf8` into its
//! view layout anyway, so the strings (most of these tables' bytes) would be copied all the same.
//!
//! Binary columns (a span's encoded OTLP `span` and `resource_scope`) are left out: SQL has nothing to do with
//! protobuf bytes, and they are the largest columns of the spans table.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Float32Type as ArrowF32, Float64Type as ArrowF64, Int32Type as ArrowI32, Int64Type as ArrowI64,
    TimestampMillisecondType, TimestampNanosecondType, UInt64Type as ArrowU64,
};
use arrow_array::{Array, PrimitiveArray, RecordBatch};
use arrow_schema::{DataType as ArrowType, SchemaRef, TimeUnit as ArrowUnit};
use polars::prelude::{
    BooleanChunked, ChunkedArray, Column, DataFrame, Float32Type, Float64Type, Int32Type, Int64Type, IntoColumn,
    NewChunkedArray, PlSmallStr, PolarsNumericType, PolarsResult, StringChunked, TimeUnit, UInt64Type, polars_bail,
};

/// A table SQL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// The anomaly events (`GET /api/v1/anomalies`' table): closed events, then the open ones.
    Anomalies,
    /// The incidents (`GET /api/v1/incidents`' table): resolved ones, then the open ones.
    Incidents,
    /// The logs buffer's sealed batches.
    Logs,
    /// The spans buffer's sealed batches.
    Spans,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Anomalies, Table::Incidents, Table::Logs, Table::Spans];

    /// The name SQL uses (any letter case).
    pub fn name(self) -> &'static str {
        match self {
            Table::Anomalies => "anomalies",
            Table::Incidents => "incidents",
            Table::Logs => "logs",
            Table::Spans => "spans",
        }
    }

    /// The table a relation name means, in any letter case.
    pub fn named(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The Arrow schema of its batches.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Anomalies => vigil_detect::events::schema(),
            Table::Incidents => vigil_detect::incidents::table::schema(),
            Table::Logs => Arc::clone(&vigil_ingest::buffer::logs::schema::LOGS),
            Table::Spans => Arc::clone(&vigil_ingest::buffer::spans::schema::SPANS),
        }
    }
}

/// One batch's rows of the tenant.
struct Part<'a> {
    batch: &'a RecordBatch,
    /// `None`: every row.
    rows: Option<Vec<usize>>,
}

impl Part<'_> {
    fn len(&self) -> usize {
        self.rows.as_ref().map_or(self.batch.num_rows(), Vec::len)
    }

    fn indices(&self) -> Indices<'_> {
        match &self.rows {
            None => Indices::All(0..self.batch.num_rows()),
            Some(rows) => Indices::Some(rows.iter()),
        }
    }
}

enum Indices<'a> {
    All(Range<usize>),
    Some(std::slice::Iter<'a, usize>),
}

impl Iterator for Indices<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Indices::All(r) => r.next(),
            Indices::Some(it) => it.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Indices::All(r) => r.size_hint(),
            Indices::Some(it) => it.size_hint(),
        }
    }
}

/// The tenant's rows of `batches` (of `table`'s schema) as one DataFrame; a batch of another schema (a bug) is
/// skipped with a warning.
pub fn to_frame(table: Table, batches: &[RecordBatch], tenant: &str) -> PolarsResult<DataFrame> {
    let schema = table.schema();
    let Ok(tenant_col) = schema.index_of("tenant") else {
        polars_bail!(ComputeError: "{} has no tenant", table.name())
    };
    let mut parts = Vec::with_capacity(batches.len());
    for batch in batches {
        if batch.schema().fields() != schema.fields() {
            tracing::warn!(table = table.name(), "A batch of another schema was skipped. This is a bug.");
            continue;
        }
        let Some(tenants) = batch.column(tenant_col).as_string_opt::<i32>() else { continue };
        let rows: Vec<usize> =
            (0..batch.num_rows()).filter(|&i| tenants.is_valid(i) && tenants.value(i) == tenant).collect();
        if rows.is_empty() {
            continue;
        }
        let rows = (rows.len() < batch.num_rows()).then_some(rows);
        parts.push(Part { batch, rows });
    }
    let height = parts.iter().map(Part::len).sum();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        if let Some(c) = column(PlSmallStr::from_str(field.name()), i, field.data_type(), &parts, height)? {
            columns.push(c);
        }
    }
    DataFrame::new(height, columns)
}

/// Column `i` of the parts, or `None` for a type SQL does not get (binary).
fn column(
    name: PlSmallStr,
    i: usize,
    ty: &ArrowType,
    parts: &[Part<'_>],
    height: usize,
) -> PolarsResult<Option<Column>> {
    let column = match ty {
        ArrowType::Utf8 => {
            let arrays = typed(&name, i, parts, |a| a.as_string_opt::<i32>())?;
            let values = arrays.iter().flat_map(|(a, p)| p.indices().map(move |r| a.is_valid(r).then(|| a.value(r))));
            StringChunked::from_iter_options(name, values).into_column()
        }
        ArrowType::Boolean => {
            let arrays = typed(&name, i, parts, |a| a.as_boolean_opt())?;
            let values = arrays.iter().flat_map(|(a, p)| p.indices().map(move |r| a.is_valid(r).then(|| a.value(r))));
            BooleanChunked::from_iter_options(name, values).into_column()
        }
        ArrowType::UInt64 => primitive::<ArrowU64, UInt64Type>(name, i, parts, height)?.into_column(),
        ArrowType::Int32 => primitive::<ArrowI32, Int32Type>(name, i, parts, height)?.into_column(),
        ArrowType::Int64 => primitive::<ArrowI64, Int64Type>(name, i, parts, height)?.into_column(),
        ArrowType::Float32 => primitive::<ArrowF32, Float32Type>(name, i, parts, height)?.into_column(),
        ArrowType::Float64 => primitive::<ArrowF64, Float64Type>(name, i, parts, height)?.into_column(),
        ArrowType::Timestamp(ArrowUnit::Millisecond, None) => {
            let ms = primitive::<TimestampMillisecondType, Int64Type>(name, i, parts, height)?;
            ms.into_datetime(TimeUnit::Milliseconds, None).into_column()
        }
        ArrowType::Timestamp(ArrowUnit::Nanosecond, None) => {
            let ns = primitive::<TimestampNanosecondType, Int64Type>(name, i, parts, height)?;
            ns.into_datetime(TimeUnit::Nanoseconds, None).into_column()
        }
        _ => return Ok(None),
    };
    Ok(Some(column))
}

/// Each part's column `i` (named `name`), as the array type `cast` reads.
fn typed<'a, A: 'a>(
    name: &str,
    i: usize,
    parts: &'a [Part<'a>],
    cast: impl Fn(&'a dyn Array) -> Option<&'a A>,
) -> PolarsResult<Vec<(&'a A, &'a Part<'a>)>> {
    parts
        .iter()
        .map(|p| match cast(p.batch.column(i).as_ref()) {
            Some(a) => Ok((a, p)),
            None => polars_bail!(ComputeError: "column {name:?} is not of its schema's type"),
        })
        .collect()
}

/// A primitive column: values copied straight (whole slices when a batch is all the tenant's) unless there
/// are nulls.
fn primitive<A, P>(name: PlSmallStr, i: usize, parts: &[Part<'_>], height: usize) -> PolarsResult<ChunkedArray<P>>
where
    A: ArrowPrimitiveType,
    P: PolarsNumericType<Native = A::Native>,
{
    let arrays = parts
        .iter()
        .map(|p| match p.batch.column(i).as_primitive_opt::<A>() {
            Some(a) => Ok((a, p)),
            None => polars_bail!(ComputeError: "column {name:?} is not of its schema's type"),
        })
        .collect::<PolarsResult<Vec<(&PrimitiveArray<A>, &Part<'_>)>>>()?;
    if arrays.iter().any(|(a, _)| a.null_count() > 0) {
        let values = arrays.iter().flat_map(|(a, p)| p.indices().map(move |r| a.is_valid(r).then(|| a.value(r))));
        return Ok(ChunkedArray::from_iter_options(name, values));
    }
    let mut values = Vec::with_capacity(height);
    for (a, p) in &arrays {
        match &p.rows {
            None => values.extend_from_slice(a.values()),
            Some(rows) => values.extend(rows.iter().map(|&r| a.value(r))),
        }
    }
    Ok(ChunkedArray::from_vec(name, values))
}
