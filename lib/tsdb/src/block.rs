//! Immutable on-disk blocks: the samples of one time range `[mint, maxt)`, cut from the head
//! or merged from older blocks.
//!
//! # Format
//! Described byte by byte in `lib/tsdb/FORMAT.md`. A block is a directory named
//! `blk-<mint>-<maxt>` (both as 16 hex digits of the time with its sign bit flipped, so names
//! sort by time) holding `meta.json` (version, range, stats, parents), `chunks` (chunks back
//! to back, each an encoding byte, the encoded samples and a CRC32C; encodings are Gorilla
//! XOR or, when it is smaller and exact, [`crate::packed`]) and `index` (symbols, series with their
//! label symbol refs and chunk metas, postings; each section framed with a length and a
//! CRC32C).
//!
//! # Invariants
//! - A block is written under `<name>.tmp`, every file and the directory fsynced, then renamed
//!   into place and the parent directory fsynced: a crash leaves either no block or a whole one.
//! - Series are sorted by labels; a series' chunks are sorted by time, do not overlap and hold
//!   only samples inside the block's range; a series' chunks are contiguous in `chunks`.
//! - The index is read and checked in full when a block is opened and kept in memory; chunk
//!   bytes are read on demand with positioned reads and checked against their CRC each time.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use fedwatch_model::{Labels, Matcher, Sample};
use serde::{Deserialize, Serialize};

use crate::TsdbError;
use crate::packed;
use crate::postings::{MemPostings, SeriesRef};
use crate::wal::{Reader, io_err, put_str, put_uvarint, put_varint, sync_dir};

/// Block format version written by this code.
pub const BLOCK_VERSION: u32 = 1;
const CHUNKS_MAGIC: &[u8; 4] = b"FWCK";
const INDEX_MAGIC: &[u8; 4] = b"FWIX";
const FILE_HEADER_LEN: u64 = 8;
/// Samples per chunk written to a block (a whole 2 h range at a 15 s interval).
pub const BLOCK_CHUNK_SAMPLES: usize = 1024;
/// Chunk encoding byte: Gorilla XOR chunk as the head writes it.
pub const ENCODING_XOR: u8 = 1;
/// Chunk encoding byte: [`crate::packed`].
pub const ENCODING_PACKED: u8 = 2;
/// Sections above this length are taken as corruption rather than allocated.
const MAX_SECTION_LEN: u32 = 1 << 31;

/// `meta.json`: what a block holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub version: u32,
    /// Inclusive start of the range, milliseconds.
    pub mint: i64,
    /// Exclusive end of the range, milliseconds.
    pub maxt: i64,
    pub stats: BlockStats,
    /// 1 for a block cut from the head, one more than the highest source for a merged one.
    pub level: u32,
    /// Names of the blocks this one replaces (compaction sources); they are deleted on open if still there.
    pub parents: Vec<String>,
    /// Sizes of `index` and `chunks`, so truncation is seen without reading them.
    pub index_bytes: u64,
    pub chunks_bytes: u64,
    /// Bucket width of a downsampled block (its chunks hold aggregates, see
    /// [`crate::downsample`]); 0 (and absent from `meta.json`) for raw samples.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resolution: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Counts in `meta.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    pub series: u64,
    pub chunks: u64,
    pub samples: u64,
}

/// One chunk of a series, as the index describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    pub mint: i64,
    pub maxt: i64,
    /// Offset of the chunk bytes in `chunks`.
    pub offset: u64,
    /// Length of the encoding byte and encoded samples (the 4-byte CRC follows them).
    pub len: u32,
}

/// A head chunk to write: its time span and Gorilla bytes.
#[derive(Clone, Debug)]
pub struct ChunkData {
    pub mint: i64,
    pub maxt: i64,
    pub bytes: Vec<u8>,
}

