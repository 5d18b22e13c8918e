//! The write-ahead log: every accepted append is in a segment file before it is acknowledged.
//!
//! # Format
//! Described byte by byte in `lib/tsdb/FORMAT.md`. In short: a directory of segment files
//! named by an 8-digit decimal index (`00000001`, `00000002`, ...), each starting with an
//! 8-byte header (magic `FWAL`, a version byte, three zero bytes) followed by records framed as
//! `length u32 LE | CRC32C u32 LE | type u8 | payload`, the length counting type and payload
//! and the checksum covering them. Record types: series (ref + labels), samples
//! (ref, t, v), ref floor, and, in checkpoints only, chunks (a series' compressed chunks with
//! the open chunk's encoder state).
//!
//! # Checkpoints
//! A checkpoint ([`checkpoint`]) replaces the oldest segments with a snapshot of the head:
//! series records, then chunk records copied from the head's chunks, so replaying it costs a
//! copy per chunk rather than an encode per sample. The head is read after the log was
//! sealed, so its chunks may also hold samples of the segments replayed after the checkpoint;
//! replay skips those (they are not newer than the series' newest sample).
//!
//! # Invariants
//! - A batch is written with one positioned write at the segment's known end; the caller's
//!   append returns only after that write (and, with [`FsyncPolicy::Always`], an fsync).
//! - A series record precedes every samples record that names its ref.
//! - The log holds only accepted samples, in the order the head applied them, so replay
//!   through the same ordering rules rebuilds the same head.
//! - A failed write is cut back to the last good record boundary; if even that fails the log
//!   refuses further writes (an error, never a silent gap) until the store is reopened.
//!
//! # Durability
//! After `write` returns the data is in the kernel's page cache: a killed process (SIGKILL,
//! panic, OOM kill) loses nothing acknowledged. A power loss or kernel crash loses what was
//! not yet fsynced: nothing with `Always`, up to the interval with `Interval` (default 1 s),
//! anything since the last segment cut with `Never`.
//!
//! # Recovery
//! Replay reads segments in index order and stops at the first record that is short, has an
//! impossible length, fails its checksum or does not decode. That segment is truncated to
//! the last good record, any later segments are deleted (they follow a gap), the damage is
//! logged and reported in [`ReplayStats::corruption`], and the store opens with everything
//! before it. Writing then continues in a fresh segment.

pub mod hold;
pub mod tail;

pub use hold::WalHold;
pub use tail::{TailStats, WalPosition, WalTailer};

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedwatch_model::{Labels, Sample};

use crate::TsdbError;
use crate::chunk::{ChunkEncoder, EncoderState};
use crate::postings::SeriesRef;

/// Magic at the start of every segment.
pub const SEGMENT_MAGIC: &[u8; 4] = b"FWAL";
/// Segment format version written by this code.
pub const SEGMENT_VERSION: u8 = 1;
/// Checkpoint format version: a segment that may also hold chunk records (type 4).
pub const CHECKPOINT_VERSION: u8 = 2;
/// Segment header length in bytes.
pub const SEGMENT_HEADER_LEN: u64 = 8;
/// Default size at which a new segment is started.
pub const DEFAULT_SEGMENT_SIZE: u64 = 128 << 20;
/// Records above this length are taken as corruption rather than allocated.
/// Bytes of batch buffer the writer keeps between batches.
const KEPT_BUFFER: usize = 256 << 10;

const MAX_RECORD_LEN: u32 = 1 << 30;

const REC_SERIES: u8 = 1;
const REC_SAMPLES: u8 = 2;
const REC_REF_FLOOR: u8 = 3;
const REC_CHUNKS: u8 = 4;
/// Series per chunk record in a checkpoint (a record must stay below 2^30 bytes).
const CHUNK_RECORD_SERIES: usize = 1000;

/// When the log calls fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every batch, before the append returns: a power loss loses nothing acknowledged.
    Always,
    /// At most this long after a write, from a background thread.
    Interval(Duration),
    /// Only when a segment is cut and on close: leave it to the kernel.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_secs(1))
    }
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum WalRecord {
    Series(Vec<(SeriesRef, Labels)>),
    Samples(Vec<(SeriesRef, Sample)>),
    /// Refs below this were handed out before (written by checkpoints, which drop dead series,
    /// so a restarted head never reuses a ref that older segments may still name).
    RefFloor(SeriesRef),
    /// A series' compressed chunks as the head held them (written by checkpoints only).
    Chunks(Vec<SeriesChunks>),
}

/// A closed chunk read back from a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub bytes: Box<[u8]>,
}

/// One series' chunks read back from a checkpoint: closed ones as they were, and the open
/// one with the encoder state to go on appending.
#[derive(Debug, Clone)]
pub struct SeriesChunks {
    pub series: SeriesRef,
    pub closed: Vec<StoredChunk>,
    /// The open chunk's first sample time and encoder.
    pub open: Option<(i64, ChunkEncoder)>,
}

impl PartialEq for SeriesChunks {
    fn eq(&self, other: &Self) -> bool {
        let open = |o: &Option<(i64, ChunkEncoder)>| o.as_ref().map(|(t, e)| (*t, e.bytes().to_vec(), e.state()));
        self.series == other.series && self.closed == other.closed && open(&self.open) == open(&other.open)
    }
}

