//! PromQL functions over floats: range-vector functions (rate and friends with Prometheus's
//! exact extrapolation, `*_over_time`), element-wise math, time and label functions,
//! `histogram_quantile` over classic buckets, `absent*`, `sort*`, `vector` and `scalar`.
//!
//! Native histograms are not stored yet, so the `histogram_*` functions that only read native
//! histograms return empty vectors, as Prometheus does for float input.

use std::collections::HashMap;

use fedwatch_model::{Labels, METRIC_NAME, Sample};
use promql_parser::label::MatchOp as ParsedOp;
use promql_parser::parser::{Call, Expr};

use crate::QueryError;
use crate::aggregations::{kahan_inc, quantile, valid_label_name};
use crate::engine::{Evaluator, RawSeries, Series, Val, Windowed, exec};

/// Formats a float as Go's `%v` / `%g` do for messages (`1e+06`, `3.5`, `NaN`).
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e6).contains(&a) {
        let s = format!("{v:e}");
        // Rust prints `1e20`, Go `1e+20`.
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        }
    } else {
        format!("{v}")
    }
}

/// Go's `math.Min`: NaN wins.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// Go's `math.Max`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

fn scalar_arg(ev: &Evaluator, e: &Expr) -> Result<Vec<f64>, QueryError> {
    match ev.eval(e)? {
        Val::Scalar(v) => Ok(v),
        other => Err(exec(format!("expected scalar argument, got {}", other.type_name()))),
    }
}

fn vector_arg(ev: &Evaluator, e: &Expr) -> Result<Vec<Series>, QueryError> {
    match ev.eval(e)? {
        Val::Vector(v) => Ok(v),
        other => Err(exec(format!("expected instant vector argument, got {}", other.type_name()))),
    }
}

fn matrix_arg(ev: &Evaluator, e: &Expr) -> Result<Windowed, QueryError> {
    match ev.eval(e)? {
        Val::Matrix(m) => Ok(m),
        other => Err(exec(format!("expected range vector argument, got {}", other.type_name()))),
    }
}

fn string_arg(e: &Expr) -> Result<String, QueryError> {
    match e {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        Expr::Paren(p) => string_arg(&p.expr),
        other => Err(exec(format!("expected string literal argument, got {other}"))),
    }
}

/// Applies `f` to every value; the result loses its name.
fn map_values(mut v: Vec<Series>, mut f: impl FnMut(f64, usize) -> f64) -> Vec<Series> {
    for s in &mut v {
        s.drop_name = true;
        for (k, slot) in s.values.iter_mut().enumerate() {
            if let Some(x) = slot {
                *x = f(*x, k);
            }
        }
    }
    v
}

/// Fewest series one thread evaluates a range function over before another is worth it.
const WINDOW_PART: usize = 512;

/// Evaluates a range function over every window of every series, the series spread over the
/// CPUs (see `fedwatch_model::par`).
fn over_windows(w: &Windowed, keep_name: bool, f: impl Fn(&[Sample], usize, i64) -> Option<f64> + Sync) -> Vec<Series> {
    fedwatch_model::par::map_parts(&w.series, WINDOW_PART, |part| windows_of(part, w, keep_name, &f))
}

/// [`over_windows`] on one thread, for `f` that reports through the evaluator.
fn windows_of(series: &[RawSeries], w: &Windowed, keep_name: bool, mut f: impl FnMut(&[Sample], usize, i64) -> Option<f64>) -> Vec<Series> {
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        let mut any = false;
        // Windows only move forward with the steps, so two cursors walk the samples once.
        let (mut lo, mut hi, mut prev) = (0usize, 0usize, i64::MIN);
        let values: Vec<Option<f64>> = (0..w.refs.len())
            .map(|k| {
                let r = w.refs[k];
                if r < prev {
                    lo = 0;
                    hi = 0;
                }
                prev = r;
                while hi < s.samples.len() && s.samples[hi].t <= r {
                    hi += 1;
                }
                while lo < hi && s.samples[lo].t <= r - w.range {
                    lo += 1;
                }
                let win = &s.samples[lo..hi];
                if win.is_empty() {
                    return None;
                }
                let v = f(win, k, w.refs[k]);
                any |= v.is_some();
                v
            })
            .collect();
        if any {
            out.push(Series {
                labels: s.labels.clone(),
                drop_name: !keep_name || s.drop_name,
                values,
            });
        }
    }
    out
}

