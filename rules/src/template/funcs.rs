//! The functions a template can call: Go's builtins (`and`, `or`, `not`, `len`, `index`,
//! `print*`, `html`, `js`, `urlquery`, comparisons) and Prometheus's (`query`, `humanize*`,
//! `label`, `reReplaceAll`, ...), with their Go parameter types so argument errors read as
//! Go's; and the methods of `*time.Time` and `*time.Duration` values.

use std::collections::BTreeMap;
use std::rc::Rc;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::gofmt::{self, format_float, parse_float};
use super::value::{QuerySample, Value};

/// Runs a PromQL instant query at the evaluation time.
pub type QueryFn<'a> = dyn Fn(&str) -> Result<Vec<QuerySample>, String> + 'a;

/// What the functions need from outside the template.
pub struct Ctx<'a> {
    /// The evaluation time (Unix milliseconds): `now` and `query` use it.
    pub time_ms: i64,
    pub external_url: &'a str,
    pub query: Option<&'a QueryFn<'a>>,
}

/// A Go parameter type, as far as argument checking tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    Any,
    Str,
    Samples,
    Sample,
    Duration,
}

impl Param {
    pub fn go_type(self) -> &'static str {
        match self {
            Param::Any => "interface {}",
            Param::Str => "string",
            Param::Samples => "template.queryResult",
            Param::Sample => "*template.sample",
            Param::Duration => "time.Duration",
        }
    }
}

/// Fixed parameters, then the type of variadic ones if any.
pub(crate) struct Sig {
    pub params: &'static [Param],
    pub variadic: Option<Param>,
}

const fn sig(params: &'static [Param], variadic: Option<Param>) -> Sig {
    Sig { params, variadic }
}

use Param::{Any, Duration as Dur, Sample, Samples, Str};

/// Every function name a template may use (the parser rejects others).
pub(crate) fn signature(name: &str) -> Option<Sig> {
    Some(match name {
        "and" | "or" | "eq" | "index" => sig(&[Any], Some(Any)),
        "not" | "len" => sig(&[Any], None),
        "ne" | "lt" | "le" | "gt" | "ge" => sig(&[Any, Any], None),
        "print" | "println" | "html" | "js" | "urlquery" | "args" => sig(&[], Some(Any)),
        "printf" => sig(&[Str], Some(Any)),
        "query" | "title" | "toUpper" | "toLower" | "safeHtml" | "graphLink" | "tableLink" | "stripPort" | "stripDomain"
        | "parseDuration" | "urlQueryEscape" => sig(&[Str], None),
        "first" => sig(&[Samples], None),
        "label" => sig(&[Str, Sample], None),
        "value" | "strvalue" => sig(&[Sample], None),
        "reReplaceAll" => sig(&[Str, Str, Str], None),
        "match" => sig(&[Str, Str], None),
        "sortByLabel" => sig(&[Str, Samples], None),
        "humanize" | "humanize1024" | "humanizeDuration" | "humanizePercentage" | "humanizeTimestamp" | "toTime" | "toDuration" => {
            sig(&[Any], None)
        }
        "now" | "pathPrefix" | "externalURL" => sig(&[], None),
        _ => return None,
    })
}

fn s(v: &Value) -> &str {
    match v {
        Value::Str(s) => s,
        _ => "",
    }
}

const NIL_DEREF: &str = "runtime error: invalid memory address or nil pointer dereference";

fn sample(v: &Value) -> Result<&QuerySample, String> {
    match v {
        Value::Sample(s) => Ok(s),
        _ => Err(NIL_DEREF.into()),
    }
}

