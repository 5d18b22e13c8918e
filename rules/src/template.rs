//! Go's text/template as Prometheus exposes it in alert labels and annotations.
//!
//! The language is Go's: text with `{{ }}` actions (`{{- `/` -}}` trim markers, `{{/* */}}`
//! comments), pipelines (`{{ $value | humanize }}`), variables (`$x := ...`, `$x = ...`),
//! `if`/`else if`/`else`, `range` (with `$i, $v :=`, `else`, `break`, `continue`),
//! `with`, `define`/`template`/`block`, string, raw-string, number and char literals.
//! Functions: Go's builtins (`and or not eq ne lt le gt ge len index print printf println
//! html js urlquery`) and Prometheus's (`query first label value strvalue sortByLabel args
//! humanize humanize1024 humanizeDuration humanizePercentage humanizeTimestamp toTime
//! toDuration now parseDuration match reReplaceAll title toUpper toLower stripPort
//! stripDomain safeHtml graphLink tableLink pathPrefix externalURL urlQueryEscape`).
//! `tmpl` (console templates only) is not provided.
//!
//! Alert templates are expanded as Prometheus's rule evaluation does: the text is prefixed
//! with `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL :=
//! .ExternalURL}}{{$value := .Value}}` and named `__alert_<rule>`, so error positions (which
//! count those 112 bytes) and messages match Prometheus's byte for byte; a failure becomes
//! `<error expanding template: error executing template __alert_X: template: ...>`.
//! Values follow Go's types where behaviour depends on them: a number literal is an `int`
//! unless it has a `.`/exponent, so `gt $value 80` fails with "incompatible types for
//! comparison" exactly as in Prometheus (write `80.0`).
//!
//! The engine is interpreted from a fresh parse each expansion: annotation templates are
//! short and the parse is a fraction of a PromQL evaluation.

mod exec;
mod funcs;
mod gofmt;
mod lex;
mod parse;
mod value;

use std::collections::BTreeMap;
use std::rc::Rc;

use fedwatch_model::Labels;

pub use funcs::{Ctx, QueryFn};
pub use gofmt::go_float;
pub use value::{AlertData, QuerySample, Value};

/// What an alert template can refer to.
#[derive(Clone, Copy, Debug)]
pub struct TemplateData<'a> {
    pub labels: &'a Labels,
    pub value: f64,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
}

/// The variables Prometheus defines before every alert template.
const ALERT_DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// Parses and executes `text` named `name` with `data` as dot; errors are worded as
/// Prometheus's `Expander.Expand` words them (`error parsing template NAME: ...` /
/// `error executing template NAME: ...`).
pub fn expand_text(name: &str, text: &str, data: Value, ctx: &Ctx<'_>) -> Result<String, String> {
    let set = parse::parse(text, &|f| funcs::signature(f).is_some()).map_err(|e| {
        let line = 1 + text[..e.pos.min(text.len())].matches('\n').count();
        format!("error parsing template {name}: template: {name}:{line}: {}", e.msg)
    })?;
    exec::execute(name, text, &set, data, ctx).map_err(|e| format!("error executing template {name}: {e}"))
}

/// The template data of an alert.
pub fn alert_value(data: &TemplateData<'_>) -> Value {
    Value::Alert(Rc::new(AlertData {
        labels: Rc::new(funcs::label_map(data.labels)),
        external_labels: Rc::new(funcs::label_map(data.external_labels)),
        external_url: data.external_url.to_string(),
        value: data.value,
    }))
}

/// Expands one label or annotation of alerting rule `rule` as Prometheus does, at
/// evaluation time `time_ms`; a failure is rendered into the result as
/// `<error expanding template: ...>`.
pub fn expand_alert(rule: &str, text: &str, data: &TemplateData<'_>, time_ms: i64, query: Option<&QueryFn<'_>>) -> String {
    let ctx = Ctx {
        time_ms,
        external_url: data.external_url,
        query,
    };
    let full = format!("{ALERT_DEFS}{text}");
    expand_text(&format!("__alert_{rule}"), &full, alert_value(data), &ctx).unwrap_or_else(|e| format!("<error expanding template: {e}>"))
}

/// Checks a label or annotation template as Prometheus does at rule-load time: syntax,
/// defined variables and known functions. The error is Go's parser message, with the
/// line when the template has several.
pub fn check(text: &str) -> Result<(), String> {
    let full = format!("{ALERT_DEFS}{text}");
    parse::parse(&full, &|f| funcs::signature(f).is_some()).map(|_| ()).map_err(|e| {
        let line = 1 + full[..e.pos.min(full.len())].matches('\n').count();
        if line > 1 { format!("line {line}: {}", e.msg) } else { e.msg }
    })
}

/// Expands `text` against string fields (`{{ .Name }}`), as notifier message templates do;
/// a missing field is empty.
pub fn expand_fields(text: &str, fields: &BTreeMap<&str, String>) -> Result<String, String> {
    let map: BTreeMap<String, String> = fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let ctx = Ctx {
        time_ms: 0,
        external_url: "",
        query: None,
    };
    expand_text("message", text, Value::StrMap(Rc::new(map)), &ctx)
}

#[cfg(test)]
mod tests;
