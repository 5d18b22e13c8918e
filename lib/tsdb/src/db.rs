//! The store a tier opens: the head behind a write-ahead log, cut into immutable on-disk
//! blocks that are compacted and deleted by time and size retention.
//!
//! Layout of the data directory: `wal/` holds the log's segments, `blk-<mint>-<maxt>/` the
//! blocks (see `FORMAT.md`).
//!
//! Blocks: when the head spans 1.5 × `block_duration`, its oldest aligned `block_duration`
//! range is written as a block (by a background thread, or inside the append with
//! `maintenance_in_append`). The range is first closed to appends (samples below the newest
//! block's end are refused as out of order), then copied from the head, written under a
//! temporary name, fsynced and renamed; only then is it published to queries together with
//! the new query floor, the head drops the chunks below it and the log is checkpointed
//! without the samples below it. Queries read the head from the floor on and blocks below
//! it; they take the head lock before reading the block set, so they never see the head
//! truncated without the block that replaced it. A crash at any point leaves either the
//! whole block (its samples are then also replayed from the log and dropped below the floor)
//! or no block (the log still holds everything).
//!
//! A failed cut (disk full, I/O error) leaves the data in the head and the log, is logged and
//! counted, and is retried by the next append 30 s later (or by [`Db::compact`]); the range
//! stays closed to appends meanwhile.
//!
//! Compaction merges adjacent blocks (see [`crate::compact`]); the merged block names its
//! sources as parents, which are deleted after it is in place, and again at open if a crash
//! came between. A block failing its checks at open or a chunk failing its CRC in a query is
//! moved aside as `<name>.corrupt`, logged and counted, and the store goes on without it.
//!
//! An append plans against the head under its write lock, writes the plan to the log, and
//! only then applies it and returns; a log failure leaves the head untouched and is returned
//! as [`AppendError::Storage`]. Queries take the read lock and never touch the log. Lock
//! order is head, then log; the background syncer takes only the log.
//!
//! Retention drops whole chunks whose newest sample is older than the head's newest sample
//! minus the retention, so up to one chunk's span more than the retention may stay.
//!
//! The log is checkpointed (see [`crate::wal::checkpoint`] and `FORMAT.md`) after block cuts,
//! after retention passes that removed data once two segments were sealed, and by size: when
//! the segments sealed since the last checkpoint outweigh it by
//! [`DbOptions::wal_checkpoint_ratio`]. A checkpoint is the head's chunks, written by a
//! background thread that reads the head one group of series at a time, so the per-sample
//! part of the log stays a fraction of the head and the log about as large as the head.
//!
//! Replay loads the checkpoint's chunks as they are, then applies the logged samples after it
//! in batches across threads, each thread owning a contiguous range of refs (series records
//! are applied in log order first, so every sample's series exists); per series the log's
//! order is kept, so the head is the one a one-by-one replay builds.
//!
//! Readers of the log (forwarders) register a [`WalHold`] on the oldest segment they still
//! need; a checkpoint then consumes only the segments before the lowest hold, up to each
//! hold's age bound (see [`crate::wal::hold`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use fedwatch_model::selfmetrics::Registry;
use std::collections::BTreeMap;

use fedwatch_model::{Labels, Matcher, Sample, TimeSeries};

use crate::block::{Block, BlockMeta, BlockWriter, is_block_name};
use crate::compact::{level_ranges, plan_compaction, retention_victims};
use crate::head::{AppendPlan, Head, RefPlan, SeriesLimits, TruncateStats};
use crate::postings::SeriesRef;
use crate::wal::{CheckpointStats, DEFAULT_SEGMENT_SIZE, FsyncPolicy, ReplayStats, Wal, WalHold, WalPosition, WalRecord};
use crate::{AppendError, AppendStats, Appender, Querier, RefAppend, RefSample, SelectError, SelectHints, TsdbError};

/// Default [`DbOptions::wal_checkpoint_ratio`].
pub const DEFAULT_CHECKPOINT_RATIO: f64 = 0.5;

/// Logged samples buffered during replay before they are applied across threads.
const REPLAY_BATCH: usize = 1 << 21;

/// How long background maintenance waits after a failure before appends start it again.
const MAINTENANCE_RETRY: Duration = Duration::from_secs(30);

/// How a [`Db`] behaves.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Keep samples this far behind the newest one; `None` keeps everything.
    pub retention: Option<Duration>,
    /// When the log fsyncs (default: at most every second).
    pub fsync: FsyncPolicy,
    /// Refuse batches that would create more series than this.
    pub max_series: Option<usize>,
    /// Refuse batches creating a series with more labels than this (`__name__` included).
    pub max_labels_per_series: Option<usize>,
    /// Refuse batches creating a series with a label name longer than this, in bytes.
    pub max_label_name_len: Option<usize>,
    /// Refuse batches creating a series with a label value longer than this, in bytes.
    pub max_label_value_len: Option<usize>,
    /// Log segment size in bytes (default 128 MiB).
    pub wal_segment_size: u64,
    /// Range of a block cut from the head (default 2 h); `None` keeps everything in the head.
    pub block_duration: Option<Duration>,
    /// Delete the oldest blocks while blocks plus log take more bytes than this.
    pub retention_size: Option<u64>,
    /// Cut, compact and delete blocks inside the append that makes them due, instead of in a
    /// background thread (deterministic, for tests and tools).
    pub maintenance_in_append: bool,
    /// Build the 5m and 1h downsampled levels from blocks (see [`crate::downsample`]).
    pub downsample: bool,
    /// Checkpoint the log once the segments sealed since the last checkpoint hold more than
    /// this fraction of its bytes (and at least one segment): checkpoints then write about
    /// `1 / ratio` bytes per byte logged, and replay reads at most about `ratio` × the
    /// checkpoint in per-sample records plus the live segment. Default 0.5; infinity turns
    /// size-triggered checkpoints off (block cuts and retention still checkpoint).
    pub wal_checkpoint_ratio: f64,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            retention: None,
            fsync: FsyncPolicy::default(),
            max_series: None,
            max_labels_per_series: None,
            max_label_name_len: None,
            max_label_value_len: None,
            wal_segment_size: DEFAULT_SEGMENT_SIZE,
            block_duration: Some(Duration::from_secs(2 * 3600)),
            retention_size: None,
            maintenance_in_append: false,
            downsample: false,
            wal_checkpoint_ratio: DEFAULT_CHECKPOINT_RATIO,
        }
    }
}

/// Counters and gauges for a tier's self-metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DbStats {
    pub series: usize,
    pub chunks: usize,
    pub wal_bytes: u64,
    pub appends: u64,
    /// Batches refused for the series limit.
    pub series_limit_refusals: u64,
    /// Batches refused for a label limit.
    pub label_limit_refusals: u64,
    /// Batches refused because the log could not be written.
    pub append_errors: u64,
    pub samples_appended: u64,
    pub series_created: u64,
    pub out_of_order: u64,
    pub duplicates: u64,
    pub chunks_removed: u64,
    pub series_removed: u64,
    pub checkpoints: u64,
    pub checkpoint_errors: u64,
    /// Bytes written into checkpoints since open (their write amplification over the log).
    pub checkpoint_bytes_written: u64,
    /// Bytes appended to log segments since open.
    pub wal_bytes_logged: u64,
    /// Damaged log tails repaired when this store opened (0 or 1).
    pub wal_corruptions: u64,
    /// Blocks on disk and their bytes.
    pub blocks: usize,
    pub block_bytes: u64,
    /// Blocks cut from the head.
    pub blocks_written: u64,
    /// Blocks written by merging others.
    pub compactions: u64,
    /// Blocks deleted by retention.
    pub blocks_removed: u64,
    /// Blocks moved aside as corrupt.
    pub blocks_quarantined: u64,
    /// Block cuts, compactions or deletions that failed (retried later).
    pub maintenance_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    appends: AtomicU64,
    append_errors: AtomicU64,
    series_limit_refusals: AtomicU64,
    label_limit_refusals: AtomicU64,
    samples_appended: AtomicU64,
    series_created: AtomicU64,
    out_of_order: AtomicU64,
    duplicates: AtomicU64,
    chunks_removed: AtomicU64,
    series_removed: AtomicU64,
    checkpoints: AtomicU64,
    checkpoint_errors: AtomicU64,
    checkpoint_bytes_written: AtomicU64,
    blocks_written: AtomicU64,
    compactions: AtomicU64,
    blocks_removed: AtomicU64,
    blocks_quarantined: AtomicU64,
    maintenance_errors: AtomicU64,
}

