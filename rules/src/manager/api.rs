//! The data behind `/api/v1/rules` and `/api/v1/alerts`: the rule manager fills the HTTP
//! layer's plain types (`fedwatch_server::sources`), which render them in Prometheus's JSON
//! shapes. One representation, one renderer.

use std::time::Duration;

use fedwatch_model::Labels;
use fedwatch_server::sources::{
    AlertInfo, AlertStateInfo, AlertingRuleInfo, RecordingRuleInfo, RuleGroupInfo, RuleInfo, RuleKind, RulesSource,
};

use super::{Group, Rule, RuleManager};
use crate::alerting::{Alert, AlertState};

impl RuleManager {
    /// Every loaded group with its rules' state, in evaluation order.
    pub fn rule_groups(&self) -> Vec<RuleGroupInfo> {
        let groups = self.inner.groups.lock().unwrap_or_else(|e| e.into_inner()).clone();
        groups
            .iter()
            .map(|g| group_info(&g.lock().unwrap_or_else(|e| e.into_inner())))
            .collect()
    }
}

impl RulesSource for RuleManager {
    fn groups(&self) -> Vec<RuleGroupInfo> {
        self.rule_groups()
    }

    fn alerts(&self) -> Vec<AlertInfo> {
        self.active_alerts()
            .into_iter()
            .map(|a| AlertInfo {
                labels: a.labels,
                annotations: a.annotations,
                state: state_info(a.state),
                active_at: a.active_at,
                value: a.value,
                keep_firing_since: a.keep_firing_since,
            })
            .collect()
    }
}

fn state_info(s: AlertState) -> AlertStateInfo {
    match s {
        AlertState::Inactive => AlertStateInfo::Inactive,
        AlertState::Pending => AlertStateInfo::Pending,
        AlertState::Firing => AlertStateInfo::Firing,
    }
}

fn alert_info(a: &Alert) -> AlertInfo {
    AlertInfo {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        state: state_info(a.state),
        active_at: a.active_at,
        value: a.value,
        keep_firing_since: a.keep_firing_since,
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

fn group_info(g: &Group) -> RuleGroupInfo {
    let rules = g
        .rules
        .iter()
        .zip(&g.status)
        .map(|(r, st)| RuleInfo {
            kind: match r {
                Rule::Recording { name, expr, labels } => RuleKind::Recording(RecordingRuleInfo {
                    name: name.clone(),
                    query: expr.clone(),
                    labels: Labels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                }),
                Rule::Alerting(ar) => RuleKind::Alerting(AlertingRuleInfo {
                    name: ar.name().into(),
                    query: ar.expr().into(),
                    duration: Duration::from_millis(ar.hold_ms().max(0) as u64),
                    keep_firing_for: Duration::from_millis(ar.keep_firing_for_ms().max(0) as u64),
                    labels: Labels::from_pairs(ar.labels().iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                    annotations: ar.annotations().clone(),
                    alerts: ar.alerts().filter(|a| a.state != AlertState::Inactive).map(alert_info).collect(),
                }),
            },
            last_error: st.last_error.clone().unwrap_or_default(),
            last_evaluation_ms: st.last_eval_ms,
            evaluation_time: secs(st.eval_seconds),
        })
        .collect();
    RuleGroupInfo {
        name: g.name.clone(),
        file: g.file.display().to_string(),
        interval: g.interval,
        limit: g.limit as u64,
        rules,
        last_evaluation_ms: g.last_eval_ms,
        evaluation_time: secs(g.eval_seconds),
    }
}
