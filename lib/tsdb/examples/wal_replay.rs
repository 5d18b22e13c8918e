//! Writes `--series` series for `--hours` at `--interval` through a [`Db`] (WAL on, fsync
//! every second), closes it, reopens it and times the replay: the issue's "1 M series × 2 h
//! replayed in ≤ 10 s" measurement, scaled by the flags.
//!
//! Usage: `wal_replay [--series N] [--hours H] [--interval-s S] [--batch N] [--checkpoint-ratio R|inf] [--dir PATH]
//! [--keep] [--write-only | --replay-only]`. Without `--dir` a scratch directory under the
//! system temp dir is used and removed. `--write-only --keep` then `--replay-only` on the same
//! `--dir` measures replay in a fresh process, so its peak RSS (VmHWM) is replay's own.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use fedwatch_model::{Labels, Sample, TimeSeries};
use fedwatch_tsdb::{Appender, Db, DbOptions};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    series: usize,
    hours: f64,
    interval_s: u64,
    batch: usize,
    checkpoint_ratio: f64,
    dir: Option<PathBuf>,
    keep: bool,
    write: bool,
    replay: bool,
    worst_case: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        series: 1_000_000,
        hours: 2.0,
        interval_s: 15,
        batch: 1000,
        checkpoint_ratio: DbOptions::default().wal_checkpoint_ratio,
        dir: None,
        keep: false,
        write: true,
        replay: true,
        worst_case: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--series" => a.series = value()?.parse().map_err(|e| format!("--series: {e}"))?,
            "--hours" => a.hours = value()?.parse().map_err(|e| format!("--hours: {e}"))?,
            "--interval-s" => a.interval_s = value()?.parse().map_err(|e| format!("--interval-s: {e}"))?,
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            "--batch" => a.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--checkpoint-ratio" => a.checkpoint_ratio = value()?.parse().map_err(|e| format!("--checkpoint-ratio: {e}"))?,
            "--keep" => a.keep = true,
            "--write-only" => a.replay = false,
            "--replay-only" => a.write = false,
            "--worst-case" => a.worst_case = true,
            other => {
                return Err(format!(
                    "unknown flag {other}; accepted: --series, --hours, --interval-s, --batch, --checkpoint-ratio, --dir, --keep, --write-only, --replay-only, --worst-case"
                ));
            }
        }
    }
    if a.interval_s == 0 || a.series == 0 || a.batch == 0 {
        return Err("--series, --interval-s and --batch must be above zero".into());
    }
    if !a.write && a.dir.is_none() {
        return Err("--replay-only needs the --dir a --write-only --keep run filled".into());
    }
    Ok(a)
}

/// Labels shaped like a node-exporter fleet: 6 labels, values shared across many series.
fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", format!("metric_{}", i % 200)),
        ("instance", format!("10.{}.{}.{}:9100", i / 65_536 % 256, i / 256 % 256, i % 256)),
        ("job", "node".to_string()),
        ("cluster", format!("cluster-{}", i % 50)),
        ("cpu", (i % 16).to_string()),
    ])
}

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Bytes in log segments and in checkpoints.
fn wal_files(dir: &std::path::Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return (0, 0) };
    let mut out = (0, 0);
    for e in entries.flatten() {
        let len = e.metadata().map_or(0, |m| m.len());
        if e.file_name().to_string_lossy().starts_with("checkpoint.") {
            out.1 += len;
        } else {
            out.0 += len;
        }
    }
    out
}