/// The blocks queries read, and the time below which they read blocks instead of the head.
#[derive(Debug, Default)]
struct BlockSet {
    /// Sorted by `mint`.
    blocks: Vec<Arc<Block>>,
    /// Head samples below this are in blocks; `i64::MIN` before the first cut.
    floor: i64,
}

/// A block as [`Db::blocks`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub name: String,
    pub meta: BlockMeta,
    pub bytes: u64,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    head: RwLock<Head>,
    wal: Mutex<Wal>,
    opts: DbOptions,
    limits: SeriesLimits,
    counters: Counters,
    /// The retention cut last applied, so a pass runs only when it has moved enough.
    last_cutoff: AtomicI64,
    /// Logged refs replay merged into another ref with the same labels; cleared by a checkpoint.
    alias: Mutex<foldhash::HashMap<SeriesRef, SeriesRef>>,
    /// The newest segment the last checkpoint covered.
    checkpointed: AtomicU32,
    /// The background checkpoint, if one was started.
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    /// Held while a checkpoint runs, so an explicit one and a background one never overlap.
    checkpointing: Mutex<()>,
    blocks: RwLock<Arc<BlockSet>>,
    /// Appends below this are refused: the range is (being) written to a block.
    append_floor: AtomicI64,
    /// Oldest sample time in the head at or above the floor (`i64::MAX` when none).
    head_mint: AtomicI64,
    /// The background block maintenance, if one was started.
    maintainer: Mutex<Option<JoinHandle<()>>>,
    /// Held while maintenance runs.
    maintaining: Mutex<()>,
    /// When maintenance last failed; appends do not start it again for a while (disk full).
    maintenance_failed: Mutex<Option<std::time::Instant>>,
    /// The downsampled levels, when enabled.
    downsampled: Option<crate::downsample::Levels>,
    /// Readers' claims on log segments, which checkpoints respect.
    holds: crate::wal::hold::Holds,
}

/// The head plus its write-ahead log; implements [`Appender`] and [`Querier`].
#[derive(Debug)]
pub struct Db {
    shared: Arc<Shared>,
    replay: ReplayStats,
    syncer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    /// Holds an exclusive lock on `<dir>/LOCK` while open; the OS drops it if the process dies.
    _lock: std::fs::File,
}

impl Db {
    /// Opens (creating) the store in `dir` and replays its log into the head.
    pub fn open(dir: impl AsRef<Path>, opts: DbOptions) -> Result<Db, TsdbError> {
        let dir = dir.as_ref().to_path_buf();
        if let FsyncPolicy::Interval(d) = opts.fsync
            && d.is_zero()
        {
            return Err(TsdbError::InvalidOption {
                name: "fsync",
                reason: "the interval must be above zero; use Always to sync every batch".into(),
            });
        }
        if opts.wal_checkpoint_ratio.is_nan() || opts.wal_checkpoint_ratio <= 0.0 {
            return Err(TsdbError::InvalidOption {
                name: "wal_checkpoint_ratio",
                reason: format!(
                    "{} is not accepted: a fraction above zero (e.g. 0.5), or infinity for no size-triggered checkpoints",
                    opts.wal_checkpoint_ratio
                ),
            });
        }
        std::fs::create_dir_all(&dir).map_err(|source| TsdbError::Io {
            op: "creating data directory",
            path: dir.clone(),
            source,
        })?;
        let lock = lock_dir(&dir)?;
        let quarantined = AtomicU64::new(0);
        let blocks = open_blocks(&dir, &quarantined)?;
        let floor = blocks.iter().map(|b| b.meta().maxt).max().unwrap_or(i64::MIN);
        let downsampled = if opts.downsample {
            Some(crate::downsample::Levels::open(&dir)?)
        } else {
            None
        };
        let mut head = Head::new();
        head.begin_bulk();
        // Refs in the log map to themselves unless a series was dropped and re-created
        // under a new ref, when both refs name the same labels.
        let mut alias: foldhash::HashMap<SeriesRef, SeriesRef> = Default::default();
        let mut unknown = 0u64;
        let mut refused_chunks = 0u64;
        // Samples are applied in batches across threads, each owning a range of refs; series
        // records are applied as they come (a sample's series is always declared before it).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut pending: Vec<(SeriesRef, Sample)> = Vec::new();
        let (wal, replay) = Wal::open(&dir.join("wal"), opts.wal_segment_size, opts.fsync, |rec| match rec {
            WalRecord::Series(series) => {
                for (r, labels) in series {
                    let got = head.create_series(r, labels);
                    if got != r {
                        alias.insert(r, got);
                    }
                }
            }
            WalRecord::RefFloor(floor) => head.reserve_refs(floor),
            WalRecord::Samples(samples) => {
                if alias.is_empty() {
                    pending.extend(samples);
                } else {
                    pending.extend(samples.into_iter().map(|(r, s)| (alias.get(&r).copied().unwrap_or(r), s)));
                }
                if pending.len() >= REPLAY_BATCH {
                    unknown += head.replay_samples(&pending, threads);
                    pending.clear();
                }
            }
            WalRecord::Chunks(list) => {
                unknown += head.replay_samples(&pending, threads);
                pending.clear();
                for c in list {
                    let r = alias.get(&c.series).copied().unwrap_or(c.series);
                    if !head.restore_chunks(r, c) {
                        refused_chunks += 1;
                    }
                }
            }
        })?;
        unknown += head.replay_samples(&pending, threads);
        drop(pending);
        head.finish_bulk();
        if unknown > 0 {
            tracing::warn!(samples = unknown, "WAL samples for series the log never declared were skipped");
        }
        if refused_chunks > 0 {
            tracing::warn!(
                series = refused_chunks,
                "WAL checkpoint chunks for undeclared or already filled series were skipped"
            );
        }
        // Logged samples below the newest block's end are in blocks already; with no block
        // this drops only series left without samples (a checkpoint's series whose chunks
        // were damaged and that no later record filled).
        head.truncate_before(floor);
        let head_mint = head.min_time_from(floor).unwrap_or(i64::MAX);
        tracing::info!(
            dir = %dir.display(), series = head.series_count(), samples = replay.samples,
            duration_ms = replay.duration.as_millis() as u64, "WAL replayed"
        );
        let shared = Arc::new(Shared {
            dir,
            head: RwLock::new(head),
            checkpointed: AtomicU32::new(wal.segment_index() - 1),
            wal: Mutex::new(wal),
            limits: SeriesLimits {
                max_series: opts.max_series,
                max_labels: opts.max_labels_per_series,
                max_name_len: opts.max_label_name_len,
                max_value_len: opts.max_label_value_len,
            },
            opts,
            counters: Counters {
                blocks_quarantined: quarantined,
                ..Default::default()
            },
            last_cutoff: AtomicI64::new(i64::MIN),
            alias: Mutex::new(alias),
            checkpointer: Mutex::new(None),
            checkpointing: Mutex::new(()),
            blocks: RwLock::new(Arc::new(BlockSet { blocks, floor })),
            append_floor: AtomicI64::new(floor),
            head_mint: AtomicI64::new(head_mint),
            maintainer: Mutex::new(None),
            maintaining: Mutex::new(()),
            maintenance_failed: Mutex::new(None),
            downsampled,
            holds: Default::default(),
        });
        Shared::apply_retention(&shared, true);
        if shared.opts.block_duration.is_some() {
            if shared.opts.maintenance_in_append {
                if let Err(e) = shared.maintain() {
                    tracing::error!(error = %e, "block maintenance at open failed; will retry");
                }
            } else {
                Shared::start_maintenance(&shared);
            }
        }
        let syncer = match shared.opts.fsync {
            FsyncPolicy::Interval(every) => Some(spawn_syncer(shared.clone(), every)?),
            _ => None,
        };
        Ok(Db {
            shared,
            replay,
            syncer,
            _lock: lock,
        })
    }

