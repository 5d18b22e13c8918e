//! Fan-in benchmark driver: many edges' forwarders feeding one upstream (a cascade), in one
//! process, printing how far behind the forwarders are over time.
//!
//! Each simulated edge is what an `edge` process runs between its scrapes and the network:
//! its own store (`Db`, with its own WAL directory) and its own [`WalForwarder`] tailing that
//! WAL, with the edge's external label and the production forwarder code and defaults
//! (shards, `max_samples_per_send`, backoff). Only the scrape is simulated: every
//! `--interval` each edge appends `--series` samples (one per series) stamped now, the edges'
//! scrapes spread evenly over the interval as real scrape offsets are. One process instead
//! of 100 keeps 100 tokio runtimes and HTTP servers off a 2-core machine; every edge still
//! has its own connection pool, WAL reader, position file and shard tasks.
//!
//! Two lag figures, every `--report-every` seconds:
//! - `fedwatch_forward_lag_seconds` of each forwarder (max and mean over the edges): the
//!   metric an operator watches. It is 0 whenever a forwarder has caught up with its WAL.
//! - the measured delay: for each edge, how long ago the oldest sample not yet acknowledged
//!   by the upstream was appended (0 when all is acknowledged), max and 99th percentile over
//!   the edges. This includes the batching wait (`--deadline`) and is the stricter figure.
//!
//! The run ends with the worst of each and whether the worst measured delay stayed under two
//! forwarding intervals (`2 × --deadline`).
//!
//! Usage: `fanin_bench --url http://127.0.0.1:9091/api/v1/write --dir /tmp/fanin
//! [--edges 100] [--series 500] [--interval 5] [--deadline 5] [--duration 120]
//! [--report-every 5] [--upstream-pid PID]`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::{Labels, Sample, TimeSeries};
use fedwatch_tsdb::wal::WalPosition;
use fedwatch_tsdb::{Appender as _, Db, DbOptions};
use fedwatch_wire::ForwarderConfig;
use fedwatch_wire::forward::{WalForwarder, WalForwarderOptions};

struct Args {
    url: String,
    dir: PathBuf,
    edges: usize,
    series: usize,
    interval: Duration,
    deadline: Duration,
    duration: Duration,
    report_every: Duration,
    upstream_pid: Option<u32>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        dir: PathBuf::new(),
        edges: 100,
        series: 500,
        interval: Duration::from_secs(5),
        deadline: Duration::from_secs(5),
        duration: Duration::from_secs(120),
        report_every: Duration::from_secs(5),
        upstream_pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let secs = |v: String| {
            v.parse::<f64>()
                .map(Duration::from_secs_f64)
                .map_err(|e| format!("{flag} {v:?}: {e}"))
        };
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--url" => a.url = value()?,
            "--dir" => a.dir = PathBuf::from(value()?),
            "--edges" => a.edges = num(value()?)?,
            "--series" => a.series = num(value()?)?,
            "--interval" => a.interval = secs(value()?)?,
            "--deadline" => a.deadline = secs(value()?)?,
            "--duration" => a.duration = secs(value()?)?,
            "--report-every" => a.report_every = secs(value()?)?,
            "--upstream-pid" => a.upstream_pid = Some(value()?.parse().map_err(|e| format!("--upstream-pid: {e}"))?),
            other => return Err(format!("unknown flag {other}; see the usage in the source's header")),
        }
    }
    if a.url.is_empty() || a.dir.as_os_str().is_empty() {
        return Err("--url and --dir are required".into());
    }
    Ok(a)
}

