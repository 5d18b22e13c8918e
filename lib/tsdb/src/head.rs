//! The in-memory head: series keyed by label set, a postings index, and per-series
//! compressed chunks (one open, the rest closed and immutable).
//!
//! Appends go through two steps so a caller can log them first: [`Head::plan`] resolves
//! series and decides, sample by sample, what is accepted without changing anything;
//! [`Head::commit`] applies a plan. The WAL-backed [`crate::Db`] writes the plan to its log
//! between the two, under the head's write lock, so the log holds exactly the accepted
//! samples in the order they were applied and replaying it rebuilds the same head.
//!
//! Invariants: a series' samples are strictly increasing in time; a sample older than the
//! series' newest is rejected (counted as out of order); one at the same time with the same
//! value bits is dropped silently (a re-sent sample), with different bits it is counted as a
//! duplicate. Refs are never reused while the head lives.
//!
//! Memory: a series costs its label set as symbol ids (one small allocation; each distinct
//! string is held once, see [`compact_labels`]), one boxed 80-byte [`MemSeries`] (so the
//! series map's slack holds pointers, not whole series), an 8-byte entry in the fingerprint
//! table (fingerprint collisions are just more entries), its refs in the postings lists, and
//! its chunks (the open one grows by a quarter at a time).

mod compact_labels;

use std::collections::HashMap;

use fedwatch_model::{Labels, Matcher, Sample, TimeSeries};

use hashbrown::HashTable;
use thin_vec::ThinVec;

use self::compact_labels::{CompactLabels, Symbols};
use crate::chunk::{ChunkEncoder, ChunkIter, MAX_SAMPLES_PER_CHUNK, decode_range_into};
use crate::postings::{MemPostings, SeriesRef};
use crate::{AppendError, AppendStats, RefSample, SeriesId};

/// Fewest series a select decodes on one thread before it is worth another.
const SELECT_PART: usize = 2048;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A closed, immutable chunk.
#[derive(Debug)]
struct ClosedChunk {
    bytes: Box<[u8]>,
    min_t: i64,
    max_t: i64,
}

/// One series in the head: 80 bytes besides its heap parts. The newest sample and the open
/// chunk's first time are read from the open chunk, which is empty exactly when the series
/// has no sample yet (a full chunk is closed only when the next sample opens a new one).
#[derive(Debug)]
struct MemSeries {
    labels: CompactLabels,
    /// A thin vector (one pointer): most series have no closed chunk for their first hour.
    closed: ThinVec<ClosedChunk>,
    open: ChunkEncoder,
}

impl MemSeries {
    fn new(labels: &Labels, symbols: &mut Symbols) -> Self {
        MemSeries {
            labels: CompactLabels::new(labels, symbols),
            closed: ThinVec::new(),
            open: ChunkEncoder::new(),
        }
    }

    /// Newest sample's time and value bits.
    fn last(&self) -> Option<(i64, u64)> {
        self.open.newest()
    }

    /// The open chunk's time range, `None` while it is empty.
    fn open_range(&self) -> Option<(i64, i64)> {
        Some((self.open.first_t()?, self.open.newest()?.0))
    }

    fn push(&mut self, t: i64, v: f64) {
        if self.open.len() >= MAX_SAMPLES_PER_CHUNK
            && let Some((min_t, max_t)) = self.open_range()
        {
            let full = std::mem::take(&mut self.open);
            self.closed.push(ClosedChunk {
                bytes: full.into_bytes().into_boxed_slice(),
                min_t,
                max_t,
            });
        }
        self.open.append(t, v);
    }

    fn samples_in(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        let closed = self
            .closed
            .iter()
            .filter(|c| c.max_t >= mint && c.min_t <= maxt)
            .map(|c| &c.bytes[..]);
        let open = self
            .open_range()
            .is_some_and(|(min_t, max_t)| max_t >= mint && min_t <= maxt)
            .then(|| self.open.bytes());
        let chunks: Vec<&[u8]> = closed.chain(open).collect();
        out.reserve(chunks.iter().map(|b| ChunkIter::new(b).map_or(0, |it| it.sample_count())).sum());
        for bytes in chunks {
            // Chunks are written by this process; a decode error would be a bug, not input,
            // and the samples decoded before it are still right.
            let _ = decode_range_into(bytes, mint, maxt, out);
        }
    }

    fn chunk_count(&self) -> usize {
        self.closed.len() + usize::from(!self.open.is_empty())
    }
}

/// How many samples ahead replay touches the series it will append to.
const REPLAY_LOOKAHEAD: usize = 8;

/// What one replay thread did to its range of series.
#[derive(Debug, Default)]
struct ReplayShard {
    chunks_added: usize,
    max_t: Option<i64>,
    unknown: u64,
}

/// Applies the samples whose ref falls in `slots` (the refs from `base` on), in order.
fn replay_range(slots: &mut [Option<&mut MemSeries>], base: SeriesRef, samples: &[(SeriesRef, Sample)]) -> ReplayShard {
    let mut out = ReplayShard::default();
    let end = base + slots.len() as SeriesRef;
    for (k, (r, smp)) in samples.iter().enumerate() {
        if *r < base || *r >= end {
            continue;
        }
        // Replay is bound by cache misses on the series and its open chunk's last byte,
        // scattered across the heap: load the ones a few samples ahead so their misses
        // overlap this sample's work (a plain load, whose value nothing waits for).
        if let Some((ahead, _)) = samples.get(k + REPLAY_LOOKAHEAD)
            && *ahead >= base
            && *ahead < end
            && let Some(s) = slots[(*ahead - base) as usize].as_deref()
        {
            std::hint::black_box(s.open.last_byte());
        }
        let Some(s) = slots[(*r - base) as usize].as_deref_mut() else {
            out.unknown += 1;
            continue;
        };
        if classify(s.last(), smp.t, smp.v) == SampleOutcome::Append {
            let before = s.chunk_count();
            s.push(smp.t, smp.v);
            out.chunks_added += s.chunk_count() - before;
            out.max_t = Some(out.max_t.map_or(smp.t, |m| m.max(smp.t)));
        }
    }
    out
}