/// Encodes samples as one block chunk record body: the encoding byte, then the samples in the
/// smaller of the two encodings.
pub fn encode_chunk(samples: &[Sample]) -> Vec<u8> {
    let xor = crate::chunk::encode(samples);
    match packed::encode(samples) {
        Some(p) if p.len() < xor.len() => [&[ENCODING_PACKED][..], &p].concat(),
        _ => [&[ENCODING_XOR][..], &xor].concat(),
    }
}

/// Decodes a block chunk record body written by [`encode_chunk`].
pub fn decode_chunk(body: &[u8]) -> Result<Vec<Sample>, String> {
    match body.split_first() {
        Some((&ENCODING_XOR, rest)) => crate::chunk::decode(rest).map_err(|e| e.to_string()),
        Some((&ENCODING_PACKED, rest)) => packed::decode(rest),
        Some((e, _)) => Err(format!("unknown chunk encoding {e}")),
        None => Err("empty chunk".into()),
    }
}

/// The directory name of the block for `[mint, maxt)`.
pub fn block_name(mint: i64, maxt: i64) -> String {
    let key = |t: i64| (t as u64) ^ (1 << 63);
    format!("blk-{:016x}-{:016x}", key(mint), key(maxt))
}

/// True for names [`block_name`] makes.
pub fn is_block_name(name: &str) -> bool {
    name.len() == 37 && name.starts_with("blk-") && name.as_bytes()[20] == b'-'
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> TsdbError {
    TsdbError::Io {
        op: "reading block",
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string()),
    }
}

/// Writes one block, series by series in label order, chunks streamed to disk.
pub struct BlockWriter {
    parent: PathBuf,
    tmp: PathBuf,
    name: String,
    mint: i64,
    maxt: i64,
    chunks: BufWriter<File>,
    chunks_len: u64,
    series: Vec<(Labels, Vec<ChunkMeta>)>,
    stats: BlockStats,
    resolution: i64,
}

/// A chunk record body encoded by the caller (e.g. downsampled aggregates), with the time
/// span of what it holds and how many items it counts as in the block's stats.
#[derive(Clone, Debug)]
pub struct EncodedChunk {
    pub mint: i64,
    pub maxt: i64,
    /// Encoding byte and payload.
    pub body: Vec<u8>,
    pub items: u64,
}

