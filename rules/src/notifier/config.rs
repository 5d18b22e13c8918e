//! The Alertmanager configuration file, read unchanged from the user's `alertmanager.yml`.
//!
//! Everything Alertmanager accepts at the top level is accepted; unknown fields are errors
//! with their line. What the notifier uses today: `route` (the whole tree, see
//! [`super::route`]), `receivers[]` with `webhook_configs`, `email_configs` (with the
//! `global.smtp_*` defaults) and the Fedwatch extensions `sms_configs` and
//! `dingtalk_configs` (a file using those does not load in stock Alertmanager), and
//! `global.resolve_timeout`, `inhibit_rules` (see [`super::inhibit`]), `time_intervals` and
//! `mute_time_intervals` (see [`super::timeinterval`]). Other receiver kinds, `templates` and
//! `http_config` are validated for shape, kept, and reported as warnings when they would
//! change behaviour we do not implement yet.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value as Json;
use serde_saphyr::Spanned;

use crate::error::{Error, FileError};
use crate::notifier::inhibit::{InhibitRule, RawSides};
use crate::notifier::integration::Integration;
use crate::notifier::route::Route;
use crate::notifier::timeinterval::{self, TimeIntervals};
use crate::notifier::webhook::{RawWebhookConfig, WebhookConfig};
use crate::notifier::{dingtalk, email, sms, webhook};
use fedwatch_config::parse_duration;

/// Fields Alertmanager (0.28+) accepts in `global`; kept but not interpreted here.
const GLOBAL_FIELDS: &[&str] = &[
    "resolve_timeout",
    "http_config",
    "jira_api_url",
    "smtp_from",
    "smtp_hello",
    "smtp_smarthost",
    "smtp_auth_username",
    "smtp_auth_password",
    "smtp_auth_password_file",
    "smtp_auth_secret",
    "smtp_auth_secret_file",
    "smtp_auth_identity",
    "smtp_require_tls",
    "smtp_tls_config",
    "smtp_force_implicit_tls",
    "slack_api_url",
    "slack_api_url_file",
    "slack_app_token",
    "slack_app_token_file",
    "slack_app_url",
    "pagerduty_url",
    "opsgenie_api_url",
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "wechat_api_url",
    "wechat_api_secret",
    "wechat_api_secret_file",
    "wechat_api_corp_id",
    "victorops_api_url",
    "victorops_api_key",
    "victorops_api_key_file",
    "telegram_api_url",
    "telegram_bot_token",
    "telegram_bot_token_file",
    "webex_api_url",
    "rocketchat_api_url",
    "rocketchat_token",
    "rocketchat_token_file",
    "rocketchat_token_id",
    "rocketchat_token_id_file",
    "mattermost_webhook_url",
    "mattermost_webhook_url_file",
];

/// A loaded, validated Alertmanager configuration.
#[derive(Clone, Debug)]
pub struct AlertmanagerConfig {
    pub path: PathBuf,
    /// `global.resolve_timeout` (5m by default).
    pub resolve_timeout: Duration,
    /// Every `global` field as written, for later receivers.
    pub global: BTreeMap<String, Json>,
    pub route: Route,
    pub receivers: Vec<Receiver>,
    pub templates: Vec<String>,
    /// `inhibit_rules`, in file order.
    pub inhibit_rules: Vec<InhibitRule>,
    /// `time_intervals` and `mute_time_intervals`, by name.
    pub time_intervals: TimeIntervals,
    /// The file as read (`config.original` of `/api/v2/status`).
    pub original: String,
    /// Things accepted but not acted on yet, e.g. email receivers or inhibit rules.
    pub warnings: Vec<String>,
}

/// A named receiver and the integrations Fedwatch can deliver to.
#[derive(Clone, Debug, PartialEq)]
pub struct Receiver {
    pub name: String,
    /// In file order: webhook, email, sms, dingtalk configs.
    pub integrations: Vec<Integration>,
    /// Kinds configured but not implemented yet (`slack_configs`, ...).
    pub ignored: Vec<String>,
}