impl SeriesChunks {
    /// Samples in all its chunks, from the chunk headers.
    pub fn sample_count(&self) -> u64 {
        let count = |b: &[u8]| u64::from(u16::from_be_bytes([b[0], b[1]]));
        let closed: u64 = self.closed.iter().map(|c| count(&c.bytes)).sum();
        closed + self.open.as_ref().map_or(0, |(_, e)| e.len() as u64)
    }
}

/// Damage found at the tail of the log during replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    pub segment: PathBuf,
    pub offset: u64,
    pub reason: String,
    /// Bytes cut from the damaged segment.
    pub bytes_dropped: u64,
    /// Later segments deleted because they followed the damage.
    pub segments_removed: usize,
}

/// What replay read.
#[derive(Clone, Debug, Default)]
pub struct ReplayStats {
    pub segments: usize,
    pub records: u64,
    pub series: u64,
    pub samples: u64,
    /// Chunks restored from a checkpoint, and the samples they hold.
    pub chunks: u64,
    pub chunk_samples: u64,
    pub duration: Duration,
    pub corruption: Option<Corruption>,
}

/// An open log, appending to its newest segment.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment_size: u64,
    fsync: FsyncPolicy,
    index: u32,
    file: Arc<File>,
    size: u64,
    /// Bytes in segments before the current one.
    older_bytes: u64,
    /// Bytes of the checkpoint replayed or last written.
    checkpoint_bytes: u64,
    /// Bytes of segments sealed since the last checkpoint sealed the log (or replayed at open).
    sealed_since_checkpoint: u64,
    /// Bytes written by [`Wal::log`] since open.
    logged: u64,
    dirty: bool,
    broken: Option<String>,
    buf: Vec<u8>,
}

