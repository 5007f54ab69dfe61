//! The metrics deliver step: log entries (snappy remote write 1.0 bodies) → one request per tenant of at
//! most `max_samples_per_request` rows, compressed, delivered. The loop around it (reading the log,
//! flush deadline, committing the position) is [`crate::wal_loop`].
//!
//! Protobuf messages concatenate by merging their repeated fields, so a request is the entries'
//! decompressed bodies appended one after the other: nothing is decoded or re-encoded on the way out.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Uri};
use vigil_ingest::wal::{Consumer, Entry};

use super::client::{CLASSIFY, headers};
use super::config::{TENANT_PLACEHOLDER, VictoriaMetricsConfig};
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::send::{Fate, Sender};
use crate::telemetry::ForwardMetrics;
use crate::wal_loop::{self, Deliver, Limits};

const BACKEND: &str = "victoriametrics";

/// Starts the worker for one destination, reading the metrics log from `consumer`'s position.
pub fn spawn(
    config: &VictoriaMetricsConfig,
    uri: Uri,
    consumer: Consumer,
    client: HttpClient,
    metrics: ForwardMetrics,
) -> ForwarderHandle {
    let sender =
        Sender::new(BACKEND, client, uri, config.request_timeout, config.backoff.clone(), CLASSIFY, metrics.clone());
    let limits = Limits { max_rows: config.max_samples_per_request, flush_interval: config.flush_interval };
    let labels = sender.labels().clone();
    let deliverer = Deliverer {
        sender,
        max_samples_per_request: config.max_samples_per_request,
        headers: headers(),
        template: config.url.contains(TENANT_PLACEHOLDER).then(|| config.url.clone()),
        uris: HashMap::new(),
        requests: Vec::new(),
        compressed: Vec::new(),
        snappy: snap::raw::Encoder::new(),
        unsnappy: snap::raw::Decoder::new(),
    };
    wal_loop::spawn(consumer, &labels, &metrics, limits, deliverer)
}

/// One tenant's request being filled.
#[derive(Debug, Default)]
struct TenantRequest {
    tenant: String,
    raw: Vec<u8>,
    samples: u64,
    exemplars: u64,
    histograms: u64,
}

impl TenantRequest {
    fn rows(&self) -> usize {
        (self.samples + self.histograms) as usize
    }
}

struct Deliverer {
    sender: Sender,
    max_samples_per_request: usize,
    headers: HeaderMap,
    /// The URL with `{tenant}` in it, when requests go to a URL per tenant.
    template: Option<String>,
    /// Per-tenant URLs made from `template` (`None`: the tenant makes no valid URL).
    uris: HashMap<String, Option<Uri>>,
    /// Requests being filled, one per tenant; buffers are kept for reuse after sending.
    requests: Vec<TenantRequest>,
    /// Reused for every request's snappy output: a fresh zeroed buffer per request showed up as page
    /// faults and memset in profiles.
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
    unsnappy: snap::raw::Decoder,
}

impl Deliver for Deliverer {
    fn rows(entry: &Entry) -> usize {
        (entry.counts[0] + entry.counts[2]) as usize
    }

    /// Sends `entries` in requests of one tenant each, a request going out once it holds
    /// `max_samples_per_request` rows (an entry is never split, so one large entry makes a larger request).
    async fn deliver(&mut self, entries: &[Entry]) {
        for entry in entries {
            let i = match self.requests.iter().position(|r| r.tenant == entry.tenant) {
                Some(i) => i,
                None => match self.requests.iter().position(|r| r.raw.is_empty()) {
                    Some(i) => {
                        self.requests[i].tenant.clone_from(&entry.tenant);
                        i
                    }
                    None => {
                        self.requests.push(TenantRequest { tenant: entry.tenant.clone(), ..TenantRequest::default() });
                        self.requests.len() - 1
                    }
                },
            };
            if let Err(e) = append_decompressed(&mut self.unsnappy, &entry.payload, &mut self.requests[i].raw) {
                tracing::error!(url = %self.sender.labels().url, error = %e, "A logged request did not decompress; its samples are dropped.");
                self.sender.count_dropped(Self::rows(entry) as u64);
                continue;
            }
            let r = &mut self.requests[i];
            r.samples += u64::from(entry.counts[0]);
            r.exemplars += u64::from(entry.counts[1]);
            r.histograms += u64::from(entry.counts[2]);
            if r.rows() >= self.max_samples_per_request {
                self.send(i).await;
            }
        }
        for i in 0..self.requests.len() {
            if !self.requests[i].raw.is_empty() {
                self.send(i).await;
            }
        }
    }
}

/// Appends the decompressed form of a snappy block to `out`.
fn append_decompressed(decoder: &mut snap::raw::Decoder, block: &[u8], out: &mut Vec<u8>) -> Result<(), snap::Error> {
    let len = snap::raw::decompress_len(block)?;
    let at = out.len();
    out.resize(at + len, 0);
    match decoder.decompress(block, &mut out[at..]) {
        Ok(n) => {
            out.truncate(at + n);
            Ok(())
        }
        Err(e) => {
            out.truncate(at);
            Err(e)
        }
    }
}

impl Deliverer {
    /// Compresses and delivers request `i`, then empties it for reuse.
    async fn send(&mut self, i: usize) {
        let mut request = std::mem::take(&mut self.requests[i]);
        self.send_request(&request).await;
        request.raw.clear();
        (request.samples, request.exemplars, request.histograms) = (0, 0, 0);
        self.requests[i] = request;
    }

    async fn send_request(&mut self, request: &TenantRequest) {
        let url = &self.sender.labels().url;
        let uri = match &self.template {
            None => None,
            Some(template) => match self
                .uris
                .entry(request.tenant.clone())
                .or_insert_with(|| template.replace(TENANT_PLACEHOLDER, &request.tenant).parse().ok())
            {
                Some(uri) => Some(uri.clone()),
                None => {
                    tracing::warn!(url = %url, tenant = %request.tenant, samples = request.samples, "The tenant makes no valid URL; its samples are dropped.");
                    self.sender.count_dropped(request.rows() as u64);
                    return;
                }
            },
        };
        let need = snap::raw::max_compress_len(request.raw.len());
        if self.compressed.len() < need {
            self.compressed.resize(need, 0);
        }
        let body = match self.snappy.compress(&request.raw, &mut self.compressed) {
            Ok(n) => Bytes::copy_from_slice(&self.compressed[..n]),
            Err(e) => {
                tracing::error!(url = %url, error = %e, "Snappy compression failed; this is a bug.");
                self.sender.count_dropped(request.rows() as u64);
                return;
            }
        };
        let tenant = Some(request.tenant.as_str());
        let fate = match &uri {
            Some(uri) => self.sender.send_to(uri, &self.headers, tenant, body).await,
            None => self.sender.send(&self.headers, tenant, body).await,
        };
        match fate {
            Fate::Delivered { .. } => {
                let (m, labels) = (self.sender.metrics(), self.sender.labels());
                m.samples.get_or_create(labels).inc_by(request.samples);
                m.exemplars.get_or_create(labels).inc_by(request.exemplars);
                m.histograms.get_or_create(labels).inc_by(request.histograms);
            }
            Fate::Rejected { status, message } => {
                self.sender.count_dropped(request.rows() as u64);
                tracing::warn!(url = %self.sender.labels().url, tenant = %request.tenant, status, message, samples = request.samples, "Backend rejected a request for good; its samples are dropped.");
            }
        }
    }
}
