//! Range functions over downsampled levels answer as over raw samples.
//!
//! Random counters (with resets, gaps, stale markers and scrape jitter) and random gauges
//! (with NaNs) are written to a `Db` with downsampling on, cut into blocks and downsampled;
//! then every query in the table runs twice: against the `Db` (which answers aligned range
//! functions from a level, with the raw tail after the newest level block aggregated on the
//! fly) and against the same `Db` seen only through raw `select`. Results must be equal: bit
//! for bit for the exact functions, within 1e-9 relative for sums, averages and rates (see
//! `lib/tsdb/FORMAT.md`). The level a query used is checked through `Db::downsample_stats`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fedwatch_model::{Labels, Matcher, Sample, TimeSeries};
use fedwatch_promql::{Engine, RangeSeries};
use fedwatch_tsdb::{Appender, Db, DbOptions, FsyncPolicy, Querier, SelectError, SelectHints};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
/// A day boundary, so levels and blocks align with the query grid.
const T0: i64 = 1_699_920_000_000;
const SPAN: i64 = 14 * HOUR;

/// The same store without downsampled reads.
struct RawOnly(Arc<Db>);

impl Querier for RawOnly {
    fn select(&self, m: &[Matcher], h: SelectHints) -> Result<Vec<TimeSeries>, SelectError> {
        self.0.select(m, h)
    }
    fn label_names(&self, m: &[Matcher]) -> Result<Vec<String>, SelectError> {
        self.0.label_names(m)
    }
    fn label_values(&self, n: &str, m: &[Matcher]) -> Result<Vec<String>, SelectError> {
        self.0.label_values(n, m)
    }
    fn series(&self, m: &[Matcher]) -> Result<Vec<Labels>, SelectError> {
        self.0.series(m)
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fedwatch-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    TempDir(dir)
}

/// Samples of one random series over `[T0, T0 + SPAN)`.
fn random_series(rng: &mut Rng, counter: bool) -> Vec<Sample> {
    let interval = [10_000, 15_000, 30_000, 60_000][rng.below(4) as usize];
    let stale = f64::from_bits(fedwatch_model::STALE_NAN_BITS);
    let mut out = Vec::new();
    let mut t = T0 + rng.below(interval as u64) as i64;
    let mut v = rng.unit() * 100.0;
    while t < T0 + SPAN {
        match rng.below(1000) {
            // A gap: the target went away (sometimes with a stale marker) for up to 2 h.
            0..=2 => {
                if rng.below(2) == 0 {
                    out.push(Sample { t, v: stale });
                }
                t += rng.below(2 * HOUR as u64) as i64 + 1;
                continue;
            }
            3..=14 if counter => v = rng.unit() * 5.0,
            15..=17 if !counter => v = f64::NAN,
            _ if counter => v += (rng.below(1000) as f64) * 0.1 + rng.unit(),
            _ => v = (rng.unit() - 0.5) * 1e3,
        }
        out.push(Sample { t, v });
        // Scrape jitter: timestamps are rarely on bucket edges, but sometimes exactly on them.
        t += interval + rng.below(3) as i64 - 1;
    }
    out
}

fn open(dir: &TempDir) -> Arc<Db> {
    let opts = DbOptions {
        fsync: FsyncPolicy::Never,
        maintenance_in_append: true,
        downsample: true,
        ..Default::default()
    };
    Arc::new(Db::open(&dir.0, opts).expect("open"))
}

/// Writes the series in ten-minute slices, as scrapes would, and finishes maintenance.
fn load(db: &Db, series: &[(Labels, Vec<Sample>)]) {
    let mut cursors = vec![0usize; series.len()];
    let mut until = T0;
    while until < T0 + SPAN + 10 * MIN {
        until += 10 * MIN;
        let mut batch = Vec::new();
        for ((labels, samples), cur) in series.iter().zip(&mut cursors) {
            let from = *cur;
            while *cur < samples.len() && samples[*cur].t < until {
                *cur += 1;
            }
            if *cur > from {
                batch.push(TimeSeries {
                    labels: labels.clone(),
                    samples: samples[from..*cur].to_vec(),
                });
            }
        }
        let st = db.append(&batch).expect("append");
        assert_eq!(st.out_of_order, 0, "{st:?}");
    }
    db.compact().expect("compact");
}

fn dataset(seed: u64) -> Vec<(Labels, Vec<Sample>)> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for i in 0..6 {
        let id = i.to_string();
        out.push((
            Labels::from_pairs([("__name__", "requests_total"), ("i", id.as_str())]),
            random_series(&mut rng, true),
        ));
        out.push((
            Labels::from_pairs([("__name__", "temperature"), ("i", id.as_str())]),
            random_series(&mut rng, false),
        ));
    }
    out
}

fn close(a: f64, b: f64, exact: bool) -> bool {
    if a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) {
        return true;
    }
    !exact && (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

fn assert_same(what: &str, down: &[RangeSeries], raw: &[RangeSeries], exact: bool) {
    assert_eq!(down.len(), raw.len(), "{what}: series differ");
    for (d, r) in down.iter().zip(raw) {
        assert_eq!(d.labels, r.labels, "{what}");
        assert_eq!(d.samples.len(), r.samples.len(), "{what} {}: points differ", d.labels);
        for (x, y) in d.samples.iter().zip(&r.samples) {
            assert_eq!(x.t, y.t, "{what} {}", d.labels);
            assert!(
                close(x.v, y.v, exact),
                "{what} {} at {}: downsampled {} raw {}",
                d.labels,
                x.t,
                x.v,
                y.v
            );
        }
    }
}

/// Which level a query should read.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    Raw,
    FiveMin,
    Hour,
}