/// The path of segment `index` in `dir`.
pub fn segment_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("{index:08}"))
}

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TsdbError + 'a {
    move |source| TsdbError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Segment indexes present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u32>, TsdbError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("listing WAL directory", dir))? {
        let entry = entry.map_err(io_err("listing WAL directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 8
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(i) = name.parse::<u32>()
        {
            out.push(i);
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl Wal {
    /// Opens (creating) the log in `dir`, hands every intact record to `apply` in order,
    /// repairs a damaged tail, and starts a fresh segment for new writes.
    pub fn open(
        dir: &Path,
        segment_size: u64,
        fsync: FsyncPolicy,
        mut apply: impl FnMut(WalRecord),
    ) -> Result<(Wal, ReplayStats), TsdbError> {
        let started = Instant::now();
        fs::create_dir_all(dir).map_err(io_err("creating WAL directory", dir))?;
        let checkpoint = latest_checkpoint(dir)?;
        let mut stats = ReplayStats::default();
        let mut older_bytes = 0;
        let mut checkpoint_bytes = 0;
        if let Some(upto) = checkpoint {
            let path = checkpoint_path(dir, upto);
            let (good, damage, len) = replay_file(&path, &mut stats, &mut apply)?;
            older_bytes += good;
            checkpoint_bytes = len;
            // A checkpoint was fsynced before it was renamed into place, so damage here is
            // media corruption: report it and go on with the segments after it.
            if let Some((offset, reason)) = damage {
                tracing::error!(checkpoint = %path.display(), offset, reason = %reason, "WAL checkpoint damaged: series and samples after this offset are lost");
                stats.corruption = Some(Corruption {
                    segment: path,
                    offset,
                    reason,
                    bytes_dropped: len - offset,
                    segments_removed: 0,
                });
            }
        }
        let mut segments = list_segments(dir)?;
        if let Some(upto) = checkpoint {
            // Segments the checkpoint covers but a crash left behind.
            for &i in segments.iter().filter(|&&i| i <= upto) {
                let p = segment_path(dir, i);
                fs::remove_file(&p).map_err(io_err("removing WAL segment covered by a checkpoint", &p))?;
            }
            segments.retain(|&i| i > upto);
        }
        stats.segments = segments.len();
        for (pos, &index) in segments.iter().enumerate() {
            let path = segment_path(dir, index);
            let (good, damage, len) = replay_file(&path, &mut stats, &mut apply)?;
            older_bytes += good;
            if let Some((offset, reason)) = damage {
                let later = &segments[pos + 1..];
                repair(dir, index, offset, later, fsync)?;
                let c = Corruption {
                    segment: path,
                    offset,
                    reason,
                    bytes_dropped: len - offset,
                    segments_removed: later.len(),
                };
                tracing::warn!(
                    segment = %c.segment.display(), offset = c.offset, reason = %c.reason,
                    bytes_dropped = c.bytes_dropped, segments_removed = c.segments_removed,
                    "WAL damaged: truncated to the last good record"
                );
                stats.corruption = Some(c);
                break;
            }
        }
        let last = list_segments(dir)?.last().copied().unwrap_or(0);
        let next = last.max(checkpoint.unwrap_or(0)) + 1;
        let file = create_segment(dir, next, fsync)?;
        stats.duration = started.elapsed();
        let wal = Wal {
            dir: dir.to_path_buf(),
            segment_size: segment_size.max(SEGMENT_HEADER_LEN + 1),
            fsync,
            index: next,
            file: Arc::new(file),
            size: SEGMENT_HEADER_LEN,
            older_bytes,
            checkpoint_bytes,
            sealed_since_checkpoint: older_bytes - checkpoint_bytes.min(older_bytes),
            logged: 0,
            dirty: false,
            broken: None,
            buf: Vec::new(),
        };
        Ok((wal, stats))
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.older_bytes + self.size
    }

    /// The position after the last record written.
    pub fn end(&self) -> WalPosition {
        WalPosition {
            segment: self.index,
            offset: self.size,
        }
    }

    /// The current segment's index.
    pub fn segment_index(&self) -> u32 {
        self.index
    }

    /// Writes new series then samples as one batch; returns once written (and fsynced under `Always`).
    pub fn log(&mut self, series: &[(SeriesRef, Labels)], samples: &[(SeriesRef, Sample)]) -> Result<(), TsdbError> {
        if let Some(reason) = &self.broken {
            return Err(TsdbError::WalBroken {
                path: segment_path(&self.dir, self.index),
                reason: reason.clone(),
            });
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if !series.is_empty() {
            frame(&mut buf, REC_SERIES, |p| encode_series(series, p));
        }
        if !samples.is_empty() {
            frame(&mut buf, REC_SAMPLES, |p| encode_samples(samples, p));
        }
        let result = self.write(&buf);
        // Keep a batch's worth of room, not the largest batch ever (a big target's first
        // scrape names all its series at once: megabytes held for nothing afterwards).
        if buf.capacity() > KEPT_BUFFER {
            buf = Vec::with_capacity(KEPT_BUFFER);
        }
        self.buf = buf;
        result
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), TsdbError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.size > SEGMENT_HEADER_LEN && self.size + bytes.len() as u64 > self.segment_size {
            self.cut()?;
        }
        let path = segment_path(&self.dir, self.index);
        if let Err(e) = self.file.write_all_at(bytes, self.size) {
            // Cut a partial write back so the next batch does not land after a torn record.
            if let Err(e2) = self.file.set_len(self.size) {
                self.broken = Some(format!("write failed ({e}) and truncating it back failed ({e2})"));
            }
            return Err(TsdbError::Io {
                op: "writing WAL segment",
                path,
                source: e,
            });
        }
        self.size += bytes.len() as u64;
        self.logged += bytes.len() as u64;
        self.dirty = true;
        if self.fsync == FsyncPolicy::Always {
            self.sync()?;
        }
        Ok(())
    }

    /// Fsyncs the current segment if anything was written since the last sync.
    pub fn sync(&mut self) -> Result<(), TsdbError> {
        if !self.dirty {
            return Ok(());
        }
        let path = segment_path(&self.dir, self.index);
        self.file.sync_data().map_err(io_err("syncing WAL segment", &path))?;
        self.dirty = false;
        Ok(())
    }

    /// For a background syncer: the file to fsync outside the lock, if it has unsynced writes.
    pub fn take_dirty_file(&mut self) -> Option<(Arc<File>, PathBuf)> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some((self.file.clone(), segment_path(&self.dir, self.index)))
    }

    /// The fsync policy in force.
    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.fsync
    }

    /// Seals the current segment (when it holds records) so everything logged so far is in
    /// closed segments; returns the newest closed segment's index.
    pub fn seal(&mut self) -> Result<u32, TsdbError> {
        if self.size > SEGMENT_HEADER_LEN {
            self.cut()?;
        }
        Ok(self.index - 1)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Accounts for bytes a checkpoint removed (`removed`) and wrote (`added`).
    pub fn account_checkpoint(&mut self, removed: u64, added: u64) {
        self.older_bytes = (self.older_bytes + added).saturating_sub(removed);
        if added > 0 {
            self.checkpoint_bytes = added;
        }
    }

    /// Bytes written by [`Wal::log`] since open.
    pub fn logged_bytes(&self) -> u64 {
        self.logged
    }

    /// Bytes of the newest checkpoint (0 without one).
    pub fn checkpoint_bytes(&self) -> u64 {
        self.checkpoint_bytes
    }

    /// Bytes of segments sealed since [`Wal::start_checkpoint_period`] (or since open,
    /// counting the segments replayed).
    pub fn sealed_since_checkpoint(&self) -> u64 {
        self.sealed_since_checkpoint
    }

    /// Called when a checkpoint seals the log: its sealed segments are now the checkpoint's
    /// business (consumed, or kept for a reader's hold).
    pub fn start_checkpoint_period(&mut self) {
        self.sealed_since_checkpoint = 0;
    }

    /// Closes the current segment (synced) and starts the next one.
    fn cut(&mut self) -> Result<(), TsdbError> {
        let path = segment_path(&self.dir, self.index);
        self.file.sync_data().map_err(io_err("syncing WAL segment", &path))?;
        self.dirty = false;
        let file = create_segment(&self.dir, self.index + 1, self.fsync)?;
        self.older_bytes += self.size;
        self.sealed_since_checkpoint += self.size;
        self.index += 1;
        self.file = Arc::new(file);
        self.size = SEGMENT_HEADER_LEN;
        Ok(())
    }
}

/// The path of the checkpoint covering segments up to `upto`.
pub fn checkpoint_path(dir: &Path, upto: u32) -> PathBuf {
    dir.join(format!("checkpoint.{upto:08}"))
}

/// The newest complete checkpoint's index; removes unfinished (`.tmp`) and older ones.
fn latest_checkpoint(dir: &Path) -> Result<Option<u32>, TsdbError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("listing WAL directory", dir))? {
        let entry = entry.map_err(io_err("listing WAL directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("checkpoint.") else { continue };
        if rest.ends_with(".tmp") {
            let p = entry.path();
            fs::remove_file(&p).map_err(io_err("removing unfinished WAL checkpoint", &p))?;
        } else if let Ok(i) = rest.parse::<u32>() {
            found.push(i);
        }
    }
    found.sort_unstable();
    let latest = found.pop();
    for i in found {
        let p = checkpoint_path(dir, i);
        fs::remove_file(&p).map_err(io_err("removing superseded WAL checkpoint", &p))?;
    }
    Ok(latest)
}

/// What a checkpoint did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    pub upto: u32,
    pub series: u64,
    pub samples: u64,
    pub bytes_written: u64,
    pub bytes_removed: u64,
}

/// Writes the head as one checkpoint covering the segments up to `upto`, then deletes the
/// previous checkpoint and those segments. `series` are the series records to write (live
/// series, plus refs older segments may still name); `chunks` appends to the buffer the chunk
/// entries (see [`encode_series_chunks`]) of the refs it is given that still exist, and
/// returns how many samples they hold. It is called with groups of refs so the caller can take
/// its lock per group. No segment is read, so appends go on meanwhile. The file is written
/// under a `.tmp` name, fsynced and renamed, so a crash leaves either the old files or the new
/// checkpoint.
pub fn checkpoint(
    dir: &Path,
    upto: u32,
    ref_floor: SeriesRef,
    series: &[(SeriesRef, Labels)],
    mut chunks: impl FnMut(&[SeriesRef], &mut Vec<u8>) -> u64,
) -> Result<CheckpointStats, TsdbError> {
    let mut stats = CheckpointStats {
        upto,
        series: series.len() as u64,
        ..Default::default()
    };
    let mut replaced: Vec<PathBuf> = Vec::new();
    if let Some(prev) = latest_checkpoint(dir)? {
        if prev >= upto {
            return Ok(CheckpointStats {
                upto: prev,
                ..Default::default()
            });
        }
        replaced.push(checkpoint_path(dir, prev));
    }
    replaced.extend(list_segments(dir)?.into_iter().filter(|&i| i <= upto).map(|i| segment_path(dir, i)));

    let tmp = dir.join(format!("checkpoint.{upto:08}.tmp"));
    let file = create_file_with_header(&tmp, CHECKPOINT_VERSION)?;
    let mut size = SEGMENT_HEADER_LEN;
    let mut buf = Vec::new();
    let flush = |buf: &mut Vec<u8>, size: &mut u64| -> Result<(), TsdbError> {
        file.write_all_at(buf, *size).map_err(io_err("writing WAL checkpoint", &tmp))?;
        *size += buf.len() as u64;
        buf.clear();
        Ok(())
    };
    frame(&mut buf, REC_REF_FLOOR, |p| put_uvarint(p, ref_floor));
    for part in series.chunks(10_000) {
        frame(&mut buf, REC_SERIES, |p| encode_series(part, p));
        flush(&mut buf, &mut size)?;
    }
    let refs: Vec<SeriesRef> = series.iter().map(|(r, _)| *r).collect();
    for part in refs.chunks(CHUNK_RECORD_SERIES) {
        let start = buf.len();
        frame(&mut buf, REC_CHUNKS, |p| stats.samples += chunks(part, p));
        if buf.len() == start + 9 {
            // None of these series is left: no record.
            buf.truncate(start);
        }
        if buf.len() >= 1 << 20 {
            flush(&mut buf, &mut size)?;
        }
    }
    flush(&mut buf, &mut size)?;
    file.sync_all().map_err(io_err("syncing WAL checkpoint", &tmp))?;
    drop(file);
    let done = checkpoint_path(dir, upto);
    fs::rename(&tmp, &done).map_err(io_err("renaming WAL checkpoint into place", &done))?;
    sync_dir(dir)?;
    stats.bytes_written = size;
    for path in replaced {
        stats.bytes_removed += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        fs::remove_file(&path).map_err(io_err("removing WAL file replaced by a checkpoint", &path))?;
    }
    Ok(stats)
}

/// Appends one series' chunk entry to a chunk record's payload: its ref, its closed chunks
/// `(min_t, max_t, bytes)`, and its open chunk with the encoder state, if it has samples.
pub fn encode_series_chunks<'a>(buf: &mut Vec<u8>, series: SeriesRef, closed: &[(i64, i64, &'a [u8])], open: Option<(i64, &ChunkEncoder)>) {
    put_uvarint(buf, series);
    put_uvarint(buf, closed.len() as u64);
    for (min_t, max_t, bytes) in closed {
        put_varint(buf, *min_t);
        put_varint(buf, max_t.wrapping_sub(*min_t));
        put_uvarint(buf, bytes.len() as u64);
        buf.extend_from_slice(bytes);
    }
    match open.filter(|(_, e)| !e.is_empty()) {
        None => put_uvarint(buf, 0),
        Some((min_t, enc)) => {
            let st = enc.state();
            put_uvarint(buf, enc.bytes().len() as u64);
            buf.extend_from_slice(enc.bytes());
            put_varint(buf, min_t);
            put_varint(buf, st.t);
            put_uvarint(buf, st.t_delta);
            buf.extend_from_slice(&st.v.to_le_bytes());
            buf.extend_from_slice(&[st.leading, st.trailing, st.free]);
        }
    }
}

