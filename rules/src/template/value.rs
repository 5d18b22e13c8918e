//! The values a template computes with, standing in for the Go types Prometheus hands to
//! text/template (`map[string]string` labels, `float64` values, `queryResult`, `*sample`,
//! `*time.Time`, ...); [`Value::type_name`] gives the Go type for error messages.

use std::collections::BTreeMap;
use std::rc::Rc;

use chrono::{DateTime, Utc};

/// One element of a `query` result (Prometheus's `*sample`).
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The data of an alert template (`.Labels`, `.ExternalLabels`, `.ExternalURL`, `.Value`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertData {
    pub labels: Rc<BTreeMap<String, String>>,
    pub external_labels: Rc<BTreeMap<String, String>>,
    pub external_url: String,
    pub value: f64,
}

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Go's invalid value / nil interface (prints as `<no value>`).
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    /// `template.HTML` from `safeHtml`.
    Html(String),
    StrMap(Rc<BTreeMap<String, String>>),
    /// `map[string]interface{}`, as `args` builds.
    Map(Rc<BTreeMap<String, Value>>),
    List(Rc<Vec<Value>>),
    Samples(Rc<Vec<Rc<QuerySample>>>),
    Sample(Rc<QuerySample>),
    Time(DateTime<Utc>),
    /// Nanoseconds (`*time.Duration`).
    Duration(i64),
    Alert(Rc<AlertData>),
}

impl Value {
    /// The Go type this stands for, as `%T` prints it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Html(_) => "template.HTML",
            Value::StrMap(_) => "map[string]string",
            Value::Map(_) => "map[string]interface {}",
            Value::List(_) => "[]interface {}",
            Value::Samples(_) => "template.queryResult",
            Value::Sample(_) => "*template.sample",
            Value::Time(_) => "*time.Time",
            Value::Duration(_) => "*time.Duration",
            Value::Alert(_) => {
                "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }"
            }
        }
    }

    /// Go's truth (`if`, `with`, `and`, `or`, `not`): not the zero value of its type.
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Uint(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Html(s) => !s.is_empty(),
            Value::StrMap(m) => !m.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Samples(s) => !s.is_empty(),
            Value::Sample(_) | Value::Time(_) | Value::Duration(_) | Value::Alert(_) => true,
        }
    }

    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }
}
