//! Downsampled levels: per-bucket aggregates of the raw samples at 5m and 1h, built in the
//! background from persisted blocks, that range functions read instead of raw samples when a
//! query is aligned to a level.
//!
//! # The aggregate
//! A [`Bucket`] of resolution `R` summarizes a series' non-stale samples with
//! `end - R < t <= end` (`end` a multiple of `R`): left-open like PromQL's range windows, so a
//! window `(t - range, t]` with `R | t` and `R | range` is exactly the union of whole buckets.
//! Each bucket keeps the count; the Kahan-compensated sum (`sum`, `sum_c`); min and max (NaN
//! only when every value is NaN, ties to the earliest, as `min_over_time`); the first and last
//! sample (time and value); `changes` and `resets` counted over consecutive pairs inside the
//! bucket; and `reset_sum`, the values just before each drop, which is the Thanos-style
//! reset-adjusted counter: `rate` over a window is `last − first + Σ reset_sum + Σ drops
//! between buckets`, extrapolated with the first and last sample and the total count exactly
//! as over raw samples. Stale markers are not samples here, as range functions ignore them.
//! See `lib/tsdb/FORMAT.md` ("Downsampled levels") for which function reads which field and
//! how exact each is.
//!
//! # On disk
//! A level is a directory (`ds-5m/`, `ds-1h/`) of blocks in the raw block format (same
//! writer, checks, CRCs, `.tmp`/`.deleting`/`.corrupt` handling) with `resolution` in
//! `meta.json` and chunks of encoding [`ENCODING_AGGREGATE`]. A level block covers a raw time
//! range `[mint, maxt)`; the buckets at its two ends are partial (a block boundary is not a
//! bucket boundary: `t = maxt` belongs to the bucket ending at `maxt` but to the next block),
//! and readers merge the parts of one bucket in time order ([`extend_buckets`]).
//!
//! # Building, coverage, compaction, retention
//! After every maintenance pass, each raw block's range not yet covered by a level is
//! aggregated from the raw block into new level blocks, one per level, decoding the raw
//! samples once for all levels (so a raw compaction, which only merges ranges, never
//! invalidates a level). Then the level blocks inside one raw block's range are merged into
//! one once they tile it, so levels follow raw compaction (2h → 6h → 18h …): a level block's
//! bounds are always a raw block's bounds, and a query over weeks opens as few level blocks as
//! raw blocks (merging sums the parts of split buckets, as readers do; the merged block names
//! its sources as parents, so a crash mid-way is finished on open). The 1h level is built from
//! raw samples, not from 5m buckets, so both levels are exactly the raw aggregate.
//! A query uses a level only over the contiguous
//! run of level blocks that starts at its window (or the oldest raw block) and reads raw
//! samples from the run's end on, aggregating them into buckets on the fly; so the answer is
//! the raw answer whatever the background has built so far. Level blocks are deleted when
//! they end at or before the oldest raw data, so the levels keep the raw retention.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use fedwatch_model::{Labels, Matcher, Sample, TimeSeries, is_stale_nan};

use crate::block::{Block, BlockWriter, EncodedChunk, decode_chunk, encode_chunk};
use crate::wal::{Reader, put_uvarint};
use crate::{SelectHints, TsdbError};

/// Chunk encoding byte of a downsampled block's chunks: columns of bucket fields.
pub const ENCODING_AGGREGATE: u8 = 3;
/// Fields stored per bucket, each as one column.
const COLUMNS: u8 = 10;
/// Buckets per chunk of a level block.
const CHUNK_BUCKETS: usize = 1024;

/// One downsampled level: its bucket width and directory under the data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub resolution: i64,
    pub dir: &'static str,
}

/// The levels a store with downsampling builds, finest first.
pub const LEVELS: [Level; 2] = [
    Level {
        resolution: 5 * 60 * 1000,
        dir: "ds-5m",
    },
    Level {
        resolution: 3600 * 1000,
        dir: "ds-1h",
    },
];

/// Range functions a level answers exactly (within the tolerances in `FORMAT.md`).
pub const FUNCS: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "changes",
    "resets",
    "count_over_time",
    "sum_over_time",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "first_over_time",
    "last_over_time",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "present_over_time",
];

/// The aggregate of one series' non-stale samples in `(end - resolution, end]`.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    pub end: i64,
    pub count: u64,
    /// Kahan-Neumaier sum of the values in time order and its compensation (the sum is `sum + sum_c`).
    pub sum: f64,
    pub sum_c: f64,
    /// Smallest value (NaN only if every value is NaN; the earliest of equal ones).
    pub min: f64,
    /// Largest value, likewise.
    pub max: f64,
    pub first: Sample,
    pub last: Sample,
    /// Consecutive pairs with different values (two NaNs are equal), as `changes()` counts.
    pub changes: u64,
    /// Consecutive pairs where the value dropped, as `resets()` counts.
    pub resets: u64,
    /// Sum of the values just before each drop, in time order: what `rate` adds back.
    pub reset_sum: f64,
}

