//! Aggregation operators with `by`/`without`.
//!
//! Series are assigned to groups once; values are then folded per step with Prometheus's
//! exact float arithmetic (Kahan–Neumaier sums, its incremental mean on overflow, Welford
//! variance), because the test files pin results to the last few bits. The selecting
//! operators (`topk`, `bottomk`, `limitk`, `limit_ratio`) keep their input series; for an
//! instant query their output is ordered the way Prometheus orders it.

use std::collections::HashMap;

use fedwatch_model::{Labels, METRIC_NAME};
use promql_parser::parser::token::{self};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use crate::QueryError;
use crate::engine::{Evaluator, Series, Val, exec};
use crate::functions::go_float;

pub(crate) use fedwatch_tsdb::downsample::kahan_inc;

/// Prometheus's `quantile`: linear interpolation between the closest ranks, NaN sorted first.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Whether `name` is a valid label name (legacy charset, as the test suite expects).
pub(crate) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
        _ => false,
    }
}

fn grouping_labels(l: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    let mut b = l.builder();
    match modifier {
        Some(LabelModifier::Include(by)) => {
            b.retain(|x| by.labels.iter().any(|n| n == &x.name));
        }
        Some(LabelModifier::Exclude(without)) => {
            b.retain(|x| x.name != METRIC_NAME && !without.labels.iter().any(|n| n == &x.name));
        }
        None => {
            b.retain(|_| false);
        }
    }
    b.build()
}

pub(crate) fn aggregate(ev: &Evaluator, agg: &AggregateExpr) -> Result<Val, QueryError> {
    let n = ev.n();
    let op = agg.op.id();
    let param = match &agg.param {
        Some(p) => Some(ev.eval(p)?),
        None => None,
    };
    let input = match ev.eval(&agg.expr)? {
        Val::Vector(v) => v,
        other => return Err(exec(format!("aggregation over a {}", other.type_name()))),
    };
    let scalar_param = |what: &str| -> Result<Vec<f64>, QueryError> {
        match &param {
            Some(Val::Scalar(v)) => Ok(v.clone()),
            _ => Err(exec(format!("expected scalar parameter for {what}"))),
        }
    };
    // Group assignment, once per series.
    let mut group_of = Vec::with_capacity(input.len());
    let mut group_labels: Vec<Labels> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in &input {
        let g = grouping_labels(&s.labels, &agg.modifier);
        let next = group_labels.len();
        let id = *index.entry(g.clone()).or_insert_with(|| {
            group_labels.push(g);
            next
        });
        group_of.push(id);
    }
    let ng = group_labels.len();
    match op {
        token::T_TOPK | token::T_BOTTOMK | token::T_LIMITK | token::T_LIMIT_RATIO => {
            let p = scalar_param("k")?;
            if op == token::T_LIMIT_RATIO {
                if p.iter().any(|v| v.is_nan()) {
                    return Err(exec("Ratio value is NaN"));
                }
                let (lo, hi) = p.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
                if hi > 1.0 {
                    ev.warn(format!(
                        "ratio value should be between -1 and 1, got {}, capping to 1",
                        go_float(hi)
                    ));
                }
                if lo < -1.0 {
                    ev.warn(format!(
                        "ratio value should be between -1 and 1, got {}, capping to -1",
                        go_float(lo)
                    ));
                }
            } else if p.iter().any(|v| v.is_nan()) {
                return Err(exec("Parameter value is NaN"));
            } else if let Some(v) = p.iter().find(|v| **v >= 9.223_372_036_854_776e18) {
                return Err(exec(format!("Scalar value {} overflows int64", go_float(*v))));
            } else if let Some(v) = p.iter().find(|v| **v <= -9.223_372_036_854_776e18) {
                return Err(exec(format!("Scalar value {} underflows int64", go_float(*v))));
            }
            select_k(op, input, &group_of, ng, &p, n).map(Val::Vector)
        }
        token::T_COUNT_VALUES => {
            let label = match &param {
                Some(Val::String(s)) => s.clone(),
                _ => return Err(exec("expected string parameter for count_values")),
            };
            if !valid_label_name(&label) {
                return Err(exec(format!("invalid label name {label:?}")));
            }
            let mut out: Vec<Series> = Vec::new();
            let mut out_index: HashMap<Labels, usize> = HashMap::new();
            for k in 0..n {
                let mut counts: Vec<(Labels, f64)> = Vec::new();
                let mut pos: HashMap<Labels, usize> = HashMap::new();
                for (s, &g) in input.iter().zip(&group_of) {
                    let Some(v) = s.values[k] else { continue };
                    let mut b = group_labels[g].builder();
                    b.set(label.clone(), fedwatch_model::format_go_float(v, 'f'));
                    let l = b.build();
                    match pos.get(&l) {
                        Some(&i) => counts[i].1 += 1.0,
                        None => {
                            pos.insert(l.clone(), counts.len());
                            counts.push((l, 1.0));
                        }
                    }
                }
                for (l, c) in counts {
                    let i = *out_index.entry(l.clone()).or_insert_with(|| {
                        out.push(Series {
                            labels: l,
                            drop_name: false,
                            values: vec![None; n],
                        });
                        out.len() - 1
                    });
                    out[i].values[k] = Some(c);
                }
            }
            Ok(Val::Vector(out))
        }
        _ => {
            let q = if op == token::T_QUANTILE {
                scalar_param("quantile")?
            } else {
                Vec::new()
            };
            let mut out: Vec<Series> = group_labels
                .into_iter()
                .map(|labels| Series {
                    labels,
                    drop_name: false,
                    values: vec![None; n],
                })
                .collect();
            if op == token::T_QUANTILE {
                if q.iter().any(|v| v.is_nan()) {
                    crate::functions::check_quantile(ev, f64::NAN);
                }
                let (lo, hi) = q.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
                if hi > 1.0 {
                    crate::functions::check_quantile(ev, hi);
                }
                if lo < 0.0 {
                    crate::functions::check_quantile(ev, lo);
                }
                // Quantiles need every value; collect per group and step, in series order.
                let mut members: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); n]; ng];
                for (s, &g) in input.iter().zip(&group_of) {
                    for (k, v) in s.values.iter().enumerate() {
                        if let Some(v) = v {
                            members[g][k].push(*v);
                            out[g].drop_name |= s.drop_name;
                        }
                    }
                }
                for (g, steps) in members.iter_mut().enumerate() {
                    for (k, vals) in steps.iter_mut().enumerate() {
                        if !vals.is_empty() {
                            out[g].values[k] = Some(quantile(q[k], vals));
                        }
                    }
                }
            } else {
                // Streaming accumulators per group and step, fed series by series: the
                // order of values within a group and step is the same as Prometheus's.
                let mut acc: Vec<Acc> = vec![Acc::default(); ng * n];
                for (s, &g) in input.iter().zip(&group_of) {
                    let row = &mut acc[g * n..(g + 1) * n];
                    let mut any = false;
                    for (a, v) in row.iter_mut().zip(&s.values) {
                        if let Some(v) = v {
                            a.add(op, *v);
                            any = true;
                        }
                    }
                    if any && s.drop_name {
                        out[g].drop_name = true;
                    }
                }
                for (g, series) in out.iter_mut().enumerate() {
                    for (k, a) in acc[g * n..(g + 1) * n].iter().enumerate() {
                        if a.count > 0.0 {
                            series.values[k] = Some(a.result(op));
                        }
                    }
                }
            }
            out.retain(|s| s.values.iter().any(Option::is_some));
            Ok(Val::Vector(out))
        }
    }
}

