//! `POST /api/v1/sql`: SQL over the request tenant's rows of four tables, run by polars.
//!
//! | table | rows | columns |
//! |---|---|---|
//! | `anomalies` | anomaly events, closed then open | as `vigil_detect::events::schema` |
//! | `incidents` | incidents, resolved then open | as `vigil_detect::incidents::table::schema` |
//! | `logs` | the logs buffer's sealed batches | as `vigil_ingest::buffer::logs::schema::LOGS` |
//! | `spans` | the spans buffer's sealed batches | `SPANS` without the binary `span` and `resource_scope` |
//!
//! arrow-rs stays the buffers' format: the tables a query names are converted at query time ([`tables`]),
//! the others not at all; each answer says what converting and running cost (`stats`).
//!
//! The query comes as JSON `{"query": "SELECT …", "limit": 100}`, as a form (`query=…&limit=…`) or as the
//! body itself (`text/plain`, `application/sql`); `limit` may also be in the query string. Only one read-only
//! statement is run (`SELECT`, `WITH … SELECT`, `VALUES`, set operations; no `CREATE`, `DELETE`, …).
//!
//! Answers: `{"status":"success","data":{"columns":[{"name","type"}],"rows":[[…]],"truncated":false,
//! "stats":{…}}}` (a truncated answer also carries a warning). Refusals, Prometheus-shaped: 400 `bad_data`
//! (bad SQL, an unknown table, column or function, a write statement: polars' message), 413 (body over
//! [`MAX_BODY_BYTES`]), 415 (another content type), 500 `internal` (polars panicked, caught), 501
//! `unavailable` (built without the `sql` feature), 503 `timeout` (past [`TIMEOUT`]).

#[cfg(feature = "sql")]
mod run;
#[cfg(feature = "sql")]
mod tables;

use std::sync::Arc;
#[cfg(feature = "sql")]
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
#[cfg(feature = "sql")]
use tokio::sync::Semaphore;
use vigil_detect::{CorrelateHandle, DetectHandle};
use vigil_ingest::buffer::{LogsBuffer, SpansBuffer};

use crate::params::{ParamError, error_response, param, parse_limit, tenant};

#[cfg(feature = "sql")]
pub use run::{Answer, ColumnJson, Named, SqlError, Stats, TableStats, execute, tables_of};
#[cfg(feature = "sql")]
pub use tables::{Table, to_frame};

/// Rows an answer carries at most (`limit`'s default and maximum).
pub const MAX_ROWS: usize = 10_000;
/// A request body larger than this is refused (413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A query still running after this is answered 503; its work runs on to its end (see [`SqlApi`]).
#[cfg(feature = "sql")]
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Queries run at once; more wait (within their deadline). polars uses every core for one query already.
#[cfg(feature = "sql")]
const MAX_CONCURRENT: usize = 2;

/// What the SQL API reads.
///
/// A query runs on a blocking thread, polars on its own thread pool. Its deadline is checked between
/// steps (each table's conversion, the query); a query past it is answered 503 at once, but a polars
/// plan cannot be stopped safely mid-way (its cancellable runner executes on polars' pool, where a panic
/// would abort the process), so it keeps its slot ([`MAX_CONCURRENT`]) until it ends.
#[derive(Debug)]
// Built without `sql`, the route only answers 501: the tables are held for nothing.
#[cfg_attr(not(feature = "sql"), allow(dead_code))]
pub struct SqlApi {
    detect: Option<DetectHandle>,
    correlate: Option<CorrelateHandle>,
    logs: Arc<LogsBuffer>,
    spans: Arc<SpansBuffer>,
    default_tenant: String,
    #[cfg(feature = "sql")]
    slots: Arc<Semaphore>,
}

impl SqlApi {
    /// `detect` and `correlate` are `None` when they are off: their tables are then empty.
    pub fn new(
        detect: Option<DetectHandle>,
        correlate: Option<CorrelateHandle>,
        logs: Arc<LogsBuffer>,
        spans: Arc<SpansBuffer>,
        default_tenant: String,
    ) -> Self {
        Self {
            detect,
            correlate,
            logs,
            spans,
            default_tenant,
            #[cfg(feature = "sql")]
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT)),
        }
    }

    /// A table's batches, all tenants.
    #[cfg(feature = "sql")]
    fn batches(&self, table: Table) -> Vec<arrow_array::RecordBatch> {
        match table {
            Table::Anomalies => self.detect.as_ref().map(DetectHandle::events_table).unwrap_or_default(),
            Table::Incidents => self.correlate.as_ref().map(CorrelateHandle::incidents_table).unwrap_or_default(),
            Table::Logs => {
                (0..self.logs.shard_count()).flat_map(|s| self.logs.snapshot(s)).map(|b| b.logs.clone()).collect()
            }
            Table::Spans => {
                (0..self.spans.shard_count()).flat_map(|s| self.spans.snapshot(s)).map(|b| b.spans.clone()).collect()
            }
        }
    }
}

/// The route `POST /api/v1/sql`.
pub fn sql_router(api: Arc<SqlApi>) -> Router {
    Router::new().route("/api/v1/sql", post(sql)).with_state(api)
}

/// A request: the query and the rows wanted at most.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    query: String,
    limit: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRequest {
    query: String,
    limit: Option<usize>,
}

