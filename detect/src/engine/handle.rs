//! What the query API may ask the running engine: its events and its series' forecasts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_array::RecordBatch;
use vigil_ingest::series::decode_label_key;

use super::Shared;
use crate::events::{Anomaly, Closed, Event, EventQuery, Filter};
use crate::forecast::{self, ForecastModel, ModelError};
use crate::selector::Selector;
use crate::verdict::ForecastPoint;

/// A cheap, cloneable view of the engine for readers.
#[derive(Debug, Clone)]
pub struct DetectHandle {
    pub(super) shared: Arc<Shared>,
}

/// Which series to forecast, and how far.
#[derive(Debug, Clone)]
pub struct ForecastQuery<'a> {
    pub tenant: &'a str,
    /// A series is forecast when any selector matches it (at least one is required by the API).
    pub selectors: &'a [Selector],
    pub horizon_ms: i64,
    pub step_ms: i64,
    /// At most this many series.
    pub max_series: usize,
}

/// One series' forecast: from its newest scored sample on, `step_ms` apart.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesForecast {
    pub labels: BTreeMap<String, String>,
    /// What made it: MSTL + ETS over the series' hourly history, or the detector's profile when that
    /// history is too short.
    pub model: ForecastModel,
    pub points: Vec<ForecastPoint>,
}

impl DetectHandle {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Start-up replay is over: scores are written back from now on.
    pub fn replay_done(&self) {
        self.shared.live.store(true, Ordering::Relaxed);
    }

    /// The events table, all tenants: closed events oldest first, then the open ones.
    pub fn events_table(&self) -> Vec<RecordBatch> {
        let (closed, open) = self.events(|_| true);
        closed.into_batches(&open)
    }

    /// Every closed event as the log holds it, and copies of the open ones, each event once: what the
    /// incidents' feed reads each tick, taking only the rows added since its previous read.
    pub(crate) fn event_changes(&self) -> (Closed, Vec<Event>) {
        self.events(|_| true)
    }

    /// The events `query` selects, oldest peak first, and how many matched before `query.limit`.
    ///
    /// Never waits for a batch to be scored (the open events have their own lock, held by a worker only to
    /// update them), and copies only the open events that pass the query's plain filters and the text test
    /// of its selectors; the closed ones are filtered where they lie, and only the events returned are
    /// built.
    pub fn anomalies(&self, query: &EventQuery<'_>) -> (Vec<Anomaly>, usize) {
        let mut filter = Filter::new(query);
        let (closed, open) = self.events(|e| filter.keeps(e));
        filter.read(&closed.chunks, &[&closed.pending, &open])
    }

    /// The anomalies still open that `query` selects, without reading the table of closed events: alert
    /// rules ask every evaluation, and only an open anomaly holds one.
    pub fn open_anomalies(&self, query: &EventQuery<'_>) -> Vec<Anomaly> {
        let mut filter = Filter::new(query);
        let open = self.open_copies(|e| filter.keeps(e));
        filter.read(&[], &[&open]).0
    }

    /// Copies of the open events `keep` keeps, shard by shard.
    fn open_copies(&self, keep: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut open = Vec::new();
        for shard in self.shared.open.iter() {
            open.extend(shard.lock().open_events().filter(|e| keep(e)).cloned());
        }
        open
    }

    /// The closed events, and copies of the open ones `keep` keeps, each event once: the open events are
    /// read first, shard by shard, then the table; an event that closed in between is in the table by then
    /// (a worker adds it there before it lets go of the open events) and its open copy is dropped.
    fn events(&self, keep: impl Fn(&Event) -> bool) -> (Closed, Vec<Event>) {
        let seen = self.shared.events.pushed();
        let mut open = self.open_copies(keep);
        let closed = self.shared.events.closed();
        closed.drop_closed_twins(&mut open, seen);
        (closed, open)
    }

    /// Forecasts of the tenant's scored series that `query` selects, and whether there were more than
    /// `query.max_series` of them.
    pub fn forecast(&self, query: &ForecastQuery<'_>) -> (Vec<SeriesForecast>, bool) {
        let registry = &self.shared.registry;
        let steps = usize::try_from(query.horizon_ms / query.step_ms.max(1)).unwrap_or(0);
        let mut out = Vec::new();
        // One buffer of borrowed labels for every candidate: a selector is tested on every series of the
        // tenant, and building each one's label map first (as the answer needs) made a query that matches
        // nothing take a third of a second at 50 000 series.
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for shard in self.shared.shards.iter() {
            // Copy the candidates out so the worker is not held up while labels are decoded and matched.
            let candidates: Vec<(u64, u32)> = shard.lock().series.iter().map(|(id, t)| (*id, t.slot)).collect();
            for (id, slot) in candidates {
                let Some((key, tenant)) = registry.series_by_slot(slot) else { continue };
                if registry.tenant_name(tenant).is_none_or(|t| &**t != query.tenant) {
                    continue;
                }
                pairs.clear();
                pairs.extend(decode_label_key(key).map(|p| (p.name, p.value)));
                if !query.selectors.iter().any(|s| s.matches_pairs(&pairs)) {
                    continue;
                }
                let labels: BTreeMap<String, String> =
                    pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
                if out.len() == query.max_series {
                    return (out, true);
                }
                // The history is copied out (a few hundred values) and fitted without the lock: a fit takes
                // milliseconds, and the shard's worker must not wait for it.
                let Some((history, last_ms, rule)) =
                    shard.lock().series.get(&id).map(|t| (t.history.snapshot(), t.last_ms, t.rule))
                else {
                    continue;
                };
                let seasonality = self.shared.rules.settings(rule).seasonality;
                let fitted = history.map(|h| forecast::fit(&h, seasonality, last_ms, query.step_ms, steps));
                let (model, points) = match fitted {
                    Some(Ok(fitted)) => fitted,
                    failed => {
                        if let Some(Err(e)) = failed
                            && !matches!(e, ModelError::TooShort { .. })
                        {
                            tracing::debug!(error = %e, "The forecast model failed on a series; its seasonal profile answers.");
                        }
                        let points = shard
                            .lock()
                            .series
                            .get(&id)
                            .map(|t| t.detector.forecast(t.last_ms, query.step_ms, steps))
                            .unwrap_or_default();
                        (ForecastModel::Profile, points)
                    }
                };
                out.push(SeriesForecast { labels, model, points });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        (out, false)
    }

    /// Series with detector state now.
    pub fn series_count(&self) -> u64 {
        self.shared.tracked.load(Ordering::Relaxed)
    }

    /// The largest per-series state of the engine now, in bytes.
    #[cfg(test)]
    pub(super) fn largest_series_state(&self) -> usize {
        let per_shard = self.shared.shards.iter().map(|s| s.lock().series.values().map(|t| t.state_bytes()).max());
        per_shard.flatten().max().unwrap_or(0)
    }
}
