//! Stand-ins for Loki and Tempo (neither can be installed here), and a remote-write receiver: HTTP servers on 127.0.0.1 that decode the
//! real wire formats — Loki's `logproto.PushRequest` in snappy block format, OTLP/HTTP protobuf — and keep
//! what arrived, with the `X-Scope-OrgID` it came with.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use vigil_proto::loki::PushRequest;
use vigil_proto::prometheus::WriteRequest;

#[derive(Default)]
pub struct Received<T> {
    pub requests: Mutex<Vec<(Option<String>, T)>>,
}

fn tenant(headers: &HeaderMap) -> Option<String> {
    headers.get("x-scope-orgid").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn loki_push(State(rx): State<Arc<Received<PushRequest>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Ok(raw) = snap::raw::Decoder::new().decompress_vec(&body) else { return StatusCode::BAD_REQUEST };
    let Ok(req) = PushRequest::decode(raw.as_slice()) else { return StatusCode::BAD_REQUEST };
    rx.requests.lock().unwrap().push((tenant(&headers), req));
    StatusCode::NO_CONTENT
}

async fn tempo_traces(
    State(rx): State<Arc<Received<ExportTraceServiceRequest>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    if headers.get("content-type").map(|v| v.as_bytes()) != Some(b"application/x-protobuf") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let Ok(req) = ExportTraceServiceRequest::decode(body.as_ref()) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    rx.requests.lock().unwrap().push((tenant(&headers), req));
    (StatusCode::OK, Vec::new())
}

async fn remote_write_receive(State(rx): State<Arc<Received<WriteRequest>>>, body: Bytes) -> StatusCode {
    let Ok(raw) = snap::raw::Decoder::new().decompress_vec(&body) else { return StatusCode::BAD_REQUEST };
    let Ok(req) = WriteRequest::decode(raw.as_slice()) else { return StatusCode::BAD_REQUEST };
    rx.requests.lock().unwrap().push((None, req));
    StatusCode::NO_CONTENT
}

async fn serve(app: Router) -> String {
    serve_on(app, 0).await
}

async fn serve_on(app: Router, port: u16) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A Loki push endpoint; returns what it received and its full push URL.
pub async fn loki() -> (Arc<Received<PushRequest>>, String) {
    loki_on(0).await
}

/// [`loki`] on a given port (0: any), for a destination configured before it runs.
pub async fn loki_on(port: u16) -> (Arc<Received<PushRequest>>, String) {
    let rx = Arc::new(Received::default());
    let app = Router::new().route("/loki/api/v1/push", post(loki_push)).with_state(Arc::clone(&rx));
    (rx, format!("{}/loki/api/v1/push", serve_on(app, port).await))
}

/// A Tempo OTLP/HTTP traces endpoint; returns what it received and its full URL.
pub async fn tempo() -> (Arc<Received<ExportTraceServiceRequest>>, String) {
    tempo_on(0).await
}

/// [`tempo`] on a given port (0: any).
pub async fn tempo_on(port: u16) -> (Arc<Received<ExportTraceServiceRequest>>, String) {
    let rx = Arc::new(Received::default());
    let app = Router::new().route("/v1/traces", post(tempo_traces)).with_state(Arc::clone(&rx));
    (rx, format!("{}/v1/traces", serve_on(app, port).await))
}

/// A remote-write 1.0 receiver (for data VictoriaMetrics would not keep, such as samples older than its
/// retention); returns what it received and its full URL.
pub async fn remote_write() -> (Arc<Received<WriteRequest>>, String) {
    let rx = Arc::new(Received::default());
    let url = serve(Router::new().route("/api/v1/write", post(remote_write_receive)).with_state(Arc::clone(&rx))).await;
    (rx, format!("{url}/api/v1/write"))
}
