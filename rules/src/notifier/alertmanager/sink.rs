//! The sender: render once per target, post in the background.

use std::sync::Arc;
use std::time::Duration;

use fedwatch_model::selfmetrics::Registry;
use serde_json::{Map, Value, json};

use super::{AlertmanagerAuth, AlertmanagerTarget};
use crate::notifier::integration::{DeliveryCounters, SendContext, any_body, http_attempt, with_retries};
use crate::notifier::webhook::{Backoff, rfc3339};
use crate::notifier::{AlertSender, PostableAlert};

/// Posts alerts to external Alertmanagers; cheap to clone.
#[derive(Clone)]
pub struct AlertmanagerSender {
    inner: Arc<Inner>,
}

struct Inner {
    targets: Vec<AlertmanagerTarget>,
    client: reqwest::Client,
    registry: Registry,
    backoff: Backoff,
}

impl AlertmanagerSender {
    /// A sender for `targets` (see [`super::targets`]), counting into `registry`.
    pub fn new(targets: Vec<AlertmanagerTarget>, registry: Registry) -> Self {
        Self::with_backoff(targets, registry, Backoff::default())
    }

    /// As [`AlertmanagerSender::new`] with a custom retry backoff (tests use short ones).
    pub fn with_backoff(targets: Vec<AlertmanagerTarget>, registry: Registry, backoff: Backoff) -> Self {
        AlertmanagerSender {
            inner: Arc::new(Inner {
                targets,
                client: fedwatch_config::http::client(),
                registry,
                backoff,
            }),
        }
    }

    /// The Alertmanagers alerts go to.
    pub fn targets(&self) -> &[AlertmanagerTarget] {
        &self.inner.targets
    }

    /// Posts `alerts` to every target and waits for all of them; `Err` lists the failures.
    pub async fn send_now(&self, alerts: &[PostableAlert]) -> Result<(), String> {
        let mut tasks = Vec::new();
        for t in self.inner.targets.clone() {
            let this = self.clone();
            let alerts = alerts.to_vec();
            tasks.push(tokio::spawn(async move { this.post(&t, &alerts).await }));
        }
        let mut errors = Vec::new();
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    async fn post(&self, t: &AlertmanagerTarget, alerts: &[PostableAlert]) -> Result<(), String> {
        let relabelled: Vec<PostableAlert> = alerts
            .iter()
            .filter_map(|a| {
                let labels = if t.relabel.is_empty() {
                    a.labels.clone()
                } else {
                    fedwatch_config::relabel::process(&a.labels, &t.relabel)?
                };
                Some(PostableAlert { labels, ..a.clone() })
            })
            .collect();
        if relabelled.is_empty() {
            return Ok(());
        }
        let counters = DeliveryCounters::start(&self.inner.registry, &t.url, "alertmanager");
        let body = body(&relabelled);
        let ctx = SendContext {
            client: &self.inner.client,
            backoff: self.inner.backoff,
            deadline: tokio::time::Instant::now() + t.timeout.max(Duration::from_millis(100)) * 3,
        };
        let mut on_attempt = |ok: bool| counters.attempt(ok);
        let result = with_retries(&ctx, &mut on_attempt, || {
            let mut req = self
                .inner
                .client
                .post(&t.url)
                .timeout(t.timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::USER_AGENT, concat!("Fedwatch/", env!("CARGO_PKG_VERSION")))
                .body(body.clone());
            req = match &t.auth {
                Some(AlertmanagerAuth::Basic { username, password }) => req.basic_auth(username, Some(password)),
                Some(AlertmanagerAuth::Header { kind, credentials }) => {
                    req.header(reqwest::header::AUTHORIZATION, format!("{kind} {credentials}"))
                }
                None => req,
            };
            http_attempt(req, any_body)
        })
        .await;
        result.map_err(|e| {
            counters.undelivered();
            tracing::error!(alertmanager = %t.url, error = %e, count = relabelled.len(), "sending alerts to Alertmanager failed");
            format!("{}: {e}", t.url)
        })
    }
}

impl AlertSender for AlertmanagerSender {
    fn send(&self, alerts: Vec<PostableAlert>, _now_ms: i64) {
        if alerts.is_empty() || self.inner.targets.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!(count = alerts.len(), "no tokio runtime: alerts for Alertmanager dropped");
            return;
        };
        for t in self.inner.targets.clone() {
            let this = self.clone();
            let alerts = alerts.clone();
            rt.spawn(async move {
                let _ = this.post(&t, &alerts).await;
            });
        }
    }
}

/// The API v2 body: a JSON list of `postableAlert`s (times RFC 3339, unset ones left out).
pub fn body(alerts: &[PostableAlert]) -> String {
    let list: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let labels: Map<String, Value> = a.labels.iter().map(|l| (l.name.clone(), Value::String(l.value.clone()))).collect();
            let mut o = json!({"labels": labels, "annotations": a.annotations});
            if a.starts_at != 0 {
                o["startsAt"] = Value::String(rfc3339(a.starts_at));
            }
            if a.ends_at != 0 {
                o["endsAt"] = Value::String(rfc3339(a.ends_at));
            }
            if !a.generator_url.is_empty() {
                o["generatorURL"] = Value::String(a.generator_url.clone());
            }
            o
        })
        .collect();
    Value::Array(list).to_string()
}

/// Sends every batch to several senders (e.g. the built-in notifier and Alertmanagers).
pub struct FanOut(pub Vec<Arc<dyn AlertSender>>);

impl AlertSender for FanOut {
    fn send(&self, alerts: Vec<PostableAlert>, now_ms: i64) {
        for s in &self.0 {
            s.send(alerts.clone(), now_ms);
        }
    }
}
