//! Bytes per sample on disk for the simulated fleet's own data: reads `fedwatch-sim dump`
//! (every target's body at each scrape time, hours of fleet time rendered at once) from
//! stdin, parses each body with our exposition parser, adds the target's labels as a scrape
//! would, stores the samples with a scrape-time jitter in a `Db`, writes the head as one
//! block and prints its bytes per sample, in total and by metric name.
//!
//! Usage: `fedwatch-sim dump [fleet flags] --every 5 --duration 7200 | fleet_block_size [--jitter-ms 5] [--dir PATH]`
//! (the block covers the dump's span; without `--dir` a scratch directory is used and removed).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use fedwatch_model::textparse::{Format, parse_samples};
use fedwatch_model::{Sample, TimeSeries};
use fedwatch_tsdb::block::Block;
use fedwatch_tsdb::{Appender, Db, DbOptions, FsyncPolicy};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Fleet time 0, on a 2 h boundary so the dump's first 2 h are one block's range.
const T0: i64 = 1_699_999_200_000;

fn parse_args() -> Result<(i64, Option<PathBuf>), String> {
    let (mut jitter, mut dir) = (5i64, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--jitter-ms" => jitter = value()?.parse().map_err(|e| format!("--jitter-ms: {e}"))?,
            "--dir" => dir = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown flag {other}; accepted: --jitter-ms, --dir")),
        }
    }
    Ok((jitter.max(0), dir))
}

/// A deterministic scrape-time offset in `[-jitter, jitter]` ms for one target's scrape.
fn offset(target: &str, at: i64, jitter: i64) -> i64 {
    if jitter == 0 {
        return 0;
    }
    let h = xxhash_rust::xxh3::xxh3_64(format!("{target}@{at}").as_bytes());
    (h % (2 * jitter as u64 + 1)) as i64 - jitter
}

/// Parses a `#@` line's target labels (`k="v",...`, no escapes: the fleet's values have none).
fn target_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or_else(|| format!("bad target label {kv:?}"))?;
            Ok((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

/// Stores one target's body scraped at `at` (ms since fleet start).
fn store(db: &Db, header: &str, body: &[u8], jitter: i64) -> Result<u64, String> {
    let (at, target) = header.split_once(' ').ok_or_else(|| format!("bad header {header:?}"))?;
    let at: i64 = at.parse().map_err(|e| format!("bad time in {header:?}: {e}"))?;
    let extra = target_labels(target)?;
    let t = T0 + at + offset(target, at, jitter);
    let parsed = parse_samples(body, Format::Text).map_err(|e| format!("parsing the body of {target} at {at}: {}", e.message))?;
    let batch: Vec<TimeSeries> = parsed
        .into_iter()
        .map(|p| {
            let mut b = p.labels.builder();
            for (k, v) in &extra {
                b.set(k.as_str(), v.as_str());
            }
            TimeSeries {
                labels: b.build(),
                samples: vec![Sample { t, v: p.value }],
            }
        })
        .collect();
    let st = db.append(&batch).map_err(|e| format!("append: {e}"))?;
    Ok(st.samples_appended)
}

fn run() -> Result<(), String> {
    let (jitter, dir) = parse_args()?;
    let scratch = dir.is_none();
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("fleet-block-size-{}", std::process::id())));
    let opts = DbOptions {
        block_duration: None,
        fsync: FsyncPolicy::Never,
        ..DbOptions::default()
    };
    let db = Db::open(&dir, opts).map_err(|e| format!("opening {}: {e}", dir.display()))?;
    let stdin = std::io::stdin().lock();
    let (mut header, mut body, mut stored) = (None::<String>, Vec::<u8>::new(), 0u64);
    for line in stdin.split(b'\n') {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        if let Some(next) = line.strip_prefix(b"#@ ") {
            if let Some(h) = header.take() {
                stored += store(&db, &h, &body, jitter)?;
            }
            header = Some(String::from_utf8(next.to_vec()).map_err(|_| "a #@ line is not UTF-8".to_string())?);
            body.clear();
        } else {
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
    }
    if let Some(h) = header.take() {
        stored += store(&db, &h, &body, jitter)?;
    }
    let info = db
        .flush_head()
        .map_err(|e| format!("writing the head as a block: {e}"))?
        .ok_or("the dump held no samples")?;
    db.close().map_err(|e| format!("closing: {e}"))?;
    let block = Block::open(&dir.join(&info.name)).map_err(|e| format!("opening the block: {e}"))?;
    let st = &info.meta.stats;
    println!("samples_stored={stored}");
    println!("series={}", st.series);
    println!("samples={}", st.samples);
    println!("bytes={}", info.bytes);
    println!("bytes_per_sample={:.3}", info.bytes as f64 / st.samples.max(1) as f64);
    println!(
        "chunk_bytes_per_sample={:.3}",
        info.meta.chunks_bytes as f64 / st.samples.max(1) as f64
    );
    println!(
        "index_bytes_per_series={:.1}",
        info.meta.index_bytes as f64 / st.series.max(1) as f64
    );
    // Chunk bytes by metric name: where the bytes go.
    let mut by_name: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for id in 0..block.series_count() as u64 {
        let name = block.labels(id).metric_name().unwrap_or("").to_string();
        let e = by_name.entry(name).or_default();
        e.0 += 1;
        for c in block.chunk_metas(id) {
            e.1 += u64::from(c.len) + 4;
            let samples = block.read_samples(c).map_err(|e| format!("reading the block: {e}"))?;
            e.2 += samples.len() as u64;
        }
    }
    println!("| metric | series | samples | chunk B / sample |");
    println!("| --- | --- | --- | --- |");
    for (name, (series, bytes, samples)) in by_name {
        println!("| {name} | {series} | {samples} | {:.3} |", bytes as f64 / samples.max(1) as f64);
    }
    if scratch {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet_block_size: {e}");
            ExitCode::FAILURE
        }
    }
}