/// A series as per-bucket aggregates, buckets in time order.
#[derive(Clone, Debug)]
pub struct AggrSeries {
    pub labels: Labels,
    pub buckets: Vec<Bucket>,
}

/// What [`crate::Querier::select_downsampled`] returns: series sorted by labels.
#[derive(Clone, Debug)]
pub struct Downsampled {
    pub resolution: i64,
    pub series: Vec<AggrSeries>,
}

/// Counters of the downsampled levels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownsampleStats {
    /// Level blocks on disk (all levels) and their bytes.
    pub blocks: usize,
    pub bytes: u64,
    pub blocks_written: u64,
    pub blocks_removed: u64,
    pub blocks_quarantined: u64,
    /// Merges of a raw block's level blocks into one ([`Levels::compact`]).
    pub compactions: u64,
    /// Selects answered from the 5m and from the 1h level.
    pub selects_5m: u64,
    pub selects_1h: u64,
}

/// Prometheus's Kahan-Neumaier step (as `kahanSumInc`).
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// The end of the bucket of width `resolution` holding time `t`: the smallest multiple of
/// `resolution` at or above `t`.
pub fn bucket_end(t: i64, resolution: i64) -> i64 {
    let floor = t.div_euclid(resolution) * resolution;
    if floor == t { t } else { floor.saturating_add(resolution) }
}

impl Bucket {
    /// A bucket holding one sample.
    pub fn new(end: i64, s: Sample) -> Bucket {
        let (sum, sum_c) = kahan_inc(s.v, 0.0, 0.0);
        Bucket {
            end,
            count: 1,
            sum,
            sum_c,
            min: s.v,
            max: s.v,
            first: s,
            last: s,
            changes: 0,
            resets: 0,
            reset_sum: 0.0,
        }
    }

    fn note_pair(&mut self, before: f64, after: f64) {
        if after != before && !(after.is_nan() && before.is_nan()) {
            self.changes += 1;
        }
        if after < before {
            self.resets += 1;
            self.reset_sum += before;
        }
    }

    /// Adds a sample later than every one in the bucket.
    pub fn push(&mut self, s: Sample) {
        self.note_pair(self.last.v, s.v);
        self.count += 1;
        (self.sum, self.sum_c) = kahan_inc(s.v, self.sum, self.sum_c);
        if s.v < self.min || self.min.is_nan() {
            self.min = s.v;
        }
        if s.v > self.max || self.max.is_nan() {
            self.max = s.v;
        }
        self.last = s;
    }

    /// Adds the aggregate of samples that all come after this bucket's (the later part of a
    /// bucket split by a block boundary).
    pub fn merge(&mut self, later: &Bucket) {
        self.note_pair(self.last.v, later.first.v);
        self.count += later.count;
        (self.sum, self.sum_c) = kahan_inc(later.sum, self.sum, self.sum_c);
        self.sum_c += later.sum_c;
        if later.min < self.min || self.min.is_nan() {
            self.min = later.min;
        }
        if later.max > self.max || self.max.is_nan() {
            self.max = later.max;
        }
        self.changes += later.changes;
        self.resets += later.resets;
        self.reset_sum += later.reset_sum;
        self.last = later.last;
    }
}

/// Aggregates time-ordered samples into buckets of width `resolution`, skipping stale markers.
pub fn aggregate(samples: &[Sample], resolution: i64) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for &s in samples {
        if is_stale_nan(s.v) {
            continue;
        }
        let end = bucket_end(s.t, resolution);
        match out.last_mut() {
            Some(b) if b.end == end => b.push(s),
            _ => out.push(Bucket::new(end, s)),
        }
    }
    out
}

/// Appends later buckets to a series' buckets, merging the two parts of a split bucket.
pub fn extend_buckets(into: &mut Vec<Bucket>, later: impl IntoIterator<Item = Bucket>) {
    for b in later {
        match into.last_mut() {
            Some(last) if last.end == b.end => last.merge(&b),
            _ => into.push(b),
        }
    }
}