/// One simulated edge: store, forwarder, and the WAL end after each of its scrapes.
struct Edge {
    db: Arc<Db>,
    fwd: WalForwarder,
    registry: Registry,
    appended: Mutex<VecDeque<(Instant, WalPosition)>>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// utime + stime of a process in seconds, from /proc.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = parse_args()?;
    let _ = std::fs::remove_dir_all(&args.dir);
    let mut edges = Vec::with_capacity(args.edges);
    for i in 0..args.edges {
        let dir = args.dir.join(format!("edge-{i:03}"));
        let db = Arc::new(Db::open(dir.join("data"), DbOptions::default()).map_err(|e| format!("{}: {e}", dir.display()))?);
        let mut cfg = ForwarderConfig::new(args.url.clone());
        cfg.external_labels = Labels::from_pairs([("edge", format!("edge-{i:03}"))]);
        cfg.batch_send_deadline = args.deadline;
        let registry = Registry::new();
        let fwd =
            WalForwarder::spawn(cfg, db.clone(), WalForwarderOptions::new(dir.join("forward")), &registry).map_err(|e| e.to_string())?;
        edges.push(Arc::new(Edge {
            db,
            fwd,
            registry,
            appended: Mutex::new(VecDeque::new()),
        }));
    }
    let started = Instant::now();
    let until = started + args.duration;
    let mut scrapers = Vec::new();
    for (i, edge) in edges.iter().enumerate() {
        let (edge, interval, series) = (edge.clone(), args.interval, args.series);
        let offset = interval.mul_f64(i as f64 / args.edges as f64);
        scrapers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
            let mut round = 0u64;
            let labels: Vec<Labels> = (0..series)
                .map(|j| {
                    Labels::from_pairs([
                        ("__name__", "fanin_metric"),
                        ("instance", "node:9100"),
                        ("id", j.to_string().as_str()),
                    ])
                })
                .collect();
            loop {
                tick.tick().await;
                if Instant::now() >= until {
                    return;
                }
                let t = now_ms();
                let batch: Vec<TimeSeries> = labels
                    .iter()
                    .enumerate()
                    .map(|(j, l)| TimeSeries {
                        labels: l.clone(),
                        samples: vec![Sample {
                            t,
                            v: (round * 31 + j as u64) as f64,
                        }],
                    })
                    .collect();
                if let Err(e) = edge.db.append(&batch) {
                    eprintln!("append failed: {e}");
                }
                edge.appended.lock().expect("lock").push_back((Instant::now(), edge.db.wal_end()));
                round += 1;
            }
        }));
    }

    let url = edges.first().map(|e| e.fwd.url().to_string()).unwrap_or_default();
    let own_pid = std::process::id().to_string();
    let upstream_pid = args.upstream_pid.map(|p| p.to_string());
    let cpu0 = (cpu_seconds(&own_pid), upstream_pid.as_deref().and_then(cpu_seconds));
    println!(
        "{} edges x {} series every {:?}, batch_send_deadline {:?}, to {url}",
        args.edges, args.series, args.interval, args.deadline
    );
    println!("   t_s  metric_lag_max_s  metric_lag_mean_s  delay_max_s  delay_p99_s  sent_total  samples_per_s");
    let (mut worst_metric, mut worst_delay) = (0.0f64, 0.0f64);
    let mut last_sent = 0u64;
    let mut last_t = Instant::now();
    loop {
        tokio::time::sleep(args.report_every).await;
        let now = Instant::now();
        let mut lags = Vec::with_capacity(edges.len());
        let mut delays = Vec::with_capacity(edges.len());
        let mut sent = 0u64;
        for e in &edges {
            lags.push(e.registry.gauge("fedwatch_forward_lag_seconds", "", &[("url", &url)]).get());
            sent += e
                .registry
                .counter("fedwatch_forward_samples_sent_total", "", &[("url", &url)])
                .get();
            let acked = e.fwd.acknowledged();
            let mut q = e.appended.lock().expect("lock");
            while q.front().is_some_and(|(_, end)| *end <= acked) {
                q.pop_front();
            }
            delays.push(q.front().map_or(0.0, |(at, _)| now.duration_since(*at).as_secs_f64()));
        }
        delays.sort_by(f64::total_cmp);
        let max_lag = lags.iter().copied().fold(0.0, f64::max);
        let mean_lag = lags.iter().sum::<f64>() / lags.len().max(1) as f64;
        let (max_delay, p99) = (percentile(&delays, 1.0), percentile(&delays, 0.99));
        let rate = (sent - last_sent) as f64 / now.duration_since(last_t).as_secs_f64();
        (last_sent, last_t) = (sent, now);
        println!(
            "{:6.0}  {max_lag:16.2}  {mean_lag:17.2}  {max_delay:11.2}  {p99:11.2}  {sent:10}  {rate:13.0}",
            now.duration_since(started).as_secs_f64()
        );
        // The first interval is the warm-up: edges start their first scrape over it.
        if now.duration_since(started) > args.interval {
            worst_metric = worst_metric.max(max_lag);
            worst_delay = worst_delay.max(max_delay);
        }
        if now >= until {
            break;
        }
    }
    for s in scrapers {
        let _ = s.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu1 = (cpu_seconds(&own_pid), upstream_pid.as_deref().and_then(cpu_seconds));
    let appended = (args.edges * args.series) as f64 * (args.duration.as_secs_f64() / args.interval.as_secs_f64());
    if let (Some(a), Some(b)) = (cpu0.0, cpu1.0) {
        println!(
            "edges' process: {:.1} CPU-s over {elapsed:.0}s ({:.2} cores)",
            b - a,
            (b - a) / elapsed
        );
    }
    if let (Some(a), Some(b)) = (cpu0.1, cpu1.1) {
        println!(
            "upstream process: {:.1} CPU-s over {elapsed:.0}s ({:.2} cores), {:.2} CPU-s per million samples received",
            b - a,
            (b - a) / elapsed,
            (b - a) / (last_sent as f64 / 1e6)
        );
    }
    let target = 2.0 * args.deadline.as_secs_f64();
    println!(
        "about {appended:.0} samples appended, {last_sent} acknowledged; worst fedwatch_forward_lag_seconds {worst_metric:.2} s, worst measured delay {worst_delay:.2} s; target < {target:.1} s (2 forwarding intervals): {}",
        if worst_delay < target { "met" } else { "NOT met" }
    );
    for e in &edges {
        let _ = e.fwd.shutdown(Duration::from_secs(10)).await;
    }
    Ok(())
}
