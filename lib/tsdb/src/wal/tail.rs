//! Reading the log from a position while it is being written: what a forwarder follows.
//!
//! # Positions
//! A [`WalPosition`] is a segment index and a byte offset inside it, always at a record
//! boundary (or the segment header's end). Readers persist it and come back to it; it stays
//! meaningful across restarts because segments are never rewritten, only appended to while
//! live, sealed, and later deleted whole by a checkpoint.
//!
//! # Following the live segment
//! The writer appends each batch with one positioned write, so a reader can see a record
//! whose header is there but whose body is not yet (or only partly) visible. In the newest
//! segment any record that does not read back whole and with a good checksum is therefore
//! taken as "not yet written": the reader stops before it and tries again on the next call.
//! A segment is sealed once a later one exists; the writer creates the next segment only
//! after its last write to the current one, so the reader checks for a later segment
//! *before* reading the current one to its end. In a sealed segment a bad record is damage:
//! it is logged, counted in [`TailStats::damaged_segments`] and the reader moves to the next
//! segment.
//!
//! # Series
//! Samples records name series by ref; series records (always earlier in the log) map refs
//! to labels. Opening at a position reads the series records of the checkpoint and of every
//! segment before the position (samples are skipped), so refs declared before the position
//! resolve. A checkpoint's chunk records are checked but not decoded: a reader never takes
//! samples from a checkpoint, only labels. The samples it still has to send are in segments
//! its hold keeps out of checkpoints (the checkpoint's chunks may hold them too, which only
//! matters to the store's replay). A ref no series record declared (its series was dropped by a checkpoint before
//! the reader saw it) is counted in [`TailStats::unknown_series_samples`] and its samples
//! are skipped.
//!
//! # Falling behind a checkpoint
//! If the segment a reader needs was deleted by a checkpoint (the store's hold on it was
//! released because the backlog grew past its limit), the reader loads the series of the
//! newest checkpoint and continues at the first segment after it. What the deleted segments
//! held is gone for this reader: [`TailStats::skipped_segments`] counts them and it is logged.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use fedwatch_model::{Labels, Sample};

use super::{SEGMENT_HEADER_LEN, WalRecord, checkpoint_path, io_err, list_segments, read_record, replay_series, segment_path};
use crate::TsdbError;
use crate::postings::SeriesRef;

/// Bytes read from a segment in one go (more when one record is larger).
const READ_CHUNK: usize = 4 << 20;

/// A place in the log: segment index and byte offset of the next record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalPosition {
    pub segment: u32,
    pub offset: u64,
}

impl WalPosition {
    /// The start of segment `segment`.
    pub fn segment_start(segment: u32) -> Self {
        WalPosition {
            segment,
            offset: SEGMENT_HEADER_LEN,
        }
    }
}

impl std::fmt::Display for WalPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08}:{}", self.segment, self.offset)
    }
}

/// What a tailer has met so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TailStats {
    pub records: u64,
    pub samples: u64,
    /// Samples whose ref no series record declared; skipped.
    pub unknown_series_samples: u64,
    /// Segments the reader never read because a checkpoint deleted them first.
    pub skipped_segments: u64,
    /// Sealed segments that ended in a damaged record.
    pub damaged_segments: u64,
    /// Bytes read from segments.
    pub bytes: u64,
}

/// Follows a log directory from a position, yielding samples with their series' labels.
#[derive(Debug)]
pub struct WalTailer {
    dir: PathBuf,
    pos: WalPosition,
    series: foldhash::HashMap<SeriesRef, Labels>,
    file: Option<(u32, File)>,
    buf: Vec<u8>,
    stats: TailStats,
}

/// The newest checkpoint's index, without removing anything (the writer owns cleanup).
fn newest_checkpoint(dir: &Path) -> Result<Option<u32>, TsdbError> {
    let mut newest = None;
    for entry in fs::read_dir(dir).map_err(io_err("listing WAL directory", dir))? {
        let entry = entry.map_err(io_err("listing WAL directory", dir))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("checkpoint.")) else {
            continue;
        };
        if let Ok(i) = rest.parse::<u32>() {
            newest = newest.max(Some(i));
        }
    }
    Ok(newest)
}

