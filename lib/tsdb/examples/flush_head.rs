//! Opens a stopped store, writes everything its head holds as one block, and prints the
//! block's size per sample: how `bench/side_by_side.sh` measures bytes on disk after a
//! run too short for a regular 2 h block cut.
//!
//! Usage: `flush_head <data dir>`; prints `key=value` lines.

use std::process::ExitCode;

use fedwatch_tsdb::{Db, DbOptions};

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: flush_head <data dir>");
        return ExitCode::from(2);
    };
    // No block duration: the store must not cut or compact on its own while we measure.
    let opts = DbOptions {
        block_duration: None,
        ..DbOptions::default()
    };
    let db = match Db::open(&dir, opts) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("flush_head: opening {dir}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let replay = db.replay_stats().clone();
    let block = match db.flush_head() {
        Ok(Some(b)) => b,
        Ok(None) => {
            eprintln!("flush_head: {dir}: the head holds no samples");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("flush_head: writing the head of {dir} as a block: {e}");
            return ExitCode::FAILURE;
        }
    };
    let st = &block.meta.stats;
    println!("block={}", block.name);
    println!("series={}", st.series);
    println!("samples={}", st.samples);
    println!("bytes={}", block.bytes);
    println!("index_bytes={}", block.meta.index_bytes);
    println!("chunks_bytes={}", block.meta.chunks_bytes);
    println!("bytes_per_sample={:.3}", block.bytes as f64 / st.samples.max(1) as f64);
    println!("replayed_samples={}", replay.samples);
    println!("replay_seconds={:.3}", replay.duration.as_secs_f64());
    if let Err(e) = db.close() {
        eprintln!("flush_head: closing {dir}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