enum Refusal {
    Param(ParamError),
    TooLarge,
    MediaType(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Param(e) => e.into_response(),
            Refusal::TooLarge => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bad_data",
                &format!("request body larger than {MAX_BODY_BYTES} bytes"),
            ),
            Refusal::MediaType(t) => error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_data",
                &format!(
                    "unsupported Content-Type {t:?}: send application/json ({{\"query\": …}}), \
                     application/x-www-form-urlencoded (query=…) or the SQL as text/plain"
                ),
            ),
        }
    }
}

impl From<ParamError> for Refusal {
    fn from(e: ParamError) -> Self {
        Refusal::Param(e)
    }
}

/// The query and limit of a request body of content type `content_type`, and of its query string.
fn parse_request(content_type: Option<&str>, body: &[u8], uri_query: Option<&str>) -> Result<Request, Refusal> {
    let pairs: Vec<(String, String)> = match uri_query {
        Some(q) => {
            serde_urlencoded::from_str(q).map_err(|e| ParamError::BadData(format!("invalid query string: {e}")))?
        }
        None => Vec::new(),
    };
    let mut limit = param(&pairs, "limit").map(|v| parse_limit("limit", v, MAX_ROWS)).transpose()?;
    let essence = content_type.map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    let text = |body: &[u8]| {
        std::str::from_utf8(body).map(str::to_owned).map_err(|_| ParamError::BadData("the body is not UTF-8".into()))
    };
    let query = match essence.as_deref() {
        Some("application/json") => {
            let r: JsonRequest = serde_json::from_slice(body).map_err(|e| {
                ParamError::BadData(format!(
                    "invalid JSON body (expected {{\"query\": \"SELECT …\", \"limit\": n}}): {e}"
                ))
            })?;
            if let Some(n) = r.limit {
                limit = Some(parse_limit("limit", &n.to_string(), MAX_ROWS)?);
            }
            r.query
        }
        Some("application/x-www-form-urlencoded") => {
            let form: Vec<(String, String)> =
                serde_urlencoded::from_bytes(body).map_err(|e| ParamError::BadData(format!("invalid form: {e}")))?;
            if let Some(v) = param(&form, "limit") {
                limit = Some(parse_limit("limit", v, MAX_ROWS)?);
            }
            param(&form, "query").unwrap_or_default().to_owned()
        }
        None | Some("text/plain" | "application/sql" | "") => text(body)?,
        Some(other) => return Err(Refusal::MediaType(other.to_owned())),
    };
    if query.trim().is_empty() {
        return Err(ParamError::BadData(
            "no SQL query: send {\"query\": \"SELECT … FROM anomalies|incidents|logs|spans\"}".into(),
        )
        .into());
    }
    Ok(Request { query, limit: limit.unwrap_or(MAX_ROWS) })
}

async fn sql(State(api): State<Arc<SqlApi>>, headers: HeaderMap, uri: Uri, body: Body) -> Response {
    let tenant = match tenant(&headers, &api.default_tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else { return Refusal::TooLarge.into_response() };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let request = match parse_request(content_type, &bytes, uri.query()) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    run_query(api, tenant, request).await
}

#[cfg(not(feature = "sql"))]
async fn run_query(_api: Arc<SqlApi>, _tenant: Arc<str>, _request: Request) -> Response {
    error_response(
        StatusCode::NOT_IMPLEMENTED,
        "unavailable",
        "this Vigil was built without SQL (the `sql` cargo feature, on in the default build): \
         rebuild with `cargo build --release -p vigil --features sql`",
    )
}

#[cfg(feature = "sql")]
async fn run_query(api: Arc<SqlApi>, tenant: Arc<str>, request: Request) -> Response {
    let deadline = Instant::now() + TIMEOUT;
    let timed_out =
        || error_response(StatusCode::SERVICE_UNAVAILABLE, "timeout", &SqlError::Timeout(TIMEOUT).to_string());
    let permit = match tokio::time::timeout_at(deadline.into(), Arc::clone(&api.slots).acquire_owned()).await {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => return error_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "shutting down"),
        Err(_) => return timed_out(),
    };
    let limit = request.limit;
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        execute(&request.query, &tenant, request.limit, (deadline, TIMEOUT), |t| api.batches(t))
    });
    match tokio::time::timeout_at(deadline.into(), work).await {
        Err(_) => timed_out(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "A SQL query's task failed. This is a bug.");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
        }
        Ok(Ok(Err(e @ SqlError::BadQuery(_)))) => error_response(StatusCode::BAD_REQUEST, "bad_data", &e.to_string()),
        Ok(Ok(Err(e @ SqlError::Timeout(_)))) => {
            error_response(StatusCode::SERVICE_UNAVAILABLE, "timeout", &e.to_string())
        }
        Ok(Ok(Err(e @ SqlError::Panicked(_)))) => {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e.to_string())
        }
        Ok(Ok(Ok(answer))) => {
            let truncated = answer.truncated;
            let mut body = serde_json::json!({"status": "success", "data": answer});
            if truncated {
                body["warnings"] =
                    serde_json::json!([format!("more than {limit} rows; only the first {limit} are returned (limit)")]);
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests;
