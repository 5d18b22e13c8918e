//! The webhook payload (version 4) and its POST.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fedwatch_model::Labels;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::notifier::integration::{Notification, SendContext, any_body, http_attempt, with_retries};

/// The payload Alertmanager's webhook notifier sends (version 4).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub receiver: String,
    pub status: String,
    pub alerts: Vec<PayloadAlert>,
    #[serde(rename = "notification_reason")]
    pub notification_reason: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    pub route_labels: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub version: String,
    pub group_key: String,
    pub truncated_alerts: usize,
}

/// One alert in a [`Payload`].
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PayloadAlert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// An alert as the notifier holds it, ready to render.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyAlert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub generator_url: String,
    pub resolved: bool,
}

/// What the payload needs besides the alerts.
pub struct PayloadContext<'a> {
    pub receiver: &'a str,
    pub group_key: &'a str,
    pub group_labels: &'a Labels,
    pub route_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub reason: &'a str,
    pub max_alerts: usize,
}

/// Builds the v4 payload; `alerts` are truncated to `max_alerts` (0 = all) and counted.
pub fn payload(ctx: &PayloadContext<'_>, alerts: &[NotifyAlert]) -> Payload {
    let firing = alerts.iter().any(|a| !a.resolved);
    let label_maps: Vec<BTreeMap<String, String>> = alerts.iter().map(|a| to_map(&a.labels)).collect();
    let common_labels = common(&label_maps);
    let common_annotations = common(&alerts.iter().map(|a| a.annotations.clone()).collect::<Vec<_>>());
    let keep = if ctx.max_alerts > 0 {
        ctx.max_alerts.min(alerts.len())
    } else {
        alerts.len()
    };
    Payload {
        receiver: quote_meta(ctx.receiver),
        status: if firing { "firing" } else { "resolved" }.into(),
        alerts: alerts[..keep]
            .iter()
            .zip(label_maps)
            .map(|(a, labels)| PayloadAlert {
                status: if a.resolved { "resolved" } else { "firing" }.into(),
                labels,
                annotations: a.annotations.clone(),
                starts_at: rfc3339(a.starts_at),
                // Alertmanager zeroes endsAt of firing alerts in notifications.
                ends_at: if a.resolved { rfc3339(a.ends_at) } else { ZERO_TIME.into() },
                generator_url: a.generator_url.clone(),
                fingerprint: format!("{:016x}", fingerprint(&a.labels)),
            })
            .collect(),
        notification_reason: ctx.reason.into(),
        group_labels: to_map(ctx.group_labels),
        common_labels,
        common_annotations,
        route_labels: ctx.route_labels.clone(),
        external_url: ctx.external_url.into(),
        version: "4".into(),
        group_key: ctx.group_key.into(),
        truncated_alerts: alerts.len() - keep,
    }
}

/// The body as Go's `json.Encoder` writes it.
pub fn encode(p: &Payload) -> String {
    let json = serde_json::to_string(p).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

/// Go's zero `time.Time` in RFC 3339.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// RFC 3339 with Go's `RFC3339Nano` trimming of trailing fractional zeros; 0 is the zero time.
pub fn rfc3339(ms: i64) -> String {
    if ms == 0 {
        return ZERO_TIME.into();
    }
    let Some(t) = DateTime::<Utc>::from_timestamp_millis(ms) else {
        return ZERO_TIME.into();
    };
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let frac = ms.rem_euclid(1000);
    if frac == 0 {
        format!("{base}Z")
    } else {
        let digits = format!("{frac:03}");
        format!("{base}.{}Z", digits.trim_end_matches('0'))
    }
}

/// Alertmanager's alert fingerprint: FNV-1a 64 over `name 0xff value 0xff` in name order.
pub fn fingerprint(labels: &Labels) -> u64 {
    let mut h: u64 = 14695981039346656037;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(1099511628211);
        }
    };
    for l in labels.iter() {
        feed(l.name.as_bytes());
        feed(&[0xff]);
        feed(l.value.as_bytes());
        feed(&[0xff]);
    }
    h
}

fn to_map(labels: &Labels) -> BTreeMap<String, String> {
    labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect()
}

fn common(maps: &[BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some((first, rest)) = maps.split_first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter(|(k, v)| rest.iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Go's `regexp.QuoteMeta`, which Alertmanager applies to the receiver name.
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Why a delivery failed for good.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("unexpected status code {status}: {body}")]
    Status { status: u16, body: String },
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: String },
}

/// Retry timing for deliveries.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// The header carrying the body's HMAC when `fedwatch_hmac_secret_file` is set.
pub const SIGNATURE_HEADER: &str = "X-Fedwatch-Signature";

/// `sha256=<lowercase hex HMAC-SHA256 of body keyed by secret>`, the signature header value.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// POSTs `body` to `url` with `headers` added, under the shared retry rule
/// ([`with_retries`], [`http_attempt`]).
pub async fn post(
    ctx: &SendContext<'_>,
    url: &str,
    body: String,
    headers: &[(&'static str, String)],
    timeout: Option<Duration>,
    on_attempt: &mut (dyn FnMut(bool) + Send),
) -> Result<(), DeliveryError> {
    with_retries(ctx, on_attempt, || {
        let mut req = ctx
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::USER_AGENT, concat!("Fedwatch/", env!("CARGO_PKG_VERSION")));
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let mut req = req.body(body.clone());
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        http_attempt(req, any_body)
    })
    .await
}

/// Sends `n` as a v4 payload to the webhook `c`.
pub(crate) async fn notify(
    c: &super::WebhookConfig,
    n: &Notification,
    ctx: &SendContext<'_>,
    on_attempt: &mut (dyn FnMut(bool) + Send),
) -> Result<(), DeliveryError> {
    let pctx = PayloadContext {
        receiver: &n.receiver,
        group_key: &n.group_key,
        group_labels: &n.group_labels,
        route_labels: &n.route_labels,
        external_url: &n.external_url,
        reason: &n.reason,
        max_alerts: c.max_alerts,
    };
    let body = encode(&payload(&pctx, &n.alerts));
    let url = match &c.url {
        super::WebhookUrl::Url(u) => u.clone(),
        super::WebhookUrl::File(p) => std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .map_err(|e| DeliveryError::Exhausted {
                attempts: 0,
                last: format!("cannot read url_file {}: {e}", p.display()),
            })?,
    };
    let mut headers = Vec::new();
    if let Some(path) = &c.hmac_secret_file {
        let secret = super::config::read_secret(path).map_err(|e| DeliveryError::Exhausted { attempts: 0, last: e })?;
        headers.push((SIGNATURE_HEADER, signature(&secret, body.as_bytes())));
    }
    post(ctx, &url, body, &headers, c.timeout, on_attempt).await
}