/// Calls function `name` (known to [`signature`]) with checked arguments.
pub(crate) fn call(ctx: &Ctx<'_>, name: &str, a: Vec<Value>) -> Result<Value, String> {
    let str_ = |x: String| Ok(Value::Str(x));
    match name {
        "not" => Ok(Value::Bool(!a[0].truth())),
        "len" => len(&a[0]),
        "index" => index(&a[0], &a[1..]),
        "eq" => eq(&a[0], &a[1..]).map(Value::Bool),
        "ne" => eq(&a[0], &a[1..2]).map(|b| Value::Bool(!b)),
        "lt" => lt(&a[0], &a[1]).map(Value::Bool),
        "le" => Ok(Value::Bool(lt(&a[0], &a[1])? || eq(&a[0], &a[1..2])?)),
        "gt" => Ok(Value::Bool(!(lt(&a[0], &a[1])? || eq(&a[0], &a[1..2])?))),
        "ge" => lt(&a[0], &a[1]).map(|b| Value::Bool(!b)),
        "print" => str_(gofmt::sprint(&a)),
        "println" => str_(gofmt::sprintln(&a)),
        "printf" => str_(gofmt::sprintf(s(&a[0]), &a[1..])),
        "html" => str_(html_escape(&args_text(&a))),
        "js" => str_(js_escape(&args_text(&a))),
        "urlquery" | "urlQueryEscape" => str_(query_escape(&args_text(&a))),
        "query" => {
            let q = ctx.query.ok_or("no query engine is available here")?;
            let result = q(s(&a[0]))?;
            Ok(Value::Samples(Rc::new(result.into_iter().map(Rc::new).collect())))
        }
        "first" => match &a[0] {
            Value::Samples(v) if !v.is_empty() => Ok(Value::Sample(v[0].clone())),
            _ => Err("first() called on vector with no elements".into()),
        },
        "label" => str_(sample(&a[1])?.labels.get(s(&a[0])).cloned().unwrap_or_default()),
        "value" => Ok(Value::Float(sample(&a[0])?.value)),
        "strvalue" => str_(sample(&a[0])?.labels.get("__value__").cloned().unwrap_or_default()),
        "args" => Ok(Value::Map(Rc::new(
            a.into_iter().enumerate().map(|(i, v)| (format!("arg{i}"), v)).collect(),
        ))),
        "reReplaceAll" => {
            let re = regex::Regex::new(s(&a[0])).map_err(|e| format!("regexp: Compile({}): {}", backquote(s(&a[0])), regex_error(&e)))?;
            str_(re.replace_all(s(&a[2]), s(&a[1])).into_owned())
        }
        "match" => {
            let re = regex::Regex::new(s(&a[0])).map_err(|e| regex_error(&e))?;
            Ok(Value::Bool(re.is_match(s(&a[1]))))
        }
        "safeHtml" => Ok(Value::Html(s(&a[0]).to_string())),
        "title" => str_(title(s(&a[0]))),
        "toUpper" => str_(s(&a[0]).to_uppercase()),
        "toLower" => str_(s(&a[0]).to_lowercase()),
        "graphLink" => str_(format!("/graph?g0.expr={}&g0.tab=0", query_escape(s(&a[0])))),
        "tableLink" => str_(format!("/graph?g0.expr={}&g0.tab=1", query_escape(s(&a[0])))),
        "sortByLabel" => {
            let by = s(&a[0]);
            let mut v: Vec<Rc<QuerySample>> = match &a[1] {
                Value::Samples(v) => v.as_ref().clone(),
                _ => Vec::new(),
            };
            v.sort_by(|x, y| {
                x.labels
                    .get(by)
                    .map(String::as_str)
                    .unwrap_or("")
                    .cmp(y.labels.get(by).map(String::as_str).unwrap_or(""))
            });
            Ok(Value::Samples(Rc::new(v)))
        }
        "stripPort" => str_(match split_host_port(s(&a[0])) {
            Some((host, _)) => host.to_string(),
            None => s(&a[0]).to_string(),
        }),
        "stripDomain" => str_(strip_domain(s(&a[0]))),
        "humanize" => str_(humanize(to_float(&a[0])?)),
        "humanize1024" => str_(humanize1024(to_float(&a[0])?)),
        "humanizeDuration" => str_(humanize_duration(to_float(&a[0])?)),
        "humanizePercentage" => str_(format!("{}%", format_float(to_float(&a[0])? * 100.0, 'g', Some(4)))),
        "humanizeTimestamp" => {
            let v = to_float(&a[0])?;
            if !v.is_finite() {
                return str_(format_float(v, 'g', Some(4)));
            }
            str_(gofmt::time_string(&float_to_time(v)?))
        }
        "toTime" => {
            let v = to_float(&a[0])?;
            if !v.is_finite() {
                return Err("value is NaN or Inf".into());
            }
            Ok(Value::Time(float_to_time(v)?))
        }
        "toDuration" => Ok(Value::Duration((to_float(&a[0])? * 1e9) as i64)),
        "now" => Ok(Value::Float(ctx.time_ms as f64 / 1000.0)),
        "pathPrefix" => str_(url_path(ctx.external_url).to_string()),
        "externalURL" => str_(ctx.external_url.to_string()),
        "parseDuration" => parse_duration(s(&a[0])).map(Value::Float),
        other => Err(format!("function {other:?} has no implementation")),
    }
}