fn decode_chunks(payload: &[u8]) -> Result<Vec<SeriesChunks>, String> {
    let mut r = Reader { data: payload, pos: 0 };
    let mut out = Vec::new();
    while r.pos < r.data.len() {
        let series = r.uvarint()?;
        let n = r.count(4)?;
        let mut closed = Vec::with_capacity(n);
        for _ in 0..n {
            let min_t = r.varint()?;
            let max_t = min_t.wrapping_add(r.varint()?);
            let len = r.uvarint()? as usize;
            if len < 2 {
                return Err(format!("closed chunk of series {series} is {len} bytes, shorter than its header"));
            }
            let bytes = r.bytes(len)?.into();
            closed.push(StoredChunk { min_t, max_t, bytes });
        }
        let open_len = r.uvarint()? as usize;
        let open = if open_len == 0 {
            None
        } else {
            let bytes = r.bytes(open_len)?.to_vec();
            let min_t = r.varint()?;
            let t = r.varint()?;
            let t_delta = r.uvarint()?;
            let v = r.bytes(8)?;
            let v = u64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
            let w = r.bytes(3)?;
            let st = EncoderState {
                t,
                t_delta,
                v,
                leading: w[0],
                trailing: w[1],
                free: w[2],
            };
            let enc = ChunkEncoder::resume(bytes, st).map_err(|e| format!("series {series}: {e}"))?;
            Some((min_t, enc))
        };
        out.push(SeriesChunks { series, closed, open });
    }
    Ok(out)
}