#[test]
fn downsampled_levels_answer_as_raw_samples() {
    let exact_funcs = [
        "count_over_time",
        "min_over_time",
        "max_over_time",
        "first_over_time",
        "last_over_time",
        "ts_of_last_over_time",
        "present_over_time",
        "changes",
        "resets",
    ];
    let close_funcs = ["rate", "increase", "delta", "sum_over_time", "avg_over_time"];
    // (range selector suffix, start offset from T0, step, level)
    let grids: [(&str, i64, i64, Want); 9] = [
        ("[1h]", 2 * HOUR, HOUR, Want::Hour),
        ("[3h]", HOUR, HOUR, Want::Hour),
        ("[10m]", 0, 5 * MIN, Want::FiveMin),
        ("[1h]", 30 * MIN, 30 * MIN, Want::FiveMin),
        ("[2h] offset 1h", 3 * HOUR, HOUR, Want::Hour),
        ("[15m] offset 5m", 20 * MIN, 15 * MIN, Want::FiveMin),
        // Not aligned: the step, the range, the start or the offset is off the 5m grid.
        ("[1h]", 2 * HOUR, 7 * MIN, Want::Raw),
        ("[7m]", HOUR, 5 * MIN, Want::Raw),
        ("[1h] offset 30s", HOUR, HOUR, Want::Raw),
    ];
    for seed in [1u64, 0x9e37_79b9_7f4a_7c15, 42_424_242] {
        let dir = temp_dir("downsample");
        let db = open(&dir);
        load(&db, &dataset(seed));
        let st = db.downsample_stats();
        assert!(st.blocks_written >= 8, "levels were built: {st:?} {:?}", db.blocks());
        // Levels follow raw compaction: one level block per raw block and level.
        assert!(st.compactions >= 2, "level blocks were merged: {st:?}");
        assert_eq!(st.blocks, 2 * db.blocks().len(), "{st:?} {:?}", db.blocks());
        let down = Engine::new(db.clone());
        let raw = Engine::new(Arc::new(RawOnly(db.clone())));
        let mut checked = 0;
        for (funcs, exact) in [(&exact_funcs[..], true), (&close_funcs[..], false)] {
            for func in funcs {
                for (metric, (sel, from, step, want)) in ["requests_total", "temperature"]
                    .iter()
                    .flat_map(|m| grids.iter().map(move |g| (m, g)))
                {
                    let q = format!("{func}({metric}{sel})");
                    let (start, end) = (T0 + from, T0 + SPAN + HOUR);
                    let before = db.downsample_stats();
                    let got = down.range_query(&q, start, end, *step).expect("query");
                    let after = db.downsample_stats();
                    let used = match (after.selects_5m - before.selects_5m, after.selects_1h - before.selects_1h) {
                        (0, 0) => Want::Raw,
                        (1, 0) => Want::FiveMin,
                        (0, 1) => Want::Hour,
                        other => panic!("{q}: {other:?} level selects"),
                    };
                    assert_eq!(used, *want, "{q} from {from} step {step}");
                    let expected = raw.range_query(&q, start, end, *step).expect("raw query");
                    assert!(!expected.is_empty(), "{q}: no data");
                    assert_same(&format!("seed {seed} {q} step {step}"), &got, &expected, exact);
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 14 * 2 * grids.len());
        // Instant queries at an aligned time use a level too, and `@` pins every window.
        for q in ["increase(requests_total[2h])", "max_over_time(temperature[1h] @ 1699956000)"] {
            let t = T0 + 9 * HOUR;
            let before = db.downsample_stats().selects_1h;
            let got = down.range_query(q, t, t, MIN).expect("query");
            assert_eq!(db.downsample_stats().selects_1h, before + 1, "{q}");
            assert_same(q, &got, &raw.range_query(q, t, t, MIN).expect("raw"), false);
        }
    }
}

#[test]
fn levels_survive_reopen_and_follow_raw_retention() {
    let dir = temp_dir("downsample-reopen");
    // A retention short enough that old raw blocks go (and, with it, no raw compaction).
    let opts = DbOptions {
        fsync: FsyncPolicy::Never,
        maintenance_in_append: true,
        downsample: true,
        retention: Some(Duration::from_secs(6 * 3600)),
        ..Default::default()
    };
    let built = {
        let db = Db::open(&dir.0, opts.clone()).expect("open");
        load(&db, &dataset(7));
        db.downsample_stats()
    };
    assert!(built.blocks_written >= 8 && built.blocks_removed > 0, "{built:?}");
    let db = Arc::new(Db::open(&dir.0, opts).expect("reopen"));
    let st = db.downsample_stats();
    assert_eq!(
        (st.blocks, st.blocks_written),
        (built.blocks, 0),
        "reopened levels are not rebuilt: {st:?}"
    );
    let oldest = db.blocks().first().map(|b| b.meta.mint).expect("a raw block");
    assert!(oldest > T0, "retention removed raw blocks: {:?}", db.blocks());
    let down = Engine::new(db.clone());
    let raw = Engine::new(Arc::new(RawOnly(db.clone())));
    for q in ["increase(requests_total[1h])", "count_over_time(temperature[1h])"] {
        let (start, end) = (T0, T0 + SPAN);
        let got = down.range_query(q, start, end, HOUR).expect("query");
        assert_same(q, &got, &raw.range_query(q, start, end, HOUR).expect("raw"), false);
        assert!(
            got.iter().all(|s| s.samples[0].t >= oldest),
            "{q}: nothing from before the oldest raw block"
        );
    }
    assert_eq!(db.downsample_stats().selects_1h, 2);
}
