//! The scrape cache: one per loop, mapping the raw series text of a line (name and label
//! block, as the parser hands it over) to what the loop decided for it the first time: the
//! stored series (the store's ref, or its final labels until the store gives a ref), or
//! "dropped by `metric_relabel_configs`". A known line skips label building, relabeling,
//! label limits and the store's label hashing; the final labels depend only on the line, the
//! target's labels and the scrape config, which are fixed for a loop's life (a reload starts
//! a new loop with a new cache).
//!
//! Lines are keyed by a 128-bit SipHash-1-3 of their text under a random key per cache
//! rather than by the text itself: the text is most of what a cached line would cost (a
//! ~70-byte copy per series), and without the key nobody can make two lines collide (the
//! chance by accident is about n²/2¹²⁹, below 10⁻²⁸ for a million lines; rustc's incremental
//! builds trust the same hash the same way).
//!
//! Staleness, as in Prometheus, is per stored series, not per line: two lines may end up as
//! one series (labels written in another order, relabeling), so each entry carries the
//! fingerprint of its final labels and the "gone" and "added" sets are compared by it. Per
//! entry the cache keeps whether its line was in the last successful scrape (`in_prev`) and
//! whether it was tracked for staleness there (`tracked_prev`: it had no explicit timestamp).
//! Entries not seen by a successful scrape are evicted after their stale markers go out; a
//! failed scrape keeps the entries (their decisions stay valid) but forgets what was seen.
//!
//! Refs: a store may drop a series (head retention) and with it the ref. Appends name series
//! by ref; the store reports unknown refs without appending anything, the loop rebuilds
//! those lines' labels from the body at hand and appends again, so no sample is lost. A stale
//! marker whose ref is unknown has no series left to end; it is skipped and counted.

use std::collections::HashMap;
use std::collections::HashSet;

use fedwatch_model::Labels;
use fedwatch_tsdb::{AppendError, AppendStats, Appender, RefSample, SeriesId, SeriesRef};

type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// A line's 128-bit keyed hash, its identity in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LineKey(u64, u64);

impl std::hash::Hash for LineKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// Hashes a [`LineKey`] as its first word, which is already uniformly random.
#[derive(Clone, Copy, Debug, Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else is still folded in, never ignored.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type KeyMap = HashMap<LineKey, u32, std::hash::BuildHasherDefault<KeyHasher>>;

/// Random SipHash keys, from the standard library's per-process random state.
fn random_keys() -> (u64, u64) {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    (state.hash_one(0x5eed_u64), state.hash_one(0xcafe_u64))
}

/// How appends name a stored series.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Stored {
    /// The store's ref.
    Ref(SeriesRef),
    /// The final labels, until the store hands out a ref (forever for stores without refs);
    /// boxed so that a cached line that has its ref costs 16 bytes here, not 24.
    Labels(Box<Labels>),
}

impl Stored {
    fn id(&self) -> SeriesId<'_> {
        match self {
            Stored::Ref(r) => SeriesId::Ref(*r),
            Stored::Labels(l) => SeriesId::Labels(l),
        }
    }
}

/// A series the last successful scrape had and tracked for staleness: what a loop hands to
/// its successor on reload, and what gets a marker when the target goes away.
#[derive(Clone, Debug)]
pub(crate) struct Tracked {
    /// Fingerprint of the final labels (the series' identity across lines and loops).
    pub hash: u64,
    pub stored: Stored,
}

#[derive(Debug)]
struct Entry {
    /// `None`: relabeling dropped the line.
    series: Option<Stored>,
    hash: u64,
    /// Number of the scrape that last saw the line.
    seen: u32,
    /// Seen in the current scrape without an explicit timestamp.
    tracked_now: bool,
    in_prev: bool,
    tracked_prev: bool,
}

/// Raw line text to stored series, with the staleness state of the last successful scrape.
#[derive(Debug)]
pub(crate) struct ScrapeCache {
    /// SipHash keys for [`LineKey`]s.
    keys: (u64, u64),
    index: KeyMap,
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Number of the scrape in progress (or the last one).
    scrape: u32,
    /// Series a predecessor loop tracked, until this loop's first scrape ends.
    carried: Vec<Tracked>,
}