fn create_file_with_header(path: &Path, version: u8) -> Result<File, TsdbError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_err("creating WAL file", path))?;
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    header[..4].copy_from_slice(SEGMENT_MAGIC);
    header[4] = version;
    file.write_all_at(&header, 0).map_err(io_err("writing WAL header", path))?;
    Ok(file)
}

fn create_segment(dir: &Path, index: u32, fsync: FsyncPolicy) -> Result<File, TsdbError> {
    let path = segment_path(dir, index);
    let file = create_file_with_header(&path, SEGMENT_VERSION)?;
    if fsync != FsyncPolicy::Never {
        file.sync_all().map_err(io_err("syncing WAL segment", &path))?;
        sync_dir(dir)?;
    }
    Ok(file)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), TsdbError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing WAL directory", dir))
}

/// Truncates segment `index` at `offset` (removing it when not even its header is good) and
/// deletes the segments in `later`.
fn repair(dir: &Path, index: u32, offset: u64, later: &[u32], fsync: FsyncPolicy) -> Result<(), TsdbError> {
    let path = segment_path(dir, index);
    if offset < SEGMENT_HEADER_LEN {
        fs::remove_file(&path).map_err(io_err("removing damaged WAL segment", &path))?;
    } else {
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err("opening WAL segment for repair", &path))?;
        f.set_len(offset).map_err(io_err("truncating damaged WAL segment", &path))?;
        f.sync_all().map_err(io_err("syncing WAL segment", &path))?;
    }
    for &i in later {
        let p = segment_path(dir, i);
        fs::remove_file(&p).map_err(io_err("removing WAL segment after damage", &p))?;
    }
    if fsync != FsyncPolicy::Never {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Applies a segment's intact records; returns the length of its good prefix and, when it
/// stops early, where and why.
fn replay_segment(data: &[u8], stats: &mut ReplayStats, apply: &mut impl FnMut(WalRecord)) -> (u64, Option<(u64, String)>) {
    replay_segment_kinds(data, stats, |_| true, apply)
}

/// Series records only: what a reader of the log needs from a checkpoint (the other records
/// are checked but not decoded).
pub(crate) fn replay_series(data: &[u8], apply: &mut impl FnMut(Vec<(SeriesRef, Labels)>)) -> (u64, Option<(u64, String)>) {
    let mut ignored = ReplayStats::default();
    replay_segment_kinds(data, &mut ignored, |kind| kind == REC_SERIES, &mut |rec| {
        if let WalRecord::Series(s) = rec {
            apply(s);
        }
    })
}

/// [`replay_segment`], decoding only records whose type `wanted` accepts.
fn replay_segment_kinds(
    data: &[u8],
    stats: &mut ReplayStats,
    wanted: impl Fn(u8) -> bool,
    apply: &mut impl FnMut(WalRecord),
) -> (u64, Option<(u64, String)>) {
    if let Err(reason) = check_header(data) {
        return (0, Some((0, reason)));
    }
    let mut off = SEGMENT_HEADER_LEN as usize;
    while off < data.len() {
        let framed = match read_frame(&data[off..]) {
            Ok(f) => f,
            Err(reason) => return (off as u64, Some((off as u64, reason))),
        };
        let (kind, body, used) = framed;
        if wanted(kind) {
            match decode_record(kind, body) {
                Ok(rec) => {
                    stats.records += 1;
                    match &rec {
                        WalRecord::Series(s) => stats.series += s.len() as u64,
                        WalRecord::Samples(s) => stats.samples += s.len() as u64,
                        WalRecord::Chunks(c) => {
                            stats.chunks += c.iter().map(|s| s.closed.len() as u64 + u64::from(s.open.is_some())).sum::<u64>();
                            stats.chunk_samples += c.iter().map(SeriesChunks::sample_count).sum::<u64>();
                        }
                        WalRecord::RefFloor(_) => {}
                    }
                    apply(rec);
                }
                Err(reason) => return (off as u64, Some((off as u64, reason))),
            }
        } else if !(REC_SERIES..=REC_CHUNKS).contains(&kind) {
            return (off as u64, Some((off as u64, format!("unknown record type {kind}"))));
        }
        off += used;
    }
    (off as u64, None)
}

/// Checks a file's header (its first bytes, however many there are).
fn check_header(data: &[u8]) -> Result<(), String> {
    if data.len() < SEGMENT_HEADER_LEN as usize {
        return Err(format!("segment header is {} bytes, expected {SEGMENT_HEADER_LEN}", data.len()));
    }
    if &data[..4] != SEGMENT_MAGIC {
        return Err(format!("bad magic {:02x?}, expected {SEGMENT_MAGIC:?}", &data[..4]));
    }
    if data[4] != SEGMENT_VERSION && data[4] != CHECKPOINT_VERSION {
        return Err(format!(
            "segment version {} is not supported (this build reads {SEGMENT_VERSION} and {CHECKPOINT_VERSION})",
            data[4]
        ));
    }
    Ok(())
}

/// Records decoded ahead of the one being applied during replay.
const REPLAY_READ_AHEAD: usize = 32;

/// [`replay_segment`] on a file, streamed: a reader thread reads, checks and decodes records
/// while `apply` runs on this thread, so decoding overlaps applying and memory holds a few
/// records, not the file. Returns the good prefix's length, the damage if any, and the
/// file's length.
fn replay_file(
    path: &Path,
    stats: &mut ReplayStats,
    apply: &mut impl FnMut(WalRecord),
) -> Result<(u64, Option<(u64, String)>, u64), TsdbError> {
    let file = File::open(path).map_err(io_err("opening WAL file for replay", path))?;
    let len = file.metadata().map_err(io_err("reading WAL file size", path))?.len();
    let (tx, rx) = std::sync::mpsc::sync_channel::<WalRecord>(REPLAY_READ_AHEAD);
    let read = std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_records(file, len, tx));
        for rec in rx {
            stats.records += 1;
            match &rec {
                WalRecord::Series(s) => stats.series += s.len() as u64,
                WalRecord::Samples(s) => stats.samples += s.len() as u64,
                WalRecord::Chunks(c) => {
                    stats.chunks += c.iter().map(|s| s.closed.len() as u64 + u64::from(s.open.is_some())).sum::<u64>();
                    stats.chunk_samples += c.iter().map(SeriesChunks::sample_count).sum::<u64>();
                }
                WalRecord::RefFloor(_) => {}
            }
            apply(rec);
        }
        // The reader only reads and decodes; a panic there is a bug: surface it.
        reader.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
    let (good, damage) = read.map_err(io_err("reading WAL file", path))?;
    Ok((good, damage, len))
}

