//! The SQL API with polars: each table, tenant isolation, refusals, limits.

use std::time::{Duration, Instant};

use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use axum::http::Request as HttpRequest;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use vigil_detect::Contributions;
use vigil_detect::config::EventsConfig;
use vigil_detect::events::{Event, EventLog, Peak};
use vigil_ingest::buffer::BufferConfig;
use vigil_ingest::buffer::logs::LogRow;
use vigil_ingest::buffer::spans::SpanRow;

use super::super::*;

const T0_NS: i64 = 1_700_000_000_000_000_000;

fn span(tenant: &str, n: i64, service: &str, error: bool) -> SpanRow {
    SpanRow {
        tenant: Arc::from(tenant),
        trace_id: format!("{n:032x}"),
        span_id: format!("{n:016x}"),
        parent_span_id: (n % 2 == 0).then(|| format!("{:016x}", n + 1)),
        service: Some(Arc::from(service)),
        name: format!("GET /{service}"),
        kind: 2,
        start_unix_nano: T0_NS + n * 1_000_000,
        duration_ns: 1_000_000 * (n + 1),
        status_code: if error { 2 } else { 0 },
        status_message: error.then(|| "boom".to_owned()),
        attributes: r#"{"http.route":"/x"}"#.into(),
        span: vec![0],
        resource_scope: Arc::from(&b"r"[..]),
    }
}

fn log(tenant: &str, n: i64, severity: &str) -> LogRow {
    LogRow {
        timestamp_ns: T0_NS + n,
        observed_timestamp_ns: T0_NS + n,
        tenant: tenant.into(),
        service: Some("api".into()),
        severity: Some(severity.into()),
        body: format!("line {n}"),
        trace_id: None,
        span_id: None,
        labels: r#"{job="api"}"#.into(),
        attributes: "{}".into(),
    }
}

/// An API over real buffers: team-a has 5 spans (2 errors) and 3 log lines, team-b 1 span and 1 line.
fn api() -> Arc<SqlApi> {
    let cfg =
        BufferConfig { shards: 2, batch_rows: 1000, max_bytes: 16 << 20, seal_interval: Duration::from_secs(3600) };
    let (logs, spans) = (LogsBuffer::new(cfg.clone()), SpansBuffer::new(cfg));
    let mut staged = spans.staged_rows();
    for r in [
        span("team-a", 1, "web", false),
        span("team-a", 2, "web", true),
        span("team-a", 3, "db", true),
        span("team-a", 4, "db", false),
        span("team-a", 5, "db", false),
        span("team-b", 6, "secret", true),
    ] {
        staged.push(r);
    }
    spans.append(&staged).unwrap();
    spans.seal_all();
    let mut staged = logs.staged_rows();
    for r in [log("team-a", 1, "info"), log("team-a", 2, "error"), log("team-a", 3, "error"), log("team-b", 4, "error")]
    {
        staged.push(r);
    }
    logs.append(&staged).unwrap();
    logs.seal_all();
    Arc::new(SqlApi::new(None, None, logs, spans, "anonymous".into()))
}

async fn post(api: &Arc<SqlApi>, tenant: &str, content_type: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let req = HttpRequest::post("/api/v1/sql")
        .header("X-Scope-OrgID", tenant)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap();
    let resp = sql_router(Arc::clone(api)).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))))
}

async fn query(api: &Arc<SqlApi>, tenant: &str, sql: &str) -> (StatusCode, Value) {
    post(api, tenant, "application/json", json!({ "query": sql }).to_string()).await
}

