//! What `POST /api/v1/sql` pays at query time: converting each table's arrow-rs batches into a polars
//! DataFrame (one tenant's rows), and a typical GROUP BY end to end (convert, plan, run, first rows as JSON).
//!
//! Every table holds 100 000 rows in the batch sizes Vigil keeps (events 1024, incidents 256, logs and spans
//! `buffer.batch_rows` 8192). `convert/*`: all rows are the tenant's; `convert_half/*`: half are another
//! tenant's, interleaved, so the rows are gathered one by one instead of copied a batch at a time.
//!
//! `cargo bench -p vigil-benches --features sql --bench sql`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_detect::Contributions;
use vigil_detect::config::EventsConfig;
use vigil_detect::events::{Event, EventLog, Peak};
use vigil_ingest::buffer::logs::LogRow;
use vigil_ingest::buffer::spans::SpanRow;
use vigil_ingest::buffer::{BufferConfig, LogsBuffer, SpansBuffer};
use vigil_query::sql::{Table, execute, to_frame};

const ROWS: usize = 100_000;
const SERVICES: [&str; 8] = ["web", "api", "auth", "cart", "db", "cache", "search", "queue"];
const T0_NS: i64 = 1_700_000_000_000_000_000;

fn tenant(i: usize, half: bool) -> &'static str {
    if half && i % 2 == 1 { "other" } else { "team-a" }
}

fn buffer_config() -> BufferConfig {
    BufferConfig { max_bytes: 1 << 30, shards: 1, seal_interval: Duration::from_secs(3600), ..BufferConfig::default() }
}

fn spans(half: bool) -> Vec<RecordBatch> {
    let buffer = SpansBuffer::new(buffer_config());
    let mut staged = buffer.staged_rows();
    for i in 0..ROWS {
        let service = SERVICES[i % SERVICES.len()];
        staged.push(SpanRow {
            tenant: Arc::from(tenant(i, half)),
            trace_id: format!("{:032x}", i / 4),
            span_id: format!("{i:016x}"),
            parent_span_id: (i % 4 != 0).then(|| format!("{:016x}", i - 1)),
            service: Some(Arc::from(service)),
            name: format!("GET /{service}/items/{{id}}"),
            kind: 2,
            start_unix_nano: T0_NS + i as i64 * 1_000_000,
            duration_ns: 1_000_000 + (i as i64 * 7919) % 50_000_000,
            status_code: if i % 50 == 0 { 2 } else { 0 },
            status_message: None,
            attributes: format!(
                r#"{{"http.method":"GET","http.route":"/{service}/items/{{id}}","http.status_code":200}}"#
            ),
            span: vec![0; 120],
            resource_scope: Arc::from(&b"resource"[..]),
        });
    }
    buffer.append(&staged).expect("room");
    buffer.seal_all();
    buffer.snapshot(0).iter().map(|b| b.spans.clone()).collect()
}