/// The methods of values that have them (Go's `time.Time` and `time.Duration`).
pub(crate) fn method(recv: &Value, name: &str) -> Option<Sig> {
    match recv {
        Value::Time(_) => Some(match name {
            "Format" => sig(&[Str], None),
            "Add" => sig(&[Dur], None),
            "Unix" | "UnixMilli" | "UnixMicro" | "UnixNano" | "String" | "UTC" | "Year" | "Month" | "Day" | "Hour" | "Minute"
            | "Second" | "Nanosecond" | "YearDay" | "Weekday" => sig(&[], None),
            _ => return None,
        }),
        Value::Duration(_) => Some(match name {
            "String" | "Seconds" | "Minutes" | "Hours" | "Milliseconds" | "Microseconds" | "Nanoseconds" | "Abs" => sig(&[], None),
            _ => return None,
        }),
        _ => None,
    }
}

/// Calls method `name` (known to [`method`]) on `recv`.
pub(crate) fn call_method(recv: &Value, name: &str, a: Vec<Value>) -> Result<Value, String> {
    match recv {
        Value::Time(t) => Ok(match name {
            "Format" => Value::str(gofmt::format_time(t, s(&a[0]))),
            "Add" => {
                let Value::Duration(d) = a[0] else {
                    return Err("Add needs a duration".into());
                };
                Value::Time(*t + chrono::Duration::nanoseconds(d))
            }
            "Unix" => Value::Int(t.timestamp()),
            "UnixMilli" => Value::Int(t.timestamp_millis()),
            "UnixMicro" => Value::Int(t.timestamp_micros()),
            "UnixNano" => Value::Int(t.timestamp_nanos_opt().unwrap_or(i64::MAX)),
            "String" => Value::str(gofmt::time_string(t)),
            "UTC" => Value::Time(*t),
            "Year" => Value::Int(t.year() as i64),
            "Month" => Value::str(t.format("%B").to_string()),
            "Day" => Value::Int(t.day() as i64),
            "Hour" => Value::Int(t.hour() as i64),
            "Minute" => Value::Int(t.minute() as i64),
            "Second" => Value::Int(t.second() as i64),
            "Nanosecond" => Value::Int(t.nanosecond() as i64 % 1_000_000_000),
            "YearDay" => Value::Int(t.ordinal() as i64),
            _ => Value::str(t.format("%A").to_string()),
        }),
        Value::Duration(d) => Ok(match name {
            "String" => Value::str(gofmt::duration_string(*d)),
            "Seconds" => Value::Float(*d as f64 / 1e9),
            "Minutes" => Value::Float(*d as f64 / 6e10),
            "Hours" => Value::Float(*d as f64 / 3.6e12),
            "Milliseconds" => Value::Int(d / 1_000_000),
            "Microseconds" => Value::Int(d / 1_000),
            "Nanoseconds" => Value::Int(*d),
            _ => Value::Duration(d.saturating_abs()),
        }),
        _ => Err(format!("{name} is not a method of {}", recv.type_name())),
    }
}