/// The reader side of [`replay_file`]: sends every intact record; returns the good prefix's
/// length and where and why it stopped early.
fn read_records(file: File, len: u64, tx: std::sync::mpsc::SyncSender<WalRecord>) -> std::io::Result<(u64, Option<(u64, String)>)> {
    use std::io::Read;
    let mut r = std::io::BufReader::with_capacity(4 << 20, file);
    let mut head = [0u8; SEGMENT_HEADER_LEN as usize];
    let have = len.min(SEGMENT_HEADER_LEN) as usize;
    r.read_exact(&mut head[..have])?;
    if let Err(reason) = check_header(&head[..have]) {
        return Ok((0, Some((0, reason))));
    }
    let mut off = SEGMENT_HEADER_LEN;
    let mut body = Vec::new();
    while off < len {
        let left = len - off;
        let damage = |reason: String| Ok((off, Some((off, reason))));
        if left < 8 {
            return damage(format!("torn record header: {left} of 8 bytes"));
        }
        r.read_exact(&mut head)?;
        let rlen = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if rlen == 0 || rlen > MAX_RECORD_LEN {
            return damage(format!("impossible record length {rlen}"));
        }
        if left - 8 < u64::from(rlen) {
            return damage(format!("torn record: {} of {rlen} bytes", left - 8));
        }
        body.resize(rlen as usize, 0);
        r.read_exact(&mut body)?;
        let got = crc32c::crc32c(&body);
        if got != crc {
            return damage(format!("checksum mismatch: stored {crc:08x}, computed {got:08x}"));
        }
        let rec = match decode_record(body[0], &body[1..]) {
            Ok(rec) => rec,
            Err(reason) => return damage(reason),
        };
        if tx.send(rec).is_err() {
            // The applying side is gone (it panicked): nothing more to do.
            return Ok((off, None));
        }
        off += 8 + u64::from(rlen);
    }
    Ok((off, None))
}