impl WalTailer {
    /// Opens a reader of the log in `dir` at `from`, learning the series declared before it.
    pub fn open(dir: &Path, from: WalPosition) -> Result<WalTailer, TsdbError> {
        let mut t = WalTailer {
            dir: dir.to_path_buf(),
            pos: from,
            series: Default::default(),
            file: None,
            buf: Vec::new(),
            stats: TailStats::default(),
        };
        let checkpoint = t.load_checkpoint_series()?;
        if let Some(upto) = checkpoint
            && t.pos.segment <= upto
        {
            t.skip_past(upto);
        }
        let segments = list_segments(dir)?;
        let start = t.pos.segment;
        for &i in segments.iter().filter(|&&i| i < start && checkpoint.is_none_or(|c| i > c)) {
            t.learn_series(i, u64::MAX)?;
        }
        if segments.contains(&t.pos.segment) {
            t.learn_series(t.pos.segment, t.pos.offset)?;
        }
        Ok(t)
    }

    /// Where the next read starts.
    pub fn position(&self) -> WalPosition {
        self.pos
    }

    /// What was read so far.
    pub fn stats(&self) -> TailStats {
        self.stats
    }

    /// The labels of a ref read so far.
    pub fn labels(&self, r: SeriesRef) -> Option<&Labels> {
        self.series.get(&r)
    }

    /// Series known to the reader.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Reads the series records of the newest checkpoint; returns its index.
    fn load_checkpoint_series(&mut self) -> Result<Option<u32>, TsdbError> {
        let Some(upto) = newest_checkpoint(&self.dir)? else {
            return Ok(None);
        };
        let path = checkpoint_path(&self.dir, upto);
        let data = match fs::read(&path) {
            Ok(d) => d,
            // Replaced by a newer checkpoint between listing and reading: take that one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.load_checkpoint_series(),
            Err(e) => return Err(io_err("reading WAL checkpoint", &path)(e)),
        };
        // Chunk records are checked but not decoded: a reader needs only the labels.
        let series = &mut self.series;
        replay_series(&data, &mut |s| series.extend(s));
        Ok(Some(upto))
    }

    /// Moves to the first segment after checkpoint `upto`, counting what was skipped.
    fn skip_past(&mut self, upto: u32) {
        let skipped = u64::from(upto - self.pos.segment) + 1;
        tracing::error!(
            dir = %self.dir.display(), from = %self.pos, checkpoint = upto, segments = skipped,
            "WAL reader fell behind a checkpoint: the samples of the deleted segments are not read"
        );
        self.stats.skipped_segments += skipped;
        self.pos = WalPosition::segment_start(upto + 1);
        self.file = None;
    }

