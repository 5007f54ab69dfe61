//! One evaluation of every rule for every tenant: conditions → alert states → groups → inhibition → the
//! messages due to Alertmanager. Pure over its inputs (the store, the open incidents, the time), so tests
//! drive it evaluation by evaluation.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use vigil_detect::events::Anomaly;
use vigil_detect::incidents::Incident;
use vigil_proto::alertmanager::AlertBatch;

use super::conditions::{self, Inputs};
use super::groups::{self, Group, Sent, Services};
use super::inhibit::{self, Explained};
use super::notify::{self, IncidentNote, Timing};
use super::rules::{Condition, RuleSet};
use super::state::Instances;
use crate::alerting::AlertingConfig;
use crate::own_series::{Labels, OwnSeriesStore};

/// A rule's last evaluation, per tenant.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Health {
    pub(crate) last_error: Option<String>,
    pub(crate) last_evaluation_ms: i64,
    pub(crate) seconds: f64,
}

/// The evaluator's memory between evaluations.
#[derive(Debug, Default)]
pub(crate) struct Evaluator {
    pub(crate) set: RuleSet,
    /// Per rule (index-aligned with `set.rules`), per tenant.
    pub(crate) instances: Vec<HashMap<String, Instances>>,
    pub(crate) health: Vec<HashMap<String, Health>>,
    /// Per tenant and rule name: the rule's alerts by label set.
    pub(crate) groups: BTreeMap<(String, String), BTreeMap<Labels, Group>>,
}

/// What one evaluation reads besides the store.
pub(crate) struct World<'a> {
    pub(crate) store: &'a OwnSeriesStore,
    /// The open incidents of a tenant.
    pub(crate) open_incidents: &'a dyn Fn(&str) -> Vec<Incident>,
    /// A tenant's anomaly events of the last minutes (the open ones count).
    pub(crate) anomalies: &'a dyn Fn(&str) -> Vec<Anomaly>,
    pub(crate) now_ms: i64,
    /// Its alerts carry no tenant label.
    pub(crate) default_tenant: &'a str,
}

impl Evaluator {
    pub(crate) fn new(set: RuleSet) -> Self {
        let mut e = Self::default();
        e.replace(set);
        e
    }

    /// Takes a new rule set; a rule kept unchanged (same name and definition) keeps its alerts' state, so a
    /// reload neither re-fires nor resolves them. Alerts of removed or changed rules resolve as usual.
    pub(crate) fn replace(&mut self, set: RuleSet) {
        let mut instances = Vec::with_capacity(set.rules.len());
        let mut health = Vec::with_capacity(set.rules.len());
        for rule in &set.rules {
            let old = self.set.rules.iter().position(|r| r.name == rule.name && r.fingerprint == rule.fingerprint);
            instances.push(old.and_then(|i| self.instances.get_mut(i)).map(std::mem::take).unwrap_or_default());
            health.push(old.and_then(|i| self.health.get_mut(i)).map(std::mem::take).unwrap_or_default());
        }
        self.set = set;
        self.instances = instances;
        self.health = health;
    }

    /// Evaluates every rule for every tenant at `world.now_ms` and hands each tenant's due messages to
    /// `send`; a message counts as sent only when `send` takes it (else it is due again next time).
    pub(crate) fn evaluate(
        &mut self,
        world: &World<'_>,
        config: &AlertingConfig,
        send: &mut dyn FnMut(AlertBatch) -> bool,
    ) {
        let now_ms = world.now_ms;
        let mut tenants: BTreeSet<String> = world.store.tenants().iter().map(|t| t.to_string()).collect();
        tenants.extend(self.groups.keys().map(|(t, _)| t.clone()));
        for per_rule in &self.instances {
            tenants.extend(per_rule.keys().cloned());
        }
        let window = AlertingConfig::millis(config.group_window);
        let retention = AlertingConfig::millis(config.resolved_retention);
        let uses_events = self.set.rules.iter().any(|r| matches!(r.condition, Condition::Anomaly { .. }));
        for tenant in &tenants {
            let incidents = (world.open_incidents)(tenant);
            // Anomaly rules keep only the open ones (`conditions::evaluate`).
            let open_anomalies: Vec<Anomaly> = if uses_events { (world.anomalies)(tenant) } else { Vec::new() };
            let (explained, notes) = incident_maps(&incidents);
            let services =
                Services { labels: &config.service_labels, root_of: config.group_by_incident.then_some(&explained) };
            let mut this_tenant: Vec<Instances> = Vec::with_capacity(self.set.rules.len());
            for (i, rule) in self.set.rules.iter().enumerate() {
                let mut inst = self.instances[i].remove(tenant).unwrap_or_default();
                if rule.applies_to(tenant) {
                    let started = std::time::Instant::now();
                    let inputs = Inputs {
                        store: world.store,
                        tenant,
                        now_ms,
                        earlier: &this_tenant,
                        open_anomalies: &open_anomalies,
                    };
                    let health = self.health[i].entry(tenant.clone()).or_default();
                    match conditions::evaluate(rule, &inputs) {
                        Ok(holding) => {
                            inst.advance(holding, now_ms, rule.for_ms);
                            health.last_error = None;
                        }
                        // A failing rule keeps its alerts as they were, as Prometheus does.
                        Err(e) => health.last_error = Some(e),
                    }
                    health.last_evaluation_ms = now_ms;
                    health.seconds = started.elapsed().as_secs_f64();
                }
                if rule.send {
                    let groups = self.groups.entry((tenant.clone(), rule.name.clone())).or_default();
                    groups::update(groups, rule, &inst, services, now_ms, (window, retention));
                }
                this_tenant.push(inst);
            }
            for (i, inst) in this_tenant.into_iter().enumerate() {
                if !inst.by_labels.is_empty() {
                    self.instances[i].insert(tenant.clone(), inst);
                }
            }
            self.notify(tenant, (&explained, &notes), world, config, send);
        }
        let names: BTreeSet<&str> = self.set.rules.iter().filter(|r| r.send).map(|r| r.name.as_str()).collect();
        // Groups of rules gone in a reload resolve and are dropped once their retention passes.
        for ((_, rule), groups) in &mut self.groups {
            if !names.contains(rule.as_str()) {
                for g in groups.values_mut() {
                    g.members.clear();
                    g.resolved_at_ms.get_or_insert(now_ms);
                }
                groups.retain(|_, g| g.resolved_at_ms.is_none_or(|r| now_ms.saturating_sub(r) < retention));
            }
        }
        self.groups.retain(|_, g| !g.is_empty());
    }