/// Where a pending sample came from, to write refs back and to rebuild lost refs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Origin {
    /// Line `line` of the body, cached in `slot`.
    Line { line: usize, slot: u32 },
    /// A stale marker (no line to rebuild it from).
    Marker,
}

/// One sample to append and the series it goes to.
#[derive(Debug)]
pub(crate) struct Pending {
    pub stored: Stored,
    pub t: i64,
    pub v: f64,
    pub origin: Origin,
    /// Skipped: a marker whose series the store no longer has.
    pub skip: bool,
}

/// What [`append_pending`] did.
#[derive(Debug, Default)]
pub(crate) struct Appended {
    pub stats: AppendStats,
    /// Stale markers skipped because the store no longer had their series.
    pub markers_lost: u64,
}

/// How many times an append is retried after refs vanished under it. Rebuilt entries carry
/// labels, which cannot vanish, so the second attempt normally succeeds.
const REF_RETRIES: usize = 3;

/// Appends `pending` as one batch. Unknown refs are replaced by `rebuild(origin)`'s labels
/// and the batch retried (markers, which `rebuild` cannot give, are skipped); refs the store
/// returns replace labels in `pending`, for the caller to keep.
pub(crate) fn append_pending(
    appender: &dyn Appender,
    pending: &mut [Pending],
    mut rebuild: impl FnMut(Origin) -> Option<Labels>,
) -> Result<Appended, AppendError> {
    let mut markers_lost = 0;
    for _ in 0..REF_RETRIES {
        let positions: Vec<usize> = (0..pending.len()).filter(|&i| !pending[i].skip).collect();
        let batch: Vec<RefSample<'_>> = positions
            .iter()
            .map(|&i| {
                let p = &pending[i];
                RefSample {
                    series: p.stored.id(),
                    t: p.t,
                    v: p.v,
                }
            })
            .collect();
        let result = appender.append_refs(&batch)?;
        drop(batch);
        if result.unknown.is_empty() {
            for (&i, r) in positions.iter().zip(&result.refs) {
                if let Some(r) = r {
                    pending[i].stored = Stored::Ref(*r);
                }
            }
            return Ok(Appended {
                stats: result.stats,
                markers_lost,
            });
        }
        for u in result.unknown {
            let Some(&i) = positions.get(u) else { continue };
            match rebuild(pending[i].origin) {
                Some(labels) => pending[i].stored = Stored::Labels(Box::new(labels)),
                None => {
                    pending[i].skip = true;
                    markers_lost += 1;
                }
            }
        }
    }
    Err(AppendError::Storage(format!(
        "series refs kept vanishing during {REF_RETRIES} attempts to append a scrape"
    )))
}

impl ScrapeCache {
    /// An empty cache taking over the series a predecessor tracked.
    pub(crate) fn new(carried: Vec<Tracked>) -> Self {
        ScrapeCache {
            keys: random_keys(),
            index: KeyMap::default(),
            entries: Vec::new(),
            free: Vec::new(),
            scrape: 0,
            carried,
        }
    }

    /// Sizes an empty cache for the `lines` of its first body exactly (a doubling vector
    /// would carry up to as many unused entries as lines for the target's whole life).
    pub(crate) fn expect(&mut self, lines: usize) {
        if self.entries.is_empty() {
            self.entries.reserve_exact(lines);
            self.index.reserve(lines);
        }
    }

    /// The key of a line's raw text.
    pub(crate) fn key(&self, raw: &[u8]) -> LineKey {
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        std::hash::Hasher::write(&mut h, raw);
        let h = siphasher::sip128::Hasher128::finish128(&h);
        LineKey(h.h1, h.h2)
    }

