//! Holds on the log: readers (forwarders) tell the store the oldest segment they still need,
//! and a checkpoint does not consume it, up to a bound.
//!
//! A checkpoint normally rewrites every sealed segment and deletes them. With holds it
//! consumes only the segments before the lowest held one, so a reader that fell behind (an
//! upstream is down) finds its data still in the log when it catches up. A hold is bounded
//! by an age: when the held segment was last written longer ago than the hold's `max_age`,
//! the checkpoint ignores that hold, counts the samples in the segments it deletes from the
//! held one on (an upper bound of what the reader loses: part of the held segment may have
//! been read) into [`WalHold::lost_samples`], and logs it. A segment's age is taken from its
//! modification time, i.e. when it was sealed, which understates the age of its oldest
//! record by at most the time one segment takes to fill.
//!
//! Holds are registered in the store and dropped with their [`WalHold`] handle; a dropped
//! hold holds nothing.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use super::{ReplayStats, WalRecord, replay_segment, segment_path};

#[derive(Debug)]
pub(crate) struct HoldSlot {
    name: String,
    segment: AtomicU32,
    max_age: Option<Duration>,
    lost: AtomicU64,
}

/// A reader's claim on the log from one segment on; released when dropped.
#[derive(Debug, Clone)]
pub struct WalHold {
    slot: Arc<HoldSlot>,
}

impl WalHold {
    /// Moves the hold: segments before `segment` may now be checkpointed away.
    pub fn set(&self, segment: u32) {
        self.slot.segment.store(segment, Ordering::Relaxed);
    }

    /// The oldest segment held.
    pub fn segment(&self) -> u32 {
        self.slot.segment.load(Ordering::Relaxed)
    }

    /// Samples in segments deleted while this hold still claimed them (its backlog grew too old).
    pub fn lost_samples(&self) -> u64 {
        self.slot.lost.load(Ordering::Relaxed)
    }

    /// The name the hold was registered under.
    pub fn name(&self) -> &str {
        &self.slot.name
    }
}

/// The holds registered with one store.
#[derive(Debug, Default)]
pub(crate) struct Holds(Mutex<Vec<Weak<HoldSlot>>>);

impl Holds {
    pub(crate) fn register(&self, name: &str, segment: u32, max_age: Option<Duration>) -> WalHold {
        let slot = Arc::new(HoldSlot {
            name: name.to_string(),
            segment: AtomicU32::new(segment),
            max_age,
            lost: AtomicU64::new(0),
        });
        let mut holds = self.0.lock().unwrap_or_else(|e| e.into_inner());
        holds.retain(|w| w.strong_count() > 0);
        holds.push(Arc::downgrade(&slot));
        WalHold { slot }
    }

    /// The newest segment a checkpoint may consume when `sealed` is the newest sealed one.
    pub(crate) fn limit(&self, dir: &Path, sealed: u32) -> u32 {
        let live: Vec<Arc<HoldSlot>> = {
            let holds = self.0.lock().unwrap_or_else(|e| e.into_inner());
            holds.iter().filter_map(Weak::upgrade).collect()
        };
        let mut limit = sealed;
        let now = SystemTime::now();
        for slot in live {
            let held = slot.segment.load(Ordering::Relaxed);
            if held > sealed {
                continue;
            }
            let path = segment_path(dir, held);
            // A missing segment is gone already; nothing left to hold.
            let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
                continue;
            };
            let age = now.duration_since(modified).unwrap_or_default();
            if slot.max_age.is_some_and(|max| age > max) {
                let lost = count_samples(dir, held, sealed);
                slot.lost.fetch_add(lost, Ordering::Relaxed);
                tracing::error!(
                    reader = %slot.name, held_segment = held, age_secs = age.as_secs(), samples = lost,
                    "WAL reader's backlog is older than its limit: its segments are checkpointed away and the reader loses them"
                );
                continue;
            }
            limit = limit.min(held.saturating_sub(1));
        }
        limit
    }
}

/// Samples in segments `from..=upto` (those that can be read).
fn count_samples(dir: &Path, from: u32, upto: u32) -> u64 {
    let mut stats = ReplayStats::default();
    for i in from..=upto {
        if let Ok(data) = std::fs::read(segment_path(dir, i)) {
            replay_segment(&data, &mut stats, &mut |_: WalRecord| {});
        }
    }
    stats.samples
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fedwatch_model::{Labels, Sample, TimeSeries};

    use crate::testdir::TestDir;
    use crate::wal::list_segments;
    use crate::{Appender, Db, DbOptions, FsyncPolicy};

    fn fill(db: &Db, from: i64, n: i64) {
        for t in from..from + n {
            db.append(&[TimeSeries {
                labels: Labels::from_pairs([("__name__", "m")]),
                samples: vec![Sample { t, v: 1.0 }],
            }])
            .unwrap();
        }
    }

    #[test]
    fn checkpoints_keep_held_segments_until_the_hold_moves_or_ages_out() {
        let dir = TestDir::new("wal-hold");
        let opts = DbOptions {
            fsync: FsyncPolicy::Never,
            wal_segment_size: 200,
            block_duration: None,
            ..Default::default()
        };
        let db = Db::open(dir.path(), opts).unwrap();
        let wal = db.wal_dir();
        let first = db.wal_end().segment;
        let hold = db.hold_wal("test", first, Some(Duration::from_secs(3600)));
        fill(&db, 0, 40);
        db.checkpoint().unwrap();
        assert_eq!(list_segments(&wal).unwrap().first(), Some(&first), "held segment kept");

        let middle = db.wal_end().segment;
        hold.set(middle);
        fill(&db, 40, 40);
        db.checkpoint().unwrap();
        assert_eq!(
            list_segments(&wal).unwrap().first(),
            Some(&middle),
            "segments before the hold consumed"
        );
        assert_eq!(hold.lost_samples(), 0);

        // The held segment was last written two hours ago: past the bound, it goes.
        let old = std::time::SystemTime::now() - Duration::from_secs(7200);
        let f = std::fs::File::options()
            .write(true)
            .open(crate::wal::segment_path(&wal, middle))
            .unwrap();
        f.set_modified(old).unwrap();
        db.checkpoint().unwrap();
        assert!(list_segments(&wal).unwrap().iter().all(|&i| i > middle));
        assert!(hold.lost_samples() >= 40, "{}", hold.lost_samples());

        // A dropped hold holds nothing.
        let h2 = db.hold_wal("gone", db.wal_end().segment, None);
        drop(h2);
        fill(&db, 80, 40);
        let sealed = db.checkpoint().unwrap().upto;
        assert!(list_segments(&wal).unwrap().iter().all(|&i| i > sealed));
    }
}