#[tokio::test]
async fn a_group_by_over_spans_for_the_tenant_only() {
    let api = api();
    let sql = "SELECT service, count(*) AS calls, sum(CASE WHEN status_code = 2 THEN 1 ELSE 0 END) AS errors \
               FROM spans GROUP BY service ORDER BY service";
    let (status, body) = query(&api, "team-a", sql).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success");
    let d = &body["data"];
    let names: Vec<&str> = d["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["service", "calls", "errors"]);
    assert_eq!(d["columns"][0]["type"], "str");
    assert_eq!(d["rows"], json!([["db", 3, 1], ["web", 2, 1]]));
    assert_eq!(d["truncated"], false);
    assert_eq!(
        d["stats"]["tables"],
        json!([{"name": "spans", "rows": 5, "convert_ms": d["stats"]["tables"][0]["convert_ms"]}])
    );
    // team-b sees its one span and nothing of team-a's; an unknown tenant sees nothing.
    let (_, body) = query(&api, "team-b", "SELECT service, span_id FROM spans").await;
    assert_eq!(body["data"]["rows"], json!([["secret", format!("{:016x}", 6)]]));
    let (_, body) = query(&api, "team-c", "SELECT count(*) AS n FROM spans").await;
    assert_eq!(body["data"]["rows"], json!([[0]]));
}

#[tokio::test]
async fn logs_and_joins_times_as_rfc3339() {
    let api = api();
    let (status, body) =
        query(&api, "team-a", "SELECT timestamp, severity, body FROM logs WHERE severity = 'error' ORDER BY timestamp")
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["columns"][0]["type"], "datetime[ns]");
    assert_eq!(
        body["data"]["rows"],
        json!([
            ["2023-11-14T22:13:20.000000002Z", "error", "line 2"],
            ["2023-11-14T22:13:20.000000003Z", "error", "line 3"]
        ])
    );
    // Two tables in one query: each converted once, both for the tenant.
    let sql = "SELECT l.n AS lines, s.n AS spans FROM (SELECT count(*) AS n FROM logs) l \
               CROSS JOIN (SELECT count(*) AS n FROM spans) s";
    let (status, body) = query(&api, "team-b", sql).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["rows"], json!([[1, 1]]));
    let converted: Vec<&str> =
        body["data"]["stats"]["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(converted, ["logs", "spans"]);
    // Letter case of a table's name does not matter; a table the query does not name is not converted.
    let (status, body) = query(&api, "team-a", "SELECT count(*) AS n FROM Logs").await;
    assert_eq!((status, body["data"]["rows"].clone()), (StatusCode::OK, json!([[3]])), "{body}");
    let (_, body) = query(&api, "team-a", "SELECT 1 AS one").await;
    assert_eq!(body["data"]["stats"]["tables"], json!([]));
}