impl Receiver {
    /// The webhook integrations, in order.
    pub fn webhooks(&self) -> Vec<&WebhookConfig> {
        self.integrations
            .iter()
            .filter_map(|i| match i {
                Integration::Webhook(w) => Some(w),
                _ => None,
            })
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    global: Option<Spanned<BTreeMap<String, Json>>>,
    route: Option<Spanned<RawRoute>>,
    #[serde(default)]
    receivers: Option<Vec<Spanned<RawReceiver>>>,
    #[serde(default)]
    inhibit_rules: Option<Vec<Spanned<RawInhibitRule>>>,
    #[serde(default)]
    templates: Option<Vec<String>>,
    mute_time_intervals: Option<Vec<Spanned<RawTimeInterval>>>,
    time_intervals: Option<Vec<Spanned<RawTimeInterval>>>,
    tracing: Option<Json>,
    event_recorder: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeInterval {
    name: Option<String>,
    time_intervals: Option<Json>,
}

/// A route as written; see [`Route`] for the resolved tree.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub receiver: Option<String>,
    pub group_by: Option<Vec<String>>,
    #[serde(rename = "match")]
    pub match_: Option<BTreeMap<String, String>>,
    pub match_re: Option<BTreeMap<String, Option<String>>>,
    pub matchers: Option<Vec<String>>,
    pub mute_time_intervals: Option<Vec<String>>,
    pub active_time_intervals: Option<Vec<String>>,
    #[serde(rename = "continue")]
    pub continue_: Option<bool>,
    pub routes: Option<Vec<Spanned<RawRoute>>>,
    pub group_wait: Option<String>,
    pub group_interval: Option<String>,
    pub repeat_interval: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInhibitRule {
    name: Option<String>,
    source_match: Option<BTreeMap<String, String>>,
    source_match_re: Option<BTreeMap<String, Option<String>>>,
    source_matchers: Option<Vec<String>>,
    target_match: Option<BTreeMap<String, String>>,
    target_match_re: Option<BTreeMap<String, Option<String>>>,
    target_matchers: Option<Vec<String>>,
    equal: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    #[serde(default)]
    name: String,
    webhook_configs: Option<Vec<Option<Spanned<RawWebhookConfig>>>>,
    /// Fedwatch extension; stock Alertmanager rejects it.
    sms_configs: Option<Vec<Json>>,
    /// Fedwatch extension; stock Alertmanager rejects it.
    dingtalk_configs: Option<Vec<Json>>,
    labels: Option<BTreeMap<String, String>>,
    discord_configs: Option<Vec<Json>>,
    email_configs: Option<Vec<Json>>,
    incidentio_configs: Option<Vec<Json>>,
    pagerduty_configs: Option<Vec<Json>>,
    slack_configs: Option<Vec<Json>>,
    opsgenie_configs: Option<Vec<Json>>,
    wechat_configs: Option<Vec<Json>>,
    pushover_configs: Option<Vec<Json>>,
    victorops_configs: Option<Vec<Json>>,
    sns_configs: Option<Vec<Json>>,
    telegram_configs: Option<Vec<Json>>,
    webex_configs: Option<Vec<Json>>,
    msteams_configs: Option<Vec<Json>>,
    msteamsv2_configs: Option<Vec<Json>>,
    jira_configs: Option<Vec<Json>>,
    rocketchat_configs: Option<Vec<Json>>,
    mattermost_configs: Option<Vec<Json>>,
}

/// Reads and validates an Alertmanager configuration file.
pub fn load_file(path: &Path) -> Result<AlertmanagerConfig, Error> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        Error::AlertmanagerConfig(FileError {
            file: path.to_path_buf(),
            line: None,
            reason: format!("cannot read Alertmanager configuration: {e}"),
        })
    })?;
    parse(path, &src)
}