    /// Adds the series records of segment `index` before `until` to the map.
    fn learn_series(&mut self, index: u32, until: u64) -> Result<(), TsdbError> {
        let path = segment_path(&self.dir, index);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("reading WAL segment", &path)(e)),
        };
        let end = (until.min(data.len() as u64)) as usize;
        let mut off = SEGMENT_HEADER_LEN as usize;
        while off < end {
            match read_record(&data[off..end]) {
                Ok((WalRecord::Series(s), used)) => {
                    self.series.extend(s);
                    off += used;
                }
                Ok((_, used)) => off += used,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Appends to `out` the samples of whole records from the position on, until at least
    /// `max_samples` were added or the reader reached what the writer has written so far.
    /// Returns true when it stopped because it caught up with the writer.
    pub fn read(&mut self, max_samples: usize, out: &mut Vec<(SeriesRef, Labels, Sample)>) -> Result<bool, TsdbError> {
        let mut added = 0usize;
        loop {
            if added >= max_samples {
                return Ok(false);
            }
            // Checked before reading: a later segment means this one gets no more writes.
            let segments = list_segments(&self.dir)?;
            let later = segments.iter().copied().find(|&i| i > self.pos.segment);
            if !segments.contains(&self.pos.segment) {
                match later {
                    Some(next) => {
                        match newest_checkpoint(&self.dir)? {
                            Some(upto) if upto >= self.pos.segment => {
                                self.load_checkpoint_series()?;
                                self.skip_past(upto);
                            }
                            _ => {
                                tracing::warn!(dir = %self.dir.display(), missing = self.pos.segment, next, "WAL segment missing; continuing with the next");
                                self.stats.skipped_segments += u64::from(next - self.pos.segment);
                                self.pos = WalPosition::segment_start(next);
                                self.file = None;
                            }
                        }
                        continue;
                    }
                    // Not created yet: the writer has not reached it.
                    None => return Ok(true),
                }
            }
            let sealed = later.is_some();
            let (done, clean) = self.read_segment(max_samples - added, out, &mut added)?;
            if !done {
                continue;
            }
            match (sealed, clean) {
                (false, _) => return Ok(true),
                (true, ok) => {
                    if !ok {
                        self.stats.damaged_segments += 1;
                        tracing::error!(dir = %self.dir.display(), at = %self.pos, "sealed WAL segment ends in a damaged record; continuing with the next");
                    }
                    self.pos = WalPosition::segment_start(later.unwrap_or(self.pos.segment + 1));
                    self.file = None;
                }
            }
        }
    }

    /// Reads records of the current segment; returns (reached its end, the end was clean).
    fn read_segment(
        &mut self,
        want: usize,
        out: &mut Vec<(SeriesRef, Labels, Sample)>,
        added: &mut usize,
    ) -> Result<(bool, bool), TsdbError> {
        let path = segment_path(&self.dir, self.pos.segment);
        if self.file.as_ref().is_none_or(|(i, _)| *i != self.pos.segment) {
            match File::open(&path) {
                Ok(f) => self.file = Some((self.pos.segment, f)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((true, true)),
                Err(e) => return Err(io_err("opening WAL segment", &path)(e)),
            }
        }
        let before = *added;
        let result = self.read_open_segment(&path, before + want, out, added);
        self.stats.samples += (*added - before) as u64;
        result
    }

    fn read_open_segment(
        &mut self,
        path: &Path,
        want: usize,
        out: &mut Vec<(SeriesRef, Labels, Sample)>,
        got: &mut usize,
    ) -> Result<(bool, bool), TsdbError> {
        let Some((_, file)) = &self.file else { return Ok((true, true)) };
        let len = file.metadata().map_err(io_err("reading WAL segment size", path))?.len();
        while *got < want {
            if self.pos.offset >= len {
                return Ok((true, self.pos.offset == len));
            }
            let avail = (len - self.pos.offset) as usize;
            let mut n = avail.min(READ_CHUNK);
            // The record header says how much one record needs; read at least that.
            let mut head = [0u8; 4];
            if avail >= 4 && file.read_exact_at(&mut head, self.pos.offset).is_ok() {
                n = n.max((u32::from_le_bytes(head) as usize).saturating_add(8).min(avail));
            }
            self.buf.resize(n, 0);
            file.read_exact_at(&mut self.buf, self.pos.offset)
                .map_err(io_err("reading WAL segment", path))?;
            self.stats.bytes += n as u64;
            let mut off = 0usize;
            let mut progressed = false;
            while off < n && *got < want {
                match read_record(&self.buf[off..n]) {
                    Ok((rec, used)) => {
                        self.stats.records += 1;
                        match rec {
                            WalRecord::Series(s) => self.series.extend(s),
                            WalRecord::Samples(samples) => {
                                for (r, s) in samples {
                                    match self.series.get(&r) {
                                        Some(l) => {
                                            out.push((r, l.clone(), s));
                                            *got += 1;
                                        }
                                        None => self.stats.unknown_series_samples += 1,
                                    }
                                }
                            }
                            WalRecord::RefFloor(_) | WalRecord::Chunks(_) => {}
                        }
                        off += used;
                        self.pos.offset += used as u64;
                        progressed = true;
                    }
                    // A record cut by the chunk boundary is read again from its start.
                    Err(_) if off > 0 => break,
                    Err(_) => return Ok((true, false)),
                }
            }
            if !progressed {
                return Ok((true, false));
            }
        }
        Ok((false, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use crate::wal::{FsyncPolicy, Wal, checkpoint};

    fn labels(i: u64) -> Labels {
        Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())])
    }

    /// Logs series `i` (when `new`) and one sample of it at `t`.
    fn log(wal: &mut Wal, i: u64, t: i64, new: bool) {
        let series = if new { vec![(i, labels(i))] } else { vec![] };
        wal.log(&series, &[(i, Sample { t, v: t as f64 })]).unwrap();
    }

    fn read_all(t: &mut WalTailer) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        while !t.read(3, &mut out).unwrap() {}
        out.into_iter()
            .map(|(_, l, s)| (l.get("i").unwrap_or("").to_string(), s.t))
            .collect()
    }

    #[test]
    fn follows_appends_across_segments_from_any_position() {
        let dir = TestDir::new("tail-follow");
        let (mut wal, _) = Wal::open(dir.path(), 60, FsyncPolicy::Never, |_| {}).unwrap();
        let start = wal.end();
        let mut t = WalTailer::open(dir.path(), start).unwrap();
        assert_eq!(read_all(&mut t), vec![]);
        for i in 0..4 {
            log(&mut wal, i, 10, true);
        }
        let middle = wal.end();
        for i in 0..4 {
            log(&mut wal, i, 20, false);
        }
        assert!(wal.segment_index() >= start.segment + 2, "small segments rotate");
        let got = read_all(&mut t);
        let want: Vec<(String, i64)> = [10, 20].iter().flat_map(|&ts| (0..4).map(move |i| (i.to_string(), ts))).collect();
        assert_eq!(got, want);
        assert_eq!(t.position(), wal.end());
        // A reader opened later at a position learns the series declared before it.
        let mut late = WalTailer::open(dir.path(), middle).unwrap();
        assert_eq!(read_all(&mut late), want[4..].to_vec());
        assert_eq!(late.stats().unknown_series_samples, 0);
        log(&mut wal, 9, 30, true);
        assert_eq!(read_all(&mut late), vec![("9".to_string(), 30)]);
        assert_eq!(read_all(&mut t), vec![("9".to_string(), 30)]);
    }

    #[test]
    fn torn_tail_of_the_live_segment_is_not_yet_written() {
        let dir = TestDir::new("tail-torn");
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, FsyncPolicy::Never, |_| {}).unwrap();
        let mut t = WalTailer::open(dir.path(), wal.end()).unwrap();
        log(&mut wal, 1, 10, true);
        let end = wal.end();
        // The next batch's bytes, half of them visible: what a reader can see mid-write.
        let path = segment_path(dir.path(), end.segment);
        let whole = {
            log(&mut wal, 1, 20, false);
            let data = fs::read(&path).unwrap();
            data[end.offset as usize..].to_vec()
        };
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(end.offset + whole.len() as u64 / 2).unwrap();
        assert_eq!(read_all(&mut t), vec![("1".to_string(), 10)]);
        assert_eq!(t.position(), end, "stops before the torn record");
        f.write_all_at(&whole, end.offset).unwrap();
        assert_eq!(read_all(&mut t), vec![("1".to_string(), 20)]);
        assert_eq!(t.stats().damaged_segments, 0);
    }

    #[test]
    fn a_reader_behind_a_checkpoint_skips_to_after_it_with_its_series() {
        let dir = TestDir::new("tail-behind");
        let (mut wal, _) = Wal::open(dir.path(), 150, FsyncPolicy::Never, |_| {}).unwrap();
        let start = wal.end();
        for i in 0..6 {
            log(&mut wal, i, 10, true);
        }
        let sealed = wal.seal().unwrap();
        let live: Vec<(SeriesRef, Labels)> = (0..6).map(|i| (i, labels(i))).collect();
        checkpoint(dir.path(), sealed, 6, &live, |_, _| 0).unwrap();
        for i in 0..6 {
            log(&mut wal, i, 20, false);
        }
        let mut t = WalTailer::open(dir.path(), start).unwrap();
        let got = read_all(&mut t);
        assert_eq!(got, (0..6).map(|i| (i.to_string(), 20)).collect::<Vec<_>>());
        assert_eq!(t.stats().skipped_segments, u64::from(sealed - start.segment + 1));
        assert_eq!(t.stats().unknown_series_samples, 0, "series come from the checkpoint");
    }
}