/// Encodes buckets (at most a few thousand) as one chunk record body: the encoding byte, the
/// column count, then each column as `len uvarint | block chunk body` (see `FORMAT.md`).
pub fn encode_buckets(buckets: &[Bucket]) -> Vec<u8> {
    let at_end = |b: &Bucket, v: f64| Sample { t: b.end, v };
    let columns: [&dyn Fn(&Bucket) -> Sample; COLUMNS as usize] = [
        &|b| at_end(b, b.count as f64),
        &|b| at_end(b, b.sum),
        &|b| at_end(b, b.sum_c),
        &|b| at_end(b, b.min),
        &|b| at_end(b, b.max),
        &|b| b.first,
        &|b| b.last,
        &|b| at_end(b, b.changes as f64),
        &|b| at_end(b, b.resets as f64),
        &|b| at_end(b, b.reset_sum),
    ];
    let mut out = vec![ENCODING_AGGREGATE, COLUMNS];
    let mut col = Vec::with_capacity(buckets.len());
    for f in columns {
        col.clear();
        col.extend(buckets.iter().map(f));
        let body = encode_chunk(&col);
        put_uvarint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    out
}

/// Decodes a chunk record body written by [`encode_buckets`], checking that the columns agree.
pub fn decode_buckets(body: &[u8]) -> Result<Vec<Bucket>, String> {
    let Some((&ENCODING_AGGREGATE, rest)) = body.split_first() else {
        return Err(format!(
            "not an aggregate chunk (encoding {:?}, {ENCODING_AGGREGATE} expected)",
            body.first()
        ));
    };
    let mut r = Reader { data: rest, pos: 0 };
    let ncols = r.bytes(1)?[0];
    if ncols != COLUMNS {
        return Err(format!("aggregate chunk has {ncols} columns, {COLUMNS} expected"));
    }
    let mut cols = Vec::with_capacity(COLUMNS as usize);
    for i in 0..COLUMNS {
        let len = usize::try_from(r.uvarint()?).map_err(|_| "column length overflows".to_string())?;
        let col = decode_chunk(r.bytes(len)?).map_err(|e| format!("column {i}: {e}"))?;
        if let Some(first) = cols.first().map(Vec::len)
            && col.len() != first
        {
            return Err(format!("column {i} has {} entries, column 0 has {first}", col.len()));
        }
        cols.push(col);
    }
    if r.pos != rest.len() {
        return Err(format!("{} trailing bytes after the columns", rest.len() - r.pos));
    }
    let n = cols[0].len();
    let mut out: Vec<Bucket> = Vec::with_capacity(n);
    #[allow(clippy::needless_range_loop)] // row i of every column
    for i in 0..n {
        let end = cols[0][i].t;
        let int = |c: usize| {
            let v = cols[c][i].v;
            if cols[c][i].t != end || !(v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(63)) {
                return Err(format!("bucket {i}: column {c} is not a count at the bucket's end"));
            }
            Ok(v as u64)
        };
        let at_end = |c: usize| {
            if cols[c][i].t != end {
                return Err(format!("bucket {i}: column {c} is not at the bucket's end"));
            }
            Ok(cols[c][i].v)
        };
        let b = Bucket {
            end,
            count: int(0)?,
            sum: at_end(1)?,
            sum_c: at_end(2)?,
            min: at_end(3)?,
            max: at_end(4)?,
            first: cols[5][i],
            last: cols[6][i],
            changes: int(7)?,
            resets: int(8)?,
            reset_sum: at_end(9)?,
        };
        if b.count == 0 || b.first.t > b.last.t || b.last.t > end || out.last().is_some_and(|p| p.end >= end || p.last.t >= b.first.t) {
            return Err(format!("bucket {i} ending at {end} is out of order or empty"));
        }
        out.push(b);
    }
    Ok(out)
}

/// Encodes a series' buckets as block chunks.
fn encode_series(buckets: &[Bucket]) -> Vec<EncodedChunk> {
    buckets
        .chunks(CHUNK_BUCKETS)
        .map(|part| EncodedChunk {
            mint: part[0].first.t,
            maxt: part[part.len() - 1].last.t,
            body: encode_buckets(part),
            items: part.len() as u64,
        })
        .collect()
}

/// Levels whose buckets tile every window of `hints` exactly, coarsest first.
pub fn candidates(hints: &SelectHints) -> impl Iterator<Item = (usize, Level)> + '_ {
    LEVELS.iter().copied().enumerate().rev().filter(|(_, l)| {
        let r = l.resolution;
        hints.func.is_some_and(|f| FUNCS.contains(&f))
            && hints.range >= r
            && hints.range % r == 0
            && hints.step % r == 0
            && hints.end.rem_euclid(r) == 0
    })
}

/// The aggregates a level holds for a query, before the raw tail is added.
#[derive(Debug)]
pub(crate) struct Partial {
    pub resolution: i64,
    /// Raw samples at or after this are not in `series` and must be added from raw data.
    pub cover_end: i64,
    pub series: BTreeMap<Labels, Vec<Bucket>>,
}

impl Partial {
    /// Adds raw samples at or after `cover_end` and returns the result.
    pub fn finish(mut self, tail: Vec<TimeSeries>, hints: &SelectHints) -> Downsampled {
        for ts in tail {
            let buckets = aggregate(&ts.samples, self.resolution);
            if buckets.is_empty() {
                continue;
            }
            extend_buckets(self.series.entry(ts.labels).or_default(), buckets);
        }
        let series = self
            .series
            .into_iter()
            .filter_map(|(labels, mut buckets)| {
                buckets.retain(|b| b.end >= hints.start && b.end <= hints.end);
                (!buckets.is_empty()).then_some(AggrSeries { labels, buckets })
            })
            .collect();
        Downsampled {
            resolution: self.resolution,
            series,
        }
    }
}

/// The level blocks of a store, by level.
#[derive(Debug)]
pub(crate) struct Levels {
    dir: PathBuf,
    /// Per level in [`LEVELS`] order, sorted by `mint`, disjoint.
    sets: RwLock<Arc<Vec<Vec<Arc<Block>>>>>,
    blocks_written: AtomicU64,
    blocks_removed: AtomicU64,
    blocks_quarantined: AtomicU64,
    compactions: AtomicU64,
    selects: [AtomicU64; 2],
}

