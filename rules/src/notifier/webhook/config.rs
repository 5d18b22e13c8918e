//! `webhook_configs` entries: `url` or `url_file`, `send_resolved` (true), `max_alerts`,
//! `timeout`. `payload` templates and `http_config` are accepted and reported as warnings.
//!
//! Fedwatch extension: `fedwatch_hmac_secret_file` names a file whose content (surrounding
//! whitespace trimmed) keys an HMAC-SHA256 of the exact body, sent as
//! `X-Fedwatch-Signature: sha256=<hex>`. Alertmanager has no such field, so `amtool
//! check-config` rejects a file that uses it; the `fedwatch_` prefix keeps the extension
//! recognisable and away from any future Alertmanager field. The file is read at load (a
//! missing or empty one is a config error) and again at each send, so a rotated secret
//! applies without a reload.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value as Json;

use fedwatch_config::parse_duration;

/// One `webhook_configs` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    pub url: WebhookUrl,
    pub send_resolved: bool,
    /// 0 means no limit.
    pub max_alerts: usize,
    /// `None` means no timeout beyond the retry deadline.
    pub timeout: Option<Duration>,
    /// `fedwatch_hmac_secret_file`: the key that signs each body, if set.
    pub hmac_secret_file: Option<PathBuf>,
}

/// Where a webhook goes: a URL, or a file holding it (read at send time, trimmed).
#[derive(Clone, Debug, PartialEq)]
pub enum WebhookUrl {
    Url(String),
    File(PathBuf),
}

/// A `webhook_configs` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhookConfig {
    url: Option<String>,
    url_file: Option<String>,
    send_resolved: Option<bool>,
    max_alerts: Option<u64>,
    timeout: Option<String>,
    http_config: Option<Json>,
    payload: Option<Json>,
    /// Fedwatch extension; stock Alertmanager rejects it.
    fedwatch_hmac_secret_file: Option<String>,
}

/// Validates one entry of receiver `receiver`; notes unsupported parts in `warnings`.
pub(crate) fn build(w: RawWebhookConfig, receiver: &str, warnings: &mut Vec<String>) -> Result<WebhookConfig, String> {
    let url = match (w.url, w.url_file) {
        (Some(_), Some(_)) => return Err("at most one of url & url_file must be configured".into()),
        (None, None) => return Err("one of url or url_file must be configured".into()),
        (Some(u), None) => {
            if !(u.starts_with("http://") || u.starts_with("https://") || u.contains("{{")) {
                return Err(format!("unsupported scheme in webhook url {u:?}: expected http:// or https://"));
            }
            WebhookUrl::Url(u)
        }
        (None, Some(f)) => WebhookUrl::File(PathBuf::from(f)),
    };
    if w.payload.is_some() {
        warnings.push(format!(
            "receiver {receiver:?}: webhook `payload` templates are not supported yet; the default v4 body is sent"
        ));
    }
    if w.http_config.is_some() {
        warnings.push(format!("receiver {receiver:?}: webhook `http_config` is not applied yet"));
    }
    let timeout = match w.timeout {
        None => None,
        Some(t) => Some(parse_duration(&t).map_err(|e| format!("webhook timeout: {e}"))?).filter(|d| !d.is_zero()),
    };
    let hmac_secret_file = match w.fedwatch_hmac_secret_file {
        None => None,
        Some(f) => {
            let path = PathBuf::from(f);
            read_secret(&path)?;
            Some(path)
        }
    };
    Ok(WebhookConfig {
        url,
        send_resolved: w.send_resolved.unwrap_or(true),
        max_alerts: w.max_alerts.unwrap_or(0) as usize,
        timeout,
        hmac_secret_file,
    })
}

/// The HMAC key in `path`, trimmed; an unreadable or empty file is an error naming it.
pub(crate) fn read_secret(path: &std::path::Path) -> Result<String, String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("fedwatch_hmac_secret_file {}: cannot read: {e}", path.display()))?;
    let s = s.trim();
    if s.is_empty() {
        return Err(format!(
            "fedwatch_hmac_secret_file {}: the file is empty; it must hold the signing secret",
            path.display()
        ));
    }
    Ok(s.to_string())
}