/// The same value as [`Labels::fingerprint`] (xxh3 over `name 0xff value 0xff ...`),
/// computed without allocating because every appended series needs one.
pub fn fingerprint(labels: &Labels) -> u64 {
    fingerprint_pairs(|| labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

/// [`fingerprint`] of the `(name, value)` pairs `pairs()` gives in label order.
fn fingerprint_pairs<'a, I: Iterator<Item = (&'a str, &'a str)>>(pairs: impl Fn() -> I) -> u64 {
    let len: usize = pairs().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut stack = [0u8; 512];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut at = 0;
    for (name, value) in pairs() {
        for part in [name.as_bytes(), value.as_bytes()] {
            buf[at..at + part.len()].copy_from_slice(part);
            buf[at + part.len()] = 0xff;
            at += part.len() + 1;
        }
    }
    xxhash_rust::xxh3::xxh3_64(buf)
}

/// What to do with one sample, given the series' newest sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleOutcome {
    Append,
    OutOfOrder,
    Duplicate,
    /// Same time, same value bits: a re-send, dropped without counting.
    Resent,
}

/// Decides a sample's fate against the series' newest `(time, value bits)`.
pub fn classify(last: Option<(i64, u64)>, t: i64, v: f64) -> SampleOutcome {
    match last {
        Some((lt, _)) if t < lt => SampleOutcome::OutOfOrder,
        Some((lt, lv)) if t == lt => {
            if lv == v.to_bits() {
                SampleOutcome::Resent
            } else {
                SampleOutcome::Duplicate
            }
        }
        _ => SampleOutcome::Append,
    }
}

/// Limits checked when a series is created; `None` is unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesLimits {
    pub max_series: Option<usize>,
    /// Labels per series, `__name__` included.
    pub max_labels: Option<usize>,
    /// Bytes in a label name.
    pub max_name_len: Option<usize>,
    /// Bytes in a label value.
    pub max_value_len: Option<usize>,
}

impl SeriesLimits {
    /// No limits at all.
    pub const NONE: SeriesLimits = SeriesLimits {
        max_series: None,
        max_labels: None,
        max_name_len: None,
        max_value_len: None,
    };

    fn check_labels(&self, labels: &Labels) -> Result<(), AppendError> {
        let refuse = |reason: String| AppendError::LabelLimit {
            series: labels.to_string(),
            reason,
        };
        if let Some(max) = self.max_labels
            && labels.len() > max
        {
            return Err(refuse(format!("{} labels, at most {max} accepted", labels.len())));
        }
        for l in labels.iter() {
            if let Some(max) = self.max_name_len
                && l.name.len() > max
            {
                return Err(refuse(format!(
                    "label name {:?} is {} bytes, at most {max} accepted",
                    l.name,
                    l.name.len()
                )));
            }
            if let Some(max) = self.max_value_len
                && l.value.len() > max
            {
                return Err(refuse(format!(
                    "value of label {:?} is {} bytes, at most {max} accepted",
                    l.name,
                    l.value.len()
                )));
            }
        }
        Ok(())
    }
}

/// An append decided but not applied: new series to create and samples to add, in order.
#[derive(Debug, Default)]
pub struct AppendPlan {
    pub new_series: Vec<(SeriesRef, Labels)>,
    pub samples: Vec<(SeriesRef, Sample)>,
    pub stats: AppendStats,
}

/// A [`Head::plan_refs`] result: the plan, each sample's series ref, and the unknown refs' positions.
#[derive(Debug, Default)]
pub struct RefPlan {
    pub plan: AppendPlan,
    pub refs: Vec<Option<SeriesRef>>,
    pub unknown: Vec<usize>,
}

/// What a retention pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TruncateStats {
    pub chunks_removed: usize,
    pub series_removed: usize,
}

/// Series, postings and chunks in memory.
#[derive(Debug, Default)]
pub struct Head {
    series: FastMap<SeriesRef, Box<MemSeries>>,
    /// Refs hashed by their labels' fingerprint (8 bytes a series; series whose fingerprints
    /// collide are simply more entries under one hash, told apart by their labels).
    by_fingerprint: HashTable<SeriesRef>,
    /// While a replay creates series in bulk: the same index with each fingerprint stored, so
    /// growing it does not re-read every series' labels (≈ 1 µs a series in cache misses);
    /// [`Head::finish_bulk`] moves it into `by_fingerprint`, sized once.
    bulk: Option<HashTable<(u64, SeriesRef)>>,
    /// The label strings of all series, each once.
    symbols: Symbols,
    postings: MemPostings,
    next_ref: SeriesRef,
    max_t: Option<i64>,
    chunks: usize,
}

impl Head {
    /// An empty head; refs start at 1.
    pub fn new() -> Self {
        Head {
            next_ref: 1,
            ..Default::default()
        }
    }

    /// Series held.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Chunks held (closed plus non-empty open ones).
    pub fn chunk_count(&self) -> usize {
        self.chunks
    }

    /// The newest sample time across all series.
    pub fn max_time(&self) -> Option<i64> {
        self.max_t
    }

    /// The ref of the series with exactly these labels.
    pub fn lookup(&self, labels: &Labels) -> Option<SeriesRef> {
        self.lookup_fp(fingerprint(labels), labels)
    }

    /// [`Head::lookup`] with the labels' fingerprint already computed.
    fn lookup_fp(&self, fp: u64, labels: &Labels) -> Option<SeriesRef> {
        let same = |r: &SeriesRef| self.series.get(r).is_some_and(|s| s.labels.eq_labels(labels, &self.symbols));
        match &self.bulk {
            Some(bulk) => bulk.find(fp, |(f, r)| *f == fp && same(r)).map(|(_, r)| *r),
            None => self.by_fingerprint.find(fp, same).copied(),
        }
    }

    /// Starts creating many series at once (a replay): see `bulk`.
    pub fn begin_bulk(&mut self) {
        if self.bulk.is_none() {
            let mut bulk = HashTable::with_capacity(self.by_fingerprint.len());
            let (series, symbols) = (&self.series, &self.symbols);
            for r in self.by_fingerprint.drain() {
                let fp = series.get(&r).map_or(0, |s| fingerprint_pairs(|| s.labels.iter(symbols)));
                bulk.insert_unique(fp, (fp, r), |(f, _)| *f);
            }
            self.bulk = Some(bulk);
        }
    }