/// Prometheus's `ConvertToFloat`.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Str(s) => parse_float(s),
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// Seconds to a time with Prometheus's millisecond precision (`model.TimeFromUnixNano`).
fn float_to_time(v: f64) -> Result<DateTime<Utc>, String> {
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            gofmt::go_float(v)
        ));
    }
    let ms = (ns as i64) / 1_000_000;
    DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("{} is out of the range of times", gofmt::go_float(v)))
}

fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_float(v, 'g', Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_float(v, 'g', Some(4)))
}

fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_float(v, 'g', Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_float(v, 'g', Some(4)))
}

fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return format_float(v, 'g', Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_float(v, 'g', Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (days, hours, minutes, seconds) = (d / 86400, d / 3600 % 24, d / 60 % 60, d % 60);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", format_float(v, 'g', Some(4)))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_float(v, 'g', Some(4)))
}

/// Prometheus's `model.ParseDurationAllowNegative`, in seconds.
fn parse_duration(text: &str) -> Result<f64, String> {
    let invalid = || format!("not a valid duration string: {}", gofmt::quote(text));
    if text.is_empty() {
        return Err("empty duration string".into());
    }
    let (neg, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    if rest == "0" {
        return Ok(0.0);
    }
    const UNITS: [(&str, f64); 7] = [
        ("y", 365.0 * 86400.0),
        ("w", 7.0 * 86400.0),
        ("d", 86400.0),
        ("h", 3600.0),
        ("ms", 0.001),
        ("m", 60.0),
        ("s", 1.0),
    ];
    const ORDER: [&str; 7] = ["y", "w", "d", "h", "m", "s", "ms"];
    let mut ms: u128 = 0;
    let mut last = None;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let n: u128 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let (unit, secs) = UNITS.iter().find(|(u, _)| rest.starts_with(u)).ok_or_else(invalid)?;
        let idx = ORDER.iter().position(|o| o == unit).unwrap_or(0);
        if last.is_some_and(|l| l >= idx) {
            return Err(invalid());
        }
        last = Some(idx);
        rest = &rest[unit.len()..];
        ms += n * (secs * 1000.0) as u128;
        if ms > i64::MAX as u128 {
            return Err("duration out of range".into());
        }
    }
    let v = ms as f64 / 1000.0;
    Ok(if neg { -v } else { v })
}

/// Go's `net.SplitHostPort`, `None` where it fails.
fn split_host_port(hp: &str) -> Option<(&str, &str)> {
    let i = hp.rfind(':')?;
    let (host, j, k) = if hp.starts_with('[') {
        let end = hp.find(']')?;
        if end + 1 != i {
            return None;
        }
        (&hp[1..end], 1, end + 1)
    } else {
        let host = &hp[..i];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return None;
    }
    Some((host, &hp[i + 1..]))
}

fn strip_domain(hp: &str) -> String {
    let (host, port) = split_host_port(hp).unwrap_or((hp, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let host = host.split('.').next().unwrap_or("");
    match port {
        "" => host.to_string(),
        p if host.contains(':') => format!("[{host}]:{p}"),
        p => format!("{host}:{p}"),
    }
}

/// `cases.Title(language.AmericanEnglish, cases.NoLower)`: upper-cases the first letter
/// of each word and leaves the rest alone.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if in_word {
                out.push(c);
            } else {
                out.extend(c.to_uppercase());
            }
            in_word = true;
        } else {
            out.push(c);
            in_word = in_word && (c == '\'' || c == '’');
        }
    }
    out
}

fn url_path(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| &url[i + 3..]).unwrap_or(url);
    let path = after_scheme.find('/').map(|i| &after_scheme[i..]).unwrap_or("");
    path.split(['?', '#']).next().unwrap_or("")
}

fn backquote(s: &str) -> String {
    format!("`{s}`")
}

/// The first line of a regex error, after Go's "error parsing regexp: " prefix.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let detail = text
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim())
        .next();
    format!("error parsing regexp: {}", detail.unwrap_or(text.lines().next().unwrap_or("")))
}

