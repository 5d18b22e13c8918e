//! The storage seams every tier is built on, and the first store behind them.
//!
//! [`Appender`] takes batches of series; [`Querier`] selects them back by matchers and time
//! range. [`MemStore`] is the walking skeleton's in-memory implementation; [`Db`] is the
//! storage engine: a compressed [`head`] (postings index, Gorilla [`chunk`]s) behind a
//! write-ahead log ([`wal`]), cut into immutable on-disk [`block`]s (Gorilla or [`packed`]
//! chunks) that are compacted and deleted by retention, and [`downsample`]d into 5m and 1h
//! levels of per-bucket aggregates that range functions read when a query is aligned to them.

pub mod block;
pub mod chunk;
mod compact;
mod db;
pub mod downsample;
pub mod head;
mod memstore;
pub mod packed;
pub mod postings;
#[cfg(test)]
mod testdir;
pub mod wal;

pub use db::{BlockInfo, Db, DbOptions, DbStats};
pub use downsample::{AggrSeries, Bucket, DownsampleStats, Downsampled};
pub use memstore::MemStore;
pub use postings::SeriesRef;
pub use wal::FsyncPolicy;

use std::path::PathBuf;

use fedwatch_model::{Labels, Matcher, TimeSeries};

/// Why the store could not open or write.
#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("WAL segment {} is unusable: {reason}; appends are refused until the store is reopened", path.display())]
    WalBroken { path: PathBuf, reason: String },
    #[error("data directory lock {} is held by another process (or another store in this one)", path.display())]
    Locked { path: PathBuf },
    #[error("invalid storage option {name}: {reason}")]
    InvalidOption { name: &'static str, reason: String },
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("series limit of {limit} reached")]
    SeriesLimit { limit: usize },
    #[error("series {series} exceeds label limits: {reason}")]
    LabelLimit { series: String, reason: String },
    #[error("storage failed: {0}")]
    Storage(String),
}

/// What an append did, for the caller's counters and the scrape report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppendStats {
    pub samples_appended: u64,
    pub series_created: u64,
    pub out_of_order: u64,
    pub duplicates: u64,
}

/// Why a select failed.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("storage failed: {0}")]
    Storage(String),
}

/// Which series a [`RefSample`] belongs to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SeriesId<'a> {
    /// A ref the same store returned from an earlier [`Appender::append_refs`].
    Ref(SeriesRef),
    /// A label set, for series the caller holds no ref for (the store creates it if new).
    Labels(&'a Labels),
}

/// One sample of an [`Appender::append_refs`] batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefSample<'a> {
    pub series: SeriesId<'a>,
    pub t: i64,
    pub v: f64,
}

/// What [`Appender::append_refs`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefAppend {
    pub stats: AppendStats,
    /// Per sample of the batch, the series' ref for the next append; `None` where the store
    /// has no ref to give (it hands out none, or the sample was unknown or not stored).
    pub refs: Vec<Option<SeriesRef>>,
    /// Positions of samples whose ref the store does not know (any more: retention dropped
    /// the series). When this is not empty nothing of the batch was appended.
    pub unknown: Vec<usize>,
}

/// Where new samples go. Returns only once the store has taken the batch.
pub trait Appender: Send + Sync {
    fn append(&self, batch: &[TimeSeries]) -> Result<AppendStats, AppendError>;

    /// Appends a batch whose samples name their series by ref or by labels, all or nothing,
    /// in order (so duplicates resolve as in [`Appender::append`]), returning refs to use next
    /// time. The default hands out no refs: it refuses any `Ref` sample as unknown and
    /// otherwise falls back to [`Appender::append`].
    fn append_refs(&self, batch: &[RefSample<'_>]) -> Result<RefAppend, AppendError> {
        let unknown: Vec<usize> = (0..batch.len()).filter(|&i| matches!(batch[i].series, SeriesId::Ref(_))).collect();
        if !unknown.is_empty() {
            return Ok(RefAppend {
                stats: AppendStats::default(),
                refs: vec![None; batch.len()],
                unknown,
            });
        }
        let series: Vec<TimeSeries> = batch
            .iter()
            .filter_map(|s| match s.series {
                SeriesId::Labels(l) => Some(TimeSeries {
                    labels: l.clone(),
                    samples: vec![fedwatch_model::Sample { t: s.t, v: s.v }],
                }),
                SeriesId::Ref(_) => None,
            })
            .collect();
        let stats = self.append(&series)?;
        Ok(RefAppend {
            stats,
            refs: vec![None; batch.len()],
            unknown: Vec::new(),
        })
    }
}

/// The time window and resolution a select is for, in milliseconds (both ends inclusive).
///
/// For a range function's matrix selector the engine also says what it will compute, so a
/// store can answer from a downsampled level ([`Querier::select_downsampled`]): the windows
/// are `(t - range, t]` for the evaluation times `t = end, end - step, …` down to
/// `start + range - 1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelectHints {
    pub start: i64,
    pub end: i64,
    /// The query's step; 0 for an instant query (or one evaluation time). Lets a store pick a downsampled level.
    pub step: i64,
    /// The matrix selector's range; 0 for an instant selector.
    pub range: i64,
    /// The function wrapping the matrix selector (`rate`, `max_over_time`, …), if any.
    pub func: Option<&'static str>,
}

/// Reads series back.
pub trait Querier: Send + Sync {
    /// Series matching every matcher with their samples inside `[hints.start, hints.end]`;
    /// series with no sample in the window are left out.
    fn select(&self, matchers: &[Matcher], hints: SelectHints) -> Result<Vec<TimeSeries>, SelectError>;

    /// Matching series as per-bucket aggregates of a downsampled level, when the store has a
    /// level that answers `hints.func` over every window of `hints` exactly as raw samples
    /// would (see `lib/tsdb/FORMAT.md`, "Downsampled levels"); `None` means use [`Querier::select`].
    fn select_downsampled(&self, _matchers: &[Matcher], _hints: SelectHints) -> Result<Option<Downsampled>, SelectError> {
        Ok(None)
    }

    /// Sorted label names of series matching `matchers` (all series when empty).
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, SelectError>;

    /// Sorted values of `name` on series matching `matchers`.
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, SelectError>;

    /// Label sets of series matching `matchers`.
    fn series(&self, matchers: &[Matcher]) -> Result<Vec<Labels>, SelectError>;
}
