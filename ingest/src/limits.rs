//! Input limits shared by every receiver. Each error message names the key that sets the limit.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestLimits {
    /// Largest request body accepted on the wire, in bytes (413 above it).
    pub max_body_bytes: u64,
    /// Largest body after decompression, in bytes (413 above it). At most 2 GiB.
    pub max_decompressed_bytes: u64,
    /// Most labels one series may carry, `__name__` included.
    pub max_labels_per_series: usize,
    /// Longest label name, in bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value, in bytes.
    pub max_label_value_bytes: usize,
    /// Samples (native histogram samples included, exemplars not) one tenant may send per second, all
    /// metrics receivers together; a request over the tenant's budget is refused whole (429 with
    /// `Retry-After`). 0 (the default): no limit. See [`crate::rate_limit`].
    pub max_samples_per_second_per_tenant: u32,
    /// Samples a tenant may send at once after being idle: its budget's capacity. 0 (the default): one
    /// second's worth, `max_samples_per_second_per_tenant`. A request with more samples than this is
    /// always refused.
    pub samples_per_second_burst: u32,
}

impl IngestLimits {
    /// No limit beyond the write-ahead log's own record size: what was accepted once is read back whole,
    /// even after limits were lowered.
    pub fn for_replay() -> Self {
        let record = crate::wal::MAX_RECORD_BYTES as u64;
        Self {
            max_body_bytes: record,
            max_decompressed_bytes: record,
            max_labels_per_series: usize::MAX,
            max_label_name_bytes: usize::MAX,
            max_label_value_bytes: usize::MAX,
            max_samples_per_second_per_tenant: 0,
            samples_per_second_burst: 0,
        }
    }

    /// `samples_per_second_burst` with 0 read as the rate.
    pub fn samples_burst(&self) -> u32 {
        if self.samples_per_second_burst == 0 {
            self.max_samples_per_second_per_tenant
        } else {
            self.samples_per_second_burst
        }
    }
}

impl Default for IngestLimits {
    fn default() -> Self {
        // vmagent/VictoriaMetrics accept 32 MiB packed and unpacked (`-maxInsertRequestSize`); Prometheus
        // sends at most a few MiB. Match VictoriaMetrics so anything it takes, Vigil takes.
        Self {
            max_body_bytes: 32 << 20,
            max_decompressed_bytes: 64 << 20,
            max_labels_per_series: 64,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 16 * 1024,
            max_samples_per_second_per_tenant: 0,
            samples_per_second_burst: 0,
        }
    }
}

impl IngestLimits {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_body_bytes == 0 || self.max_decompressed_bytes == 0 {
            return Err("limits.max_body_bytes and limits.max_decompressed_bytes must be > 0".into());
        }
        if self.max_decompressed_bytes > (2 << 30) {
            return Err(format!(
                "limits.max_decompressed_bytes = {} is over the 2 GiB maximum",
                self.max_decompressed_bytes
            ));
        }
        if self.max_labels_per_series == 0 || self.max_label_name_bytes == 0 || self.max_label_value_bytes == 0 {
            return Err(
                "limits.max_labels_per_series, max_label_name_bytes and max_label_value_bytes must be > 0".into()
            );
        }
        // The limiter counts time in nanoseconds: one sample per nanosecond is as fine as it resolves.
        if self.max_samples_per_second_per_tenant > crate::rate_limit::MAX_RATE {
            return Err(format!(
                "limits.max_samples_per_second_per_tenant = {} is over the maximum of {} (0 = no limit)",
                self.max_samples_per_second_per_tenant,
                crate::rate_limit::MAX_RATE
            ));
        }
        if self.samples_per_second_burst > 0 && self.max_samples_per_second_per_tenant == 0 {
            return Err("limits.samples_per_second_burst is set, but limits.max_samples_per_second_per_tenant is 0 \
                 (no limit): set the rate too, or leave the burst at 0"
                .into());
        }
        Ok(())
    }
}