fn run(a: &Args) -> Result<(), String> {
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("wal-replay-{}", std::process::id())));
    let opts = || DbOptions {
        block_duration: None,
        wal_checkpoint_ratio: a.checkpoint_ratio,
        ..DbOptions::default()
    };
    let steps = (a.hours * 3600.0 / a.interval_s as f64) as i64;
    let step_ms = a.interval_s as i64 * 1000;
    let t0 = 1_700_000_000_000i64;
    if a.write {
        let db = Db::open(&dir, opts()).map_err(|e| format!("opening {}: {e}", dir.display()))?;
        // One batch per scrape of `--batch` series, reused so writing costs what the store costs.
        let mut batches: Vec<Vec<TimeSeries>> = (0..a.series)
            .collect::<Vec<_>>()
            .chunks(a.batch)
            .map(|ids| {
                ids.iter()
                    .map(|&i| TimeSeries {
                        labels: labels(i),
                        samples: vec![Sample { t: 0, v: 0.0 }],
                    })
                    .collect()
            })
            .collect();
        let started = Instant::now();
        let write_step = |db: &Db, batches: &mut Vec<Vec<TimeSeries>>, step: i64| -> Result<(), String> {
            let t = t0 + step * step_ms;
            for (b, batch) in batches.iter_mut().enumerate() {
                for (k, ts) in batch.iter_mut().enumerate() {
                    let i = b * a.batch + k;
                    // Counters growing at a per-series rate, a few with fractional values.
                    let v = (step as f64) * ((i % 97) as f64 + 1.0) + if i % 5 == 0 { 0.25 } else { 0.0 };
                    ts.samples[0] = Sample { t, v };
                }
                db.append(batch).map_err(|e| format!("append at step {step}: {e}"))?;
            }
            Ok(())
        };
        for step in 0..steps {
            write_step(&db, &mut batches, step)?;
        }
        let written = started.elapsed();
        let samples = a.series as u64 * steps as u64;
        println!("written_samples={samples}");
        println!("write_seconds={:.1}", written.as_secs_f64());
        println!("write_samples_per_second={:.0}", samples as f64 / written.as_secs_f64());
        let st = db.stats();
        db.close().map_err(|e| format!("closing: {e}"))?;
        let (segments, checkpoint) = wal_files(&dir.join("wal"));
        println!("wal_segment_bytes={segments}");
        println!("wal_checkpoint_bytes={checkpoint}");
        println!("wal_bytes_per_sample={:.2}", (segments + checkpoint) as f64 / samples as f64);
        println!("checkpoints={}", st.checkpoints);
        println!("bytes_logged={}", st.wal_bytes_logged);
        println!("checkpoint_bytes_written={}", st.checkpoint_bytes_written);
        println!(
            "write_amplification={:.2}",
            (st.wal_bytes_logged + st.checkpoint_bytes_written) as f64 / st.wal_bytes_logged.max(1) as f64
        );
        if a.worst_case {
            if checkpoint == 0 || a.checkpoint_ratio.is_infinite() {
                return Err("--worst-case needs a checkpoint after the write (a finite --checkpoint-ratio)".into());
            }
            let no_checkpoints = DbOptions {
                wal_checkpoint_ratio: f64::INFINITY,
                ..opts()
            };
            let db = Db::open(&dir, no_checkpoints).map_err(|e| format!("reopening {}: {e}", dir.display()))?;
            let limit = (checkpoint as f64 * a.checkpoint_ratio) as u64;
            let mut step = steps;
            while wal_files(&dir.join("wal")).0 < limit {
                write_step(&db, &mut batches, step)?;
                step += 1;
            }
            db.close().map_err(|e| format!("closing: {e}"))?;
            let (segments, checkpoint) = wal_files(&dir.join("wal"));
            println!("worst_case_extra_samples={}", a.series as u64 * (step - steps) as u64);
            println!("worst_case_wal_segment_bytes={segments}");
            println!("worst_case_wal_checkpoint_bytes={checkpoint}");
        }
    }
    if !a.replay {
        return Ok(());
    }
    let rss_before = rss_kib("VmRSS:");
    let started = Instant::now();
    // Nothing that writes: repeated replays of one directory measure the same thing.
    let read_only = DbOptions {
        wal_checkpoint_ratio: f64::INFINITY,
        ..opts()
    };
    let db = Db::open(&dir, read_only).map_err(|e| format!("reopening {}: {e}", dir.display()))?;
    let open = started.elapsed();
    let r = db.replay_stats();
    println!("replayed_series={}", r.series);
    println!("replayed_samples={}", r.samples);
    println!("replay_seconds={:.2}", r.duration.as_secs_f64());
    println!("open_seconds={:.2}", open.as_secs_f64());
    println!("head_series={}", db.stats().series);
    println!("replayed_chunks={}", r.chunks);
    println!("replayed_chunk_samples={}", r.chunk_samples);
    println!("rss_growth_mib={}", rss_kib("VmRSS:").saturating_sub(rss_before) / 1024);
    println!("peak_rss_mib={}", rss_kib("VmHWM:") / 1024);
    drop(db);
    if a.dir.is_none() && !a.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wal_replay: {e}");
            ExitCode::FAILURE
        }
    }
}