    /// Ends [`Head::begin_bulk`]: the index goes back to 8 bytes a series.
    pub fn finish_bulk(&mut self) {
        let Some(bulk) = self.bulk.take() else { return };
        let mut table = HashTable::with_capacity(bulk.len());
        let (series, symbols) = (&self.series, &self.symbols);
        let rehash = |r: &SeriesRef| series.get(r).map_or(0, |s| fingerprint_pairs(|| s.labels.iter(symbols)));
        for (fp, r) in bulk {
            // Sized for all of them: `rehash` is not called.
            table.insert_unique(fp, r, rehash);
        }
        self.by_fingerprint = table;
    }

    /// Indexes `r`, which must be in `series` already (growing the table rehashes every
    /// series from its labels).
    fn index_fingerprint(&mut self, fp: u64, r: SeriesRef) {
        if let Some(bulk) = &mut self.bulk {
            bulk.insert_unique(fp, (fp, r), |(f, _)| *f);
            return;
        }
        let (series, symbols) = (&self.series, &self.symbols);
        let rehash = |r: &SeriesRef| series.get(r).map_or(0, |s| fingerprint_pairs(|| s.labels.iter(symbols)));
        self.by_fingerprint.insert_unique(fp, r, rehash);
    }

    fn unindex_fingerprint(&mut self, fp: u64, r: SeriesRef) {
        if let Some(bulk) = &mut self.bulk {
            if let Ok(entry) = bulk.find_entry(fp, |(_, x)| *x == r) {
                entry.remove();
            }
        } else if let Ok(entry) = self.by_fingerprint.find_entry(fp, |x| *x == r) {
            entry.remove();
        }
    }

    /// Creates a series under a ref chosen by the caller (replay, or a committed plan).
    /// Returns the ref that holds these labels: an existing one when they are already known.
    pub fn create_series(&mut self, r: SeriesRef, labels: Labels) -> SeriesRef {
        let fp = fingerprint(&labels);
        if let Some(existing) = self.lookup_fp(fp, &labels) {
            return existing;
        }
        self.postings.add(r, &labels);
        self.series.insert(r, Box::new(MemSeries::new(&labels, &mut self.symbols)));
        self.index_fingerprint(fp, r);
        self.next_ref = self.next_ref.max(r + 1);
        r
    }

    /// Adds one sample to an existing series, applying the ordering rules.
    pub fn append_sample(&mut self, r: SeriesRef, t: i64, v: f64) -> Option<SampleOutcome> {
        let s = self.series.get_mut(&r)?;
        let outcome = classify(s.last(), t, v);
        if outcome == SampleOutcome::Append {
            let before = s.chunk_count();
            s.push(t, v);
            self.chunks = self.chunks + s.chunk_count() - before;
            self.max_t = Some(self.max_t.map_or(t, |m| m.max(t)));
        }
        Some(outcome)
    }

    /// Decides what `batch` would do without changing the head. A batch that would take the
    /// head past the series limit, or create a series breaking a label limit, is refused whole.
    pub fn plan(&self, batch: &[TimeSeries], limits: &SeriesLimits) -> Result<AppendPlan, AppendError> {
        self.plan_from(batch, limits, i64::MIN)
    }

    /// [`Head::plan`], also rejecting (as out of order) samples older than `floor`: the range
    /// below it is already written to blocks.
    pub fn plan_from(&self, batch: &[TimeSeries], limits: &SeriesLimits, floor: i64) -> Result<AppendPlan, AppendError> {
        let mut plan = AppendPlan::default();
        let mut next_ref = self.next_ref;
        let mut pending: FastMap<&Labels, SeriesRef> = FastMap::default();
        // Newest sample per series as the batch goes, so a series repeated in one batch is ordered too.
        let mut last: FastMap<SeriesRef, Option<(i64, u64)>> = FastMap::default();
        for ts in batch {
            if ts.samples.is_empty() {
                continue;
            }
            if ts.samples.iter().all(|s| s.t < floor) {
                // Nothing would be stored: do not create (or log) the series either.
                plan.stats.out_of_order += ts.samples.len() as u64;
                continue;
            }
            let r = match self.lookup(&ts.labels).or_else(|| pending.get(&ts.labels).copied()) {
                Some(r) => r,
                None => {
                    limits.check_labels(&ts.labels)?;
                    let r = next_ref;
                    next_ref += 1;
                    pending.insert(&ts.labels, r);
                    plan.new_series.push((r, ts.labels.clone()));
                    r
                }
            };
            let newest = last.entry(r).or_insert_with(|| self.series.get(&r).and_then(|s| s.last()));
            for s in &ts.samples {
                if s.t < floor {
                    plan.stats.out_of_order += 1;
                    continue;
                }
                match classify(*newest, s.t, s.v) {
                    SampleOutcome::Append => {
                        *newest = Some((s.t, s.v.to_bits()));
                        plan.samples.push((r, *s));
                        plan.stats.samples_appended += 1;
                    }
                    SampleOutcome::OutOfOrder => plan.stats.out_of_order += 1,
                    SampleOutcome::Duplicate => plan.stats.duplicates += 1,
                    SampleOutcome::Resent => {}
                }
            }
        }
        if let Some(limit) = limits.max_series
            && self.series.len() + plan.new_series.len() > limit
        {
            return Err(AppendError::SeriesLimit { limit });
        }
        plan.stats.series_created = plan.new_series.len() as u64;
        Ok(plan)
    }