impl Levels {
    /// Opens (creating) the level directories under the data directory `dir`.
    pub fn open(dir: &Path) -> Result<Levels, TsdbError> {
        let quarantined = AtomicU64::new(0);
        let mut sets = Vec::new();
        for level in LEVELS {
            let ldir = dir.join(level.dir);
            std::fs::create_dir_all(&ldir).map_err(|source| TsdbError::Io {
                op: "creating downsampled level directory",
                path: ldir.clone(),
                source,
            })?;
            let mut blocks = crate::db::open_blocks(&ldir, &quarantined)?;
            blocks.retain(|b| {
                if b.meta().resolution == level.resolution {
                    return true;
                }
                let why = TsdbError::InvalidOption {
                    name: "resolution",
                    reason: format!("block {} in {} has resolution {}", b.name(), level.dir, b.meta().resolution),
                };
                crate::db::quarantine(b.dir(), &why);
                quarantined.fetch_add(1, Ordering::Relaxed);
                false
            });
            sets.push(blocks);
        }
        Ok(Levels {
            dir: dir.to_path_buf(),
            sets: RwLock::new(Arc::new(sets)),
            blocks_written: AtomicU64::new(0),
            blocks_removed: AtomicU64::new(0),
            blocks_quarantined: quarantined,
            compactions: AtomicU64::new(0),
            selects: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }

    fn sets(&self) -> Arc<Vec<Vec<Arc<Block>>>> {
        self.sets.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, level: usize, edit: impl FnOnce(&mut Vec<Arc<Block>>)) {
        let mut slot = self.sets.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**slot).clone();
        edit(&mut next[level]);
        next[level].sort_by_key(|b| b.meta().mint);
        *slot = Arc::new(next);
    }

    /// Counters and sizes.
    pub fn stats(&self) -> DownsampleStats {
        let sets = self.sets();
        DownsampleStats {
            blocks: sets.iter().map(Vec::len).sum(),
            bytes: sets.iter().flatten().map(|b| b.size_bytes()).sum(),
            blocks_written: self.blocks_written.load(Ordering::Relaxed),
            blocks_removed: self.blocks_removed.load(Ordering::Relaxed),
            blocks_quarantined: self.blocks_quarantined.load(Ordering::Relaxed),
            compactions: self.compactions.load(Ordering::Relaxed),
            selects_5m: self.selects[0].load(Ordering::Relaxed),
            selects_1h: self.selects[1].load(Ordering::Relaxed),
        }
    }

    /// Writes level blocks for every part of the raw blocks' ranges no level block covers yet;
    /// a range missing from several levels is read from the raw block once for all of them.
    pub fn build(&self, raw: &[Arc<Block>]) -> Result<(), TsdbError> {
        for b in raw {
            let sets = self.sets();
            let mut jobs: BTreeMap<(i64, i64), Vec<usize>> = BTreeMap::new();
            for (li, set) in sets.iter().enumerate() {
                let have: Vec<(i64, i64)> = set.iter().map(|d| (d.meta().mint, d.meta().maxt)).collect();
                for gap in gaps(b.meta().mint, b.meta().maxt, &have) {
                    jobs.entry(gap).or_default().push(li);
                }
            }
            for ((mint, maxt), levels) in jobs {
                let started = std::time::Instant::now();
                let built = write_level_blocks(&self.dir, b, mint, maxt, &levels)?;
                for (li, built) in levels.into_iter().zip(built) {
                    tracing::info!(
                        block = built.name(),
                        level = LEVELS[li].dir,
                        source = b.name(),
                        series = built.meta().stats.series,
                        buckets = built.meta().stats.samples,
                        bytes = built.size_bytes(),
                        duration_ms = started.elapsed().as_millis() as u64,
                        "downsampled block written"
                    );
                    self.blocks_written.fetch_add(1, Ordering::Relaxed);
                    let built = Arc::new(built);
                    self.update(li, |set| set.push(built));
                }
            }
        }
        Ok(())
    }

    /// Merges the level blocks inside each raw block's range into one once they tile it, so
    /// levels follow raw compaction (2h → 6h → 18h …): a long query opens as many level blocks
    /// as raw blocks, and level block bounds stay raw block bounds, which keeps retention exact.
    /// A source that cannot be read is quarantined; the next [`Levels::build`] fills its range.
    pub fn compact(&self, raw: &[Arc<Block>]) -> Result<(), TsdbError> {
        for (li, level) in LEVELS.iter().enumerate() {
            for r in raw {
                let (mint, maxt) = (r.meta().mint, r.meta().maxt);
                let sources: Vec<Arc<Block>> = self.sets()[li]
                    .iter()
                    .filter(|b| b.meta().mint >= mint && b.meta().maxt <= maxt)
                    .cloned()
                    .collect();
                let tiles = sources.first().is_some_and(|b| b.meta().mint == mint)
                    && sources.last().is_some_and(|b| b.meta().maxt == maxt)
                    && sources.windows(2).all(|w| w[0].meta().maxt == w[1].meta().mint);
                if sources.len() < 2 || !tiles {
                    continue;
                }
                let started = std::time::Instant::now();
                let merged = match merge_level_blocks(&self.dir.join(level.dir), &sources, mint, maxt, level.resolution) {
                    Ok(b) => Arc::new(b),
                    Err((bad, e)) => {
                        crate::db::quarantine(bad.dir(), &e);
                        self.blocks_quarantined.fetch_add(1, Ordering::Relaxed);
                        self.update(li, |set| set.retain(|b| b.name() != bad.name()));
                        continue;
                    }
                };
                tracing::info!(
                    block = merged.name(),
                    level = level.dir,
                    sources = sources.len(),
                    bytes = merged.size_bytes(),
                    duration_ms = started.elapsed().as_millis() as u64,
                    "downsampled blocks compacted"
                );
                self.compactions.fetch_add(1, Ordering::Relaxed);
                self.update(li, |set| {
                    set.retain(|b| !sources.iter().any(|s| s.name() == b.name()));
                    set.push(merged);
                });
                // The merged block names its sources, so a crash before these deletions is
                // finished by the next open (`open_blocks`).
                for s in &sources {
                    crate::db::remove_block_dir(s.dir())?;
                }
            }
        }
        Ok(())
    }

    /// Deletes level blocks ending at or before `oldest`, where raw data now starts.
    pub fn apply_retention(&self, oldest: i64) -> Result<(), TsdbError> {
        for (li, level) in LEVELS.iter().enumerate() {
            let gone: Vec<Arc<Block>> = self.sets()[li].iter().filter(|b| b.meta().maxt <= oldest).cloned().collect();
            if gone.is_empty() {
                continue;
            }
            self.update(li, |set| set.retain(|b| b.meta().maxt > oldest));
            for b in gone {
                tracing::info!(block = b.name(), level = level.dir, "downsampled block deleted by retention");
                crate::db::remove_block_dir(b.dir())?;
                self.blocks_removed.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The coarsest level that tiles `hints` and holds data at its start, with its buckets
    /// from the window's start (or `oldest`, where raw data starts) up to the end of the
    /// contiguous run of level blocks there. `None`: no level fits; read raw samples.
    pub fn select(&self, oldest: i64, matchers: &[Matcher], hints: &SelectHints) -> Option<Partial> {
        let sets = self.sets();
        for (li, level) in candidates(hints) {
            let lower = hints.start.max(oldest);
            let set = &sets[li];
            let Some(mut i) = set.iter().position(|b| b.meta().mint <= lower && lower < b.meta().maxt) else {
                continue;
            };
            let mut run = vec![set[i].clone()];
            let mut cover_end = set[i].meta().maxt;
            while i + 1 < set.len() && set[i + 1].meta().mint == cover_end && cover_end <= hints.end {
                i += 1;
                run.push(set[i].clone());
                cover_end = set[i].meta().maxt;
            }
            match read_buckets(&run, matchers, hints, level.resolution) {
                Ok(series) => {
                    self.selects[li].fetch_add(1, Ordering::Relaxed);
                    return Some(Partial {
                        resolution: level.resolution,
                        cover_end,
                        series,
                    });
                }
                Err((bad, e)) => {
                    // Raw data still answers; the damaged level block goes aside and is rebuilt.
                    crate::db::quarantine(bad.dir(), &e);
                    self.blocks_quarantined.fetch_add(1, Ordering::Relaxed);
                    self.update(li, |set| set.retain(|b| b.name() != bad.name()));
                    return None;
                }
            }
        }
        None
    }
}

/// Sub-ranges of `[mint, maxt)` that none of the (sorted, disjoint) `have` ranges cover.
fn gaps(mint: i64, maxt: i64, have: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut from = mint;
    for &(a, b) in have {
        if b <= from || a >= maxt {
            continue;
        }
        if a > from {
            out.push((from, a));
        }
        from = from.max(b);
    }
    if from < maxt {
        out.push((from, maxt));
    }
    out
}

/// Aggregates the samples of raw block `raw` in `[mint, maxt)` into one block per level in
/// `levels` (indexes into [`LEVELS`]), decoding each series once.
fn write_level_blocks(dir: &Path, raw: &Block, mint: i64, maxt: i64, levels: &[usize]) -> Result<Vec<Block>, TsdbError> {
    let mut writers = levels
        .iter()
        .map(|&li| BlockWriter::new_downsampled(&dir.join(LEVELS[li].dir), mint, maxt, LEVELS[li].resolution))
        .collect::<Result<Vec<_>, _>>()?;
    let mut samples = Vec::new();
    for id in 0..raw.series_count() as u64 {
        samples.clear();
        for c in raw.chunk_metas(id).iter().filter(|c| c.maxt >= mint && c.mint < maxt) {
            samples.extend(raw.read_samples(c)?.into_iter().filter(|s| s.t >= mint && s.t < maxt));
        }
        for (w, &li) in writers.iter_mut().zip(levels) {
            let buckets = aggregate(&samples, LEVELS[li].resolution);
            if !buckets.is_empty() {
                w.add_encoded(raw.labels(id).clone(), encode_series(&buckets))?;
            }
        }
    }
    writers.into_iter().map(|w| Block::open(&w.finish(1, Vec::new())?)).collect()
}

/// Writes one level block holding every bucket of `sources` (adjacent, sorted by time, one
/// level), merging the parts of buckets split at their boundaries. Reading a source fails
/// with that source.
fn merge_level_blocks(dir: &Path, sources: &[Arc<Block>], mint: i64, maxt: i64, resolution: i64) -> Result<Block, BadBlock> {
    let fail = |b: &Arc<Block>, e: TsdbError| (b.clone(), e);
    let mut by_labels: BTreeMap<&Labels, Vec<(usize, u64)>> = BTreeMap::new();
    for (i, b) in sources.iter().enumerate() {
        for id in 0..b.series_count() as u64 {
            by_labels.entry(b.labels(id)).or_default().push((i, id));
        }
    }
    let first = &sources[0];
    let mut w = BlockWriter::new_downsampled(dir, mint, maxt, resolution).map_err(|e| fail(first, e))?;
    for (labels, parts) in by_labels {
        let mut buckets = Vec::new();
        for (i, id) in parts {
            let b = &sources[i];
            for c in b.chunk_metas(id) {
                let body = b.read_chunk(c).map_err(|e| fail(b, e))?;
                let part = decode_buckets(&body).map_err(|e| fail(b, chunk_error(b, c.offset, e)))?;
                extend_buckets(&mut buckets, part);
            }
        }
        w.add_encoded(labels.clone(), encode_series(&buckets)).map_err(|e| fail(first, e))?;
    }
    let level = sources.iter().map(|b| b.meta().level).max().unwrap_or(0) + 1;
    let path = w
        .finish(level, sources.iter().map(|b| b.name().to_string()).collect())
        .map_err(|e| fail(first, e))?;
    Block::open(&path).map_err(|e| fail(first, e))
}

/// The error for an aggregate chunk of `b` at `offset` that does not decode.
fn chunk_error(b: &Block, offset: u64, e: String) -> TsdbError {
    TsdbError::Io {
        op: "decoding downsampled chunk",
        path: b.dir().join("chunks"),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("chunk at {offset}: {e}")),
    }
}

type BadBlock = (Arc<Block>, TsdbError);

/// Buckets of matching series ending in `[hints.start, hints.end]` from a run of level blocks.
fn read_buckets(
    run: &[Arc<Block>],
    matchers: &[Matcher],
    hints: &SelectHints,
    resolution: i64,
) -> Result<BTreeMap<Labels, Vec<Bucket>>, BadBlock> {
    let mut out: BTreeMap<Labels, Vec<Bucket>> = BTreeMap::new();
    for b in run {
        for id in b.postings_for(matchers) {
            let mut found = Vec::new();
            for c in b.chunk_metas(id) {
                if bucket_end(c.maxt, resolution) < hints.start || bucket_end(c.mint, resolution) > hints.end {
                    continue;
                }
                let body = b.read_chunk(c).map_err(|e| (b.clone(), e))?;
                let buckets = decode_buckets(&body).map_err(|e| (b.clone(), chunk_error(b, c.offset, e)))?;
                found.extend(buckets.into_iter().filter(|x| x.end >= hints.start && x.end <= hints.end));
            }
            if !found.is_empty() {
                extend_buckets(out.entry(b.labels(id).clone()).or_default(), found);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same(a: &Bucket, b: &Bucket) -> bool {
        let bits = |x: &Bucket| {
            [
                x.end as u64,
                x.count,
                x.sum.to_bits(),
                x.sum_c.to_bits(),
                x.min.to_bits(),
                x.max.to_bits(),
                x.first.t as u64,
                x.first.v.to_bits(),
                x.last.t as u64,
                x.last.v.to_bits(),
                x.changes,
                x.resets,
                x.reset_sum.to_bits(),
            ]
        };
        bits(a) == bits(b)
    }

    #[test]
    fn bucket_ends_are_left_open() {
        // (t, resolution, end)
        let cases = [
            (0, 10, 0),
            (1, 10, 10),
            (10, 10, 10),
            (11, 10, 20),
            (-1, 10, 0),
            (-10, 10, -10),
            (-11, 10, -10),
        ];
        for (t, r, want) in cases {
            assert_eq!(bucket_end(t, r), want, "t={t} r={r}");
        }
    }

    #[test]
    fn gaps_are_what_no_range_covers() {
        // (range, have, gaps)
        type Case = ((i64, i64), &'static [(i64, i64)], &'static [(i64, i64)]);
        let cases: [Case; 5] = [
            ((0, 10), &[], &[(0, 10)]),
            ((0, 10), &[(0, 10)], &[]),
            ((0, 30), &[(0, 10), (20, 30)], &[(10, 20)]),
            ((0, 30), &[(-10, 5), (25, 40)], &[(5, 25)]),
            ((10, 20), &[(0, 5), (30, 40)], &[(10, 20)]),
        ];
        for ((a, b), have, want) in cases {
            assert_eq!(gaps(a, b, have), want, "[{a}, {b}) minus {have:?}");
        }
    }

    #[test]
    fn stale_markers_are_not_samples() {
        let stale = f64::from_bits(fedwatch_model::STALE_NAN_BITS);
        let samples = [
            Sample { t: 1, v: 5.0 },
            Sample { t: 2, v: stale },
            Sample { t: 3, v: 2.0 },
            Sample { t: 12, v: stale },
        ];
        let b = aggregate(&samples, 10);
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].count, b[0].sum, b[0].resets, b[0].reset_sum, b[0].last.t),
            (1 + 1, 7.0, 1, 5.0, 3)
        );
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            8 => (0u32..1000).prop_map(f64::from),
            2 => -1e6f64..1e6,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(-0.0),
        ]
    }

    fn series() -> impl Strategy<Value = Vec<Sample>> {
        prop::collection::vec((1i64..40, value()), 1..300).prop_map(|steps| {
            let mut t = -500;
            steps
                .into_iter()
                .map(|(dt, v)| {
                    t += dt;
                    Sample { t, v }
                })
                .collect()
        })
    }

    proptest! {
        /// Splitting samples anywhere (a block boundary) and merging the parts gives the
        /// buckets of the whole, field for field except the rounding of the two sums (a
        /// split bucket adds its parts' sums instead of value by value).
        #[test]
        fn split_parts_merge_to_the_whole(samples in series(), cut in 0usize..300, res in prop_oneof![Just(10i64), Just(60), Just(1000)]) {
            let cut = cut.min(samples.len());
            let whole = aggregate(&samples, res);
            let mut merged = aggregate(&samples[..cut], res);
            extend_buckets(&mut merged, aggregate(&samples[cut..], res));
            prop_assert_eq!(whole.len(), merged.len());
            let close = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(1.0);
            for (w, m) in whole.iter().zip(&merged) {
                prop_assert!(close(w.sum + w.sum_c, m.sum + m.sum_c), "{w:?} vs {m:?}");
                prop_assert!(close(w.reset_sum, m.reset_sum), "{w:?} vs {m:?}");
                let (mut m2, mut w2) = (*m, *w);
                (m2.sum, m2.sum_c, m2.reset_sum, w2.sum, w2.sum_c, w2.reset_sum) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
                prop_assert!(same(&w2, &m2), "{w:?} vs {m:?}");
            }
        }

        /// Buckets survive the chunk encoding bit for bit.
        #[test]
        fn buckets_round_trip(samples in series(), res in prop_oneof![Just(10i64), Just(300)]) {
            let buckets = aggregate(&samples, res);
            let back = decode_buckets(&encode_buckets(&buckets)).unwrap();
            prop_assert_eq!(back.len(), buckets.len());
            for (a, b) in buckets.iter().zip(&back) {
                prop_assert!(same(a, b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn damaged_aggregate_chunks_are_refused() {
        let samples: Vec<Sample> = (0..50)
            .map(|i| Sample {
                t: i * 7,
                v: (i % 9) as f64,
            })
            .collect();
        let good = encode_buckets(&aggregate(&samples, 30));
        let mut wrong_cols = good.clone();
        wrong_cols[1] = 9;
        let mut trailing = good.clone();
        trailing.push(0);
        for (what, body) in [
            ("encoding", &[ENCODING_AGGREGATE - 1][..]),
            ("columns", &wrong_cols),
            ("trailing", &trailing),
            ("truncated", &good[..good.len() - 3]),
        ] {
            assert!(decode_buckets(body).is_err(), "{what}");
        }
    }

    const H: i64 = 3600 * 1000;

    /// Raw blocks `[k·2h, (k+1)·2h)` for `k < 3` of three series at 60 s (one only in the
    /// middle block), with a counter reset and a value on a bucket edge.
    fn raw_blocks(dir: &Path) -> Vec<Arc<Block>> {
        let series = |i: usize| Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())]);
        (0..3i64)
            .map(|k| {
                let mut w = BlockWriter::new(dir, k * 2 * H, (k + 1) * 2 * H).unwrap();
                for i in 0..3usize {
                    if i == 2 && k != 1 {
                        continue;
                    }
                    let samples: Vec<Sample> = (0..120i64)
                        .map(|j| {
                            let t = k * 2 * H + j * 60_000 + i as i64;
                            let v = if j == 70 { 1.5 } else { (t / 1000 % 5000) as f64 * 0.25 };
                            Sample { t, v }
                        })
                        .collect();
                    w.add_series(series(i), &samples).unwrap();
                }
                Arc::new(Block::open(&w.finish(1, Vec::new()).unwrap()).unwrap())
            })
            .collect()
    }

    /// Every bucket of every level, by level.
    fn everything(levels: &Levels) -> Vec<BTreeMap<Labels, Vec<Bucket>>> {
        let sets = levels.sets();
        LEVELS
            .iter()
            .enumerate()
            .map(|(li, l)| {
                let hints = SelectHints {
                    start: i64::MIN / 2,
                    end: i64::MAX / 2,
                    ..Default::default()
                };
                read_buckets(&sets[li], &[], &hints, l.resolution).map_err(|(_, e)| e).unwrap()
            })
            .collect()
    }

    fn assert_same_buckets(a: &[BTreeMap<Labels, Vec<Bucket>>], b: &[BTreeMap<Labels, Vec<Bucket>>]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
            for ((l, p), q) in x.iter().zip(y.values()) {
                assert_eq!(p.len(), q.len(), "{l}");
                assert!(p.iter().zip(q).all(|(u, v)| same(u, v)), "{l}: {p:?} != {q:?}");
            }
        }
    }

    /// One raw block holding everything the `parts` hold, as a raw compaction would write.
    fn merged_raw(dir: &Path, parts: &[Arc<Block>]) -> Vec<Arc<Block>> {
        let mut all: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for b in parts {
            for id in 0..b.series_count() as u64 {
                for c in b.chunk_metas(id) {
                    all.entry(b.labels(id).clone()).or_default().extend(b.read_samples(c).unwrap());
                }
            }
        }
        let mut w = BlockWriter::new(dir, 0, 6 * H).unwrap();
        for (labels, samples) in all {
            w.add_series(labels, &samples).unwrap();
        }
        vec![Arc::new(Block::open(&w.finish(2, Vec::new()).unwrap()).unwrap())]
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn level_blocks_follow_raw_compaction_and_keep_every_bucket() {
        let dir = crate::testdir::TestDir::new("ds-compact");
        let raw = raw_blocks(dir.path());
        let levels = Levels::open(dir.path()).unwrap();
        levels.build(&raw).unwrap();
        assert_eq!((levels.stats().blocks, levels.stats().blocks_written), (6, 6));
        let before = everything(&levels);
        // Nothing to merge while each level block is its raw block's range.
        levels.compact(&raw).unwrap();
        assert_eq!(levels.stats().compactions, 0);
        // Keep a copy of the 1h level as it was, to play a crash after the merge below.
        let crash = crate::testdir::TestDir::new("ds-compact-crash");
        let saved: Vec<PathBuf> = levels.sets()[1].iter().map(|b| b.dir().to_path_buf()).collect();
        for b in &saved {
            let to = crash.path().join("ds-1h").join(b.file_name().unwrap());
            std::fs::create_dir_all(&to).unwrap();
            for f in names(b) {
                std::fs::copy(b.join(&f), to.join(&f)).unwrap();
            }
        }
        let raw = merged_raw(dir.path(), &raw);
        levels.compact(&raw).unwrap();
        let st = levels.stats();
        assert_eq!((st.blocks, st.compactions, st.blocks_written), (2, 2, 6), "{st:?}");
        for set in levels.sets().iter() {
            assert_eq!((set[0].meta().mint, set[0].meta().maxt), (0, 6 * H));
            assert_eq!(set[0].meta().parents.len(), 3);
        }
        assert_same_buckets(&everything(&levels), &before);
        // Building again finds nothing missing; reopening finds the same.
        levels.build(&raw).unwrap();
        assert_eq!(levels.stats().blocks_written, 6);
        assert_same_buckets(&everything(&Levels::open(dir.path()).unwrap()), &before);

        // A crash after the merged block was written but before its sources were deleted:
        // open removes the sources and serves the merged block.
        let merged = levels.sets()[1][0].dir().to_path_buf();
        let to = crash.path().join("ds-1h").join(merged.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for f in names(&merged) {
            std::fs::copy(merged.join(&f), to.join(&f)).unwrap();
        }
        assert_eq!(names(&crash.path().join("ds-1h")).len(), 4);
        let reopened = Levels::open(crash.path()).unwrap();
        assert_eq!(
            names(&crash.path().join("ds-1h")),
            vec![merged.file_name().unwrap().to_string_lossy().to_string()]
        );
        assert_same_buckets(&everything(&reopened)[1..], &before[1..]);
    }

    #[test]
    fn a_damaged_level_block_is_quarantined_by_compaction_and_rebuilt() {
        let dir = crate::testdir::TestDir::new("ds-compact-damaged");
        let raw = raw_blocks(dir.path());
        let levels = Levels::open(dir.path()).unwrap();
        levels.build(&raw).unwrap();
        let before = everything(&levels);
        let victim = levels.sets()[0][1].dir().join("chunks");
        let mut bytes = std::fs::read(&victim).unwrap();
        let at = bytes.len() - 10;
        bytes[at] ^= 0x5a;
        std::fs::write(&victim, bytes).unwrap();
        let raw = merged_raw(dir.path(), &raw);
        levels.compact(&raw).unwrap();
        let st = levels.stats();
        // The 1h level merged; the 5m level lost its damaged block and kept the other two.
        assert_eq!((st.blocks_quarantined, st.compactions, st.blocks), (1, 1, 3), "{st:?}");
        assert!(names(&dir.path().join("ds-5m")).iter().any(|n| n.contains(".corrupt")));
        // The next maintenance pass fills the hole from raw data and merges.
        levels.build(&raw).unwrap();
        levels.compact(&raw).unwrap();
        let st = levels.stats();
        assert_eq!((st.blocks, st.compactions, st.blocks_written), (2, 2, 7), "{st:?}");
        assert_same_buckets(&everything(&levels), &before);
    }
}
