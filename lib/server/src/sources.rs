//! What the status endpoints show about other components, as plain data.
//!
//! The server does not depend on the scrape or rule crates: the tier implements these small
//! traits with adapters over its scrape manager, rule manager and store, and the handlers
//! render the structs in Prometheus's JSON shapes. When a source is absent the endpoint
//! answers Prometheus's shape with empty lists.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedwatch_model::Labels;

/// Scrape health of one target, as `TargetHealth` in Prometheus's `scrape` package.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TargetHealthState {
    #[default]
    Unknown,
    Up,
    Down,
}

impl TargetHealthState {
    /// The string Prometheus's API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealthState::Unknown => "unknown",
            TargetHealthState::Up => "up",
            TargetHealthState::Down => "down",
        }
    }
}

/// One active scrape target for `/api/v1/targets`.
#[derive(Clone, Debug, Default)]
pub struct TargetInfo {
    /// The job name (Prometheus's `scrapePool`).
    pub scrape_pool: String,
    /// Labels before relabeling.
    pub discovered_labels: Labels,
    /// Labels attached to every scraped series.
    pub labels: Labels,
    /// The full URL scraped, e.g. `http://host:9100/metrics`.
    pub scrape_url: String,
    pub health: TargetHealthState,
    /// Empty when the last scrape succeeded.
    pub last_error: String,
    /// Milliseconds since the epoch of the last scrape; 0 before the first.
    pub last_scrape_ms: i64,
    pub last_scrape_duration: Duration,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
}

/// Where `/api/v1/targets` gets its targets (the scrape manager).
pub trait TargetsSource: Send + Sync {
    /// Every active target.
    fn targets(&self) -> Vec<TargetInfo>;
}

/// State of an alert, as Prometheus names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AlertStateInfo {
    #[default]
    Inactive,
    Pending,
    Firing,
}

impl AlertStateInfo {
    /// The string Prometheus's API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStateInfo::Inactive => "inactive",
            AlertStateInfo::Pending => "pending",
            AlertStateInfo::Firing => "firing",
        }
    }
}

/// One pending or firing alert for `/api/v1/alerts` and the `alerts` of a rule.
#[derive(Clone, Debug, Default)]
pub struct AlertInfo {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertStateInfo,
    /// When the alert became pending, ms since the epoch.
    pub active_at: i64,
    pub value: f64,
    /// When the condition stopped holding while `keep_firing_for` keeps it firing.
    pub keep_firing_since: Option<i64>,
}

/// An alerting rule's definition and state.
#[derive(Clone, Debug, Default)]
pub struct AlertingRuleInfo {
    pub name: String,
    pub query: String,
    pub duration: Duration,
    pub keep_firing_for: Duration,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub alerts: Vec<AlertInfo>,
}

/// A recording rule's definition.
#[derive(Clone, Debug, Default)]
pub struct RecordingRuleInfo {
    pub name: String,
    pub query: String,
    pub labels: Labels,
}

/// Either kind of rule with the state its last evaluation left.
#[derive(Clone, Debug)]
pub struct RuleInfo {
    pub kind: RuleKind,
    /// Empty when the last evaluation succeeded.
    pub last_error: String,
    /// Milliseconds since the epoch of the last evaluation; 0 before the first.
    pub last_evaluation_ms: i64,
    pub evaluation_time: Duration,
}

impl RuleInfo {
    /// The alert name or the recorded metric name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Alerting(a) => &a.name,
            RuleKind::Recording(r) => &r.name,
        }
    }
}

/// The two kinds of rule.
#[derive(Clone, Debug)]
pub enum RuleKind {
    Alerting(AlertingRuleInfo),
    Recording(RecordingRuleInfo),
}

/// One rule group for `/api/v1/rules`.
#[derive(Clone, Debug, Default)]
pub struct RuleGroupInfo {
    pub name: String,
    pub file: String,
    pub interval: Duration,
    pub limit: u64,
    pub rules: Vec<RuleInfo>,
    pub last_evaluation_ms: i64,
    pub evaluation_time: Duration,
}

/// Where `/api/v1/rules` and `/api/v1/alerts` get their data (the rule manager).
pub trait RulesSource: Send + Sync {
    /// Every rule group, in file order.
    fn groups(&self) -> Vec<RuleGroupInfo>;
    /// Every pending or firing alert.
    fn alerts(&self) -> Vec<AlertInfo>;
}

/// Head figures the querier cannot give, for `/api/v1/status/tsdb`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadInfo {
    pub chunk_count: i64,
    /// Oldest and newest sample time in ms; 0 when unknown.
    pub min_time: i64,
    pub max_time: i64,
}

/// Where `/api/v1/status/tsdb` gets chunk counts and the time range (the store).
pub trait HeadInfoSource: Send + Sync {
    /// The head's current figures.
    fn head_info(&self) -> HeadInfo;
}

/// A reload hook: reloads the configuration, or says why it could not.
pub type ReloadHook = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The configuration text and the outcome of the last (re)load, shared with the tier, which
/// records each load so `/api/v1/status/config` and `runtimeinfo` show the current state.
#[derive(Clone, Debug, Default)]
pub struct ConfigStatus(Arc<Mutex<ConfigState>>);

#[derive(Clone, Debug, Default)]
struct ConfigState {
    yaml: String,
    success: bool,
    last_ms: i64,
}

impl ConfigStatus {
    /// A status for a configuration that loaded from `yaml` at `at_ms`.
    pub fn loaded(yaml: impl Into<String>, at_ms: i64) -> Self {
        let s = ConfigStatus::default();
        s.record_success(yaml, at_ms);
        s
    }

    /// Records a successful load of `yaml` at `at_ms`.
    pub fn record_success(&self, yaml: impl Into<String>, at_ms: i64) {
        let mut st = self.0.lock().unwrap_or_else(|e| e.into_inner());
        st.yaml = yaml.into();
        st.success = true;
        st.last_ms = at_ms;
    }

    /// Records a failed reload; the previous configuration stays in force.
    pub fn record_failure(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).success = false;
    }

    /// The text of the configuration in force.
    pub fn yaml(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).yaml.clone()
    }

    /// Whether the last reload succeeded, and when the configuration in force was loaded.
    pub fn outcome(&self) -> (bool, i64) {
        let st = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (st.success, st.last_ms)
    }
}