    /// What replay found when this store opened.
    pub fn replay_stats(&self) -> &ReplayStats {
        &self.replay
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Current counters and sizes.
    pub fn stats(&self) -> DbStats {
        let (series, chunks) = {
            let h = self.shared.read_head();
            (h.series_count(), h.chunk_count())
        };
        let (wal_bytes, wal_bytes_logged) = {
            let wal = self.shared.lock_wal();
            (wal.size_bytes(), wal.logged_bytes())
        };
        let c = &self.shared.counters;
        DbStats {
            series,
            chunks,
            wal_bytes,
            wal_bytes_logged,
            appends: c.appends.load(Ordering::Relaxed),
            append_errors: c.append_errors.load(Ordering::Relaxed),
            series_limit_refusals: c.series_limit_refusals.load(Ordering::Relaxed),
            label_limit_refusals: c.label_limit_refusals.load(Ordering::Relaxed),
            samples_appended: c.samples_appended.load(Ordering::Relaxed),
            series_created: c.series_created.load(Ordering::Relaxed),
            out_of_order: c.out_of_order.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            chunks_removed: c.chunks_removed.load(Ordering::Relaxed),
            series_removed: c.series_removed.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            checkpoint_errors: c.checkpoint_errors.load(Ordering::Relaxed),
            checkpoint_bytes_written: c.checkpoint_bytes_written.load(Ordering::Relaxed),
            wal_corruptions: u64::from(self.replay.corruption.is_some()),
            blocks: self.shared.block_set().blocks.len(),
            block_bytes: self.shared.block_set().blocks.iter().map(|b| b.size_bytes()).sum(),
            blocks_written: c.blocks_written.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
            blocks_removed: c.blocks_removed.load(Ordering::Relaxed),
            blocks_quarantined: c.blocks_quarantined.load(Ordering::Relaxed),
            maintenance_errors: c.maintenance_errors.load(Ordering::Relaxed),
        }
    }

    /// Publishes [`Db::stats`] into `registry` as `fedwatch_tsdb_*` metrics; call it before
    /// rendering `/metrics` (or on a timer). Registering is idempotent.
    pub fn export_metrics(&self, registry: &Registry) {
        let st = self.stats();
        let gauges: [(&str, &str, f64); 4] = [
            ("fedwatch_tsdb_head_series", "Series in the head.", st.series as f64),
            ("fedwatch_tsdb_head_chunks", "Chunks in the head.", st.chunks as f64),
            (
                "fedwatch_tsdb_wal_bytes",
                "Bytes in WAL segments and checkpoint.",
                st.wal_bytes as f64,
            ),
            (
                "fedwatch_tsdb_wal_replay_duration_seconds",
                "How long replaying the WAL took when the store opened.",
                self.replay.duration.as_secs_f64(),
            ),
        ];
        for (name, help, v) in gauges {
            registry.gauge(name, help, &[]).set(v);
        }
        registry.gauge("fedwatch_tsdb_blocks", "Blocks on disk.", &[]).set(st.blocks as f64);
        registry
            .gauge("fedwatch_tsdb_blocks_bytes", "Bytes of blocks on disk.", &[])
            .set(st.block_bytes as f64);
        let block_counters: [(&str, &str, u64); 5] = [
            ("fedwatch_tsdb_blocks_written_total", "Blocks cut from the head.", st.blocks_written),
            (
                "fedwatch_tsdb_compactions_total",
                "Blocks written by merging others.",
                st.compactions,
            ),
            (
                "fedwatch_tsdb_blocks_removed_total",
                "Blocks deleted by retention.",
                st.blocks_removed,
            ),
            (
                "fedwatch_tsdb_blocks_quarantined_total",
                "Corrupt blocks moved aside.",
                st.blocks_quarantined,
            ),
            (
                "fedwatch_tsdb_maintenance_errors_total",
                "Block cuts, compactions or deletions that failed.",
                st.maintenance_errors,
            ),
        ];
        for (name, help, v) in block_counters {
            let c = registry.counter(name, help, &[]);
            c.add(v.saturating_sub(c.get()));
        }
        if self.shared.downsampled.is_some() {
            let ds = self.downsample_stats();
            registry
                .gauge("fedwatch_tsdb_downsampled_blocks", "Blocks of the downsampled levels on disk.", &[])
                .set(ds.blocks as f64);
            registry
                .gauge("fedwatch_tsdb_downsampled_bytes", "Bytes of the downsampled levels on disk.", &[])
                .set(ds.bytes as f64);
            let selects = "Selects answered from a downsampled level instead of raw samples.";
            let ds_counters: [(&str, &str, &[(&str, &str)], u64); 6] = [
                (
                    "fedwatch_tsdb_downsampled_blocks_written_total",
                    "Downsampled blocks built.",
                    &[],
                    ds.blocks_written,
                ),
                (
                    "fedwatch_tsdb_downsampled_blocks_removed_total",
                    "Downsampled blocks deleted by retention.",
                    &[],
                    ds.blocks_removed,
                ),
                (
                    "fedwatch_tsdb_downsampled_compactions_total",
                    "Merges of the downsampled blocks inside one raw block's range into one.",
                    &[],
                    ds.compactions,
                ),
                (
                    "fedwatch_tsdb_downsampled_blocks_quarantined_total",
                    "Corrupt downsampled blocks moved aside.",
                    &[],
                    ds.blocks_quarantined,
                ),
                (
                    "fedwatch_tsdb_downsampled_selects_total",
                    selects,
                    &[("resolution", "5m")],
                    ds.selects_5m,
                ),
                (
                    "fedwatch_tsdb_downsampled_selects_total",
                    selects,
                    &[("resolution", "1h")],
                    ds.selects_1h,
                ),
            ];
            for (name, help, labels, v) in ds_counters {
                let c = registry.counter(name, help, labels);
                c.add(v.saturating_sub(c.get()));
            }
        }
        let rejected = "Samples or batches the store refused, by reason.";
        type CounterRow<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u64);
        let counters: [CounterRow; 14] = [
            ("fedwatch_tsdb_appends_total", "Append batches received.", &[], st.appends),
            ("fedwatch_tsdb_samples_appended_total", "Samples stored.", &[], st.samples_appended),
            (
                "fedwatch_tsdb_series_created_total",
                "Series created in the head.",
                &[],
                st.series_created,
            ),
            (
                "fedwatch_tsdb_samples_rejected_total",
                rejected,
                &[("reason", "out_of_order")],
                st.out_of_order,
            ),
            (
                "fedwatch_tsdb_samples_rejected_total",
                rejected,
                &[("reason", "duplicate")],
                st.duplicates,
            ),
            (
                "fedwatch_tsdb_batches_rejected_total",
                rejected,
                &[("reason", "series_limit")],
                st.series_limit_refusals,
            ),
            (
                "fedwatch_tsdb_batches_rejected_total",
                rejected,
                &[("reason", "label_limit")],
                st.label_limit_refusals,
            ),
            (
                "fedwatch_tsdb_batches_rejected_total",
                rejected,
                &[("reason", "storage")],
                st.append_errors,
            ),
            (
                "fedwatch_tsdb_chunks_removed_total",
                "Chunks dropped by retention.",
                &[],
                st.chunks_removed,
            ),
            (
                "fedwatch_tsdb_series_removed_total",
                "Series dropped by retention.",
                &[],
                st.series_removed,
            ),
            (
                "fedwatch_tsdb_wal_checkpoints_total",
                "WAL checkpoints written.",
                &[],
                st.checkpoints,
            ),
            (
                "fedwatch_tsdb_wal_checkpoint_errors_total",
                "WAL checkpoints that failed.",
                &[],
                st.checkpoint_errors,
            ),
            (
                "fedwatch_tsdb_wal_corruptions_total",
                "Damaged WAL tails repaired at open.",
                &[],
                st.wal_corruptions,
            ),
            (
                "fedwatch_tsdb_wal_replayed_samples_total",
                "Samples replayed from the WAL at open.",
                &[],
                self.replay.samples,
            ),
        ];
        for (name, help, labels, v) in counters {
            let c = registry.counter(name, help, labels);
            // Counters only go up: add what this store counted since the last export.
            c.add(v.saturating_sub(c.get()));
        }
    }