impl BlockWriter {
    /// Starts `<parent>/<name>.tmp` for the range `[mint, maxt)`, replacing a leftover one.
    pub fn new(parent: &Path, mint: i64, maxt: i64) -> Result<Self, TsdbError> {
        let name = block_name(mint, maxt);
        let tmp = parent.join(format!("{name}.tmp"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err("removing unfinished block", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io_err("creating block directory", &tmp))?;
        let path = tmp.join("chunks");
        let file = File::create(&path).map_err(io_err("creating block chunks file", &path))?;
        let mut chunks = BufWriter::with_capacity(1 << 20, file);
        chunks
            .write_all(&file_header(CHUNKS_MAGIC))
            .map_err(io_err("writing block chunks file", &path))?;
        Ok(BlockWriter {
            parent: parent.to_path_buf(),
            tmp,
            name,
            mint,
            maxt,
            chunks,
            chunks_len: FILE_HEADER_LEN,
            series: Vec::new(),
            stats: BlockStats::default(),
            resolution: 0,
        })
    }

    /// Starts a downsampled block of bucket width `resolution` (written with [`Self::add_encoded`]).
    pub fn new_downsampled(parent: &Path, mint: i64, maxt: i64, resolution: i64) -> Result<Self, TsdbError> {
        let mut w = Self::new(parent, mint, maxt)?;
        w.resolution = resolution;
        Ok(w)
    }

    /// Adds a series whose chunk bodies the caller encoded; same ordering rules as [`Self::add_series`].
    pub fn add_encoded(&mut self, labels: Labels, chunks: Vec<EncodedChunk>) -> Result<(), TsdbError> {
        let mut metas = Vec::with_capacity(chunks.len());
        for c in chunks {
            metas.push(self.write_chunk(&c.body, c.mint, c.maxt)?);
            self.stats.samples += c.items;
        }
        self.push_series(labels, metas);
        Ok(())
    }

    fn write_chunk(&mut self, body: &[u8], mint: i64, maxt: i64) -> Result<ChunkMeta, TsdbError> {
        let path = self.tmp.join("chunks");
        self.chunks.write_all(body).map_err(io_err("writing block chunks file", &path))?;
        self.chunks
            .write_all(&crc32c::crc32c(body).to_le_bytes())
            .map_err(io_err("writing block chunks file", &path))?;
        let meta = ChunkMeta {
            mint,
            maxt,
            offset: self.chunks_len,
            len: body.len() as u32,
        };
        self.chunks_len += body.len() as u64 + 4;
        Ok(meta)
    }

    fn push_series(&mut self, labels: Labels, metas: Vec<ChunkMeta>) {
        if !metas.is_empty() {
            debug_assert!(self.series.last().is_none_or(|(l, _)| *l < labels));
            self.stats.chunks += metas.len() as u64;
            self.series.push((labels, metas));
        }
    }

    /// Adds a series; calls must come in increasing label order, samples in time order.
    pub fn add_series(&mut self, labels: Labels, samples: &[Sample]) -> Result<(), TsdbError> {
        let mut metas = Vec::new();
        for part in samples.chunks(BLOCK_CHUNK_SAMPLES) {
            let body = encode_chunk(part);
            metas.push(self.write_chunk(&body, part[0].t, part[part.len() - 1].t)?);
            self.stats.samples += part.len() as u64;
        }
        self.push_series(labels, metas);
        Ok(())
    }

    /// Series added so far.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Writes index and meta, syncs and renames the block into place; returns its directory.
    pub fn finish(self, level: u32, parents: Vec<String>) -> Result<PathBuf, TsdbError> {
        let BlockWriter {
            parent,
            tmp,
            name,
            mint,
            maxt,
            chunks,
            chunks_len,
            series,
            mut stats,
            resolution,
        } = self;
        let chunks_path = tmp.join("chunks");
        let file = chunks.into_inner().map_err(|e| TsdbError::Io {
            op: "writing block chunks file",
            path: chunks_path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err("syncing block chunks file", &chunks_path))?;
        stats.series = series.len() as u64;
        let index = encode_index(&series);
        let index_path = tmp.join("index");
        write_synced(&index_path, &index)?;
        let meta = BlockMeta {
            version: BLOCK_VERSION,
            mint,
            maxt,
            stats,
            level,
            parents,
            index_bytes: index.len() as u64,
            chunks_bytes: chunks_len,
            resolution,
        };
        let meta_path = tmp.join("meta.json");
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| TsdbError::Io {
            op: "encoding block meta",
            path: meta_path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_synced(&meta_path, &json)?;
        sync_dir(&tmp)?;
        let done = parent.join(&name);
        fs::rename(&tmp, &done).map_err(io_err("renaming block into place", &done))?;
        sync_dir(&parent)?;
        Ok(done)
    }
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), TsdbError> {
    let f = File::create(path).map_err(io_err("creating block file", path))?;
    f.write_all_at(data, 0).map_err(io_err("writing block file", path))?;
    f.sync_all().map_err(io_err("syncing block file", path))
}

fn file_header(magic: &[u8; 4]) -> [u8; FILE_HEADER_LEN as usize] {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    h[..4].copy_from_slice(magic);
    h[4] = BLOCK_VERSION as u8;
    h
}

/// Appends a section: `len u32 | crc32c u32 | payload`.
fn section(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

fn encode_index(series: &[(Labels, Vec<ChunkMeta>)]) -> Vec<u8> {
    let mut symbols: Vec<&str> = series
        .iter()
        .flat_map(|(l, _)| l.iter().flat_map(|l| [l.name.as_str(), l.value.as_str()]))
        .collect();
    symbols.sort_unstable();
    symbols.dedup();
    let sym = |s: &str| symbols.binary_search(&s).unwrap_or(0) as u64;
    let mut out = file_header(INDEX_MAGIC).to_vec();

    let mut p = Vec::new();
    put_uvarint(&mut p, symbols.len() as u64);
    for s in &symbols {
        put_str(&mut p, s);
    }
    section(&mut out, &p);

    p.clear();
    put_uvarint(&mut p, series.len() as u64);
    let mut postings: BTreeMap<(u64, u64), Vec<SeriesRef>> = BTreeMap::new();
    for (id, (labels, chunks)) in series.iter().enumerate() {
        put_uvarint(&mut p, labels.len() as u64);
        for l in labels.iter() {
            let (n, v) = (sym(&l.name), sym(&l.value));
            put_uvarint(&mut p, n);
            put_uvarint(&mut p, v);
            postings.entry((n, v)).or_default().push(id as SeriesRef);
        }
        put_uvarint(&mut p, chunks.len() as u64);
        // Chunks of a series are contiguous: only the first offset is written.
        put_uvarint(&mut p, chunks.first().map_or(0, |c| c.offset));
        let mut prev_maxt = 0i64;
        for (i, c) in chunks.iter().enumerate() {
            if i == 0 {
                put_varint(&mut p, c.mint);
            } else {
                put_varint(&mut p, c.mint.wrapping_sub(prev_maxt));
            }
            put_uvarint(&mut p, c.maxt.wrapping_sub(c.mint) as u64);
            put_uvarint(&mut p, u64::from(c.len));
            prev_maxt = c.maxt;
        }
    }
    section(&mut out, &p);

    p.clear();
    put_uvarint(&mut p, postings.len() as u64);
    for ((n, v), refs) in &postings {
        put_uvarint(&mut p, *n);
        put_uvarint(&mut p, *v);
        put_uvarint(&mut p, refs.len() as u64);
        let mut prev = 0;
        for &r in refs {
            put_uvarint(&mut p, r - prev);
            prev = r;
        }
    }
    section(&mut out, &p);
    out
}

/// One series in a block.
#[derive(Debug)]
struct BlockSeries {
    labels: Labels,
    chunks: Vec<ChunkMeta>,
}

/// An open block: index in memory, chunks read on demand.
#[derive(Debug)]
pub struct Block {
    dir: PathBuf,
    name: String,
    meta: BlockMeta,
    series: Vec<BlockSeries>,
    postings: MemPostings,
    chunks: File,
    size_bytes: u64,
}

impl Block {
    /// Opens and checks a block directory: meta, file sizes and headers, every index section's CRC.
    pub fn open(dir: &Path) -> Result<Block, TsdbError> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| corrupt(dir, "block directory name is not UTF-8"))?
            .to_string();
        let meta_path = dir.join("meta.json");
        let raw = fs::read(&meta_path).map_err(io_err("reading block meta", &meta_path))?;
        let meta: BlockMeta = serde_json::from_slice(&raw).map_err(|e| corrupt(&meta_path, format!("meta.json does not parse: {e}")))?;
        if meta.version != BLOCK_VERSION {
            return Err(corrupt(
                &meta_path,
                format!("block version {} is not supported (only {BLOCK_VERSION})", meta.version),
            ));
        }
        if meta.mint >= meta.maxt {
            return Err(corrupt(&meta_path, format!("empty range [{}, {})", meta.mint, meta.maxt)));
        }
        let index_path = dir.join("index");
        let index = fs::read(&index_path).map_err(io_err("reading block index", &index_path))?;
        if index.len() as u64 != meta.index_bytes {
            return Err(corrupt(
                &index_path,
                format!("index is {} bytes, meta.json says {}", index.len(), meta.index_bytes),
            ));
        }
        let (series, postings) = decode_index(&index).map_err(|e| corrupt(&index_path, e))?;
        if series.len() as u64 != meta.stats.series {
            return Err(corrupt(
                &index_path,
                format!("{} series, meta.json says {}", series.len(), meta.stats.series),
            ));
        }
        let chunks_path = dir.join("chunks");
        let chunks = File::open(&chunks_path).map_err(io_err("opening block chunks file", &chunks_path))?;
        let chunks_len = chunks
            .metadata()
            .map_err(io_err("reading block chunks file size", &chunks_path))?
            .len();
        if chunks_len != meta.chunks_bytes {
            return Err(corrupt(
                &chunks_path,
                format!("chunks file is {chunks_len} bytes, meta.json says {}", meta.chunks_bytes),
            ));
        }
        let mut header = [0u8; FILE_HEADER_LEN as usize];
        chunks
            .read_exact_at(&mut header, 0)
            .map_err(io_err("reading block chunks header", &chunks_path))?;
        if header != file_header(CHUNKS_MAGIC) {
            return Err(corrupt(&chunks_path, "bad chunks file header (magic FWCK, version 1 expected)"));
        }
        for s in &series {
            for c in &s.chunks {
                if c.offset < FILE_HEADER_LEN || c.offset + u64::from(c.len) + 4 > chunks_len || c.mint < meta.mint || c.maxt >= meta.maxt {
                    return Err(corrupt(
                        &index_path,
                        format!("chunk of {} lies outside the block's files or range", s.labels),
                    ));
                }
            }
        }
        let size_bytes = raw.len() as u64 + index.len() as u64 + chunks_len;
        Ok(Block {
            dir: dir.to_path_buf(),
            name,
            meta,
            series,
            postings,
            chunks,
            size_bytes,
        })
    }

    /// The directory name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What `meta.json` says.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// Bytes on disk (meta, index and chunks).
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Series ids matching every matcher, ascending (ids are label order).
    pub fn postings_for(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        self.postings.select(matchers)
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Labels of series `id`.
    pub fn labels(&self, id: SeriesRef) -> &Labels {
        &self.series[id as usize].labels
    }

    /// Chunk metas of series `id`.
    pub fn chunk_metas(&self, id: SeriesRef) -> &[ChunkMeta] {
        &self.series[id as usize].chunks
    }

    /// Reads one chunk record body (encoding byte and samples) and checks its CRC.
    pub fn read_chunk(&self, c: &ChunkMeta) -> Result<Vec<u8>, TsdbError> {
        let path = || self.dir.join("chunks");
        let mut buf = vec![0u8; c.len as usize + 4];
        self.chunks
            .read_exact_at(&mut buf, c.offset)
            .map_err(|e| io_err("reading block chunk", &path())(e))?;
        let body_len = c.len as usize;
        let want = u32::from_le_bytes([buf[body_len], buf[body_len + 1], buf[body_len + 2], buf[body_len + 3]]);
        buf.truncate(body_len);
        if crc32c::crc32c(&buf) != want {
            return Err(corrupt(&path(), format!("chunk at offset {} fails its CRC32C", c.offset)));
        }
        Ok(buf)
    }

    /// Reads and decodes one chunk.
    pub fn read_samples(&self, c: &ChunkMeta) -> Result<Vec<Sample>, TsdbError> {
        let body = self.read_chunk(c)?;
        decode_chunk(&body).map_err(|e| corrupt(&self.dir.join("chunks"), format!("chunk at {}: {e}", c.offset)))
    }

    /// Matching series with their samples in `[mint, maxt]`, in label order.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<(Labels, Vec<Sample>)>, TsdbError> {
        let mut out = Vec::new();
        if maxt < self.meta.mint || mint >= self.meta.maxt {
            return Ok(out);
        }
        for id in self.postings_for(matchers) {
            let s = &self.series[id as usize];
            let mut samples = Vec::new();
            for c in s.chunks.iter().filter(|c| c.maxt >= mint && c.mint <= maxt) {
                samples.extend(self.read_samples(c)?.into_iter().filter(|x| x.t >= mint && x.t <= maxt));
            }
            if !samples.is_empty() {
                out.push((s.labels.clone(), samples));
            }
        }
        Ok(out)
    }

    /// Label sets of matching series, in order.
    pub fn series_labels(&self, matchers: &[Matcher]) -> Vec<Labels> {
        self.postings_for(matchers)
            .into_iter()
            .map(|id| self.series[id as usize].labels.clone())
            .collect()
    }

    /// Sorted label names of matching series.
    pub fn label_names(&self, matchers: &[Matcher]) -> Vec<String> {
        if matchers.is_empty() {
            return self.postings.names().map(str::to_string).collect();
        }
        let mut names: Vec<String> = self
            .postings_for(matchers)
            .into_iter()
            .flat_map(|id| self.series[id as usize].labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
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

fn read_section<'a>(data: &'a [u8], pos: &mut usize, what: &str) -> Result<&'a [u8], String> {
    let head = data
        .get(*pos..*pos + 8)
        .ok_or_else(|| format!("index ends before the {what} section header at {pos}"))?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_SECTION_LEN {
        return Err(format!("{what} section length {len} is impossible"));
    }
    let start = *pos + 8;
    let body = data
        .get(start..start + len as usize)
        .ok_or_else(|| format!("index ends inside the {what} section ({len} bytes at {start})"))?;
    if crc32c::crc32c(body) != crc {
        return Err(format!("{what} section at {pos} fails its CRC32C"));
    }
    *pos = start + len as usize;
    Ok(body)
}

type Decoded = (Vec<BlockSeries>, MemPostings);

fn decode_index(data: &[u8]) -> Result<Decoded, String> {
    if data.len() < FILE_HEADER_LEN as usize || data[..FILE_HEADER_LEN as usize] != file_header(INDEX_MAGIC) {
        return Err("bad index header (magic FWIX, version 1 expected)".into());
    }
    let mut pos = FILE_HEADER_LEN as usize;
    let sym_body = read_section(data, &mut pos, "symbols")?;
    let series_body = read_section(data, &mut pos, "series")?;
    let postings_body = read_section(data, &mut pos, "postings")?;
    if pos != data.len() {
        return Err(format!("{} trailing bytes after the postings section", data.len() - pos));
    }

    let mut r = Reader { data: sym_body, pos: 0 };
    let n = r.count(1)?;
    let mut symbols = Vec::with_capacity(n);
    for _ in 0..n {
        symbols.push(r.string()?);
    }
    r.done()?;
    let sym = |i: u64| {
        symbols
            .get(i as usize)
            .ok_or_else(|| format!("symbol ref {i} out of range ({})", symbols.len()))
    };

    let mut r = Reader { data: series_body, pos: 0 };
    let n = r.count(2)?;
    let mut series = Vec::with_capacity(n);
    for _ in 0..n {
        let nl = r.count(2)?;
        let mut pairs = Vec::with_capacity(nl);
        for _ in 0..nl {
            pairs.push((sym(r.uvarint()?)?.clone(), sym(r.uvarint()?)?.clone()));
        }
        let nc = r.count(3)?;
        let mut offset = r.uvarint()?;
        let mut chunks = Vec::with_capacity(nc);
        let mut prev_maxt = 0i64;
        for i in 0..nc {
            let d = r.varint()?;
            let mint = if i == 0 { d } else { prev_maxt.wrapping_add(d) };
            let maxt = mint.wrapping_add(r.uvarint()? as i64);
            let len = u32::try_from(r.uvarint()?).map_err(|_| "chunk length above 4 GiB".to_string())?;
            chunks.push(ChunkMeta { mint, maxt, offset, len });
            offset += u64::from(len) + 4;
            prev_maxt = maxt;
        }
        series.push(BlockSeries {
            labels: Labels::from_pairs(pairs),
            chunks,
        });
    }
    r.done()?;

    let mut r = Reader {
        data: postings_body,
        pos: 0,
    };
    let n = r.count(3)?;
    let mut index: BTreeMap<String, BTreeMap<String, Vec<SeriesRef>>> = BTreeMap::new();
    for _ in 0..n {
        let name = sym(r.uvarint()?)?.clone();
        let value = sym(r.uvarint()?)?.clone();
        let len = r.count(1)?;
        let mut list = Vec::with_capacity(len);
        let mut prev = 0u64;
        for i in 0..len {
            let d = r.uvarint()?;
            if i > 0 && d == 0 {
                return Err(format!("postings list for {name}={value:?} is not strictly increasing"));
            }
            prev = prev
                .checked_add(d)
                .filter(|&x| (x as usize) < series.len())
                .ok_or_else(|| format!("postings list for {name}={value:?} names a series beyond the {}", series.len()))?;
            list.push(prev);
        }
        index.entry(name).or_default().insert(value, list);
    }
    r.done()?;
    let all = (0..series.len() as SeriesRef).collect();
    Ok((series, MemPostings::from_lists(all, index)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use fedwatch_model::MatchOp;

    fn samples(pairs: &[(i64, f64)]) -> Vec<Sample> {
        pairs.iter().map(|&(t, v)| Sample { t, v }).collect()
    }

    fn write_sample_block(parent: &Path) -> PathBuf {
        let mut w = BlockWriter::new(parent, 0, 1000).unwrap();
        w.add_series(
            Labels::from_pairs([("__name__", "up"), ("job", "a")]),
            &samples(&[(0, 1.0), (10, 2.0), (20, 3.0), (999, f64::NAN)]),
        )
        .unwrap();
        w.add_series(Labels::from_pairs([("__name__", "up"), ("job", "b")]), &samples(&[(5, 7.0)]))
            .unwrap();
        w.finish(1, vec![]).unwrap()
    }

    #[test]
    fn names_sort_by_time() {
        let names: Vec<String> = [(-5, 0), (-1, 3), (0, 1), (7, 9), (i64::MAX - 1, i64::MAX)]
            .iter()
            .map(|&(a, b)| block_name(a, b))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(names.iter().all(|n| is_block_name(n)), "{names:?}");
    }

    #[test]
    fn block_round_trips_and_answers_matchers() {
        let dir = TestDir::new("block-rt");
        let path = write_sample_block(dir.path());
        let b = Block::open(&path).unwrap();
        assert_eq!(
            b.meta().stats,
            BlockStats {
                series: 2,
                chunks: 2,
                samples: 5
            }
        );
        let got = b.select(&[Matcher::equal("job", "a")], 10, 999).unwrap();
        assert_eq!(got.len(), 1);
        let times: Vec<i64> = got[0].1.iter().map(|s| s.t).collect();
        assert_eq!(times, vec![10, 20, 999]);
        assert!(got[0].1[2].v.is_nan());
        let not_a = Matcher::new(MatchOp::NotEqual, "job", "a").unwrap();
        assert_eq!(b.label_values("job", std::slice::from_ref(&not_a)), vec!["b"]);
        assert_eq!(b.label_names(&[]), vec!["__name__", "job"]);
        assert_eq!(b.series_labels(&[]).len(), 2);
        assert!(!dir.path().join(format!("{}.tmp", block_name(0, 1000))).exists());
    }

    #[test]
    fn damage_to_any_file_is_detected() {
        // (file, byte offset from the end to flip, or None to truncate by one byte; where the error shows)
        let cases: [(&str, Option<usize>, &str); 5] = [
            ("index", Some(3), "open"),
            ("index", Some(60), "open"),
            ("index", None, "open"),
            ("meta.json", Some(2), "open"),
            ("chunks", Some(6), "select"),
        ];
        for (file, flip, when) in cases {
            let dir = TestDir::new("block-damage");
            let path = write_sample_block(dir.path());
            let f = path.join(file);
            let mut data = fs::read(&f).unwrap();
            match flip {
                Some(back) => {
                    let at = data.len() - back;
                    data[at] ^= 0x21;
                }
                None => {
                    data.pop();
                }
            }
            fs::write(&f, data).unwrap();
            match Block::open(&path) {
                Err(e) => assert_eq!(when, "open", "{file}: {e}"),
                Ok(b) => {
                    assert_eq!(when, "select", "{file} {flip:?}: open should have failed");
                    let err = b.select(&[], i64::MIN, i64::MAX).unwrap_err();
                    assert!(err.to_string().contains("CRC32C"), "{err}");
                }
            }
        }
    }
}