    /// [`Head::plan_from`] for a batch naming series by ref or labels: also the ref of each
    /// sample's series (new series get the refs the plan creates) and the positions of refs
    /// this head does not hold; when there are any, the plan is empty.
    pub fn plan_refs(&self, batch: &[RefSample<'_>], limits: &SeriesLimits, floor: i64) -> Result<RefPlan, AppendError> {
        let mut out = RefPlan {
            plan: AppendPlan::default(),
            refs: Vec::with_capacity(batch.len()),
            unknown: Vec::new(),
        };
        let plan = &mut out.plan;
        plan.samples.reserve(batch.len());
        let mut next_ref = self.next_ref;
        let mut pending: FastMap<&Labels, SeriesRef> = FastMap::default();
        // A series repeated in one batch must be ordered against what the batch planned for it.
        // Scrape batches name each series once, mostly in ascending ref order: while refs
        // ascend no series can repeat, so the stored newest sample is the one to check against
        // and nothing is recorded; the first ref that does not ascend switches to a map of the
        // newest planned sample per series, seeded from the plan so far.
        let mut max_ref: Option<SeriesRef> = None;
        let mut repeated: Option<FastMap<SeriesRef, Option<(i64, u64)>>> = None;
        for (i, s) in batch.iter().enumerate() {
            let (r, stored_last) = match s.series {
                SeriesId::Ref(r) => match self.series.get(&r) {
                    Some(series) => (r, series.last()),
                    None => {
                        out.unknown.push(i);
                        out.refs.push(None);
                        continue;
                    }
                },
                SeriesId::Labels(labels) => match self.lookup(labels) {
                    Some(r) => (r, self.series.get(&r).and_then(|s| s.last())),
                    None => match pending.get(labels) {
                        Some(&r) => (r, None),
                        // Nothing would be stored: do not create (or log) the series either.
                        None if s.t < floor => {
                            plan.stats.out_of_order += 1;
                            out.refs.push(None);
                            continue;
                        }
                        None => {
                            limits.check_labels(labels)?;
                            let r = next_ref;
                            next_ref += 1;
                            pending.insert(labels, r);
                            plan.new_series.push((r, labels.clone()));
                            (r, None)
                        }
                    },
                },
            };
            out.refs.push(Some(r));
            if s.t < floor {
                plan.stats.out_of_order += 1;
                continue;
            }
            if repeated.is_none() && max_ref.is_some_and(|m| r <= m) {
                repeated = Some(plan.samples.iter().map(|(r, s)| (*r, Some((s.t, s.v.to_bits())))).collect());
            }
            max_ref = max_ref.max(Some(r));
            let newest = match &mut repeated {
                Some(map) => *map.entry(r).or_insert(stored_last),
                None => stored_last,
            };
            match classify(newest, s.t, s.v) {
                SampleOutcome::Append => {
                    if let Some(map) = &mut repeated {
                        map.insert(r, Some((s.t, s.v.to_bits())));
                    }
                    plan.samples.push((r, Sample { t: s.t, v: s.v }));
                    plan.stats.samples_appended += 1;
                }
                SampleOutcome::OutOfOrder => plan.stats.out_of_order += 1,
                SampleOutcome::Duplicate => plan.stats.duplicates += 1,
                SampleOutcome::Resent => {}
            }
        }
        if !out.unknown.is_empty() {
            out.plan = AppendPlan::default();
            return Ok(out);
        }
        if let Some(limit) = limits.max_series
            && self.series.len() + out.plan.new_series.len() > limit
        {
            return Err(AppendError::SeriesLimit { limit });
        }
        out.plan.stats.series_created = out.plan.new_series.len() as u64;
        Ok(out)
    }

    /// Applies a plan made by [`Head::plan`] on this head with nothing applied in between.
    pub fn commit(&mut self, plan: &AppendPlan) {
        for (r, labels) in &plan.new_series {
            self.create_series(*r, labels.clone());
        }
        for (r, s) in &plan.samples {
            self.append_sample(*r, s.t, s.v);
        }
    }

    /// Plans and commits in one go (for a head without a log).
    pub fn append(&mut self, batch: &[TimeSeries], limits: &SeriesLimits) -> Result<AppendStats, AppendError> {
        let plan = self.plan(batch, limits)?;
        self.commit(&plan);
        Ok(plan.stats)
    }

    /// Drops chunks whose newest sample is older than `cutoff`, and series left without any.
    pub fn truncate_before(&mut self, cutoff: i64) -> TruncateStats {
        let mut stats = TruncateStats::default();
        let mut dead = Vec::new();
        for (r, s) in self.series.iter_mut() {
            if s.last().is_none_or(|l| l.0 < cutoff) {
                dead.push(*r);
                continue;
            }
            let before = s.closed.len();
            s.closed.retain(|c| c.max_t >= cutoff);
            stats.chunks_removed += before - s.closed.len();
        }
        for r in dead {
            if let Some(s) = self.series.remove(&r) {
                stats.chunks_removed += s.chunk_count();
                stats.series_removed += 1;
                let labels = s.labels.to_labels(&self.symbols);
                s.labels.release(&mut self.symbols);
                self.postings.remove(r, &labels);
                self.unindex_fingerprint(fingerprint(&labels), r);
            }
        }
        self.chunks -= stats.chunks_removed;
        stats
    }

    /// Every series' chunks holding samples in `[mint, maxt)`, sorted by labels, for writing a
    /// block. Chunks wholly inside the range are copied; chunks straddling an end are decoded
    /// and their samples inside the range re-encoded.
    pub fn chunks_in_range(&self, mint: i64, maxt: i64) -> Vec<(Labels, Vec<crate::block::ChunkData>)> {
        let mut out = Vec::new();
        for s in self.series.values() {
            let open = s.open_range().map(|(min_t, max_t)| (min_t, max_t, s.open.bytes()));
            let all = s.closed.iter().map(|c| (c.min_t, c.max_t, &c.bytes[..])).chain(open);
            let mut chunks = Vec::new();
            for (cmin, cmax, bytes) in all.filter(|(cmin, cmax, _)| *cmax >= mint && *cmin < maxt) {
                if cmin >= mint && cmax < maxt {
                    chunks.push(crate::block::ChunkData {
                        mint: cmin,
                        maxt: cmax,
                        bytes: bytes.to_vec(),
                    });
                    continue;
                }
                // Chunks are written by this process; a decode error would be a bug, not input.
                let Ok(it) = ChunkIter::new(bytes) else { continue };
                let inside: Vec<Sample> = it.map_while(Result::ok).filter(|x| x.t >= mint && x.t < maxt).collect();
                if let (Some(first), Some(last)) = (inside.first(), inside.last()) {
                    chunks.push(crate::block::ChunkData {
                        mint: first.t,
                        maxt: last.t,
                        bytes: crate::chunk::encode(&inside),
                    });
                }
            }
            if !chunks.is_empty() {
                out.push((s.labels.to_labels(&self.symbols), chunks));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The oldest time of a chunk still holding samples at or after `floor` (or `floor` when a
    /// chunk straddles it); `None` when there is none.
    pub fn min_time_from(&self, floor: i64) -> Option<i64> {
        let mut min: Option<i64> = None;
        for s in self.series.values() {
            let open = s.open_range();
            let first = s
                .closed
                .iter()
                .map(|c| (c.min_t, c.max_t))
                .chain(open)
                .find(|(_, cmax)| *cmax >= floor);
            if let Some((cmin, _)) = first {
                let t = cmin.max(floor);
                min = Some(min.map_or(t, |m| m.min(t)));
            }
        }
        min
    }

    /// Appends the chunk entries of those `refs` still in the head to a checkpoint's chunk
    /// record payload (see [`crate::wal::encode_series_chunks`]); returns the samples they hold.
    pub fn encode_chunks(&self, refs: &[SeriesRef], buf: &mut Vec<u8>) -> u64 {
        let mut samples = 0u64;
        let mut closed = Vec::new();
        for r in refs {
            let Some(s) = self.series.get(r) else { continue };
            closed.clear();
            closed.extend(s.closed.iter().map(|c| (c.min_t, c.max_t, &c.bytes[..])));
            let open = s.open.first_t().map(|min_t| (min_t, &s.open));
            crate::wal::encode_series_chunks(buf, *r, &closed, open);
            let count = |b: &[u8]| u64::from(u16::from_be_bytes([b[0], b[1]]));
            samples += s.closed.iter().map(|c| count(&c.bytes)).sum::<u64>() + s.open.len() as u64;
        }
        samples
    }

    /// Gives a series the chunks a checkpoint held for it. Refused (false) when the series is
    /// unknown or already has samples: a checkpoint is read before any segment.
    pub fn restore_chunks(&mut self, r: SeriesRef, chunks: crate::wal::SeriesChunks) -> bool {
        let Some(s) = self.series.get_mut(&r) else { return false };
        if s.last().is_some() {
            return false;
        }
        let before = s.chunk_count();
        let mut closed: ThinVec<ClosedChunk> = chunks
            .closed
            .into_iter()
            .map(|c| ClosedChunk {
                bytes: c.bytes,
                min_t: c.min_t,
                max_t: c.max_t,
            })
            .collect();
        match chunks.open {
            Some((_, enc)) => s.open = enc,
            // The open chunk is empty only while a series has no sample: without one in the
            // checkpoint, the newest closed chunk is opened again (re-encoded, the same bytes).
            None => {
                if let Some(c) = closed.pop() {
                    let mut enc = ChunkEncoder::new();
                    for x in ChunkIter::new(&c.bytes).into_iter().flatten().map_while(Result::ok) {
                        enc.append(x.t, x.v);
                    }
                    s.open = enc;
                }
            }
        }
        s.closed = closed;
        self.chunks = self.chunks + s.chunk_count() - before;
        if let Some((t, _)) = s.last() {
            self.max_t = Some(self.max_t.map_or(t, |m| m.max(t)));
        }
        true
    }

    /// Applies logged samples during replay with up to `threads` threads, each owning a range
    /// of refs; per series the order of `samples` is kept, so the result equals applying them
    /// one by one with [`Head::append_sample`]. Returns how many named no known series.
    pub fn replay_samples(&mut self, samples: &[(SeriesRef, Sample)], threads: usize) -> u64 {
        let n = usize::try_from(self.next_ref).unwrap_or(usize::MAX);
        // A ref-indexed table pays off when refs are dense; after heavy churn go one by one.
        let dense = n <= self.series.len().saturating_mul(4).saturating_add(1 << 16);
        if threads <= 1 || samples.len() < 50_000 || !dense {
            let mut unknown = 0;
            for (r, s) in samples {
                if self.append_sample(*r, s.t, s.v).is_none() {
                    unknown += 1;
                }
            }
            return unknown;
        }
        let mut slots: Vec<Option<&mut MemSeries>> = (0..n).map(|_| None).collect();
        for (r, s) in self.series.iter_mut() {
            if let Some(slot) = slots.get_mut(*r as usize) {
                *slot = Some(&mut **s);
            }
        }
        // Refs at or above `n` are in no range: never created, so unknown.
        let beyond = samples.iter().filter(|(r, _)| *r >= n as SeriesRef).count() as u64;
        let per = n.div_ceil(threads).max(1);
        let results: Vec<ReplayShard> = std::thread::scope(|scope| {
            let mut ranges = slots.chunks_mut(per).enumerate();
            let first = ranges.next();
            let handles: Vec<_> = ranges
                .map(|(k, range)| scope.spawn(move || replay_range(range, (k * per) as SeriesRef, samples)))
                .collect();
            let mut out: Vec<ReplayShard> = first.map(|(_, range)| replay_range(range, 0, samples)).into_iter().collect();
            // A worker panicking is a bug in the head, not bad input: surface it.
            out.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
            );
            out
        });
        drop(slots);
        let mut unknown = beyond;
        for r in results {
            self.chunks += r.chunks_added;
            unknown += r.unknown;
            if let Some(t) = r.max_t {
                self.max_t = Some(self.max_t.map_or(t, |m| m.max(t)));
            }
        }
        unknown
    }

    /// The ref the next new series gets.
    pub fn next_ref(&self) -> SeriesRef {
        self.next_ref
    }

    /// Makes sure new series get refs at or above `floor`.
    pub fn reserve_refs(&mut self, floor: SeriesRef) {
        self.next_ref = self.next_ref.max(floor);
    }

    /// Every series' ref and labels, for a WAL checkpoint.
    pub fn all_series(&self) -> Vec<(SeriesRef, Labels)> {
        let mut out: Vec<(SeriesRef, Labels)> = self.series.iter().map(|(r, s)| (*r, s.labels.to_labels(&self.symbols))).collect();
        out.sort_unstable_by_key(|(r, _)| *r);
        out
    }

    /// Refs of series matching every matcher, sorted by ref.
    pub fn postings_for(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        self.postings.select(matchers)
    }

    /// Series matching `matchers` with their samples in `[mint, maxt]`, sorted by labels.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<TimeSeries> {
        let refs = self.postings_for(matchers);
        // Decoding dominates large selects; it is spread over the CPUs (see `par`).
        let mut out = fedwatch_model::par::map_parts(&refs, SELECT_PART, |part| {
            part.iter()
                .filter_map(|r| {
                    let s = self.series.get(r)?;
                    let mut samples = Vec::new();
                    s.samples_in(mint, maxt, &mut samples);
                    (!samples.is_empty()).then(|| TimeSeries {
                        labels: s.labels.to_labels(&self.symbols),
                        samples,
                    })
                })
                .collect()
        });
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Label sets of matching series, sorted.
    pub fn series_labels(&self, matchers: &[Matcher]) -> Vec<Labels> {
        let mut out: Vec<Labels> = self
            .postings_for(matchers)
            .into_iter()
            .filter_map(|r| self.series.get(&r).map(|s| s.labels.to_labels(&self.symbols)))
            .collect();
        out.sort();
        out
    }

    /// Sorted label names of matching series (every name when `matchers` is empty).
    pub fn label_names(&self, matchers: &[Matcher]) -> Vec<String> {
        if matchers.is_empty() {
            return self.postings.names().map(str::to_string).collect();
        }
        let refs = self.postings_for(matchers);
        let mut names: Vec<String> = Vec::new();
        for r in refs {
            if let Some(s) = self.series.get(&r) {
                names.extend(s.labels.iter(&self.symbols).map(|(n, _)| n.to_string()));
            }
        }
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Sorted values of `name` on matching series.
    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Vec<String> {
        if matchers.is_empty() {
            return self.postings.values(name).map(|(v, _)| v.to_string()).collect();
        }
        self.postings.values_among(name, &self.postings_for(matchers))
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use fedwatch_model::{MatchOp, stale_nan};

    fn ts(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
        }
    }

    #[test]
    fn a_series_is_80_bytes_besides_its_heap_parts() {
        // 80 is an allocator size class; a field more moves every series up to the next one.
        assert_eq!(std::mem::size_of::<MemSeries>(), 80);
    }

    #[test]
    fn the_open_chunk_gives_the_newest_sample_and_its_first_time() {
        let mut s = MemSeries::new(&Labels::from_pairs([("a", "1")]), &mut Symbols::default());
        assert_eq!((s.last(), s.open_range()), (None, None));
        for (t, v) in [(-7_000i64, 1.5), (1_700_000_000_000, -2.0), (1_700_000_005_000, f64::NAN)] {
            s.push(t, v);
            assert_eq!(s.last(), Some((t, v.to_bits())));
        }
        assert_eq!(s.open_range(), Some((-7_000, 1_700_000_005_000)));
        for k in 0..MAX_SAMPLES_PER_CHUNK as i64 {
            s.push(1_700_000_010_000 + k, 0.0);
        }
        assert_eq!(s.closed.len(), 1);
        assert_eq!((s.closed[0].min_t, s.closed[0].max_t), (-7_000, 1_700_000_010_000 + 116));
        assert_eq!(s.open_range(), Some((1_700_000_010_000 + 117, 1_700_000_010_000 + 119)));
    }

    #[test]
    fn fingerprint_matches_the_model_crate() {
        for pairs in [
            vec![],
            vec![("a", "1")],
            vec![("__name__", "up"), ("job", "node"), ("instance", "10.0.0.1:9100")],
        ] {
            let l = Labels::from_pairs(pairs);
            assert_eq!(fingerprint(&l), l.fingerprint(), "{l}");
        }
    }

    #[test]
    fn fingerprint_collisions_keep_every_series_findable() {
        // Real xxh3 collisions are not at hand: index three series under one made-up
        // fingerprint (room reserved first, so no growth rehashes them to their real ones).
        let mut h = Head::new();
        h.by_fingerprint.reserve(16, |_| 0);
        let all: Vec<Labels> = ["a", "b", "c"].iter().map(|n| Labels::from_pairs([("__name__", *n)])).collect();
        for (r, labels) in (1..).zip(&all) {
            h.series.insert(r, Box::new(MemSeries::new(labels, &mut h.symbols)));
            h.index_fingerprint(7, r);
        }
        let found = |h: &Head| all.iter().map(|l| h.lookup_fp(7, l)).collect::<Vec<_>>();
        assert_eq!(found(&h), [Some(1), Some(2), Some(3)]);
        h.unindex_fingerprint(7, 2);
        assert_eq!(found(&h), [Some(1), None, Some(3)]);
        h.unindex_fingerprint(7, 1);
        h.unindex_fingerprint(7, 3);
        assert!(h.by_fingerprint.is_empty());
    }

    #[test]
    fn restored_closed_chunks_without_an_open_one_reopen_the_newest() {
        let mut h = Head::new();
        let labels = Labels::from_pairs([("__name__", "m")]);
        h.create_series(1, labels.clone());
        let older: Vec<Sample> = (0..120).map(|i| Sample { t: i * 10, v: i as f64 }).collect();
        let newer: Vec<Sample> = (120..130).map(|i| Sample { t: i * 10, v: i as f64 }).collect();
        let stored = |x: &[Sample]| crate::wal::StoredChunk {
            min_t: x[0].t,
            max_t: x[x.len() - 1].t,
            bytes: crate::chunk::encode(x).into_boxed_slice(),
        };
        let chunks = crate::wal::SeriesChunks {
            series: 1,
            closed: vec![stored(&older), stored(&newer)],
            open: None,
        };
        assert!(h.restore_chunks(1, chunks));
        // The newest sample is known, so ordering holds, and new samples go on after it.
        assert_eq!(h.append_sample(1, 1_200, 0.0), Some(SampleOutcome::OutOfOrder));
        assert_eq!(h.append_sample(1, 1_290, 129.0), Some(SampleOutcome::Resent));
        assert_eq!(h.append_sample(1, 1_300, 130.0), Some(SampleOutcome::Append));
        let mut got = Vec::new();
        h.series[&1].samples_in(i64::MIN, i64::MAX, &mut got);
        let want: Vec<Sample> = (0..131).map(|i| Sample { t: i * 10, v: i as f64 }).collect();
        assert_eq!(got, want);
        assert_eq!(h.chunk_count(), 2);
    }

    #[test]
    fn series_created_in_bulk_are_findable_during_and_after() {
        let mut h = Head::new();
        let all: Vec<Labels> = (0..3_000)
            .map(|i| Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())]))
            .collect();
        h.create_series(1, all[0].clone());
        h.begin_bulk();
        for (r, labels) in (1..).zip(&all) {
            assert_eq!(h.create_series(r, labels.clone()), r);
        }
        assert_eq!(h.create_series(9_999, all[7].clone()), 8, "found during the bulk");
        assert_eq!(h.truncate_before(i64::MAX).series_removed, 3_000);
        for (r, labels) in (1..).zip(&all).take(100) {
            assert_eq!(h.create_series(r + 5_000, labels.clone()), r + 5_000);
        }
        h.finish_bulk();
        assert_eq!(h.by_fingerprint.len(), 100);
        for (r, labels) in (1..).zip(&all).take(100) {
            assert_eq!(h.lookup(labels), Some(r + 5_000));
        }
        assert_eq!(h.lookup(&all[100]), None);
    }

    #[test]
    fn growing_the_fingerprint_table_keeps_every_series_findable() {
        let mut h = Head::new();
        let all: Vec<Labels> = (0..5_000)
            .map(|i| Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())]))
            .collect();
        for (r, labels) in (1..).zip(&all) {
            assert_eq!(h.create_series(r, labels.clone()), r);
        }
        for (r, labels) in (1..).zip(&all) {
            assert_eq!(h.lookup(labels), Some(r));
            assert_eq!(
                h.create_series(r + 10_000, labels.clone()),
                r,
                "an existing series is found, not created"
            );
        }
    }

    #[test]
    fn plan_refs_orders_refs_and_labels_like_plan() {
        // The ordering table above, with the second batch sent alternately by ref and by labels:
        // a series named both ways in one batch is one series, ordered sample by sample.
        let a = Labels::from_pairs([("a", "1")]);
        let cases: [(&[(i64, f64)], (u64, u64, u64), &[i64]); 3] = [
            (&[(20, 2.0), (30, 3.0)], (2, 0, 0), &[10, 20, 30]),
            (&[(20, 2.0), (15, 1.0), (20, 9.0), (20, 2.0)], (1, 1, 1), &[10, 20]),
            (&[(5, 2.0), (10, 1.0)], (0, 1, 0), &[10]),
        ];
        for (samples, (app, ooo, dup), kept) in cases {
            let mut h = Head::new();
            h.append(&[ts(&[("a", "1")], &[(10, 1.0)])], &SeriesLimits::NONE).unwrap();
            let r = h.lookup(&a).unwrap();
            let batch: Vec<RefSample> = samples
                .iter()
                .enumerate()
                .map(|(i, &(t, v))| RefSample {
                    series: if i % 2 == 0 { SeriesId::Ref(r) } else { SeriesId::Labels(&a) },
                    t,
                    v,
                })
                .collect();
            let rp = h.plan_refs(&batch, &SeriesLimits::NONE, i64::MIN).unwrap();
            assert!(rp.unknown.is_empty());
            assert!(rp.refs.iter().all(|x| *x == Some(r)), "{samples:?}: {:?}", rp.refs);
            let st = rp.plan.stats;
            assert_eq!(
                (st.samples_appended, st.out_of_order, st.duplicates, st.series_created),
                (app, ooo, dup, 0),
                "{samples:?}"
            );
            h.commit(&rp.plan);
            let got: Vec<i64> = h.select(&[], i64::MIN, i64::MAX)[0].samples.iter().map(|s| s.t).collect();
            assert_eq!(got, kept, "{samples:?}");
        }
    }

    proptest::proptest! {
        /// A batch in any order, with series repeated and named by ref or by labels, plans
        /// what appending its samples one at a time would store.
        #[test]
        fn plan_refs_matches_one_by_one_appends(
            batch in proptest::collection::vec((0usize..6, 0i64..30, 0u8..3, proptest::bool::ANY), 0..40)
        ) {
            let names: Vec<Labels> = (0..6).map(|i| Labels::from_pairs([("s", i.to_string())])).collect();
            let seed: Vec<TimeSeries> = (0..4).map(|i| ts(&[("s", &i.to_string())], &[(10, 1.0)])).collect();
            let (mut h, mut want) = (Head::new(), Head::new());
            h.append(&seed, &SeriesLimits::NONE).unwrap();
            want.append(&seed, &SeriesLimits::NONE).unwrap();
            let mut expected = AppendStats::default();
            for &(i, t, v, _) in &batch {
                let one = TimeSeries { labels: names[i].clone(), samples: vec![Sample { t, v: f64::from(v) }] };
                let st = want.append(&[one], &SeriesLimits::NONE).unwrap();
                expected.samples_appended += st.samples_appended;
                expected.out_of_order += st.out_of_order;
                expected.duplicates += st.duplicates;
            }
            let refs: Vec<Option<SeriesRef>> = names.iter().map(|l| h.lookup(l)).collect();
            let samples: Vec<RefSample> = batch
                .iter()
                .map(|&(i, t, v, by_ref)| RefSample {
                    series: match refs[i] {
                        Some(r) if by_ref => SeriesId::Ref(r),
                        _ => SeriesId::Labels(&names[i]),
                    },
                    t,
                    v: f64::from(v),
                })
                .collect();
            let rp = h.plan_refs(&samples, &SeriesLimits::NONE, i64::MIN).unwrap();
            let st = rp.plan.stats;
            proptest::prop_assert_eq!(
                (st.samples_appended, st.out_of_order, st.duplicates),
                (expected.samples_appended, expected.out_of_order, expected.duplicates)
            );
            h.commit(&rp.plan);
            let got = h.select(&[], i64::MIN, i64::MAX);
            let wanted = want.select(&[], i64::MIN, i64::MAX);
            proptest::prop_assert_eq!(got.len(), wanted.len());
            for (g, w) in got.iter().zip(&wanted) {
                proptest::prop_assert_eq!(&g.labels, &w.labels);
                let bits = |x: &TimeSeries| x.samples.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
                proptest::prop_assert_eq!(bits(g), bits(w));
            }
        }
    }

    #[test]
    fn plan_refs_reports_unknown_refs_and_plans_nothing() {
        let mut h = Head::new();
        let (a, b) = (Labels::from_pairs([("a", "1")]), Labels::from_pairs([("b", "1")]));
        let rp = h
            .plan_refs(
                &[
                    RefSample {
                        series: SeriesId::Labels(&a),
                        t: 1,
                        v: 1.0,
                    },
                    RefSample {
                        series: SeriesId::Labels(&b),
                        t: 1,
                        v: 1.0,
                    },
                    RefSample {
                        series: SeriesId::Labels(&a),
                        t: 2,
                        v: 1.0,
                    },
                ],
                &SeriesLimits::NONE,
                i64::MIN,
            )
            .unwrap();
        assert_eq!(rp.refs, vec![Some(1), Some(2), Some(1)]);
        assert_eq!(rp.plan.stats.series_created, 2);
        h.commit(&rp.plan);
        // `a` ends before the cut; its ref is gone for good.
        h.append(&[ts(&[("b", "1")], &[(100, 1.0)])], &SeriesLimits::NONE).unwrap();
        assert_eq!(h.truncate_before(50).series_removed, 1);
        let rp = h
            .plan_refs(
                &[
                    RefSample {
                        series: SeriesId::Ref(2),
                        t: 101,
                        v: 1.0,
                    },
                    RefSample {
                        series: SeriesId::Ref(1),
                        t: 101,
                        v: 1.0,
                    },
                    RefSample {
                        series: SeriesId::Ref(99),
                        t: 101,
                        v: 1.0,
                    },
                ],
                &SeriesLimits::NONE,
                i64::MIN,
            )
            .unwrap();
        assert_eq!(rp.unknown, vec![1, 2]);
        assert!(rp.plan.samples.is_empty() && rp.plan.new_series.is_empty());
        // Below the floor a new series is not created (nor given a ref), as in `plan_from`.
        let rp = h
            .plan_refs(
                &[RefSample {
                    series: SeriesId::Labels(&a),
                    t: 1,
                    v: 1.0,
                }],
                &SeriesLimits::NONE,
                50,
            )
            .unwrap();
        assert_eq!((rp.refs, rp.plan.stats.out_of_order, rp.plan.new_series.len()), (vec![None], 1, 0));
        // The series limit refuses the batch whole, as in `plan`.
        let limits = SeriesLimits {
            max_series: Some(1),
            ..SeriesLimits::NONE
        };
        let err = h.plan_refs(
            &[RefSample {
                series: SeriesId::Labels(&a),
                t: 200,
                v: 1.0,
            }],
            &limits,
            i64::MIN,
        );
        assert!(matches!(err, Err(AppendError::SeriesLimit { limit: 1 })), "{err:?}");
    }

    #[test]
    fn ordering_rules_table() {
        // (samples appended in one batch after (10, 1.0), expected stats (appended, ooo, dup), kept times)
        let cases: [(&[(i64, f64)], (u64, u64, u64), &[i64]); 5] = [
            (&[(20, 2.0)], (1, 0, 0), &[10, 20]),
            (&[(5, 2.0)], (0, 1, 0), &[10]),
            (&[(10, 1.0)], (0, 0, 0), &[10]),
            (&[(10, 9.0)], (0, 0, 1), &[10]),
            (&[(20, 2.0), (15, 1.0), (20, stale_nan()), (30, f64::NAN)], (2, 1, 1), &[10, 20, 30]),
        ];
        for (samples, (app, ooo, dup), kept) in cases {
            let mut h = Head::new();
            h.append(&[ts(&[("a", "1")], &[(10, 1.0)])], &SeriesLimits::NONE).unwrap();
            let st = h.append(&[ts(&[("a", "1")], samples)], &SeriesLimits::NONE).unwrap();
            assert_eq!(
                (st.samples_appended, st.out_of_order, st.duplicates),
                (app, ooo, dup),
                "{samples:?}"
            );
            let got: Vec<i64> = h.select(&[], i64::MIN, i64::MAX)[0].samples.iter().map(|s| s.t).collect();
            assert_eq!(got, kept, "{samples:?}");
        }
    }

    #[test]
    fn label_limits_table() {
        let limits = SeriesLimits {
            max_labels: Some(3),
            max_name_len: Some(8),
            max_value_len: Some(10),
            ..SeriesLimits::NONE
        };
        let cases: [(&[(&str, &str)], Option<&str>); 5] = [
            (&[("__name__", "up"), ("job", "a")], None),
            (
                &[("__name__", "up"), ("a", "1"), ("b", "2"), ("c", "3")],
                Some("4 labels, at most 3"),
            ),
            (
                &[("__name__", "up"), ("long_name", "x")],
                Some("label name \"long_name\" is 9 bytes"),
            ),
            (
                &[("__name__", "up"), ("job", "abcdefghijk")],
                Some("value of label \"job\" is 11 bytes"),
            ),
            (&[("__name__", "up"), ("job", "abcdefghij")], None),
        ];
        for (pairs, want) in cases {
            let mut h = Head::new();
            let got = h.append(&[ts(pairs, &[(1, 1.0)])], &limits);
            match (got, want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => {
                    assert!(e.to_string().contains(w), "{pairs:?}: {e}");
                    assert_eq!(h.series_count(), 0);
                }
                (got, want) => panic!("{pairs:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn chunks_are_cut_at_120_and_selected_by_range() {
        let mut h = Head::new();
        let samples: Vec<(i64, f64)> = (0..300).map(|i| (i * 10, i as f64)).collect();
        h.append(&[ts(&[("a", "1")], &samples)], &SeriesLimits::NONE).unwrap();
        assert_eq!(h.chunk_count(), 3);
        let got = h.select(&[Matcher::equal("a", "1")], 1195, 1215);
        assert_eq!(got[0].samples, vec![Sample { t: 1200, v: 120.0 }, Sample { t: 1210, v: 121.0 }]);
        let st = h.truncate_before(1200);
        assert_eq!(
            st,
            TruncateStats {
                chunks_removed: 1,
                series_removed: 0
            }
        );
        assert_eq!(h.select(&[], 0, i64::MAX)[0].samples[0].t, 1200);
        let st = h.truncate_before(10_000);
        assert_eq!(
            st,
            TruncateStats {
                chunks_removed: 2,
                series_removed: 1
            }
        );
        assert_eq!(h.series_count(), 0);
        assert!(h.label_names(&[]).is_empty());
    }

    #[test]
    fn series_limit_and_labels_listing() {
        let two = SeriesLimits {
            max_series: Some(2),
            ..SeriesLimits::NONE
        };
        let mut h = Head::new();
        h.append(
            &[
                ts(&[("__name__", "up"), ("job", "a")], &[(1, 1.0)]),
                ts(&[("__name__", "up"), ("job", "b")], &[(1, 1.0)]),
            ],
            &two,
        )
        .unwrap();
        assert!(matches!(
            h.append(&[ts(&[("__name__", "up"), ("job", "c")], &[(1, 1.0)])], &two),
            Err(AppendError::SeriesLimit { limit: 2 })
        ));
        assert_eq!(h.label_values("job", &[]), vec!["a", "b"]);
        let not_a = Matcher::new(MatchOp::NotEqual, "job", "a").unwrap();
        assert_eq!(h.label_values("job", std::slice::from_ref(&not_a)), vec!["b"]);
        assert_eq!(h.label_names(&[not_a]), vec!["__name__", "job"]);
    }
}