    /// Applies the time retention now (appends also do it as time moves on).
    pub fn apply_retention(&self) -> TruncateStats {
        Shared::apply_retention(&self.shared, true)
    }

    /// Cuts the blocks that are due, merges blocks and applies block retention now, in this thread.
    pub fn compact(&self) -> Result<(), TsdbError> {
        self.shared.maintain()
    }

    /// Writes everything the head holds as one block now, whatever the block duration, and
    /// closes that range to appends (like Prometheus's snapshot with the head); for tools and
    /// benchmarks that measure block size on a short run. Returns the block, if any.
    pub fn flush_head(&self) -> Result<Option<BlockInfo>, TsdbError> {
        let _one_at_a_time = self.shared.maintaining.lock().unwrap_or_else(|e| e.into_inner());
        let floor = self.shared.block_set().floor;
        let (mint, max_t) = {
            let head = self.shared.read_head();
            (head.min_time_from(floor), head.max_time())
        };
        let (Some(mint), Some(max_t)) = (mint, max_t) else {
            return Ok(None);
        };
        let maxt = max_t.saturating_add(1);
        self.shared.cut_block(mint, maxt)?;
        self.shared.checkpoint()?;
        Ok(self.blocks().into_iter().find(|b| b.meta.mint == mint && b.meta.maxt == maxt))
    }

    /// Counters of the downsampled levels (all zero when downsampling is off).
    pub fn downsample_stats(&self) -> crate::DownsampleStats {
        self.shared.downsampled.as_ref().map(|l| l.stats()).unwrap_or_default()
    }

    /// The blocks queries read, oldest first.
    pub fn blocks(&self) -> Vec<BlockInfo> {
        self.shared
            .block_set()
            .blocks
            .iter()
            .map(|b| BlockInfo {
                name: b.name().to_string(),
                meta: b.meta().clone(),
                bytes: b.size_bytes(),
            })
            .collect()
    }

    /// Appends of samples older than this are refused (their range is in blocks).
    pub fn min_valid_time(&self) -> i64 {
        self.shared.append_floor.load(Ordering::Relaxed)
    }

    /// Seals the log and rewrites its sealed segments as a checkpoint now, in this thread.
    pub fn checkpoint(&self) -> Result<CheckpointStats, TsdbError> {
        self.shared.checkpoint()
    }

    /// The log's directory (for a [`crate::wal::WalTailer`]).
    pub fn wal_dir(&self) -> PathBuf {
        self.shared.lock_wal().dir().to_path_buf()
    }

    /// The position after the last record in the log.
    pub fn wal_end(&self) -> WalPosition {
        self.shared.lock_wal().end()
    }

    /// Keeps log segments from `segment` on out of checkpoints while the returned hold lives
    /// (and moves), unless they were last written more than `max_age` ago.
    pub fn hold_wal(&self, name: &str, segment: u32, max_age: Option<Duration>) -> WalHold {
        self.shared.holds.register(name, segment, max_age)
    }

    /// Fsyncs the log now, whatever the policy.
    pub fn sync(&self) -> Result<(), TsdbError> {
        self.shared.lock_wal().sync()
    }

    /// Waits for a running checkpoint, stops the syncer and fsyncs the log.
    pub fn close(mut self) -> Result<(), TsdbError> {
        self.stop_background();
        self.sync()
    }

    fn stop_background(&mut self) {
        let running = self.shared.maintainer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = running {
            let _ = handle.join();
        }
        let running = self.shared.checkpointer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = running {
            let _ = handle.join();
        }
        if let Some((stop, handle)) = self.syncer.take() {
            drop(stop);
            let _ = handle.join();
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop_background();
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "final WAL sync failed");
        }
    }
}

/// Takes the directory's lock so two stores never write one log.
fn lock_dir(dir: &Path) -> Result<std::fs::File, TsdbError> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| TsdbError::Io {
            op: "opening lock file",
            path: path.clone(),
            source,
        })?;
    // A lock can be held for a moment by a process forked from ours (the descriptor is shared
    // until the child execs) or by a predecessor still exiting, so retry briefly.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(TsdbError::Locked { path }),
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(TsdbError::Io {
                    op: "locking",
                    path,
                    source,
                });
            }
        }
    }
}

fn spawn_syncer(shared: Arc<Shared>, every: Duration) -> Result<(mpsc::Sender<()>, JoinHandle<()>), TsdbError> {
    let (tx, rx) = mpsc::channel::<()>();
    let dir = shared.dir.clone();
    let handle = std::thread::Builder::new()
        .name("tsdb-wal-sync".into())
        .spawn(move || {
            // Runs until the Db drops its sender.
            while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                let dirty = shared.lock_wal().take_dirty_file();
                // fsync outside the lock so appends keep flowing while the disk works.
                if let Some((file, path)) = dirty
                    && let Err(e) = file.sync_data()
                {
                    tracing::error!(segment = %path.display(), error = %e, "WAL fsync failed");
                }
            }
        })
        .map_err(|source| TsdbError::Io {
            op: "starting the WAL sync thread for",
            path: dir,
            source,
        })?;
    Ok((tx, handle))
}

