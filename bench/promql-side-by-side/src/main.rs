//! `promql-side-by-side`: ingest the same fleet into Prometheus and central, then time and
//! compare the dashboard queries. `bench/promql_side_by_side.sh` starts the servers.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use promql_side_by_side::QUERIES;
use promql_side_by_side::compare::{differences, parse_matrix};
use promql_side_by_side::data::Fleet;
use promql_side_by_side::measure::{Range, Server, ingest, memory_kib, quantile, query_range};

#[derive(Parser, Debug)]
#[command(about = "Loads identical data into Prometheus and central and compares dashboard range queries")]
struct Args {
    /// Base URL of the reference Prometheus.
    #[arg(long, default_value = "http://127.0.0.1:19090")]
    prometheus_url: String,
    /// Base URL of our central.
    #[arg(long, default_value = "http://127.0.0.1:19091")]
    central_url: String,
    /// Prometheus's process id, for VmHWM.
    #[arg(long)]
    prometheus_pid: Option<u32>,
    /// central's process id, for VmHWM.
    #[arg(long)]
    central_pid: Option<u32>,
    /// Series to write (rounded up to whole 81-series clusters).
    #[arg(long, default_value_t = 20_000)]
    series: usize,
    /// How far back the data reaches, in minutes; it ends now.
    #[arg(long, default_value_t = 120)]
    minutes: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 15)]
    interval: u64,
    /// Range query step, in seconds; the range is the whole data span.
    #[arg(long, default_value_t = 60)]
    step: u64,
    /// Timed runs per query and server.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Samples (series, one sample each) per remote_write request.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Requests in flight per server within one tick.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Seconds to move the query grid back, comma-separated, one table each: 0 puts every
    /// window's left edge on a sample (where Prometheus 2.x's closed `[t-5m, t]` and 3.x's
    /// left-open `(t-5m, t]` ranges differ); 0.5 keeps edges off samples.
    #[arg(long, default_value = "0,0.5", value_delimiter = ',')]
    query_offsets: Vec<f64>,
    /// Relative tolerance for value agreement.
    #[arg(long, default_value_t = 1e-9)]
    tolerance: f64,
    /// Skip ingestion (the servers already hold the data); needs --end-ms.
    #[arg(long)]
    skip_ingest: bool,
    /// Timestamp of the last sample in ms (default: now, rounded down to the interval).
    #[arg(long)]
    end_ms: Option<i64>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Peak RSS of `server` in MiB, or NaN when no pid was given or /proc cannot be read.