/// `html`, `js` and `urlquery` take one string as is, anything else through `Sprint`.
fn args_text(a: &[Value]) -> String {
    match a {
        [Value::Str(s)] => s.clone(),
        _ => gofmt::sprint(a),
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn len(v: &Value) -> Result<Value, String> {
    let n = match v {
        Value::Str(s) | Value::Html(s) => s.len(),
        Value::StrMap(m) => m.len(),
        Value::Map(m) => m.len(),
        Value::List(l) => l.len(),
        Value::Samples(s) => s.len(),
        other => return Err(format!("len of type {}", other.type_name())),
    };
    Ok(Value::Int(n as i64))
}

fn index(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    if *item == Value::Nil {
        return Err("index of untyped nil".into());
    }
    let mut item = item.clone();
    for ix in indexes {
        let position = |len: usize| -> Result<usize, String> {
            let i = match ix {
                Value::Int(i) => *i,
                Value::Uint(u) => *u as i64,
                Value::Nil => return Err("cannot index slice/array with nil".into()),
                other => return Err(format!("cannot index slice/array with type {}", other.type_name())),
            };
            if i < 0 || i as usize >= len {
                return Err(format!("index out of range: {i}"));
            }
            Ok(i as usize)
        };
        let key = || match ix {
            Value::Str(k) => Ok(k.clone()),
            other => Err(format!("value has type {}; should be string", other.type_name())),
        };
        item = match &item {
            Value::List(l) => l[position(l.len())?].clone(),
            Value::Samples(l) => Value::Sample(l[position(l.len())?].clone()),
            Value::Str(s) => Value::Uint(s.as_bytes()[position(s.len())?] as u64),
            Value::StrMap(m) => Value::str(m.get(&key()?).cloned().unwrap_or_default()),
            Value::Map(m) => m.get(&key()?).cloned().unwrap_or(Value::Nil),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Uint,
    Float,
    String,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Uint(_) => Kind::Uint,
        Value::Float(_) => Kind::Float,
        Value::Str(_) | Value::Html(_) => Kind::String,
        _ => Kind::Invalid,
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

/// Go's `eq`: whether `a` equals any of `others`.
fn eq(a: &Value, others: &[Value]) -> Result<bool, String> {
    if others.is_empty() {
        return Err("missing argument for comparison".into());
    }
    for b in others {
        let truth = match (a, b) {
            (Value::Int(x), Value::Uint(y)) | (Value::Uint(y), Value::Int(x)) => *x >= 0 && *x as u64 == *y,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Uint(x), Value::Uint(y)) => x == y,
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Str(x) | Value::Html(x), Value::Str(y) | Value::Html(y)) => x == y,
            (Value::Nil, Value::Nil) => true,
            (Value::Nil, _) | (_, Value::Nil) => false,
            _ if kind(a) != kind(b) => return Err(BAD_COMPARISON.into()),
            (Value::StrMap(_) | Value::Map(_) | Value::List(_) | Value::Samples(_), _) => {
                return Err(format!("non-comparable type {}: {}", gofmt::print_v(a, false), a.type_name()));
            }
            _ => a == b,
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Go's `lt`.
fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let (k1, k2) = (kind(a), kind(b));
    if k1 == Kind::Invalid || k2 == Kind::Invalid {
        return Err(BAD_COMPARISON_TYPE.into());
    }
    Ok(match (a, b) {
        (Value::Int(x), Value::Uint(y)) => *x < 0 || (*x as u64) < *y,
        (Value::Uint(x), Value::Int(y)) => *y >= 0 && *x < *y as u64,
        _ if k1 != k2 => return Err(BAD_COMPARISON.into()),
        (Value::Bool(_), _) => return Err(BAD_COMPARISON_TYPE.into()),
        (Value::Int(x), Value::Int(y)) => x < y,
        (Value::Uint(x), Value::Uint(y)) => x < y,
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x) | Value::Html(x), Value::Str(y) | Value::Html(y)) => x < y,
        _ => return Err(BAD_COMPARISON_TYPE.into()),
    })
}

/// Labels as the `map[string]string` templates see.
pub(crate) fn label_map(labels: &fedwatch_model::Labels) -> BTreeMap<String, String> {
    labels.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect()
}