/// Validates Alertmanager configuration text, naming it `path` in errors.
pub fn parse(path: &Path, src: &str) -> Result<AlertmanagerConfig, Error> {
    let fail = |line: Option<u64>, reason: String| {
        Error::AlertmanagerConfig(FileError {
            file: path.to_path_buf(),
            line,
            reason,
        })
    };
    let (raw, mut warnings) = crate::yaml::from_first_document::<RawConfig>(path, src).map_err(Error::AlertmanagerConfig)?;
    let raw = raw.ok_or_else(|| fail(None, "no route provided in config".into()))?;

    let mut resolve_timeout = Duration::from_secs(300);
    let mut global = BTreeMap::new();
    if let Some(g) = raw.global {
        let line = g.referenced.line();
        for (k, v) in g.value {
            if !GLOBAL_FIELDS.contains(&k.as_str()) {
                return Err(fail(Some(line), format!("field {k} not found in global configuration")));
            }
            if k == "resolve_timeout" {
                let s = v
                    .as_str()
                    .ok_or_else(|| fail(Some(line), "global.resolve_timeout must be a duration string".into()))?;
                resolve_timeout = parse_duration(s).map_err(|e| fail(Some(line), format!("global.resolve_timeout: {e}")))?;
            }
            global.insert(k, v);
        }
    }

    let mut receivers = Vec::new();
    let mut names = HashSet::new();
    for r in raw.receivers.unwrap_or_default() {
        let line = Some(r.referenced.line());
        let r = r.value;
        if r.name.is_empty() {
            return Err(fail(line, "missing name in receiver".into()));
        }
        if !names.insert(r.name.clone()) {
            return Err(fail(line, format!("notification config name {:?} is not unique", r.name)));
        }
        if let Some(labels) = &r.labels
            && let Some(n) = labels.get("name")
            && n != &r.name
        {
            return Err(fail(
                line,
                format!("receiver label \"name\" must match receiver name {:?}, got {n:?}", r.name),
            ));
        }
        let mut integrations = Vec::new();
        for w in r.webhook_configs.unwrap_or_default() {
            let Some(w) = w else {
                return Err(fail(line, "missing webhook config".into()));
            };
            let wline = Some(w.referenced.line());
            integrations.push(Integration::Webhook(
                webhook::build(w.value, &r.name, &mut warnings).map_err(|e| fail(wline, e))?,
            ));
        }
        for e in r.email_configs.iter().flatten() {
            if e.is_null() {
                return Err(fail(line, "missing email config".into()));
            }
            let c =
                email::build(e.clone(), &global, &r.name, &mut warnings).map_err(|e| fail(line, format!("receiver {:?}: {e}", r.name)))?;
            integrations.push(Integration::Email(c));
        }
        for e in r.sms_configs.iter().flatten() {
            let c = sms::build(e.clone()).map_err(|e| fail(line, format!("receiver {:?}: {e}", r.name)))?;
            integrations.push(Integration::Sms(c));
        }
        for e in r.dingtalk_configs.iter().flatten() {
            let c = dingtalk::build(e.clone()).map_err(|e| fail(line, format!("receiver {:?}: {e}", r.name)))?;
            integrations.push(Integration::DingTalk(c));
        }
        let mut ignored = Vec::new();
        let others = [
            ("discord", &r.discord_configs),
            ("incidentio", &r.incidentio_configs),
            ("pagerduty", &r.pagerduty_configs),
            ("slack", &r.slack_configs),
            ("opsgenie", &r.opsgenie_configs),
            ("wechat", &r.wechat_configs),
            ("pushover", &r.pushover_configs),
            ("victorops", &r.victorops_configs),
            ("sns", &r.sns_configs),
            ("telegram", &r.telegram_configs),
            ("webex", &r.webex_configs),
            ("msteams", &r.msteams_configs),
            ("msteamsv2", &r.msteamsv2_configs),
            ("jira", &r.jira_configs),
            ("rocketchat", &r.rocketchat_configs),
            ("mattermost", &r.mattermost_configs),
        ];
        for (kind, configs) in others {
            let Some(configs) = configs else { continue };
            if configs.iter().any(Json::is_null) {
                return Err(fail(line, format!("missing {kind} config")));
            }
            if !configs.is_empty() {
                warnings.push(format!(
                    "receiver {:?}: {kind}_configs are not supported yet and are ignored",
                    r.name
                ));
                ignored.push(format!("{kind}_configs"));
            }
        }
        receivers.push(Receiver {
            name: r.name,
            integrations,
            ignored,
        });
    }

    let mut interval_names = HashSet::new();
    let mut time_intervals = TimeIntervals::new();
    for ti in raw.time_intervals.iter().flatten().chain(raw.mute_time_intervals.iter().flatten()) {
        let line = Some(ti.referenced.line());
        let name = ti.value.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(fail(line, "missing name in time interval".into()));
        }
        if !interval_names.insert(name.clone()) {
            return Err(fail(line, format!("mute time interval {name:?} is not unique")));
        }
        let specs = match &ti.value.time_intervals {
            Some(raw) => timeinterval::parse_specs(raw).map_err(|e| fail(line, format!("time interval {name:?}: {e}")))?,
            None => Vec::new(),
        };
        time_intervals.insert(name, specs);
    }

    let mut inhibit_rules = Vec::new();
    for rule in raw.inhibit_rules.iter().flatten() {
        let line = Some(rule.referenced.line());
        let r = &rule.value;
        let _ = &r.name;
        let built = InhibitRule::from_raw(RawSides {
            source_match: &r.source_match,
            source_match_re: &r.source_match_re,
            source_matchers: &r.source_matchers,
            target_match: &r.target_match,
            target_match_re: &r.target_match_re,
            target_matchers: &r.target_matchers,
            equal: &r.equal,
        })
        .map_err(|e| fail(line, format!("inhibit rule: {e}")))?;
        inhibit_rules.push(built);
    }
    let _ = (raw.tracing, raw.event_recorder);

    let route = raw.route.ok_or_else(|| fail(None, "no routes provided".into()))?;
    let route_line = Some(route.referenced.line());
    let route = Route::from_raw_root(route.value, &names, &interval_names).map_err(|(line, e)| fail(line.or(route_line), e))?;

    Ok(AlertmanagerConfig {
        path: path.to_path_buf(),
        resolve_timeout,
        global,
        route,
        receivers,
        templates: raw.templates.unwrap_or_default(),
        inhibit_rules,
        time_intervals,
        original: src.to_string(),
        warnings,
    })
}

impl AlertmanagerConfig {
    /// The receiver called `name`.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }

    /// The interval names that mute `route` at `ms`: its active `mute_time_intervals`, or
    /// all its `active_time_intervals` when none of them is active.
    pub fn muted_by(&self, route: &Route, ms: i64) -> Vec<String> {
        let mut out: Vec<String> = timeinterval::active(&self.time_intervals, &route.mute_time_intervals, ms)
            .into_iter()
            .cloned()
            .collect();
        if !route.active_time_intervals.is_empty()
            && timeinterval::active(&self.time_intervals, &route.active_time_intervals, ms).is_empty()
        {
            out.extend(route.active_time_intervals.iter().cloned());
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests;
