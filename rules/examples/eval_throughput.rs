//! Rule evaluation throughput: how long one evaluation round of many alerting rules over a
//! large store takes (issue target: 10,000 alerting rules over 1 M series within a minute).
//!
//! The store is the tiers' own `Db` (head, WAL) in a temporary directory, filled with
//! `http_requests_total{job, instance, code}` counters: `--series` series over 1,000 jobs,
//! 10 minutes at 15 s. The rules are ten dashboard-and-runbook shapes per job (ratios,
//! sums, `topk`, `absent`, `increase`, `changes`, plain selectors), `--rules` in all, in
//! `--groups` groups. One warm-up round, then `--rounds` timed rounds; each round runs
//! every group once, one after another on one thread (the tier runs groups concurrently,
//! so this is the slow case).
//!
//!   cargo run --release -p fedwatch-rules --example eval_throughput -- --series 1000000 --rules 10000

use std::sync::Arc;
use std::time::{Duration, Instant};

use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::{Labels, Sample, TimeSeries};
use fedwatch_promql::Engine;
use fedwatch_rules::{RuleManager, RuleManagerOptions};
use fedwatch_tsdb::{Appender, Db, DbOptions};

const JOBS: usize = 1000;
const CODES: [&str; 5] = ["200", "201", "404", "500", "503"];
const STEP_MS: i64 = 15_000;
const SPAN_MS: i64 = 10 * 60_000;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number, got {v}")))
        .unwrap_or(default)
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn rules_file(rules: usize, groups: usize) -> String {
    let shapes = [
        "sum by (instance) (rate(http_requests_total{job=\"J\", code=~\"5..\"}[5m])) / sum by (instance) (rate(http_requests_total{job=\"J\"}[5m])) > 0.45",
        "sum(rate(http_requests_total{job=\"J\"}[5m])) > 1e9",
        "rate(http_requests_total{job=\"J\", code=\"500\"}[5m]) > 3",
        "absent(http_requests_total{job=\"J\"})",
        "count(http_requests_total{job=\"J\"}) < 10",
        "max by (instance) (increase(http_requests_total{job=\"J\"}[10m])) > 1e12",
        "topk(3, rate(http_requests_total{job=\"J\"}[5m])) > 1e12",
        "avg(rate(http_requests_total{job=\"J\", code=\"200\"}[5m])) < 0",
        "http_requests_total{job=\"J\", instance=\"i-0\"} < 0",
        "changes(http_requests_total{job=\"J\", code=\"503\"}[5m]) > 100",
    ];
    let per_group = rules.div_ceil(groups);
    let mut out = String::from("groups:\n");
    for r in 0..rules {
        if r % per_group == 0 {
            out.push_str(&format!("  - name: g{}\n    interval: 1m\n    rules:\n", r / per_group));
        }
        let job = format!("svc-{}", (r / shapes.len()) % JOBS);
        let expr = shapes[r % shapes.len()].replace("\"J\"", &format!("\"{job}\""));
        out.push_str(&format!(
            "      - alert: Rule{r}\n        expr: '{expr}'\n        labels: {{severity: page}}\n        annotations: {{summary: '{{{{ $labels.instance }}}} is off'}}\n"
        ));
    }
    out
}

fn main() {
    let series = arg("--series", 1_000_000);
    let rules = arg("--rules", 10_000);
    let groups = arg("--groups", 100);
    let rounds = arg("--rounds", 3);
    let dir = std::env::temp_dir().join(format!("fedwatch-eval-throughput-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Arc::new(Db::open(&dir, DbOptions::default()).expect("open the store"));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        / STEP_MS
        * STEP_MS;
    let per_job = series.div_ceil(JOBS);
    let instances = per_job.div_ceil(CODES.len());
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    let mut made = 0;
    'jobs: for j in 0..JOBS {
        for i in 0..instances {
            for (c, code) in CODES.iter().enumerate() {
                if made == series {
                    break 'jobs;
                }
                made += 1;
                let per_s = 1.0 + ((j * 7 + i * 3 + c) % 10) as f64;
                let labels = Labels::from_pairs([
                    ("__name__", "http_requests_total".to_string()),
                    ("job", format!("svc-{j}")),
                    ("instance", format!("i-{i}")),
                    ("code", (*code).to_string()),
                ]);
                let samples = (0..=SPAN_MS / STEP_MS)
                    .map(|k| Sample {
                        t: now - SPAN_MS + k * STEP_MS,
                        v: per_s * (k * 15) as f64,
                    })
                    .collect();
                batch.push(TimeSeries { labels, samples });
                if batch.len() == 10_000 {
                    db.append(&batch).expect("append");
                    batch.clear();
                }
            }
        }
    }
    db.append(&batch).expect("append");
    let samples = made as i64 * (SPAN_MS / STEP_MS + 1);
    println!("loaded {made} series, {samples} samples in {:.1?}", started.elapsed());

    let rules_path = dir.join("bench.rules.yml");
    std::fs::write(&rules_path, rules_file(rules, groups)).expect("write the rule file");
    let manager = RuleManager::new(
        RuleManagerOptions {
            evaluation_interval: Duration::from_secs(60),
            ..RuleManagerOptions::default()
        },
        Engine::new(db.clone()),
        Some(db.clone()),
        None,
        Registry::new(),
    );
    manager.reload(&[rules_path.display().to_string()]).expect("load the rules");

    let t = now;
    manager.eval_all_at(t);
    let firing = manager.active_alerts().len();
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for round in 1..=rounds {
        let (w0, c0) = (Instant::now(), cpu_seconds());
        manager.eval_all_at(t + round as i64 * 60_000);
        walls.push(w0.elapsed().as_secs_f64());
        cpus.push(cpu_seconds() - c0);
    }
    walls.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    let (wall, cpu) = (walls[walls.len() / 2], cpus[cpus.len() / 2]);
    println!(
        "{rules} alerting rules in {groups} groups over {made} series: one round {wall:.2} s wall, {cpu:.2} s CPU (median of {rounds}); {firing} alerts active; {:.0} rules/s, so a 1m interval holds {:.0} such rules on one thread",
        rules as f64 / wall,
        60.0 * rules as f64 / wall
    );
    drop(manager);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