fn peak_mib(server: &Server) -> f64 {
    match server.pid.map(memory_kib) {
        Some(Ok((_, hwm))) => mib(hwm),
        Some(Err(e)) => {
            eprintln!("{}: {e}", server.name);
            f64::NAN
        }
        None => f64::NAN,
    }
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 && ours.is_finite() {
        format!("{:.2}", ours / theirs)
    } else {
        "-".into()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("promql-side-by-side: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(false) when some query disagreed or failed; Err when the benchmark itself could not run.
async fn run(args: Args) -> Result<bool, String> {
    let interval_ms = (args.interval * 1000) as i64;
    if interval_ms == 0 || args.step == 0 || args.runs == 0 {
        return Err("--interval, --step and --runs must be positive".into());
    }
    let end_ms = match args.end_ms {
        Some(t) => t,
        None if args.skip_ingest => return Err("--skip-ingest needs --end-ms of the data already written".into()),
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|e| format!("clock before 1970: {e}"))?
                .as_millis() as i64;
            now - now % interval_ms
        }
    };
    let ticks = (args.minutes * 60 / args.interval) as usize + 1;
    let fleet = Arc::new(Fleet::new(args.series, end_ms, interval_ms, ticks));
    let prom = Server {
        name: "prometheus".into(),
        url: args.prometheus_url.clone(),
        pid: args.prometheus_pid,
    };
    let ours = Server {
        name: "central".into(),
        url: args.central_url.clone(),
        pid: args.central_pid,
    };
    let client = fedwatch_config::http::client_builder()
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    println!(
        "data: {} series x {} samples ({} min at {}s) = {} samples, end_ms={end_ms}",
        fleet.series_count(),
        ticks,
        args.minutes,
        args.interval,
        fleet.series_count() * ticks
    );

    if !args.skip_ingest {
        for server in [&prom, &ours] {
            let st = ingest(&client, server, fleet.clone(), args.batch, args.concurrency).await?;
            println!(
                "ingest {:<10} {} requests, {} samples in {:.1}s = {:.0} samples/s; peak RSS {:.0} MiB",
                server.name,
                st.requests,
                st.samples,
                st.elapsed.as_secs_f64(),
                st.samples as f64 / st.elapsed.as_secs_f64(),
                peak_mib(server)
            );
        }
    }

    let mut all_agree = true;
    for offset in &args.query_offsets {
        let range = Range {
            start: (fleet.start_ms() / 1000) as f64 - offset,
            end: (fleet.end_ms() / 1000) as f64 - offset,
            step: args.step as f64,
        };
        println!(
            "queries: range [{}, {}] step {}s, {} timed runs each after one checked run",
            range.start, range.end, range.step, args.runs
        );
        println!();
        println!(
            "{:<24} {:>7} {:>7} | {:>9} {:>9} | {:>9} {:>9} | {:>6} | {:>9} {:>9} {:>6} | agree",
            "query", "series", "points", "prom p50", "prom p90", "ours p50", "ours p90", "ratio", "prom MiB", "ours MiB", "ratio"
        );
        let mut findings = Vec::new();
        for (name, promql) in QUERIES {
            let want = query_range(&client, &prom, promql, range)
                .await
                .and_then(|(_, b)| parse_matrix(&b).map_err(|e| format!("prometheus: {e}")));
            let got = query_range(&client, &ours, promql, range)
                .await
                .and_then(|(_, b)| parse_matrix(&b).map_err(|e| format!("central: {e}")));
            let (series, points, verdict) = match (&want, &got) {
                (Ok(w), Ok(g)) => {
                    let points: usize = w.values().map(Vec::len).sum();
                    match differences(w, g, args.tolerance) {
                        (_, None) => (w.len(), points, "yes".to_string()),
                        (n, Some(d)) => {
                            findings.push(format!("{name} `{promql}`: {n} of {points} points differ; first: {d}"));
                            (w.len(), points, format!("NO ({n} pts)"))
                        }
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    findings.push(format!("{name} `{promql}`: {e}"));
                    (0, 0, "ERROR".to_string())
                }
            };
            all_agree &= verdict == "yes";
            // Interleave the servers so background load on this shared machine hits both alike.
            let (mut tp, mut to) = (Vec::new(), Vec::new());
            for _ in 0..args.runs {
                if let Ok((d, _)) = query_range(&client, &prom, promql, range).await {
                    tp.push(d);
                }
                if let Ok((d, _)) = query_range(&client, &ours, promql, range).await {
                    to.push(d);
                }
            }
            let (p50, p90, o50, o90) = (
                ms(quantile(&tp, 0.5)),
                ms(quantile(&tp, 0.9)),
                ms(quantile(&to, 0.5)),
                ms(quantile(&to, 0.9)),
            );
            let (pm, om) = (peak_mib(&prom), peak_mib(&ours));
            println!(
                "{name:<24} {series:>7} {points:>7} | {p50:>9.1} {p90:>9.1} | {o50:>9.1} {o90:>9.1} | {:>6} | {pm:>9.0} {om:>9.0} {:>6} | {verdict}",
                ratio(o50, p50),
                ratio(om, pm)
            );
        }
        println!();
        println!(
            "latency in ms (client wall time to full body), ratio = ours/Prometheus at p50; MiB = VmHWM (peak RSS since start, includes ingestion)"
        );
        for f in &findings {
            println!("DISAGREEMENT {f}");
        }
        println!();
    }
    Ok(all_agree)
}