    /// Starts a scrape; entries seen by it get its number.
    pub(crate) fn begin(&mut self) {
        self.scrape = self.scrape.wrapping_add(1);
        if self.scrape == 0 {
            // Wrapped: no entry may look seen by the new scrape.
            for e in self.entries.iter_mut().flatten() {
                e.seen = 0;
            }
            self.scrape = 1;
        }
    }

    /// The slot of a known line, by its [`ScrapeCache::key`].
    pub(crate) fn get(&self, key: LineKey) -> Option<u32> {
        self.index.get(&key).copied()
    }

    /// Caches a new line by its [`ScrapeCache::key`]: its final labels, or `None` when
    /// relabeling dropped it.
    pub(crate) fn insert(&mut self, key: LineKey, labels: Option<Labels>) -> u32 {
        let entry = Entry {
            hash: labels.as_ref().map_or(0, fedwatch_tsdb::head::fingerprint),
            series: labels.map(|l| Stored::Labels(Box::new(l))),
            seen: 0,
            tracked_now: false,
            in_prev: false,
            tracked_prev: false,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert(key, slot);
        slot
    }

    fn entry(&self, slot: u32) -> Option<&Entry> {
        self.entries.get(slot as usize).and_then(Option::as_ref)
    }

    fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.entries.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Whether relabeling dropped the line in `slot`.
    pub(crate) fn dropped(&self, slot: u32) -> bool {
        self.entry(slot).is_none_or(|e| e.series.is_none())
    }

    /// The stored series of a slot (for a line relabeling kept).
    pub(crate) fn stored(&self, slot: u32) -> Option<&Stored> {
        self.entry(slot).and_then(|e| e.series.as_ref())
    }

    /// Records that the current scrape saw the line in `slot`, `tracked` when it had no
    /// explicit timestamp (only such series get stale markers).
    pub(crate) fn see(&mut self, slot: u32, tracked: bool) {
        let scrape = self.scrape;
        if let Some(e) = self.entry_mut(slot) {
            if e.seen != scrape {
                e.seen = scrape;
                e.tracked_now = false;
            }
            e.tracked_now |= tracked;
        }
    }

    /// Keeps the ref (or labels) an append returned for a slot.
    pub(crate) fn set_stored(&mut self, slot: u32, stored: Stored) {
        if let Some(e) = self.entry_mut(slot)
            && e.series.is_some()
        {
            e.series = Some(stored);
        }
    }

    /// Distinct series of the current scrape that the last successful scrape did not have
    /// (`scrape_series_added`).
    pub(crate) fn added(&self, slots: &[u32]) -> usize {
        let mut new: Vec<u64> = slots
            .iter()
            .filter_map(|&s| self.entry(s))
            .filter(|e| e.series.is_some() && !e.in_prev)
            .map(|e| e.hash)
            .collect();
        if new.is_empty() {
            return 0;
        }
        new.sort_unstable();
        new.dedup();
        // Only when something looks new: another line may have carried the same series.
        let prev: FastSet<u64> = self
            .entries
            .iter()
            .flatten()
            .filter(|e| e.in_prev && e.series.is_some())
            .map(|e| e.hash)
            .chain(self.carried.iter().map(|t| t.hash))
            .collect();
        new.iter().filter(|h| !prev.contains(h)).count()
    }

    /// Series the last successful scrape tracked and the current one does not: they get a
    /// stale marker (one per series, however many lines it had).
    pub(crate) fn gone(&self) -> Vec<Stored> {
        let scrape = self.scrape;
        let now_tracked = |e: &Entry| e.seen == scrape && e.tracked_now;
        let mut gone: Vec<(u64, &Stored)> = self
            .entries
            .iter()
            .flatten()
            .filter(|e| e.tracked_prev && !now_tracked(e))
            .filter_map(|e| Some((e.hash, e.series.as_ref()?)))
            .chain(self.carried.iter().map(|t| (t.hash, &t.stored)))
            .collect();
        if gone.is_empty() {
            return Vec::new();
        }
        let now: FastSet<u64> = self
            .entries
            .iter()
            .flatten()
            .filter(|e| now_tracked(e) && e.series.is_some())
            .map(|e| e.hash)
            .collect();
        let mut marked = FastSet::default();
        gone.retain(|(h, _)| !now.contains(h) && marked.insert(*h));
        gone.into_iter().map(|(_, s)| s.clone()).collect()
    }

    /// Ends a successful scrape: what it saw becomes the previous scrape; lines it did not
    /// see are evicted.
    pub(crate) fn commit(&mut self) {
        let scrape = self.scrape;
        let mut evicted = false;
        for (slot, e) in self.entries.iter_mut().enumerate() {
            let Some(entry) = e else { continue };
            if entry.seen == scrape {
                entry.in_prev = true;
                entry.tracked_prev = entry.tracked_now && entry.series.is_some();
            } else {
                *e = None;
                self.free.push(slot as u32);
                evicted = true;
            }
        }
        if evicted {
            let entries = &self.entries;
            self.index
                .retain(|_, slot| entries.get(*slot as usize).is_some_and(Option::is_some));
        }
        self.carried = Vec::new();
    }

    /// After a failed scrape: every series tracked so far gets a marker, and the next
    /// successful scrape starts from nothing seen (entries stay cached).
    pub(crate) fn fail(&mut self) -> Vec<Stored> {
        let carried = std::mem::take(&mut self.carried);
        let mut marked: FastSet<u64> = carried.iter().map(|t| t.hash).collect();
        let mut out: Vec<Stored> = carried.into_iter().map(|t| t.stored).collect();
        for e in self.entries.iter_mut().flatten() {
            if e.tracked_prev
                && let Some(s) = &e.series
                && marked.insert(e.hash)
            {
                out.push(s.clone());
            }
            e.in_prev = false;
            e.tracked_prev = false;
        }
        out
    }

    /// The series tracked by the last successful scrape (plus any still carried), for a
    /// successor loop or for stale markers when the target goes away.
    pub(crate) fn take_tracked(&mut self) -> Vec<Tracked> {
        let mut out = std::mem::take(&mut self.carried);
        let mut marked: FastSet<u64> = out.iter().map(|t| t.hash).collect();
        for e in self.entries.iter().flatten() {
            if e.tracked_prev
                && let Some(s) = &e.series
                && marked.insert(e.hash)
            {
                out.push(Tracked {
                    hash: e.hash,
                    stored: s.clone(),
                });
            }
        }
        out
    }

    /// Lines cached.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_keeps_its_key_and_other_lines_get_other_keys() {
        let cache = ScrapeCache::new(Vec::new());
        let lines: Vec<String> = (0..20_000).map(|i| format!("m{{pod=\"p-{i}\",phase=\"Running\"}}")).collect();
        let keys: HashSet<(u64, u64)> = lines.iter().map(|l| cache.key(l.as_bytes())).map(|k| (k.0, k.1)).collect();
        assert_eq!(keys.len(), lines.len());
        assert_eq!(cache.key(lines[7].as_bytes()), cache.key(lines[7].clone().as_bytes()));
        // Keys are secret per cache: another cache hashes the same line differently.
        assert_ne!(ScrapeCache::new(Vec::new()).key(b"up"), cache.key(b"up"));
    }

    #[test]
    fn a_cached_line_is_32_bytes() {
        // Per line of every target: the index entry (24 bytes) and this.
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 32);
    }

    #[test]
    fn inserted_lines_are_found_by_key() {
        let mut cache = ScrapeCache::new(Vec::new());
        cache.begin();
        let a = cache.key(b"a{x=\"1\"}");
        let b = cache.key(b"a{x=\"2\"}");
        let slot = cache.insert(a, Some(Labels::from_pairs([("__name__", "a"), ("x", "1")])));
        assert_eq!(cache.get(a), Some(slot));
        assert_eq!(cache.get(b), None);
        let dropped = cache.insert(b, None);
        assert!(cache.dropped(dropped) && !cache.dropped(slot));
        assert_eq!(cache.len(), 2);
    }
}