/// One group's running aggregate at one step, with Prometheus's float arithmetic.
#[derive(Clone, Copy, Default)]
struct Acc {
    count: f64,
    value: f64,
    kahan: f64,
    mean: f64,
    incremental: bool,
}

impl Acc {
    fn add(&mut self, op: token::TokenId, v: f64) {
        if self.count == 0.0 {
            self.count = 1.0;
            self.value = v;
            self.mean = v;
            if matches!(op, token::T_STDDEV | token::T_STDVAR) {
                self.value = if v.is_nan() || v.is_infinite() { f64::NAN } else { 0.0 };
            }
            return;
        }
        self.count += 1.0;
        match op {
            token::T_SUM => (self.value, self.kahan) = kahan_inc(v, self.value, self.kahan),
            token::T_AVG => {
                if !self.incremental {
                    let (ns, nc) = kahan_inc(v, self.value, self.kahan);
                    if !ns.is_infinite() {
                        (self.value, self.kahan) = (ns, nc);
                        return;
                    }
                    // The direct sum would overflow: switch to an incremental mean.
                    self.incremental = true;
                    self.mean = self.value / (self.count - 1.0);
                    self.kahan /= self.count - 1.0;
                }
                let q = (self.count - 1.0) / self.count;
                (self.mean, self.kahan) = kahan_inc(v / self.count, q * self.mean, q * self.kahan);
            }
            token::T_MIN if self.value > v || self.value.is_nan() => self.value = v,
            token::T_MAX if self.value < v || self.value.is_nan() => self.value = v,
            token::T_STDDEV | token::T_STDVAR => {
                let delta = v - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (v - self.mean);
            }
            _ => {}
        }
    }