/// Checks the framing and checksum of the record at the start of `data`; returns its type,
/// payload and the bytes it used.
fn read_frame(data: &[u8]) -> Result<(u8, &[u8], usize), String> {
    if data.len() < 8 {
        return Err(format!("torn record header: {} of 8 bytes", data.len()));
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let crc = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    if len == 0 || len > MAX_RECORD_LEN {
        return Err(format!("impossible record length {len}"));
    }
    let end = 8 + len as usize;
    if data.len() < end {
        return Err(format!("torn record: {} of {len} bytes", data.len() - 8));
    }
    let body = &data[8..end];
    let got = crc32c::crc32c(body);
    if got != crc {
        return Err(format!("checksum mismatch: stored {crc:08x}, computed {got:08x}"));
    }
    Ok((body[0], &body[1..], end))
}

fn decode_record(kind: u8, payload: &[u8]) -> Result<WalRecord, String> {
    Ok(match kind {
        REC_SERIES => WalRecord::Series(decode_series(payload)?),
        REC_SAMPLES => WalRecord::Samples(decode_samples(payload)?),
        REC_REF_FLOOR => {
            let mut r = Reader { data: payload, pos: 0 };
            let floor = r.uvarint()?;
            r.done()?;
            WalRecord::RefFloor(floor)
        }
        REC_CHUNKS => WalRecord::Chunks(decode_chunks(payload)?),
        t => return Err(format!("unknown record type {t}")),
    })
}

/// Decodes one framed record from the start of `data`; returns it and the bytes it used.
pub fn read_record(data: &[u8]) -> Result<(WalRecord, usize), String> {
    let (kind, payload, used) = read_frame(data)?;
    Ok((decode_record(kind, payload)?, used))
}

/// Appends a framed record whose payload `fill` writes.
fn frame(buf: &mut Vec<u8>, kind: u8, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 8]);
    buf.push(kind);
    fill(buf);
    let body = &buf[start + 8..];
    let len = body.len() as u32;
    let crc = crc32c::crc32c(body);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub(crate) fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// Series payload: count, then per series ref, label count, (name, value) strings.
pub fn encode_series(series: &[(SeriesRef, Labels)], buf: &mut Vec<u8>) {
    put_uvarint(buf, series.len() as u64);
    for (r, labels) in series {
        put_uvarint(buf, *r);
        put_uvarint(buf, labels.len() as u64);
        for l in labels.iter() {
            put_str(buf, &l.name);
            put_str(buf, &l.value);
        }
    }
}

/// Samples payload: count, base ref and time, then per sample ref and time as signed deltas
/// from the base and the value's 64 bits little-endian.
pub fn encode_samples(samples: &[(SeriesRef, Sample)], buf: &mut Vec<u8>) {
    put_uvarint(buf, samples.len() as u64);
    let Some((base_ref, base)) = samples.first() else { return };
    put_uvarint(buf, *base_ref);
    put_varint(buf, base.t);
    for (r, s) in samples {
        put_varint(buf, r.wrapping_sub(*base_ref) as i64);
        put_varint(buf, s.t.wrapping_sub(base.t));
        buf.extend_from_slice(&s.v.to_bits().to_le_bytes());
    }
}

pub(crate) struct Reader<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
}

impl Reader<'_> {
    pub(crate) fn uvarint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *self
                .data
                .get(self.pos)
                .ok_or_else(|| format!("payload ends inside a varint at {}", self.pos))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                break;
            }
            out |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(out);
            }
        }
        Err(format!("varint overflows 64 bits at {}", self.pos))
    }

    pub(crate) fn varint(&mut self) -> Result<i64, String> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("payload ends inside a {n}-byte field at {}", self.pos))?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn string(&mut self) -> Result<String, String> {
        let n = self.uvarint()? as usize;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("label string is not UTF-8 at {}", self.pos))
    }

    /// A count that cannot exceed what is left of the payload at `min_each` bytes apiece.
    pub(crate) fn count(&mut self, min_each: usize) -> Result<usize, String> {
        let n = self.uvarint()?;
        let left = (self.data.len() - self.pos) / min_each.max(1);
        if n > left as u64 {
            return Err(format!("count {n} exceeds what the payload can hold"));
        }
        Ok(n as usize)
    }

    pub(crate) fn done(&self) -> Result<(), String> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes in payload", self.data.len() - self.pos))
        }
    }
}

fn decode_series(payload: &[u8]) -> Result<Vec<(SeriesRef, Labels)>, String> {
    let mut r = Reader { data: payload, pos: 0 };
    let n = r.count(2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let sref = r.uvarint()?;
        let nl = r.count(2)?;
        let mut pairs = Vec::with_capacity(nl);
        for _ in 0..nl {
            pairs.push((r.string()?, r.string()?));
        }
        out.push((sref, Labels::from_pairs(pairs)));
    }
    r.done()?;
    Ok(out)
}

