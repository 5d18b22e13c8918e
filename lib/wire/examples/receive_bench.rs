//! Receive-throughput driver for `bench/receive_side_by_side.sh`.
//!
//! `record` writes a request stream shaped like the simulated fleet (many targets, ~20
//! labels-worth of series each, one sample per series every 15 s) as snappy remote_write 1.0
//! bodies, length-prefixed, to a file, so every receiver gets the same bytes.
//! `replay` sends that file to one receiver with a few requests in flight and prints one
//! line: samples, wall time, the receiver's CPU seconds (utime+stime from /proc/<pid>/stat),
//! samples per CPU-second (= per core) and peak RSS (VmHWM from /proc/<pid>/status).
//!
//! An example rather than a bench crate so it needs no workspace member; run with
//! `cargo run --release -p fedwatch-wire --example receive_bench -- <record|replay> ...`.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use fedwatch_model::{Labels, Sample, TimeSeries};

fn usage() -> ! {
    eprintln!(
        "usage: receive_bench record --out FILE [--targets 500] [--series-per-target 200] [--rounds 20] [--batch 2000]\n       receive_bench replay --file FILE --url URL --pid PID [--concurrency 4]"
    );
    std::process::exit(2)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name).map(|v| v.parse().unwrap_or_else(|_| usage())).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("record") => record(&args),
        Some("replay") => replay(&args),
        _ => usage(),
    }
}

/// Metric families of a node-exporter-like target; each target has `per_target` series
/// spread over them with a `series` label.
const FAMILIES: &[&str] = &[
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
    "node_disk_read_bytes_total",
    "node_disk_written_bytes_total",
    "node_filesystem_avail_bytes",
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "process_resident_memory_bytes",
];

fn record(args: &[String]) {
    let out = arg(args, "--out").unwrap_or_else(|| usage());
    let targets = num(args, "--targets", 500);
    let per_target = num(args, "--series-per-target", 200);
    let rounds = num(args, "--rounds", 20);
    let batch = num(args, "--batch", 2000) as usize;
    // Ending now, so no receiver refuses the samples as too old for its retention.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let base: i64 = now - rounds as i64 * 15_000;
    let mut labels = Vec::new();
    for t in 0..targets {
        for s in 0..per_target {
            let family = FAMILIES[(s as usize) % FAMILIES.len()];
            labels.push(Labels::from_pairs([
                ("__name__", family.to_string()),
                ("job", format!("job{}", t % 10)),
                ("instance", format!("10.0.{}.{}:9100", t / 250, t % 250)),
                ("cluster", "bench".to_string()),
                ("series", format!("{s}")),
                (
                    "le",
                    if family.ends_with("_bucket") {
                        format!("{}", s % 12)
                    } else {
                        String::new()
                    },
                ),
            ]));
        }
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(&out).unwrap_or_else(|e| panic!("create {out}: {e}")));
    let (mut requests, mut bytes, mut samples) = (0u64, 0u64, 0u64);
    for r in 0..rounds {
        let t = base + r as i64 * 15_000;
        for chunk in labels.chunks(batch) {
            let series: Vec<TimeSeries> = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| TimeSeries {
                    labels: l.clone(),
                    samples: vec![Sample {
                        t,
                        v: (r as f64) * 10.0 + i as f64,
                    }],
                })
                .collect();
            let body = fedwatch_wire::encode_write_request(&series);
            f.write_all(&(body.len() as u32).to_le_bytes()).expect("write");
            f.write_all(&body).expect("write");
            requests += 1;
            bytes += body.len() as u64;
            samples += series.len() as u64;
        }
    }
    f.flush().expect("flush");
    println!("recorded {requests} requests, {samples} samples, {bytes} compressed bytes to {out}");
}

fn read_stream(path: &str) -> Vec<Vec<u8>> {
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= data.len() {
        let n = u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
        out.push(data[i + 4..i + 4 + n].to_vec());
        i += 4 + n;
    }
    out
}

/// utime + stime of `pid` in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat has a command") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn replay(args: &[String]) {
    let file = arg(args, "--file").unwrap_or_else(|| usage());
    let url = arg(args, "--url").unwrap_or_else(|| usage());
    let pid = num(args, "--pid", 0) as u32;
    let concurrency = num(args, "--concurrency", 4) as usize;
    let name = arg(args, "--name").unwrap_or_else(|| url.clone());
    let bodies = Arc::new(read_stream(&file));
    let samples: u64 = bodies
        .iter()
        .map(|b| {
            fedwatch_wire::decode_write_request(b)
                .map(|s| s.iter().map(|x| x.samples.len() as u64).sum::<u64>())
                .unwrap_or(0)
        })
        .sum();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cpu0 = cpu_seconds(pid);
    let start = Instant::now();
    let failed = rt.block_on(async {
        let client = fedwatch_config::http::client();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, url, bodies, next) = (client.clone(), url.clone(), bodies.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut failed = 0u64;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let resp = client
                        .post(&url)
                        .header("Content-Type", "application/x-protobuf")
                        .header("Content-Encoding", "snappy")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .body(body.clone())
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => {
                            failed += 1;
                            if failed <= 3 {
                                eprintln!("request {i}: {} {}", r.status(), r.text().await.unwrap_or_default().trim());
                            }
                        }
                        Err(e) => {
                            failed += 1;
                            eprintln!("request {i}: {e}");
                        }
                    }
                }
                failed
            }));
        }
        let mut failed = 0;
        for t in tasks {
            failed += t.await.expect("sender task");
        }
        failed
    });
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    println!(
        "{name}: {samples} samples in {} requests ({failed} failed), wall {wall:.2}s ({:.0} samples/s), receiver CPU {cpu:.2}s => {:.0} samples/s per core, peak RSS {:.0} MiB",
        bodies.len(),
        samples as f64 / wall,
        samples as f64 / cpu,
        peak_rss_mb(pid)
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