    fn result(&self, op: token::TokenId) -> f64 {
        match op {
            token::T_SUM => {
                if self.value.is_infinite() {
                    self.value
                } else {
                    self.value + self.kahan
                }
            }
            token::T_AVG if self.incremental => self.mean + self.kahan,
            token::T_AVG => self.value / self.count + self.kahan / self.count,
            token::T_COUNT => self.count,
            token::T_GROUP => 1.0,
            token::T_STDVAR => self.value / self.count,
            token::T_STDDEV => (self.value / self.count).sqrt(),
            _ => self.value,
        }
    }
}

/// Prometheus's `ratiosampler`: a series is in `limit_ratio(r, …)` by where its label hash falls.
fn in_ratio(labels: &Labels, r: f64) -> bool {
    let offset = go_labels_hash(labels) as f64 / u64::MAX as f64;
    if r >= 0.0 { offset < r } else { offset >= 1.0 + r }
}

/// Go's `labels.Labels.Hash()`: xxHash64 over `name 0xff value 0xff` pairs.
fn go_labels_hash(labels: &Labels) -> u64 {
    let mut buf = Vec::with_capacity(128);
    for l in labels.iter() {
        buf.extend_from_slice(l.name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(l.value.as_bytes());
        buf.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&buf, 0)
}

fn select_k(op: token::TokenId, input: Vec<Series>, group_of: &[usize], ng: usize, p: &[f64], n: usize) -> Result<Vec<Series>, QueryError> {
    let ordered_instant = n == 1;
    let mut keep: Vec<Vec<bool>> = vec![vec![false; n]; input.len()];
    // For an instant query, the output order: group by group, then by value as Prometheus sorts.
    let mut order: Vec<usize> = Vec::new();
    let nan_last_desc = |a: f64, b: f64| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
    };
    let nan_last_asc = |a: f64, b: f64| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    };
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); ng];
    let mut group_order: Vec<usize> = Vec::new();
    for k in 0..n {
        groups.iter_mut().for_each(Vec::clear);
        group_order.clear();
        for (i, s) in input.iter().enumerate() {
            if s.values[k].is_some() {
                if groups[group_of[i]].is_empty() {
                    group_order.push(group_of[i]);
                }
                groups[group_of[i]].push(i);
            }
        }
        let param = p[k];
        for &g in &group_order {
            let members = &mut groups[g];
            let chosen: Vec<usize> = match op {
                token::T_LIMIT_RATIO => {
                    if param == 0.0 {
                        continue;
                    }
                    let r = param.clamp(-1.0, 1.0);
                    members.iter().copied().filter(|&i| in_ratio(&input[i].labels, r)).collect()
                }
                _ => {
                    let kk = param as i64;
                    if kk < 1 {
                        continue;
                    }
                    let kk = (kk as usize).min(members.len());
                    if op == token::T_LIMITK {
                        members[..kk].to_vec()
                    } else {
                        let val = |i: usize| input[i].values[k].unwrap_or(f64::NAN);
                        // Ties go to the earlier series, so the order is total and a partial
                        // selection picks exactly what a stable sort would.
                        let order = |a: &usize, b: &usize| {
                            let by_value = if op == token::T_TOPK {
                                nan_last_desc(val(*a), val(*b))
                            } else {
                                nan_last_asc(val(*a), val(*b))
                            };
                            by_value.then(a.cmp(b))
                        };
                        if kk < members.len() {
                            members.select_nth_unstable_by(kk, order);
                        }
                        let mut top = members[..kk].to_vec();
                        top.sort_by(order);
                        top
                    }
                }
            };
            for i in chosen {
                keep[i][k] = true;
                if ordered_instant {
                    order.push(i);
                }
            }
        }
    }
    let mut input: Vec<Option<Series>> = input.into_iter().map(Some).collect();
    let mut out = Vec::new();
    if ordered_instant {
        for i in order {
            if let Some(s) = input[i].take() {
                out.push(s);
            }
        }
    } else {
        for (i, s) in input.into_iter().enumerate() {
            let Some(mut s) = s else { continue };
            for (k, v) in s.values.iter_mut().enumerate() {
                if !keep[i][k] {
                    *v = None;
                }
            }
            if s.values.iter().any(Option::is_some) {
                out.push(s);
            }
        }
    }
    Ok(out)
}