    /// Inhibition, annotations and the messages due for one tenant's groups.
    fn notify(
        &mut self,
        tenant: &str,
        (explained, notes): (&BTreeMap<String, Explained>, &BTreeMap<String, IncidentNote>),
        world: &World<'_>,
        config: &AlertingConfig,
        send: &mut dyn FnMut(AlertBatch) -> bool,
    ) {
        let mut all: Vec<&mut Group> = self
            .groups
            .range_mut((tenant.to_owned(), String::new())..)
            .take_while(|((t, _), _)| t == tenant)
            .flat_map(|(_, g)| g.values_mut())
            .collect();
        let explained_on = config.inhibit_by_root_cause.then_some(explained);
        inhibit::apply(&mut all, &self.set.inhibit, explained_on);
        let resend_ms = AlertingConfig::millis(config.resend_delay);
        let eval_ms = AlertingConfig::millis(config.evaluation_interval);
        let timing = Timing { now_ms: world.now_ms, resend_ms, valid_for_ms: 4 * resend_ms.max(eval_ms) };
        let base = config.external_url.trim_end_matches('/');
        let mut batch = AlertBatch { tenant: tenant.to_owned(), alerts: Vec::new() };
        let mut updates: Vec<(usize, Sent)> = Vec::new();
        let tenant_label = (!config.tenant_label.is_empty() && tenant != world.default_tenant)
            .then(|| (config.tenant_label.clone(), tenant.to_owned()));
        for (at, g) in all.iter().enumerate() {
            let templates = self.set.rules.iter().find(|r| r.name == g.rule).map(|r| &r.annotations);
            let empty = BTreeMap::new();
            let note = g.labels.get(groups::SERVICE).and_then(|s| notes.get(s));
            let annotations = notify::annotations(templates.unwrap_or(&empty), g, note, base);
            let generator = format!("{base}/api/v1/alerts");
            if let Some((mut alert, firing)) = notify::due(g, &annotations, timing, &generator) {
                if let Some((k, v)) = &tenant_label {
                    alert.labels.insert(k.clone(), v.clone());
                }
                batch.alerts.push(alert);
                updates.push((at, Sent { at_ms: Some(world.now_ms), firing, annotations }));
            }
        }
        if !batch.alerts.is_empty() && send(batch) {
            for (at, sent) in updates {
                all[at].sent = sent;
            }
        }
    }
}

/// From a tenant's open incidents: which incident explains each service (the root cause being another
/// service), and what each service's alerts are told about its incident.
fn incident_maps(incidents: &[Incident]) -> (BTreeMap<String, Explained>, BTreeMap<String, IncidentNote>) {
    let mut explained = BTreeMap::new();
    let mut notes = BTreeMap::new();
    for inc in incidents {
        let trace_ids: Vec<String> = inc
            .evidence
            .get("trace_ids")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let root = inc.root_cause.as_ref();
        let note = IncidentNote {
            id: inc.id.clone(),
            root_cause: root.map(|r| format!("{} (confidence {:.2}): {}", r.service, r.confidence, r.reason)),
            trace_ids,
        };
        for s in &inc.services {
            notes.entry(s.clone()).or_insert_with(|| note.clone());
            if let Some(r) = root.filter(|r| r.service != *s) {
                explained.entry(s.clone()).or_insert(Explained { incident: inc.id.clone(), root: r.service.clone() });
            }
        }
    }
    (explained, notes)
}

/// What a rule reads, in words, for the API.
pub(crate) fn query_text(c: &Condition, set: &RuleSet) -> String {
    match c {
        Condition::Threshold { expr, op, value } => format!("({expr}) {} {value}", op.as_str()),
        Condition::Anomaly { source, min_score, .. } => format!("anomaly_score of {source} >= {min_score}"),
        Condition::Composite { all, of, on } => {
            let names: Vec<&str> = of.iter().filter_map(|&i| set.rules.get(i)).map(|r| r.name.as_str()).collect();
            format!("{} of [{}] firing, on [{}]", if *all { "all" } else { "any" }, names.join(", "), on.join(", "))
        }
    }
}