#[tokio::test]
async fn every_body_shape_and_the_row_limit() {
    let api = api();
    let (status, body) = post(&api, "team-a", "text/plain", "SELECT span_id FROM spans ORDER BY span_id").await;
    assert_eq!((status, body["data"]["rows"].as_array().unwrap().len()), (StatusCode::OK, 5));
    let form = "query=SELECT+span_id+FROM+spans+ORDER+BY+span_id&limit=2";
    let (status, body) = post(&api, "team-a", "application/x-www-form-urlencoded", form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["rows"], json!([[format!("{:016x}", 1)], [format!("{:016x}", 2)]]));
    assert_eq!(body["data"]["truncated"], true);
    assert!(body["warnings"][0].as_str().unwrap().contains("only the first 2"), "{body}");
    // Exactly the limit: not truncated.
    let (_, body) = post(&api, "team-a", "application/json", r#"{"query":"SELECT * FROM spans","limit":5}"#).await;
    assert_eq!(body["data"]["truncated"], false);
    assert!(body.get("warnings").is_none());
    // The binary columns are not tables' columns.
    let names: Vec<&str> =
        body["data"]["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"attributes") && !names.contains(&"span") && !names.contains(&"resource_scope"));
    // Too large a body: 413, naming the limit.
    let (status, body) = post(&api, "team-a", "text/plain", "x".repeat(MAX_BODY_BYTES + 1)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["error"].as_str().unwrap().contains(&MAX_BODY_BYTES.to_string()));
}

async fn refused(api: &Arc<SqlApi>, sql: &str) -> String {
    let (status, body) = query(api, "team-a", sql).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{sql}: {body}");
    assert_eq!((body["status"].as_str(), body["errorType"].as_str()), (Some("error"), Some("bad_data")));
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn bad_sql_is_400_with_a_message_naming_the_problem() {
    let api = api();
    let e = refused(&api, "SELEC * FROM spans").await;
    assert!(e.starts_with("invalid SQL:") && e.contains("SELEC"), "{e}");
    let e = refused(&api, "SELECT * FROM nowhere").await;
    assert!(e.contains("relation 'nowhere' was not found"), "{e}");
    let e = refused(&api, "SELECT no_such_column FROM spans").await;
    assert!(e.contains("no_such_column"), "{e}");
    let e = refused(&api, "SELECT no_such_function(service) FROM spans").await;
    assert!(e.contains("no_such_function"), "{e}");
    for write in ["DELETE FROM spans", "DROP TABLE spans", "CREATE TABLE x AS SELECT * FROM spans", "TRUNCATE spans"] {
        let e = refused(&api, write).await;
        assert!(e.starts_with("only read queries"), "{write}: {e}");
    }
    let e = refused(&api, "SELECT 1; SELECT 2").await;
    assert!(e.contains("one statement at a time"), "{e}");
    // No table functions reading files: polars is built without them.
    let e = refused(&api, "SELECT * FROM read_csv('/etc/passwd')").await;
    assert!(e.contains("read_csv"), "{e}");
}

fn event(tenant: &str, n: i64, now_ms: i64) -> Event {
    Event {
        tenant: Arc::from(tenant),
        series_id: u64::MAX - n as u64,
        labels: Arc::from(format!(r#"{{"__name__":"latency","pod":"p{n}"}}"#)),
        start_ms: now_ms - 60_000,
        end_ms: now_ms - 1000 * n,
        peak: Peak {
            timestamp_ms: now_ms - 30_000,
            value: 10.0 * n as f64,
            score: 1.0 + n as f64,
            expected: 1.0,
            lower: 0.5,
            upper: f64::INFINITY,
            contributions: Contributions::default(),
        },
        open: false,
    }
}

/// An incidents batch of the table's schema (the table builds its own from running correlation).
fn incidents_batch() -> RecordBatch {
    let schema = vigil_detect::incidents::table::schema();
    let rows = [("inc1", "team-a", Some("db")), ("inc2", "team-a", None), ("inc3", "team-b", Some("web"))];
    let mut columns: Vec<ArrayRef> = Vec::new();
    for field in schema.fields() {
        let column: ArrayRef = match field.name().as_str() {
            "opened_at" | "resolved_at" | "started_at" | "last_signal_at" => {
                let mut b = TimestampMillisecondBuilder::new();
                for _ in rows {
                    b.append_option((field.name() != "resolved_at").then_some(1_700_000_000_000));
                }
                Arc::new(b.finish())
            }
            "root_confidence" => {
                let mut b = Float64Builder::new();
                rows.iter().for_each(|r| b.append_option(r.2.map(|_| 0.9)));
                Arc::new(b.finish())
            }
            name => {
                let mut b = StringBuilder::new();
                for (id, tenant, root) in rows {
                    b.append_option(match name {
                        "id" => Some(id),
                        "tenant" => Some(tenant),
                        "root_service" | "root_reason" => root,
                        "status" => Some("open"),
                        "severity" => Some("P1"),
                        _ => Some("[]"),
                    });
                }
                Arc::new(b.finish())
            }
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema, columns).unwrap()
}

#[test]
fn anomalies_and_incidents_convert_for_the_tenant() {
    let now = chrono::Utc::now().timestamp_millis();
    let events = EventLog::new(&EventsConfig::default());
    events.extend([event("team-a", 1, now), event("team-b", 2, now), event("team-a", 3, now)]);
    let open = [Event { open: true, ..event("team-a", 4, now) }];
    let anomalies = events.snapshot(&open);
    let incidents = vec![incidents_batch()];
    let read = |t: Table| match t {
        Table::Anomalies => anomalies.clone(),
        Table::Incidents => incidents.clone(),
        Table::Logs | Table::Spans => Vec::new(),
    };
    let deadline = (Instant::now() + Duration::from_secs(30), Duration::from_secs(30));
    let sql = "SELECT series_id, score, upper, severity, open, detector_iforest FROM anomalies ORDER BY score";
    let a = execute(sql, "team-a", 100, deadline, read).unwrap();
    let types: Vec<&str> = a.columns.iter().map(|c| c.ty.as_str()).collect();
    assert_eq!(types, ["u64", "f64", "f64", "str", "bool", "f32"]);
    assert_eq!(a.rows.len(), 3);
    assert_eq!(a.rows[0][0], json!(u64::MAX - 1), "u64 ids are exact");
    assert_eq!(a.rows[0][2], json!("+Inf"), "non-finite floats as Prometheus writes them");
    assert_eq!(a.rows[2][4], json!(true), "the open event is there");
    assert_eq!(a.stats.tables[0].rows, 3);
    let a = execute("SELECT count(*) FROM anomalies", "team-b", 100, deadline, read).unwrap();
    assert_eq!(a.rows, [[json!(1)]]);
    // Incidents, with their nulls; a join of both tables.
    let sql = "SELECT id, root_service, root_confidence, resolved_at, opened_at FROM incidents ORDER BY id";
    let a = execute(sql, "team-a", 100, deadline, read).unwrap();
    assert_eq!(
        a.rows,
        [
            [json!("inc1"), json!("db"), json!(0.9), Value::Null, json!("2023-11-14T22:13:20.000Z")],
            [json!("inc2"), Value::Null, Value::Null, Value::Null, json!("2023-11-14T22:13:20.000Z")],
        ]
    );
    let sql =
        "SELECT i.id, count(a.series_id) AS n FROM incidents i CROSS JOIN anomalies a GROUP BY i.id ORDER BY i.id";
    let a = execute(sql, "team-b", 100, deadline, read).unwrap();
    assert_eq!(a.rows, [[json!("inc3"), json!(1)]]);
}

#[test]
fn statements_and_the_tables_they_name() {
    let names = |q: &str| tables_of(q).map(|n| n.into_iter().map(|n| n.table).collect::<Vec<_>>());
    assert_eq!(names("SELECT 1").unwrap(), []);
    assert_eq!(
        names("SELECT * FROM spans s JOIN logs l ON s.trace_id = l.trace_id").unwrap(),
        [Table::Spans, Table::Logs]
    );
    assert_eq!(
        names("WITH x AS (SELECT * FROM INCIDENTS) SELECT * FROM x WHERE id IN (SELECT id FROM incidents)").unwrap(),
        [Table::Incidents]
    );
    let spellings = tables_of("SELECT * FROM Logs UNION ALL SELECT * FROM logs").unwrap();
    assert_eq!(spellings[0].spellings.iter().collect::<Vec<_>>(), ["Logs", "logs"]);
    // A column that is called like a table is not a table.
    assert_eq!(names("SELECT spans FROM anomalies").unwrap(), [Table::Anomalies]);
    assert!(matches!(tables_of("INSERT INTO logs VALUES (1)"), Err(SqlError::BadQuery(m)) if m.contains("not INSERT")));
    assert!(matches!(tables_of(""), Err(SqlError::BadQuery(m)) if m.contains("no SQL statement")));
}

#[test]
fn a_panic_is_an_answer_and_the_deadline_holds() {
    let deadline = (Instant::now() + Duration::from_secs(30), Duration::from_secs(30));
    let r = execute("SELECT * FROM logs", "t", 10, deadline, |_| panic!("reader exploded"));
    assert_eq!(r, Err(SqlError::Panicked("reader exploded".into())));
    let past = (Instant::now() - Duration::from_millis(1), Duration::from_secs(30));
    let r = execute("SELECT * FROM logs", "t", 10, past, |_| Vec::new());
    assert_eq!(r, Err(SqlError::Timeout(Duration::from_secs(30))));
}