fn extrapolated_rate(s: &[Sample], range_start: i64, range_end: i64, range_ms: i64, is_counter: bool, is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let first = s[0];
    let last = s[s.len() - 1];
    let mut result = last.v - first.v;
    if is_counter {
        for pair in s.windows(2) {
            if pair[1].v < pair[0].v {
                result += pair[0].v;
            }
        }
    }
    Some(extrapolate(
        Window {
            first,
            last,
            count: s.len(),
            range_start,
            range_end,
            range_ms,
        },
        result,
        is_counter,
        is_rate,
    ))
}

/// What `rate` and friends extrapolate from: the window and its first and last sample.
pub(crate) struct Window {
    pub first: Sample,
    pub last: Sample,
    /// Samples in the window (at least 2).
    pub count: usize,
    pub range_start: i64,
    pub range_end: i64,
    pub range_ms: i64,
}

/// Prometheus's `extrapolatedRate` from the window's increase `result` (counter resets
/// already added back): extends it to the window's edges unless a sample is far from them.
pub(crate) fn extrapolate(w: Window, result: f64, is_counter: bool, is_rate: bool) -> f64 {
    let Window {
        first,
        last,
        count,
        range_start,
        range_end,
        range_ms,
    } = w;
    let mut to_start = (first.t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg = sampled / (count - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if is_counter {
        let mut to_zero = to_start;
        if result > 0.0 && first.v >= 0.0 {
            to_zero = sampled * (first.v / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    result * factor
}

fn instant_value(s: &[Sample], is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (a, b) = (s[s.len() - 2], s[s.len() - 1]);
    let dt = b.t - a.t;
    if dt == 0 {
        return None;
    }
    let mut v = b.v;
    // Not `b.v >= a.v`: a NaN on either side is not a reset.
    if !is_rate || b.v.partial_cmp(&a.v) != Some(std::cmp::Ordering::Less) {
        v = b.v - a.v;
    }
    if is_rate {
        v /= dt as f64 / 1000.0;
    }
    Some(v)
}

fn linear_regression(s: &[Sample], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = s[0].v;
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(p.v, sy, cy);
        (sxy, cxy) = kahan_inc(x * p.v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn avg_of(s: &[Sample]) -> f64 {
    let (mut sum, mut c, mut mean, mut count) = (s[0].v, 0.0, 0.0, 1.0);
    let mut incremental = false;
    for p in &s[1..] {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(p.v, sum, c);
            if !ns.is_infinite() {
                (sum, c) = (ns, nc);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(p.v / count, q * mean, q * c);
    }
    if incremental { mean + c } else { sum / count + c / count }
}

fn variance_of(s: &[Sample]) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in s {
        count += 1.0;
        let delta = p.v - (mean + cmean);
        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_inc(delta * (p.v - (mean + cmean)), aux, caux);
    }
    (aux + caux) / count
}

fn pick_over_time(s: &[Sample], better: impl Fn(f64, f64) -> bool, timestamp: bool) -> f64 {
    let (mut best, mut t) = (s[0].v, s[0].t);
    for p in s {
        if better(p.v, best) {
            best = p.v;
            t = p.t;
        }
    }
    if timestamp { t as f64 / 1000.0 } else { best }
}

/// Labels `absent()` reports: the selector's equality matchers, as Prometheus builds them.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let mut b = Labels::default().builder();
    let mut has = std::collections::HashSet::new();
    let groups: Vec<&Vec<promql_parser::label::Matcher>> = if vs.matchers.or_matchers.is_empty() {
        vec![&vs.matchers.matchers]
    } else {
        return Labels::default();
    };
    for m in groups.into_iter().flatten() {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, ParsedOp::Equal) && !has.contains(&m.name) {
            b.set(m.name.clone(), m.value.clone());
            has.insert(m.name.clone());
        } else {
            b.del(&m.name);
        }
    }
    b.build()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn date_part(name: &str, secs: f64) -> f64 {
    let secs = secs as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let month_days = [31, if is_leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    match name {
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => (month_days[..(m - 1) as usize].iter().sum::<u32>() + d) as f64,
        "days_in_month" => month_days[(m - 1) as usize] as f64,
        "hour" => (sod / 3600) as f64,
        "minute" => (sod % 3600 / 60) as f64,
        "month" => m as f64,
        _ => y as f64,
    }
}

/// Merges series that now share a label set; overlapping points are an error.
fn merge_same_labels(series: Vec<Series>) -> Result<Vec<Series>, QueryError> {
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in series {
        match index.get(&s.labels) {
            Some(&i) => {
                for (d, v) in out[i].values.iter_mut().zip(s.values) {
                    if let Some(v) = v {
                        if d.is_some() {
                            return Err(exec("vector cannot contain metrics with the same labelset"));
                        }
                        *d = Some(v);
                    }
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn simple(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "sgn" => |v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

pub(crate) fn call(ev: &Evaluator, c: &Call) -> Result<Val, QueryError> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
    let n = ev.n();
    if let Some(f) = simple(name) {
        return Ok(Val::Vector(map_values(vector_arg(ev, args[0])?, |v, _| f(v))));
    }
    match name {
        "time" => Ok(Val::Scalar(ev.steps.iter().map(|&t| t as f64 / 1000.0).collect())),
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; n])),
        "vector" => {
            let v = scalar_arg(ev, args[0])?;
            Ok(Val::Vector(vec![Series {
                labels: Labels::default(),
                drop_name: false,
                values: v.into_iter().map(Some).collect(),
            }]))
        }
        "scalar" => {
            let v = vector_arg(ev, args[0])?;
            Ok(Val::Scalar(
                (0..n)
                    .map(|k| {
                        let mut present = v.iter().filter_map(|s| s.values[k]);
                        match (present.next(), present.next()) {
                            (Some(x), None) => x,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            ))
        }
        "timestamp" => {
            let v = match args[0] {
                Expr::VectorSelector(vs) => ev.vector_selector(vs, true)?,
                other => {
                    let v = vector_arg(ev, other)?;
                    map_values(v, |_, k| ev.steps[k] as f64 / 1000.0)
                }
            };
            Ok(Val::Vector(map_values(v, |x, _| x)))
        }
        "round" => {
            let to = match args.get(1) {
                Some(e) => scalar_arg(ev, e)?,
                None => vec![1.0; n],
            };
            let v = vector_arg(ev, args[0])?;
            Ok(Val::Vector(map_values(v, |x, k| {
                let inv = 1.0 / to[k];
                (x * inv + 0.5).floor() / inv
            })))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = vector_arg(ev, args[0])?;
            let (lo, hi) = match name {
                "clamp" => (scalar_arg(ev, args[1])?, scalar_arg(ev, args[2])?),
                "clamp_min" => (scalar_arg(ev, args[1])?, vec![f64::INFINITY; n]),
                _ => (vec![f64::NEG_INFINITY; n], scalar_arg(ev, args[1])?),
            };
            let mut v = map_values(v, |x, k| go_max(lo[k], go_min(hi[k], x)));
            for s in &mut v {
                for (k, slot) in s.values.iter_mut().enumerate() {
                    if hi[k] < lo[k] {
                        *slot = None;
                    }
                }
            }
            v.retain(|s| s.values.iter().any(Option::is_some));
            Ok(Val::Vector(v))
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute" | "month" | "year" => {
            if args.is_empty() {
                return Ok(Val::Vector(vec![Series {
                    labels: Labels::default(),
                    drop_name: false,
                    values: ev.steps.iter().map(|&t| Some(date_part(name, (t / 1000) as f64))).collect(),
                }]));
            }
            let v = vector_arg(ev, args[0])?;
            Ok(Val::Vector(map_values(v, |x, _| {
                if x.is_finite() { date_part(name, x) } else { f64::NAN }
            })))
        }
        "absent" => {
            let v = vector_arg(ev, args[0])?;
            let values: Vec<Option<f64>> = (0..n).map(|k| (!v.iter().any(|s| s.values[k].is_some())).then_some(1.0)).collect();
            Ok(Val::Vector(absent_series(args[0], values)))
        }
        "absent_over_time" => {
            let w = matrix_arg(ev, args[0])?;
            let values: Vec<Option<f64>> = (0..n)
                .map(|k| (!w.series.iter().any(|s| !w.window(s, k).is_empty())).then_some(1.0))
                .collect();
            Ok(Val::Vector(absent_series(args[0], values)))
        }
        "label_replace" => {
            let v = vector_arg(ev, args[0])?;
            let (dst, repl, src, re) = (
                string_arg(args[1])?,
                string_arg(args[2])?,
                string_arg(args[3])?,
                string_arg(args[4])?,
            );
            let regex = fedwatch_model::matcher::anchored_regex(&re)
                .map_err(|_| exec(format!("invalid regular expression in label_replace(): {re}")))?;
            if !valid_label_name(&dst) {
                return Err(exec(format!("invalid destination label name in label_replace(): {dst}")));
            }
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                let src_val = s.labels.get(&src).unwrap_or("").to_string();
                if let Some(caps) = regex.captures(&src_val) {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    let mut b = s.labels.builder();
                    b.set(dst.clone(), res);
                    s.labels = b.build();
                    if dst == METRIC_NAME {
                        s.drop_name = false;
                    }
                }
                out.push(s);
            }
            Ok(Val::Vector(merge_same_labels(out)?))
        }
        "label_join" => {
            let v = vector_arg(ev, args[0])?;
            let (dst, sep) = (string_arg(args[1])?, string_arg(args[2])?);
            let mut srcs = Vec::new();
            for a in &args[3..] {
                let s = string_arg(a)?;
                if !valid_label_name(&s) {
                    return Err(exec(format!("invalid source label name in label_join(): {s}")));
                }
                srcs.push(s);
            }
            if !valid_label_name(&dst) {
                return Err(exec(format!("invalid destination label name in label_join(): {dst}")));
            }
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                let joined: Vec<&str> = srcs.iter().map(|l| s.labels.get(l).unwrap_or("")).collect();
                let joined = joined.join(&sep);
                let mut b = s.labels.builder();
                b.set(dst.clone(), joined);
                s.labels = b.build();
                if dst == METRIC_NAME {
                    s.drop_name = false;
                }
                out.push(s);
            }
            Ok(Val::Vector(merge_same_labels(out)?))
        }
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
            let mut v = vector_arg(ev, args[0])?;
            if ev.start != ev.end {
                ev.warn("sort is ineffective for range queries since results are always ordered by labels");
            }
            if n != 1 {
                return Ok(Val::Vector(v));
            }
            let key = |s: &Series| s.values[0].unwrap_or(f64::NAN);
            match name {
                "sort" | "sort_desc" => {
                    let desc = name == "sort_desc";
                    v.sort_by(|a, b| {
                        let (x, y) = (key(a), key(b));
                        match (x.is_nan(), y.is_nan()) {
                            (true, true) => std::cmp::Ordering::Equal,
                            (true, false) => std::cmp::Ordering::Greater,
                            (false, true) => std::cmp::Ordering::Less,
                            _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                            _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                        }
                    });
                }
                _ => {
                    let names: Vec<String> = args[1..].iter().map(|a| string_arg(a)).collect::<Result<_, _>>()?;
                    let desc = name == "sort_by_label_desc";
                    v.sort_by(|a, b| {
                        for l in &names {
                            let o = natural_cmp(a.labels.get(l).unwrap_or(""), b.labels.get(l).unwrap_or(""));
                            if o != std::cmp::Ordering::Equal {
                                return if desc { o.reverse() } else { o };
                            }
                        }
                        let o = a.labels.cmp(&b.labels);
                        if desc { o.reverse() } else { o }
                    });
                }
            }
            Ok(Val::Vector(v))
        }
        "histogram_quantile" => {
            let q = scalar_arg(ev, args[0])?;
            let v = vector_arg(ev, args[1])?;
            q.iter().for_each(|&q| check_quantile(ev, q));
            Ok(Val::Vector(over_buckets(ev, &v, n, |b, k| bucket_quantile(q[k], b))))
        }
        "histogram_fraction" => {
            let lo = scalar_arg(ev, args[0])?;
            let hi = scalar_arg(ev, args[1])?;
            let v = vector_arg(ev, args[2])?;
            Ok(Val::Vector(over_buckets(ev, &v, n, |b, k| {
                (bucket_fraction(lo[k], hi[k], b), false)
            })))
        }
        "histogram_quantiles" => {
            let v = vector_arg(ev, args[0])?;
            let label = string_arg(args[1])?;
            let mut out = Vec::new();
            for a in &args[2..] {
                let q = scalar_arg(ev, a)?;
                // The label value is the first step's quantile, as parameters are literals in practice.
                let qs = format_openmetrics_float(q.first().copied().unwrap_or(f64::NAN));
                q.iter().for_each(|&q| check_quantile(ev, q));
                for mut s in over_buckets(ev, &v, n, |b, k| bucket_quantile(q[k], b)) {
                    let mut b = s.labels.builder();
                    b.set(label.clone(), qs.clone());
                    s.labels = b.build();
                    out.push(s);
                }
            }
            Ok(Val::Vector(out))
        }
        "step" => Ok(Val::Scalar(vec![
            if n > 1 || ev.interval > 1 {
                ev.interval as f64 / 1000.0
            } else {
                0.0
            };
            n
        ])),
        "range" => Ok(Val::Scalar(vec![(ev.query_end - ev.query_start) as f64 / 1000.0; n])),
        "start" => Ok(Val::Scalar(vec![ev.query_start as f64 / 1000.0; n])),
        "end" => Ok(Val::Scalar(vec![ev.query_end as f64 / 1000.0; n])),
        "min_of" | "max_of" => {
            let a = scalar_arg(ev, args[0])?;
            let b = scalar_arg(ev, args[1])?;
            let min = name == "min_of";
            Ok(Val::Scalar(
                a.into_iter()
                    .zip(b)
                    .map(|(x, y)| {
                        if x.is_nan() || y.is_nan() {
                            f64::NAN
                        } else if min {
                            x.min(y)
                        } else {
                            x.max(y)
                        }
                    })
                    .collect(),
            ))
        }
        "info" => crate::info::info(ev, &args),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev" | "histogram_stdvar" => {
            // Only native histograms have these; floats give nothing, as in Prometheus.
            for a in &args {
                ev.eval(a)?;
            }
            Ok(Val::Vector(Vec::new()))
        }
        _ => range_function(ev, name, &args),
    }
}

fn absent_series(arg: &Expr, values: Vec<Option<f64>>) -> Vec<Series> {
    if values.iter().all(Option::is_none) {
        return Vec::new();
    }
    vec![Series {
        labels: absent_labels(arg),
        drop_name: false,
        values,
    }]
}

/// Compares strings with digit runs compared as numbers, as Prometheus's `sort_by_label`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let (na, nb) = (a[si..i].trim_start_matches('0'), b[sj..j].trim_start_matches('0'));
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = ab[i].cmp(&bb[j]);
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

/// Warns about a quantile outside [0, 1], as Prometheus's `validateQuantile`.
pub(crate) fn check_quantile(ev: &Evaluator, q: f64) {
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        ev.warn(format!("quantile value should be between 0 and 1, got {}", go_float(q)));
    }
}

/// Prometheus's `BucketQuantile` over classic `le` buckets; also whether the bucket counts
/// had to be forced monotonic.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return (f64::NAN, false),
    }
    // Coalesce buckets with the same bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    // Force monotonicity and ignore tiny float deltas.
    let mut prev = merged[0].1;
    let mut forced = false;
    for b in merged.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    if merged.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|x| x.1 < rank);
    if b == merged.len() - 1 {
        return (merged[merged.len() - 2].0, forced);
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return (merged[0].0, forced);
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

/// Prometheus's `almost.Equal`.
pub(crate) fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches('+');
    match t.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => return Some(if s.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY }),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if s.contains('_') || s.is_empty() {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Classic histogram bucket series grouped by their labels without `le`: (labels, [(series, le)]).
fn classic_groups(ev: &Evaluator, v: &[Series]) -> Vec<(Labels, Vec<(usize, f64)>)> {
    let mut groups: Vec<(Labels, Vec<(usize, f64)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (i, s) in v.iter().enumerate() {
        let le = s.labels.get("le").unwrap_or("");
        let Some(ub) = parse_go_float(le) else {
            ev.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of {le:?}{}",
                for_metric(&s.labels)
            ));
            continue;
        };
        let mut b = s.labels.builder();
        b.del("le");
        let key = b.build();
        let gi = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[gi].1.push((i, ub));
    }
    groups
}

/// ` for metric name "x"` when the series has a name, as Prometheus's `maybeAddMetricName`.
fn for_metric(l: &Labels) -> String {
    l.metric_name().map(|n| format!(" for metric name {n:?}")).unwrap_or_default()
}

/// Evaluates `f` on each group's buckets at each step; output series lose their name. `f`
/// also says whether it had to force the buckets monotonic (an info annotation).
fn over_buckets(ev: &Evaluator, v: &[Series], n: usize, mut f: impl FnMut(&mut Vec<(f64, f64)>, usize) -> (f64, bool)) -> Vec<Series> {
    let mut out = Vec::new();
    let mut buckets = Vec::new();
    for (labels, members) in classic_groups(ev, v) {
        let mut values = vec![None; n];
        for (k, slot) in values.iter_mut().enumerate() {
            buckets.clear();
            for &(i, ub) in &members {
                if let Some(c) = v[i].values[k] {
                    buckets.push((ub, c));
                }
            }
            if !buckets.is_empty() {
                let (value, forced) = f(&mut buckets, k);
                if forced {
                    ev.info(format!(
                        "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile){}",
                        for_metric(&labels)
                    ));
                }
                *slot = Some(value);
            }
        }
        if values.iter().any(Option::is_some) {
            out.push(Series {
                labels,
                drop_name: true,
                values,
            });
        }
    }
    out
}

/// Prometheus's `BucketFraction`: the share of observations between `lower` and `upper`.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    let count = merged[merged.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if merged[0].0 <= 0.0 { f64::NEG_INFINITY } else { 0.0 };
    for (i, &(upper_bound, bc)) in merged.iter().enumerate() {
        if i > 0 {
            lower_bound = merged[i - 1].0;
        }
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                bc
            } else {
                rank + (bc - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bc;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Go's `labels.FormatOpenMetricsFloat`: integers keep a `.0`.
fn format_openmetrics_float(v: f64) -> String {
    let s = fedwatch_model::format_go_float(v, 'f');
    if v.is_finite() && !s.contains(['.', 'e']) {
        format!("{s}.0")
    } else {
        s
    }
}

/// Prometheus's info annotation for `rate`/`increase` over a metric not named like a counter.
fn counter_name_info(ev: &Evaluator, out: &[Series]) {
    for s in out {
        let Some(metric) = s.labels.metric_name() else { continue };
        if !["_total", "_sum", "_count", "_bucket"].iter().any(|x| metric.ends_with(x)) {
            ev.info(format!(
                "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
            ));
        }
    }
}

fn range_function(ev: &Evaluator, name: &'static str, args: &[&Expr]) -> Result<Val, QueryError> {
    let n = ev.n();
    if fedwatch_tsdb::downsample::FUNCS.contains(&name)
        && let Some(Expr::MatrixSelector(ms)) = args.first()
        && let Some(bw) = ev.select_downsampled(ms, name)?
    {
        ev.check_points(bw.series.len())?;
        let out = crate::downsampled::evaluate(&bw, name)?;
        if matches!(name, "rate" | "increase") {
            counter_name_info(ev, &out);
        }
        return Ok(Val::Vector(out));
    }
    // The range vector is the first argument except for quantile_over_time.
    let (w, extra) = match name {
        "quantile_over_time" => (matrix_arg(ev, args[1])?, vec![scalar_arg(ev, args[0])?]),
        "predict_linear" => (matrix_arg(ev, args[0])?, vec![scalar_arg(ev, args[1])?]),
        "double_exponential_smoothing" | "holt_winters" => {
            (matrix_arg(ev, args[0])?, vec![scalar_arg(ev, args[1])?, scalar_arg(ev, args[2])?])
        }
        _ => (
            matrix_arg(ev, args.first().ok_or_else(|| exec(format!("{name} needs an argument")))?)?,
            Vec::new(),
        ),
    };
    ev.check_points(w.series.len())?;
    let range = w.range;
    let steps = &ev.steps;
    let out = match name {
        "rate" | "increase" | "delta" => {
            let (counter, rate) = (name != "delta", name == "rate");
            let out = over_windows(&w, false, |s, _, r| extrapolated_rate(s, r - range, r, range, counter, rate));
            if counter {
                counter_name_info(ev, &out);
            }
            out
        }
        "irate" => over_windows(&w, false, |s, _, _| instant_value(s, true)),
        "idelta" => over_windows(&w, false, |s, _, _| instant_value(s, false)),
        "changes" => over_windows(&w, false, |s, _, _| {
            Some(
                s.windows(2)
                    .filter(|p| p[1].v != p[0].v && !(p[1].v.is_nan() && p[0].v.is_nan()))
                    .count() as f64,
            )
        }),
        "resets" => over_windows(&w, false, |s, _, _| Some(s.windows(2).filter(|p| p[1].v < p[0].v).count() as f64)),
        "deriv" => over_windows(&w, false, |s, _, _| (s.len() >= 2).then(|| linear_regression(s, s[0].t).0)),
        "predict_linear" => over_windows(&w, false, |s, k, _| {
            if s.len() < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(s, steps[k]);
            Some(slope * extra[0][k] + intercept)
        }),
        "double_exponential_smoothing" | "holt_winters" => {
            for (&sf, &tf) in extra[0].iter().zip(&extra[1]).take(n) {
                if sf <= 0.0 || sf >= 1.0 {
                    return Err(exec(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}")));
                }
                if tf <= 0.0 || tf >= 1.0 {
                    return Err(exec(format!("invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}")));
                }
            }
            over_windows(&w, false, |s, k, _| {
                if s.len() < 2 {
                    return None;
                }
                let (sf, tf) = (extra[0][k], extra[1][k]);
                let (mut s0, mut s1, mut b) = (0.0, s[0].v, s[1].v - s[0].v);
                for (i, p) in s.iter().enumerate().skip(1) {
                    let x = sf * p.v;
                    if i > 1 {
                        b = tf * (s1 - s0) + (1.0 - tf) * b;
                    }
                    let y = (1.0 - sf) * (s1 + b);
                    s0 = s1;
                    s1 = x + y;
                }
                Some(s1)
            })
        }
        "avg_over_time" => over_windows(&w, false, |s, _, _| Some(avg_of(s))),
        "sum_over_time" => over_windows(&w, false, |s, _, _| {
            let (mut sum, mut c) = (0.0, 0.0);
            for p in s {
                (sum, c) = kahan_inc(p.v, sum, c);
            }
            Some(if sum.is_infinite() { sum } else { sum + c })
        }),
        "count_over_time" => over_windows(&w, false, |s, _, _| Some(s.len() as f64)),
        "min_over_time" => over_windows(&w, false, |s, _, _| Some(pick_over_time(s, |c, m| c < m || m.is_nan(), false))),
        "max_over_time" => over_windows(&w, false, |s, _, _| Some(pick_over_time(s, |c, m| c > m || m.is_nan(), false))),
        "ts_of_min_over_time" => over_windows(&w, false, |s, _, _| Some(pick_over_time(s, |c, m| c < m || m.is_nan(), true))),
        "ts_of_max_over_time" => over_windows(&w, false, |s, _, _| Some(pick_over_time(s, |c, m| c > m || m.is_nan(), true))),
        "last_over_time" => over_windows(&w, true, |s, _, _| s.last().map(|p| p.v)),
        "first_over_time" => over_windows(&w, true, |s, _, _| s.first().map(|p| p.v)),
        "ts_of_last_over_time" => over_windows(&w, false, |s, _, _| s.last().map(|p| p.t as f64 / 1000.0)),
        "ts_of_first_over_time" => over_windows(&w, false, |s, _, _| s.first().map(|p| p.t as f64 / 1000.0)),
        "present_over_time" => over_windows(&w, false, |_, _, _| Some(1.0)),
        "stddev_over_time" => over_windows(&w, false, |s, _, _| Some(variance_of(s).sqrt())),
        "stdvar_over_time" => over_windows(&w, false, |s, _, _| Some(variance_of(s))),
        "quantile_over_time" => windows_of(&w.series, &w, false, |s, k, _| {
            check_quantile(ev, extra[0][k]);
            let mut vals: Vec<f64> = s.iter().map(|p| p.v).collect();
            Some(quantile(extra[0][k], &mut vals))
        }),
        "mad_over_time" => over_windows(&w, false, |s, _, _| {
            let mut vals: Vec<f64> = s.iter().map(|p| p.v).collect();
            if vals.iter().any(|v| v.is_nan()) {
                return Some(f64::NAN);
            }
            let median = quantile(0.5, &mut vals);
            for v in &mut vals {
                *v = (*v - median).abs();
            }
            Some(quantile(0.5, &mut vals))
        }),
        other => return Err(QueryError::Unsupported(format!("function {other}()"))),
    };
    Ok(Val::Vector(out))
}
