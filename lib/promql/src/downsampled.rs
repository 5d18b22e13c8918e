//! Range functions over a downsampled level's buckets instead of raw samples.
//!
//! The store hands buckets only when the level's resolution divides the range and every
//! window's end, so a window `(ref - range, ref]` is exactly the buckets ending in it. Each
//! function then reads the fields that determine its raw result (see `lib/tsdb/FORMAT.md`,
//! "Downsampled levels"):
//!
//! - `count_over_time`: Σ count. `present_over_time`: 1. Exact.
//! - `min_over_time`, `max_over_time`: the same pick rule over bucket min/max (NaN loses to
//!   any number, the earliest of equal values wins). Exact.
//! - `first_over_time`, `last_over_time` (and `ts_of_*`): the first/last bucket's first/last
//!   sample. Exact.
//! - `sum_over_time`: Kahan sum of the buckets' compensated sums; `avg_over_time`: that sum
//!   over Σ count. Within 1e-12 relative of raw for finite sums (raw sums sample by sample;
//!   integers below 2^53 come out the same). An overflowing `avg_over_time` window (raw
//!   switches to an incremental mean) is the one case that differs.
//! - `changes`, `resets`: Σ per-bucket counts plus the pairs across bucket edges. Exact.
//! - `rate`, `increase`, `delta`: `last − first` of the window, plus (counters) every drop's
//!   previous value, bucket by bucket in time order, then Prometheus's extrapolation with the
//!   first and last sample and Σ count. Bit for bit equal when no bucket holds two or more
//!   counter resets (a bucket adds its drops as one pre-summed value); otherwise within
//!   1e-12 relative.

use fedwatch_tsdb::Bucket;
use fedwatch_tsdb::downsample::kahan_inc;

use crate::QueryError;
use crate::engine::{BucketWindowed, Series, exec};
use crate::functions::{Window, extrapolate};

/// Evaluates range function `name` (one of `fedwatch_tsdb::downsample::FUNCS`) over every window.
pub(crate) fn evaluate(bw: &BucketWindowed, name: &str) -> Result<Vec<Series>, QueryError> {
    let f: fn(&[Bucket], i64, i64) -> f64 = match name {
        "count_over_time" => |b, _, _| b.iter().map(|x| x.count).sum::<u64>() as f64,
        "present_over_time" => |_, _, _| 1.0,
        "min_over_time" => |b, _, _| pick(b.iter().map(|x| x.min), |c, m| c < m),
        "max_over_time" => |b, _, _| pick(b.iter().map(|x| x.max), |c, m| c > m),
        "first_over_time" => |b, _, _| b[0].first.v,
        "last_over_time" => |b, _, _| b[b.len() - 1].last.v,
        "ts_of_first_over_time" => |b, _, _| b[0].first.t as f64 / 1000.0,
        "ts_of_last_over_time" => |b, _, _| b[b.len() - 1].last.t as f64 / 1000.0,
        "sum_over_time" => |b, _, _| {
            let (sum, c) = sum(b);
            if sum.is_infinite() { sum } else { sum + c }
        },
        "avg_over_time" => |b, _, _| {
            let (sum, c) = sum(b);
            let count = b.iter().map(|x| x.count).sum::<u64>() as f64;
            sum / count + c / count
        },
        "changes" => |b, _, _| {
            let edges = b.windows(2).filter(|p| changed(p[0].last.v, p[1].first.v)).count() as u64;
            (edges + b.iter().map(|x| x.changes).sum::<u64>()) as f64
        },
        "resets" => |b, _, _| {
            let edges = b.windows(2).filter(|p| p[1].first.v < p[0].last.v).count() as u64;
            (edges + b.iter().map(|x| x.resets).sum::<u64>()) as f64
        },
        // rate and friends need two samples; NaN marks "no value" and is filtered below.
        "rate" => |b, r, range| rate(b, r, range, true, true),
        "increase" => |b, r, range| rate(b, r, range, true, false),
        "delta" => |b, r, range| rate(b, r, range, false, false),
        other => return Err(exec(format!("{other}() has no downsampled implementation"))),
    };
    let needs_two = matches!(name, "rate" | "increase" | "delta");
    let keep_name = matches!(name, "first_over_time" | "last_over_time");
    let mut out = Vec::with_capacity(bw.series.len());
    for (labels, buckets) in &bw.series {
        let mut any = false;
        let (mut lo, mut hi, mut prev) = (0usize, 0usize, i64::MIN);
        let values: Vec<Option<f64>> = bw
            .refs
            .iter()
            .map(|&r| {
                if r < prev {
                    (lo, hi) = (0, 0);
                }
                prev = r;
                while hi < buckets.len() && buckets[hi].end <= r {
                    hi += 1;
                }
                while lo < hi && buckets[lo].end <= r - bw.range {
                    lo += 1;
                }
                let win = &buckets[lo..hi];
                if win.is_empty() || (needs_two && win.iter().map(|x| x.count).sum::<u64>() < 2) {
                    return None;
                }
                any = true;
                Some(f(win, r, bw.range))
            })
            .collect();
        if any {
            out.push(Series {
                labels: labels.clone(),
                drop_name: !keep_name,
                values,
            });
        }
    }
    Ok(out)
}

/// `min_over_time`'s rule: a NaN is replaced by anything, a number only by a `better` one.
fn pick(mut values: impl Iterator<Item = f64>, better: fn(f64, f64) -> bool) -> f64 {
    let mut best = values.next().unwrap_or(f64::NAN);
    for v in values {
        if better(v, best) || best.is_nan() {
            best = v;
        }
    }
    best
}

fn changed(before: f64, after: f64) -> bool {
    after != before && !(after.is_nan() && before.is_nan())
}

fn sum(b: &[Bucket]) -> (f64, f64) {
    let (mut sum, mut c) = (0.0, 0.0);
    for x in b {
        (sum, c) = kahan_inc(x.sum, sum, c);
        c += x.sum_c;
    }
    (sum, c)
}

/// `rate`, `increase` or `delta` of a window with at least two samples.
fn rate(b: &[Bucket], r: i64, range: i64, is_counter: bool, is_rate: bool) -> f64 {
    let (first, last) = (b[0].first, b[b.len() - 1].last);
    let mut result = last.v - first.v;
    if is_counter {
        // The same additions, in the same order, as over raw pairs.
        for (i, x) in b.iter().enumerate() {
            if i > 0 && x.first.v < b[i - 1].last.v {
                result += b[i - 1].last.v;
            }
            if x.resets > 0 {
                result += x.reset_sum;
            }
        }
    }
    let count = b.iter().map(|x| x.count).sum::<u64>() as usize;
    extrapolate(
        Window {
            first,
            last,
            count,
            range_start: r - range,
            range_end: r,
            range_ms: range,
        },
        result,
        is_counter,
        is_rate,
    )
}