impl Shared {
    fn read_head(&self) -> RwLockReadGuard<'_, Head> {
        self.head.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_head(&self) -> RwLockWriteGuard<'_, Head> {
        self.head.write().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_wal(&self) -> MutexGuard<'_, Wal> {
        self.wal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn block_set(&self) -> Arc<BlockSet> {
        self.blocks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn block_ms(&self) -> Option<i64> {
        let d = self.opts.block_duration?;
        Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1))
    }

    /// True when the head spans 1.5 block durations, so its oldest range can be cut.
    fn cut_due(&self) -> bool {
        let Some(bd) = self.block_ms() else { return false };
        let mint = self.head_mint.load(Ordering::Relaxed);
        let Some(max_t) = self.read_head().max_time() else { return false };
        mint != i64::MAX && max_t.saturating_sub(mint) >= bd.saturating_add(bd / 2)
    }

    /// True for a while after maintenance failed, so a full disk is not retried on every append.
    fn backing_off(&self) -> bool {
        let failed = *self.maintenance_failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.is_some_and(|at| at.elapsed() < MAINTENANCE_RETRY)
    }

    fn start_maintenance(this: &Arc<Shared>) {
        let mut slot = this.maintainer.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let shared = this.clone();
        let spawned = std::thread::Builder::new().name("tsdb-blocks".into()).spawn(move || {
            if let Err(e) = shared.maintain() {
                tracing::error!(error = %e, "block maintenance failed; the head keeps the data and it is retried");
            }
        });
        match spawned {
            Ok(h) => *slot = Some(h),
            Err(e) => tracing::error!(error = %e, "could not start the block maintenance thread"),
        }
    }

    /// Cuts due blocks from the head, merges blocks and applies block retention.
    fn maintain(&self) -> Result<(), TsdbError> {
        let _one_at_a_time = self.maintaining.lock().unwrap_or_else(|e| e.into_inner());
        let result = self.maintain_locked();
        let mut failed = self.maintenance_failed.lock().unwrap_or_else(|e| e.into_inner());
        if result.is_err() {
            self.counters.maintenance_errors.fetch_add(1, Ordering::Relaxed);
            *failed = Some(std::time::Instant::now());
        } else {
            *failed = None;
        }
        result
    }

    fn maintain_locked(&self) -> Result<(), TsdbError> {
        let Some(bd) = self.block_ms() else { return Ok(()) };
        let mut cut = false;
        while self.cut_due() {
            let mint = self.head_mint.load(Ordering::Relaxed).div_euclid(bd).saturating_mul(bd);
            let maxt = mint.saturating_add(bd);
            self.cut_block(mint, maxt)?;
            cut = true;
        }
        self.compact_blocks()?;
        self.apply_block_retention()?;
        if let Some(levels) = &self.downsampled {
            // Built from persisted blocks only, so a level never holds what the head may still change.
            let set = self.block_set();
            levels.apply_retention(set.blocks.first().map_or(set.floor, |b| b.meta().mint))?;
            levels.build(&set.blocks)?;
            levels.compact(&set.blocks)?;
        }
        if cut {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Writes the head's samples in `[mint, maxt)` as a block and drops them from the head.
    fn cut_block(&self, mint: i64, maxt: i64) -> Result<(), TsdbError> {
        // Close the range to appends first, so nothing lands below the cut after the copy.
        {
            let _head = self.write_head();
            self.append_floor.fetch_max(maxt, Ordering::Relaxed);
        }
        let data = self.read_head().chunks_in_range(mint, maxt);
        let block = if data.is_empty() {
            None
        } else {
            let started = std::time::Instant::now();
            let mut w = BlockWriter::new(&self.dir, mint, maxt)?;
            let mut samples = Vec::new();
            for (labels, chunks) in data {
                samples.clear();
                for c in chunks {
                    // Head chunks are written by this process; a decode error would be a bug.
                    samples.extend(crate::chunk::decode(&c.bytes).unwrap_or_default());
                }
                w.add_series(labels, &samples)?;
            }
            let path = w.finish(1, Vec::new())?;
            let block = Block::open(&path)?;
            self.counters.blocks_written.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                block = block.name(),
                mint,
                maxt,
                series = block.meta().stats.series,
                samples = block.meta().stats.samples,
                bytes = block.size_bytes(),
                duration_ms = started.elapsed().as_millis() as u64,
                "block cut from the head"
            );
            Some(Arc::new(block))
        };
        self.update_blocks(|set| {
            set.blocks.extend(block);
            set.floor = set.floor.max(maxt);
        });
        let mut head = self.write_head();
        head.truncate_before(maxt);
        let next = head.min_time_from(maxt).unwrap_or(i64::MAX);
        self.head_mint.store(next, Ordering::Relaxed);
        Ok(())
    }

    /// Replaces the block set with an edited copy (queries keep the one they hold).
    fn update_blocks(&self, edit: impl FnOnce(&mut BlockSet)) {
        let mut slot = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        let mut next = BlockSet {
            blocks: slot.blocks.clone(),
            floor: slot.floor,
        };
        edit(&mut next);
        next.blocks.sort_by_key(|b| b.meta().mint);
        *slot = Arc::new(next);
    }

    fn newest_time(&self, set: &BlockSet) -> i64 {
        let head_max = self.read_head().max_time().unwrap_or(i64::MIN);
        let block_max = set.blocks.last().map_or(i64::MIN, |b| b.meta().maxt - 1);
        head_max.max(block_max)
    }

    fn retention_ms(&self) -> Option<i64> {
        self.opts.retention.map(|r| i64::try_from(r.as_millis()).unwrap_or(i64::MAX))
    }

    fn compact_blocks(&self) -> Result<(), TsdbError> {
        let Some(bd) = self.block_ms() else { return Ok(()) };
        let ranges = level_ranges(bd, self.retention_ms());
        loop {
            let set = self.block_set();
            let spans: Vec<(i64, i64)> = set.blocks.iter().map(|b| (b.meta().mint, b.meta().maxt)).collect();
            let newest = self.newest_time(&set);
            let Some((from, to)) = plan_compaction(&spans, &ranges, newest) else {
                return Ok(());
            };
            let sources = &set.blocks[from..to];
            let merged = match merge_blocks(&self.dir, sources) {
                Ok(b) => Arc::new(b),
                Err(e) => {
                    // A source that cannot be read is damaged: move it aside so the rest compacts.
                    for b in sources {
                        if let Err(check) = verify_chunks(b) {
                            self.quarantine_loaded(b, &check);
                        }
                    }
                    return Err(e);
                }
            };
            self.counters.compactions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                block = merged.name(),
                sources = sources.len(),
                bytes = merged.size_bytes(),
                "blocks compacted"
            );
            let names: Vec<&str> = sources.iter().map(|b| b.name()).collect();
            self.update_blocks(|next| {
                next.blocks.retain(|b| !names.contains(&b.name()));
                next.blocks.push(merged.clone());
            });
            for b in sources {
                remove_block_dir(b.dir())?;
            }
        }
    }

    fn apply_block_retention(&self) -> Result<(), TsdbError> {
        if self.opts.retention.is_none() && self.opts.retention_size.is_none() {
            return Ok(());
        }
        let set = self.block_set();
        let spans: Vec<(i64, i64, u64)> = set.blocks.iter().map(|b| (b.meta().mint, b.meta().maxt, b.size_bytes())).collect();
        let wal_bytes = self.lock_wal().size_bytes();
        let victims = retention_victims(
            &spans,
            self.newest_time(&set),
            self.retention_ms(),
            self.opts.retention_size,
            wal_bytes,
        );
        if victims.is_empty() {
            return Ok(());
        }
        let gone: Vec<Arc<Block>> = victims.iter().map(|&i| set.blocks[i].clone()).collect();
        self.update_blocks(|next| next.blocks.retain(|b| !gone.iter().any(|g| g.name() == b.name())));
        for b in &gone {
            tracing::info!(
                block = b.name(),
                mint = b.meta().mint,
                maxt = b.meta().maxt,
                bytes = b.size_bytes(),
                "block deleted by retention"
            );
            remove_block_dir(b.dir())?;
            self.counters.blocks_removed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Takes a block that failed a check out of the set and moves it aside.
    fn quarantine_loaded(&self, block: &Arc<Block>, why: &TsdbError) {
        let mut found = false;
        self.update_blocks(|next| {
            let before = next.blocks.len();
            next.blocks.retain(|b| b.name() != block.name());
            found = next.blocks.len() != before;
        });
        if found {
            quarantine(block.dir(), why);
            self.counters.blocks_quarantined.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs a retention pass if the cut moved by a tenth of the retention (or `force`), and
    /// starts a background checkpoint when it removed data and enough segments were sealed.
    fn apply_retention(this: &Arc<Shared>, force: bool) -> TruncateStats {
        if this.checkpoint_due_by_size() {
            Shared::start_checkpoint(this);
        }
        let Some(retention) = this.opts.retention else {
            return TruncateStats::default();
        };
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let st = {
            let mut head = this.write_head();
            let Some(max_t) = head.max_time() else {
                return TruncateStats::default();
            };
            let cutoff = max_t.saturating_sub(retention_ms);
            let last = this.last_cutoff.load(Ordering::Relaxed);
            if !force && cutoff.saturating_sub(last) < (retention_ms / 10).max(1) {
                return TruncateStats::default();
            }
            this.last_cutoff.store(cutoff, Ordering::Relaxed);
            head.truncate_before(cutoff)
        };
        this.counters.chunks_removed.fetch_add(st.chunks_removed as u64, Ordering::Relaxed);
        this.counters.series_removed.fetch_add(st.series_removed as u64, Ordering::Relaxed);
        let sealed_since = this
            .lock_wal()
            .segment_index()
            .saturating_sub(this.checkpointed.load(Ordering::Relaxed) + 1);
        if st != TruncateStats::default() && sealed_since >= 2 {
            Shared::start_checkpoint(this);
        }
        st
    }

    /// True when the segments sealed since the last checkpoint outweigh it by the configured
    /// ratio (and hold at least one segment's worth), so the per-sample part of replay stays
    /// a fraction of the head.
    fn checkpoint_due_by_size(&self) -> bool {
        if self.opts.wal_checkpoint_ratio.is_infinite() {
            return false;
        }
        let wal = self.lock_wal();
        let since = wal.sealed_since_checkpoint();
        let threshold = (wal.checkpoint_bytes() as f64 * self.opts.wal_checkpoint_ratio) as u64;
        since > 0 && since >= threshold.max(self.opts.wal_segment_size.min(DEFAULT_SEGMENT_SIZE) / 2)
    }

    fn start_checkpoint(this: &Arc<Shared>) {
        let mut slot = this.checkpointer.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let shared = this.clone();
        let spawned = std::thread::Builder::new().name("tsdb-wal-checkpoint".into()).spawn(move || {
            if let Err(e) = shared.checkpoint() {
                tracing::error!(error = %e, "WAL checkpoint failed; the log keeps its segments");
            }
        });
        match spawned {
            Ok(h) => *slot = Some(h),
            Err(e) => tracing::error!(error = %e, "could not start the WAL checkpoint thread"),
        }
    }

    fn checkpoint(&self) -> Result<CheckpointStats, TsdbError> {
        let _one_at_a_time = self.checkpointing.lock().unwrap_or_else(|e| e.into_inner());
        // Seal first, then snapshot the head: every series in a sealed segment was committed
        // to the head before the append that logged it released the head lock.
        let (dir, sealed) = {
            let mut wal = self.lock_wal();
            let sealed = wal.seal()?;
            wal.start_checkpoint_period();
            (wal.dir().to_path_buf(), sealed)
        };
        let upto = self.holds.limit(&dir, sealed);
        if upto < sealed && !crate::wal::list_segments(&dir)?.iter().any(|&i| i <= upto) {
            // Every sealed segment is still held by a reader.
            return Ok(CheckpointStats {
                upto,
                ..Default::default()
            });
        }
        let (mut series, ref_floor) = {
            let head = self.read_head();
            (head.all_series(), head.next_ref())
        };
        // Segments replayed at open that are still held may name refs replay merged into
        // another: declare them again with their live series' labels, so the next replay
        // merges them the same way.
        let alias = self.alias.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut merged: Vec<(SeriesRef, Labels)> = alias
            .iter()
            .filter_map(|(old, live)| {
                let at = series.binary_search_by_key(live, |(r, _)| *r).ok()?;
                Some((*old, series[at].1.clone()))
            })
            .collect();
        merged.sort_unstable_by_key(|(r, _)| *r);
        series.extend(merged);
        // The head's chunks, read one group of series at a time so appends are held up for
        // one group only. A series may gain samples logged after `sealed` meanwhile; replay
        // then skips them in the later segments (not newer than the series' newest sample).
        let result = crate::wal::checkpoint(&dir, upto, ref_floor, &series, |refs, buf| {
            self.read_head().encode_chunks(refs, buf)
        });
        match &result {
            Ok(st) => {
                self.checkpointed.store(st.upto, Ordering::Relaxed);
                self.lock_wal().account_checkpoint(st.bytes_removed, st.bytes_written);
                if st.upto >= sealed {
                    // Held segments may still name aliased refs; keep the map for their checkpoint.
                    self.alias.lock().unwrap_or_else(|e| e.into_inner()).clear();
                }
                self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .checkpoint_bytes_written
                    .fetch_add(st.bytes_written, Ordering::Relaxed);
                tracing::info!(
                    upto = st.upto,
                    series = st.series,
                    samples = st.samples,
                    bytes_removed = st.bytes_removed,
                    bytes_written = st.bytes_written,
                    "WAL checkpoint written"
                );
            }
            Err(_) => {
                self.counters.checkpoint_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }
}

impl Appender for Db {
    fn append(&self, batch: &[TimeSeries]) -> Result<AppendStats, AppendError> {
        let s = &self.shared;
        s.counters.appends.fetch_add(1, Ordering::Relaxed);
        let stats = {
            let mut head = s.write_head();
            let plan = head
                .plan_from(batch, &s.limits, s.append_floor.load(Ordering::Relaxed))
                .inspect_err(|e| count_refusal(s, e))?;
            log_and_commit(s, &mut head, &plan)?;
            plan.stats
        };
        after_append(s, &stats);
        Ok(stats)
    }

    fn append_refs(&self, batch: &[RefSample<'_>]) -> Result<RefAppend, AppendError> {
        let s = &self.shared;
        s.counters.appends.fetch_add(1, Ordering::Relaxed);
        let (stats, refs) = {
            let mut head = s.write_head();
            let RefPlan { plan, refs, unknown } = head
                .plan_refs(batch, &s.limits, s.append_floor.load(Ordering::Relaxed))
                .inspect_err(|e| count_refusal(s, e))?;
            if !unknown.is_empty() {
                return Ok(RefAppend {
                    stats: AppendStats::default(),
                    refs,
                    unknown,
                });
            }
            log_and_commit(s, &mut head, &plan)?;
            (plan.stats, refs)
        };
        after_append(s, &stats);
        Ok(RefAppend {
            stats,
            refs,
            unknown: Vec::new(),
        })
    }
}

fn count_refusal(s: &Shared, e: &AppendError) {
    let counter = match e {
        AppendError::SeriesLimit { .. } => &s.counters.series_limit_refusals,
        AppendError::LabelLimit { .. } => &s.counters.label_limit_refusals,
        AppendError::Storage(_) => &s.counters.append_errors,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Logs a plan and applies it, under the head's write lock so the log keeps the head's order.
fn log_and_commit(s: &Shared, head: &mut Head, plan: &AppendPlan) -> Result<(), AppendError> {
    if let Err(e) = s.lock_wal().log(&plan.new_series, &plan.samples) {
        s.counters.append_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "append refused: WAL write failed");
        return Err(AppendError::Storage(e.to_string()));
    }
    head.commit(plan);
    if let Some(min) = plan.samples.iter().map(|(_, x)| x.t).min() {
        s.head_mint.fetch_min(min, Ordering::Relaxed);
    }
    Ok(())
}

/// Counts an append and runs what it may have made due (retention, block maintenance).
fn after_append(s: &Arc<Shared>, stats: &AppendStats) {
    let c = &s.counters;
    c.samples_appended.fetch_add(stats.samples_appended, Ordering::Relaxed);
    c.series_created.fetch_add(stats.series_created, Ordering::Relaxed);
    c.out_of_order.fetch_add(stats.out_of_order, Ordering::Relaxed);
    c.duplicates.fetch_add(stats.duplicates, Ordering::Relaxed);
    Shared::apply_retention(s, false);
    if s.cut_due() && !s.backing_off() {
        if s.opts.maintenance_in_append {
            if let Err(e) = s.maintain() {
                tracing::error!(error = %e, "block maintenance failed; the head keeps the data and it is retried");
            }
        } else {
            Shared::start_maintenance(s);
        }
    }
}

impl Querier for Db {
    fn select(&self, matchers: &[Matcher], hints: SelectHints) -> Result<Vec<TimeSeries>, SelectError> {
        let s = &self.shared;
        let (head_part, set) = {
            let head = s.read_head();
            // Read the block set under the head lock: see the module notes.
            let set = s.block_set();
            if set.blocks.is_empty() && set.floor == i64::MIN {
                return Ok(head.select(matchers, hints.start, hints.end));
            }
            (head.select(matchers, hints.start.max(set.floor), hints.end), set)
        };
        let mut merged: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for b in set
            .blocks
            .iter()
            .filter(|b| b.meta().maxt > hints.start && b.meta().mint <= hints.end)
        {
            match b.select(matchers, hints.start, hints.end) {
                Ok(found) => {
                    for (labels, samples) in found {
                        merged.entry(labels).or_default().extend(samples);
                    }
                }
                Err(e) => {
                    s.quarantine_loaded(b, &e);
                    return Err(SelectError::Storage(e.to_string()));
                }
            }
        }
        for ts in head_part {
            merged.entry(ts.labels).or_default().extend(ts.samples);
        }
        Ok(merged
            .into_iter()
            .map(|(labels, mut samples)| {
                // Blocks are disjoint and below the head's floor, so this is already ordered
                // unless a crash left overlapping blocks behind.
                if !samples.is_sorted_by(|a, b| a.t < b.t) {
                    samples.sort_by_key(|x| x.t);
                    samples.dedup_by_key(|x| x.t);
                }
                TimeSeries { labels, samples }
            })
            .collect())
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, SelectError> {
        let (mut out, set) = {
            let head = self.shared.read_head();
            (head.label_names(matchers), self.shared.block_set())
        };
        for b in &set.blocks {
            out.extend(b.label_names(matchers));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, SelectError> {
        let (mut out, set) = {
            let head = self.shared.read_head();
            (head.label_values(name, matchers), self.shared.block_set())
        };
        for b in &set.blocks {
            out.extend(b.label_values(name, matchers));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn select_downsampled(&self, matchers: &[Matcher], hints: SelectHints) -> Result<Option<crate::Downsampled>, SelectError> {
        let Some(levels) = &self.shared.downsampled else { return Ok(None) };
        let set = self.shared.block_set();
        // Raw data starts at the oldest block (or the head's floor once retention took them all).
        let oldest = set.blocks.first().map_or(set.floor, |b| b.meta().mint);
        if oldest == i64::MIN {
            return Ok(None);
        }
        let Some(partial) = levels.select(oldest, matchers, &hints) else {
            return Ok(None);
        };
        let tail = if partial.cover_end <= hints.end {
            let start = hints.start.max(partial.cover_end);
            self.select(matchers, SelectHints { start, ..hints })?
        } else {
            Vec::new()
        };
        Ok(Some(partial.finish(tail, &hints)))
    }

    fn series(&self, matchers: &[Matcher]) -> Result<Vec<Labels>, SelectError> {
        let (mut out, set) = {
            let head = self.shared.read_head();
            (head.series_labels(matchers), self.shared.block_set())
        };
        for b in &set.blocks {
            out.extend(b.series_labels(matchers));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// Opens every block in `dir`: removes unfinished (`.tmp`) ones and compaction sources whose
/// merged block is in place, and quarantines those that fail their checks.
pub(crate) fn open_blocks(dir: &Path, quarantined: &AtomicU64) -> Result<Vec<Arc<Block>>, TsdbError> {
    let io = |source| TsdbError::Io {
        op: "listing blocks in",
        path: dir.to_path_buf(),
        source,
    };
    let mut blocks = Vec::new();
    let mut failed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        let path = entry.path();
        if name.starts_with("blk-") && (name.ends_with(".tmp") || name.ends_with(".deleting")) {
            tracing::info!(block = %path.display(), "removing a block left unfinished or half-deleted by a crash");
            std::fs::remove_dir_all(&path).map_err(|source| TsdbError::Io {
                op: "removing block",
                path: path.clone(),
                source,
            })?;
        } else if is_block_name(&name) {
            match Block::open(&path) {
                Ok(b) => blocks.push(Arc::new(b)),
                Err(e) => failed.push((name, path, e)),
            }
        }
    }
    let parents: std::collections::HashSet<String> = blocks.iter().flat_map(|b| b.meta().parents.clone()).collect();
    for (name, path, e) in failed {
        if parents.contains(&name) {
            // A compaction source whose deletion a crash interrupted: its data is in the merged block.
            remove_block_dir(&path)?;
        } else {
            quarantine(&path, &e);
            quarantined.fetch_add(1, Ordering::Relaxed);
        }
    }
    let (replaced, mut kept): (Vec<_>, Vec<_>) = blocks.into_iter().partition(|b| parents.contains(b.name()));
    for b in replaced {
        tracing::info!(block = b.name(), "removing a block a finished compaction replaced");
        remove_block_dir(b.dir())?;
    }
    kept.sort_by_key(|b| b.meta().mint);
    Ok(kept)
}

/// Deletes a block: renamed to `<name>.deleting` first, so a crash never leaves a half-deleted
/// directory under a block's name (open removes `.deleting` leftovers).
pub(crate) fn remove_block_dir(path: &Path) -> Result<(), TsdbError> {
    let doomed = path.with_extension("deleting");
    std::fs::rename(path, &doomed).map_err(|source| TsdbError::Io {
        op: "renaming block for deletion",
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::remove_dir_all(&doomed).map_err(|source| TsdbError::Io {
        op: "removing block",
        path: doomed.clone(),
        source,
    })
}

/// Renames a damaged block to `<name>.corrupt` (or `.corrupt.N`) so it is kept for
/// inspection but never opened again.
pub(crate) fn quarantine(path: &Path, why: &TsdbError) {
    let mut target = path.with_extension("corrupt");
    let mut n = 1;
    while target.exists() {
        target = path.with_extension(format!("corrupt.{n}"));
        n += 1;
    }
    match std::fs::rename(path, &target) {
        Ok(()) => tracing::error!(block = %path.display(), moved_to = %target.display(), error = %why, "corrupt block quarantined"),
        Err(e) => {
            tracing::error!(block = %path.display(), error = %why, rename_error = %e, "corrupt block could not be moved aside; it is not served")
        }
    }
}

/// Reads every chunk of a block, checking CRCs.
fn verify_chunks(b: &Block) -> Result<(), TsdbError> {
    for id in 0..b.series_count() as u64 {
        for c in b.chunk_metas(id) {
            b.read_chunk(c)?;
        }
    }
    Ok(())
}

/// Writes one block holding everything in `sources` (adjacent, sorted by time).
fn merge_blocks(dir: &Path, sources: &[Arc<Block>]) -> Result<Block, TsdbError> {
    let mint = sources.iter().map(|b| b.meta().mint).min().unwrap_or(0);
    let maxt = sources.iter().map(|b| b.meta().maxt).max().unwrap_or(1);
    let mut by_labels: BTreeMap<&Labels, Vec<(usize, u64)>> = BTreeMap::new();
    for (i, b) in sources.iter().enumerate() {
        for id in 0..b.series_count() as u64 {
            by_labels.entry(b.labels(id)).or_default().push((i, id));
        }
    }
    let mut w = BlockWriter::new(dir, mint, maxt)?;
    let mut samples = Vec::new();
    for (labels, parts) in by_labels {
        samples.clear();
        for (i, id) in parts {
            for c in sources[i].chunk_metas(id) {
                samples.extend(sources[i].read_samples(c)?);
            }
        }
        w.add_series(labels.clone(), &samples)?;
    }
    let level = sources.iter().map(|b| b.meta().level).max().unwrap_or(0) + 1;
    let path = w.finish(level, sources.iter().map(|b| b.name().to_string()).collect())?;
    Block::open(&path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use crate::{SelectHints, SeriesId};
    use fedwatch_model::{Matcher, Sample};

    fn ts(name: &str, samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: Labels::from_pairs([("__name__", name)]),
            samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
        }
    }

    #[test]
    fn survives_reopen_and_applies_retention() {
        let dir = TestDir::new("db-reopen");
        let opts = DbOptions {
            retention: Some(Duration::from_millis(5_000)),
            fsync: FsyncPolicy::Never,
            ..Default::default()
        };
        {
            let db = Db::open(dir.path(), opts.clone()).unwrap();
            let kept: Vec<(i64, f64)> = (0..240).map(|i| (i * 25, i as f64)).collect();
            db.append(&[ts("old", &[(0, 1.0)]), ts("kept", &kept)]).unwrap();
            db.append(&[ts("new", &[(10_000, 1.0)])]).unwrap();
            let st = db.stats();
            assert_eq!((st.series, st.series_removed), (2, 1), "{st:?}");
            db.close().unwrap();
        }
        let db = Db::open(dir.path(), opts).unwrap();
        assert_eq!(db.replay_stats().samples, 242);
        let names = db.label_values("__name__", &[]).unwrap();
        assert_eq!(names, vec!["kept", "new"]);
    }

    #[test]
    fn checkpoint_shrinks_the_log_and_replays_the_same_head() {
        let dir = TestDir::new("db-checkpoint");
        let opts = DbOptions {
            retention: Some(Duration::from_secs(10)),
            fsync: FsyncPolicy::Never,
            wal_segment_size: 4096,
            // Only retention passes checkpoint on their own here: a size-triggered one started
            // by the last append could take the explicit checkpoint's segments first.
            wal_checkpoint_ratio: f64::INFINITY,
            ..Default::default()
        };
        let window = |db: &Db, cutoff: i64| {
            db.select(
                &[],
                SelectHints {
                    start: cutoff,
                    end: i64::MAX,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let (before, cutoff) = {
            let db = Db::open(dir.path(), opts.clone()).unwrap();
            db.append(&[ts("gone", &[(0, 1.0)])]).unwrap();
            for t in (0..60_000).step_by(100) {
                db.append(&[
                    ts("a", &[(t, t as f64)]),
                    ts("b", &[(t, f64::from_bits(fedwatch_model::STALE_NAN_BITS))]),
                ])
                .unwrap();
            }
            // Let any automatic checkpoint finish so the explicit one below has work of its own.
            let running = db.shared.checkpointer.lock().unwrap().take();
            if let Some(h) = running {
                h.join().unwrap();
            }
            assert!(db.stats().checkpoints >= 1, "retention passes start checkpoints: {:?}", db.stats());
            db.append(&[ts("a", &[(60_000, 1.0)])]).unwrap();
            let st = db.checkpoint().unwrap();
            assert_eq!(st.series, 2, "{st:?}");
            let cutoff = db.shared.last_cutoff.load(Ordering::Relaxed);
            assert!(cutoff >= 40_000, "{cutoff}");
            (window(&db, cutoff), cutoff)
        };
        let segments = crate::wal::list_segments(&dir.path().join("wal")).unwrap();
        assert!(segments.len() <= 2, "{segments:?}");
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        // 1,202 samples were logged (at least 11 bytes each); the checkpoint keeps the ~200
        // inside the retention plus two series.
        assert!(db.stats().wal_bytes < 4_000, "{:?}", db.stats());
        assert_eq!(format!("{:?}", window(&db, cutoff)), format!("{before:?}"));
        assert_eq!(db.label_values("__name__", &[]).unwrap(), vec!["a", "b"]);
        // Refs keep growing past the checkpoint: a new series does not take a dropped one's ref.
        let floor = db.shared.read_head().next_ref();
        assert!(floor > 3, "{floor}");
        db.append(&[ts("c", &[(70_000, 1.0)])]).unwrap();
        drop(db);
        let db = Db::open(dir.path(), opts).unwrap();
        assert_eq!(
            db.select(
                &[Matcher::equal("__name__", "c")],
                SelectHints {
                    start: 0,
                    end: i64::MAX,
                    ..Default::default()
                }
            )
            .unwrap()
            .len(),
            1
        );
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = TestDir::new("db-lock");
        let db = Db::open(dir.path(), DbOptions::default()).unwrap();
        let err = Db::open(dir.path(), DbOptions::default()).unwrap_err();
        assert!(matches!(err, TsdbError::Locked { .. }), "{err}");
        drop(db);
        Db::open(dir.path(), DbOptions::default()).unwrap();
    }

    #[test]
    fn unwritable_directory_is_an_error() {
        let dir = TestDir::new("db-unwritable");
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = Db::open(file.join("data"), DbOptions::default()).unwrap_err();
        assert!(err.to_string().contains("plain-file"), "{err}");
    }

    #[test]
    fn series_limit_refuses_logs_nothing_and_is_counted() {
        let dir = TestDir::new("db-limit");
        let db = Db::open(
            dir.path(),
            DbOptions {
                max_series: Some(1),
                fsync: FsyncPolicy::Always,
                ..Default::default()
            },
        )
        .unwrap();
        db.append(&[ts("a", &[(1, 1.0)])]).unwrap();
        let before = db.stats().wal_bytes;
        assert!(matches!(
            db.append(&[ts("b", &[(1, 1.0)])]),
            Err(AppendError::SeriesLimit { limit: 1 })
        ));
        assert_eq!(db.stats().wal_bytes, before);
    }

    #[test]
    fn refs_dropped_by_retention_are_reported_and_labels_resolve_again() {
        let dir = TestDir::new("db-refs");
        let opts = DbOptions {
            retention: Some(Duration::from_millis(5_000)),
            fsync: FsyncPolicy::Never,
            block_duration: None,
            ..Default::default()
        };
        let (a, c) = (Labels::from_pairs([("__name__", "a")]), Labels::from_pairs([("__name__", "c")]));
        let by_labels = |l, t, v| RefSample {
            series: SeriesId::Labels(l),
            t,
            v,
        };
        let by_ref = |r, t, v| RefSample {
            series: SeriesId::Ref(r),
            t,
            v,
        };
        let samples = |db: &Db, name: &str| -> Vec<(i64, f64)> {
            let got = db
                .select(
                    &[Matcher::equal("__name__", name)],
                    SelectHints {
                        start: i64::MIN,
                        end: i64::MAX,
                        ..Default::default()
                    },
                )
                .unwrap();
            got.first()
                .map(|s| s.samples.iter().map(|x| (x.t, x.v)).collect())
                .unwrap_or_default()
        };
        {
            let db = Db::open(dir.path(), opts.clone()).unwrap();
            let got = db.append_refs(&[by_labels(&a, 0, 1.0)]).unwrap();
            let ra = got.refs[0].unwrap();
            let got = db.append_refs(&[by_ref(ra, 1_000, 2.0)]).unwrap();
            assert_eq!((got.stats.samples_appended, got.refs.clone()), (1, vec![Some(ra)]));
            // `c` far ahead moves the retention cut past all of `a`.
            db.append_refs(&[by_labels(&c, 10_000, 1.0)]).unwrap();
            assert_eq!(db.stats().series_removed, 1);
            let got = db.append_refs(&[by_labels(&c, 11_000, 2.0), by_ref(ra, 11_000, 3.0)]).unwrap();
            assert_eq!((got.unknown, got.stats), (vec![1], AppendStats::default()));
            assert_eq!(
                samples(&db, "c"),
                vec![(10_000, 1.0)],
                "nothing of a batch with an unknown ref is appended"
            );
            let got = db.append_refs(&[by_labels(&c, 11_000, 2.0), by_labels(&a, 11_000, 3.0)]).unwrap();
            assert!(got.refs[1].is_some_and(|r| r != ra), "{got:?}");
            assert_eq!((got.stats.samples_appended, got.stats.series_created), (2, 1));
            db.close().unwrap();
        }
        // The log holds ordinary records: a reopened store has the same newest samples.
        let db = Db::open(dir.path(), opts).unwrap();
        assert_eq!(samples(&db, "a").last(), Some(&(11_000, 3.0)));
        assert_eq!(samples(&db, "c"), vec![(10_000, 1.0), (11_000, 2.0)]);
    }

    #[test]
    fn stores_without_refs_fall_back_to_append() {
        let store = crate::MemStore::new();
        let a = Labels::from_pairs([("__name__", "a")]);
        let got = store
            .append_refs(&[RefSample {
                series: SeriesId::Labels(&a),
                t: 1,
                v: 1.0,
            }])
            .unwrap();
        assert_eq!((got.refs, got.stats.samples_appended), (vec![None], 1));
        let got = store
            .append_refs(&[
                RefSample {
                    series: SeriesId::Labels(&a),
                    t: 2,
                    v: 1.0,
                },
                RefSample {
                    series: SeriesId::Ref(1),
                    t: 2,
                    v: 1.0,
                },
            ])
            .unwrap();
        assert_eq!((got.unknown, got.stats.samples_appended), (vec![1], 0));
        assert_eq!(store.series_count(), 1);
    }
}
