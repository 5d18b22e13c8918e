//! The webhook integration (`webhook_configs`): the Alertmanager version-4 payload,
//! byte-compatible with Go's `json.Encoder` output (struct field order, sorted map keys, `<`,
//! `>`, `&` escaped, one trailing newline), and the POST with its retry rule: 2xx is success,
//! 5xx and transport errors are retried with exponential backoff until the deadline, any
//! other status fails at once with `unexpected status code N: body`. With the Fedwatch
//! extension `fedwatch_hmac_secret_file` the body is signed (`X-Fedwatch-Signature`).

mod config;
mod sink;

pub(crate) use config::build;
pub use config::{RawWebhookConfig, WebhookConfig, WebhookUrl};
pub use sink::*;

#[cfg(test)]
mod tests;
