//! Joining log entries into one request per tenant. Protobuf messages concatenate by merging their repeated
//! fields, so a request is its entries' payloads (decompressed, for snappy payloads) appended one after the
//! other: nothing is decoded or re-encoded on the way out. Shared by every forwarder that reads a log.
//!
//! JSON payloads join the same way when each record is array items with a comma after each (alerts:
//! `{…},{…},`); the backend's deliver step wraps the joined bytes as `[…]` without the last comma.

use vigil_ingest::wal::Entry;

/// One tenant's request being filled.
#[derive(Debug, Default)]
pub(crate) struct TenantRequest {
    pub(crate) tenant: String,
    /// The uncompressed protobuf request (alerts: the joined JSON items).
    pub(crate) raw: Vec<u8>,
    /// Sums of the entries' counts (what each signal counts: samples/exemplars/histograms, lines, spans,
    /// alerts).
    pub(crate) counts: [u64; 3],
}

/// Requests being filled, one per tenant; their buffers are reused after sending.
#[derive(Debug)]
pub(crate) struct TenantRequests {
    requests: Vec<TenantRequest>,
    /// Whether entry payloads are snappy blocks (metrics, logs) or raw bytes (spans, alerts).
    snappy_payloads: bool,
    unsnappy: snap::raw::Decoder,
    /// Reused for every request's snappy output: a fresh zeroed buffer per request showed up as page faults
    /// and memset in profiles.
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl TenantRequests {
    pub(crate) fn new(snappy_payloads: bool) -> Self {
        Self {
            requests: Vec::new(),
            snappy_payloads,
            unsnappy: snap::raw::Decoder::new(),
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    /// Appends `entry` to its tenant's request and returns that request's index; an error when the payload
    /// does not decompress (the request is left as it was).
    pub(crate) fn add(&mut self, entry: &Entry) -> Result<usize, snap::Error> {
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
        let r = &mut self.requests[i];
        if self.snappy_payloads {
            append_decompressed(&mut self.unsnappy, &entry.payload, &mut r.raw)?;
        } else {
            r.raw.extend_from_slice(&entry.payload);
        }
        for (sum, &c) in r.counts.iter_mut().zip(&entry.counts) {
            *sum += u64::from(c);
        }
        Ok(i)
    }

    pub(crate) fn get(&self, i: usize) -> &TenantRequest {
        &self.requests[i]
    }

    /// Indexes of the requests holding something.
    pub(crate) fn filled(&self) -> Vec<usize> {
        (0..self.requests.len()).filter(|&i| !self.requests[i].raw.is_empty()).collect()
    }

    /// Takes request `i` out to send it; hand it back with [`Self::put_back`].
    pub(crate) fn take(&mut self, i: usize) -> TenantRequest {
        std::mem::take(&mut self.requests[i])
    }

    /// Empties a sent request and keeps its buffer for the next one.
    pub(crate) fn put_back(&mut self, i: usize, mut request: TenantRequest) {
        request.raw.clear();
        request.counts = [0; 3];
        self.requests[i] = request;
    }

    /// `raw` snappy-compressed into the reused output buffer.
    pub(crate) fn compress(&mut self, raw: &[u8]) -> Result<&[u8], snap::Error> {
        let need = snap::raw::max_compress_len(raw.len());
        if self.compressed.len() < need {
            self.compressed.resize(need, 0);
        }
        let n = self.snappy.compress(raw, &mut self.compressed)?;
        Ok(&self.compressed[..n])
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