fn decode_samples(payload: &[u8]) -> Result<Vec<(SeriesRef, Sample)>, String> {
    let mut r = Reader { data: payload, pos: 0 };
    let n = r.count(10)?;
    let mut out = Vec::with_capacity(n);
    if n > 0 {
        let base_ref = r.uvarint()?;
        let base_t = r.varint()?;
        for _ in 0..n {
            let sref = base_ref.wrapping_add(r.varint()? as u64);
            let t = base_t.wrapping_add(r.varint()?);
            let b = r.bytes(8)?;
            let v = f64::from_bits(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
            out.push((sref, Sample { t, v }));
        }
    }
    r.done()?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use fedwatch_model::stale_nan;

    fn batch(i: u64) -> (Vec<(SeriesRef, Labels)>, Vec<(SeriesRef, Sample)>) {
        let series = vec![(i, Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())]))];
        let samples = vec![
            (
                i,
                Sample {
                    t: i as i64 * 1000,
                    v: i as f64,
                },
            ),
            (
                i,
                Sample {
                    t: i as i64 * 1000 + 1,
                    v: stale_nan(),
                },
            ),
        ];
        (series, samples)
    }

    fn replay(dir: &Path, segment_size: u64) -> (Vec<WalRecord>, ReplayStats, Wal) {
        let mut recs = Vec::new();
        let (wal, stats) = Wal::open(dir, segment_size, FsyncPolicy::Never, |r| recs.push(r)).unwrap();
        (recs, stats, wal)
    }

    #[test]
    fn records_round_trip_across_segments() {
        let dir = TestDir::new("wal-roundtrip");
        let (_, _, mut wal) = replay(dir.path(), 200);
        for i in 0..20 {
            let (se, sa) = batch(i);
            wal.log(&se, &sa).unwrap();
        }
        assert!(wal.segment_index() > 3, "small segments must rotate");
        drop(wal);
        let (recs, stats, _) = replay(dir.path(), 200);
        assert!(stats.corruption.is_none());
        assert_eq!((stats.series, stats.samples), (20, 40));
        let mut want = Vec::new();
        for i in 0..20 {
            let (se, sa) = batch(i);
            want.push(WalRecord::Series(se));
            want.push(WalRecord::Samples(sa));
        }
        // NaN != NaN, so compare debug renderings (stale markers print alike).
        assert_eq!(format!("{recs:?}"), format!("{want:?}"));
    }

    /// Damage applied to the last segment, and how many batches survive it.
    #[test]
    fn damaged_tail_is_truncated_reported_and_writable() {
        // Damage gets the segment bytes and the offset of the last record.
        type Damage = fn(&mut Vec<u8>, usize);
        let cases: [(&str, Damage, u64); 7] = [
            ("torn last record", |d, _| d.truncate(d.len() - 3), 4),
            ("torn record header", |d, last| d.truncate(last + 4), 4),
            ("flipped byte in last record", |d, _| *d.last_mut().unwrap() ^= 0x40, 4),
            ("flipped byte in first record", |d, _| d[SEGMENT_HEADER_LEN as usize + 9] ^= 1, 0),
            ("zero-filled tail", |d, _| d.extend_from_slice(&[0; 4096]), 5),
            (
                "garbage length",
                |d, _| d.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4]),
                5,
            ),
            ("bad magic", |d, _| d[0] = b'X', 0),
        ];
        for (name, damage, survivors) in cases {
            let dir = TestDir::new("wal-damage");
            let (_, _, mut wal) = replay(dir.path(), DEFAULT_SEGMENT_SIZE);
            for i in 0..5 {
                let (se, sa) = batch(i);
                wal.log(&se, &sa).unwrap();
            }
            let seg = segment_path(dir.path(), wal.segment_index());
            drop(wal);
            let mut data = fs::read(&seg).unwrap();
            let mut last = SEGMENT_HEADER_LEN as usize;
            while let Ok((_, used)) = read_record(&data[last..]) {
                if last + used == data.len() {
                    break;
                }
                last += used;
            }
            damage(&mut data, last);
            fs::write(&seg, &data).unwrap();
            let (recs, stats, mut wal) = replay(dir.path(), DEFAULT_SEGMENT_SIZE);
            let c = stats.corruption.as_ref().unwrap_or_else(|| panic!("{name}: damage not reported"));
            assert_eq!(c.segment, seg, "{name}");
            let complete = recs.iter().filter(|r| matches!(r, WalRecord::Samples(_))).count() as u64;
            assert_eq!(complete, survivors, "{name}: {c:?}");
            // The store keeps working: new writes replay after the repaired tail.
            let (se, sa) = batch(99);
            wal.log(&se, &sa).unwrap();
            drop(wal);
            let (recs, stats, _) = replay(dir.path(), DEFAULT_SEGMENT_SIZE);
            assert!(
                stats.corruption.is_none(),
                "{name}: repaired log still damaged: {:?}",
                stats.corruption
            );
            assert!(format!("{:?}", recs.last()).contains("t: 99000"), "{name}");
        }
    }

    #[test]
    fn failed_write_is_an_error_and_leaves_no_torn_record() {
        let dir = TestDir::new("wal-write-fail");
        let (_, _, mut wal) = replay(dir.path(), DEFAULT_SEGMENT_SIZE);
        let (se, sa) = batch(1);
        wal.log(&se, &sa).unwrap();
        // A read-only handle makes the next write fail as a full or broken disk would.
        let path = segment_path(dir.path(), wal.segment_index());
        let writable = std::mem::replace(&mut wal.file, Arc::new(File::open(&path).unwrap()));
        let (se, sa) = batch(2);
        let err = wal.log(&se, &sa).unwrap_err();
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        // Cutting the partial write back failed too (read-only), so the log refuses writes.
        let err = wal.log(&se, &sa).unwrap_err();
        assert!(matches!(err, TsdbError::WalBroken { .. }), "{err}");
        drop(writable);
        drop(wal);
        let (recs, stats, _) = replay(dir.path(), DEFAULT_SEGMENT_SIZE);
        assert!(stats.corruption.is_none());
        assert_eq!(recs.len(), 2, "only the first batch is in the log");
    }

    #[test]
    fn hostile_payloads_are_errors() {
        let cases: [(&str, Vec<u8>); 3] = [
            ("huge count", vec![REC_SAMPLES, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            ("series string past end", vec![REC_SERIES, 1, 1, 1, 200, b'a']),
            ("unknown type", vec![9]),
        ];
        for (name, body) in cases {
            let mut framed = Vec::new();
            framed.extend_from_slice(&(body.len() as u32).to_le_bytes());
            framed.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
            framed.extend_from_slice(&body);
            assert!(read_record(&framed).is_err(), "{name}");
        }
    }
}