fn logs(half: bool) -> Vec<RecordBatch> {
    let buffer = LogsBuffer::new(buffer_config());
    let mut staged = buffer.staged_rows();
    for i in 0..ROWS {
        let service = SERVICES[i % SERVICES.len()];
        staged.push(LogRow {
            timestamp_ns: T0_NS + i as i64 * 1_000_000,
            observed_timestamp_ns: T0_NS + i as i64 * 1_000_000,
            tenant: tenant(i, half).into(),
            service: Some(service.into()),
            severity: Some(if i % 20 == 0 { "error" } else { "info" }.into()),
            body: format!("GET /{service}/items/{i} answered 200 in {} ms", i % 97),
            trace_id: Some(format!("{:032x}", i / 4)),
            span_id: Some(format!("{i:016x}")),
            labels: format!(r#"{{job="{service}", namespace="shop"}}"#),
            attributes: r#"{"pod":"shop-7d9f8"}"#.into(),
        });
    }
    buffer.append(&staged).expect("room");
    buffer.seal_all();
    buffer.snapshot(0).iter().map(|b| b.logs.clone()).collect()
}

fn anomalies(half: bool) -> Vec<RecordBatch> {
    let now = chrono_now_ms();
    let log = EventLog::new(&EventsConfig { max_events: ROWS, ..EventsConfig::default() });
    log.extend((0..ROWS).map(|i| Event {
        tenant: Arc::from(tenant(i, half)),
        series_id: i as u64 * 0x9e37_79b9_7f4a_7c15,
        labels: Arc::from(format!(
            r#"{{"__name__":"http_request_duration_seconds","job":"{}","pod":"p{}"}}"#,
            SERVICES[i % SERVICES.len()],
            i % 300
        )),
        start_ms: now - 3_600_000 + i as i64,
        end_ms: now - 60_000 + i as i64 / 100,
        peak: Peak {
            timestamp_ms: now - 1_800_000 + i as i64,
            value: i as f64,
            score: 1.0 + (i % 10) as f64,
            expected: 1.0,
            lower: 0.0,
            upper: 2.0,
            contributions: Contributions::default(),
        },
        open: false,
    }));
    log.snapshot(&[])
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Incidents in chunks of 256, as the table keeps them (built directly: the table is filled by correlation).
fn incidents(half: bool) -> Vec<RecordBatch> {
    let schema = vigil_detect::incidents::table::schema();
    let mut out = Vec::new();
    for chunk in (0..ROWS).collect::<Vec<_>>().chunks(256) {
        let mut columns: Vec<ArrayRef> = Vec::new();
        for field in schema.fields() {
            let column: ArrayRef = match field.name().as_str() {
                "opened_at" | "resolved_at" | "started_at" | "last_signal_at" => {
                    let mut b = TimestampMillisecondBuilder::new();
                    chunk.iter().for_each(|&i| b.append_value(1_700_000_000_000 + i as i64));
                    Arc::new(b.finish())
                }
                "root_confidence" => {
                    let mut b = Float64Builder::new();
                    chunk.iter().for_each(|&i| b.append_value((i % 100) as f64 / 100.0));
                    Arc::new(b.finish())
                }
                name => {
                    let mut b = StringBuilder::new();
                    for &i in chunk {
                        let service = SERVICES[i % SERVICES.len()];
                        b.append_value(match name {
                            "id" => format!("{i:016x}"),
                            "tenant" => tenant(i, half).to_owned(),
                            "title" => format!("{service}: error ratio up; 2 more services affected"),
                            "severity" => "P2".to_owned(),
                            "status" => "resolved".to_owned(),
                            "root_service" => service.to_owned(),
                            "root_reason" => "earliest anomaly; its callees cover the others".to_owned(),
                            "services" => format!(r#"["{service}","db"]"#),
                            "evidence" => {
                                r#"{"trace_ids":["0af7651916cd43dd8448eb211c80319c"],"spans":[],"logs":[]}"#.to_owned()
                            }
                            _ => r#"[{"at":"2023-11-14T22:13:20Z","kind":"opened"}]"#.to_owned(),
                        });
                    }
                    Arc::new(b.finish())
                }
            };
            columns.push(column);
        }
        out.push(RecordBatch::try_new(Arc::clone(&schema), columns).expect("schema"));
    }
    out
}

fn tables(half: bool) -> [(Table, Vec<RecordBatch>); 4] {
    [
        (Table::Anomalies, anomalies(half)),
        (Table::Incidents, incidents(half)),
        (Table::Logs, logs(half)),
        (Table::Spans, spans(half)),
    ]
}

fn convert(c: &mut Criterion) {
    for (group, half) in [("convert", false), ("convert_half", true)] {
        let mut g = c.benchmark_group(group);
        g.sample_size(10).measurement_time(Duration::from_secs(5)).throughput(Throughput::Elements(ROWS as u64));
        for (table, batches) in tables(half) {
            g.bench_function(table.name(), |b| {
                b.iter(|| to_frame(table, black_box(&batches), "team-a").expect("converts").height())
            });
        }
        g.finish();
    }
}

fn group_by(c: &mut Criterion) {
    let tables = tables(false);
    let read = |t: Table| tables.iter().find(|(n, _)| *n == t).map(|(_, b)| b.clone()).unwrap_or_default();
    let queries = [
        (
            "spans_red_by_service",
            "SELECT service, count(*) AS calls, avg(duration_ns) / 1000000.0 AS avg_ms, \
             sum(CASE WHEN status_code = 2 THEN 1 ELSE 0 END) AS errors FROM spans GROUP BY service ORDER BY calls DESC",
        ),
        ("logs_by_severity", "SELECT service, severity, count(*) AS lines FROM logs GROUP BY service, severity"),
        ("anomalies_by_severity", "SELECT severity, count(*) AS n, max(score) AS top FROM anomalies GROUP BY severity"),
    ];
    let mut g = c.benchmark_group("query");
    g.sample_size(10).measurement_time(Duration::from_secs(5)).throughput(Throughput::Elements(ROWS as u64));
    for (name, sql) in queries {
        // Where one run's time goes (the answer's own stats): converting the table, then planning and running.
        let deadline = (Instant::now() + Duration::from_secs(60), Duration::from_secs(60));
        let stats = execute(sql, "team-a", 10_000, deadline, read).expect("runs").stats;
        eprintln!("{name}: {stats:?}");
        g.bench_function(name, |b| {
            b.iter(|| {
                let deadline = (Instant::now() + Duration::from_secs(60), Duration::from_secs(60));
                execute(sql, "team-a", 10_000, deadline, read).expect("runs").rows.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, convert, group_by);
criterion_main!(benches);
