//! The simulated fleet: `cells` meta clusters, each with `nodes` nodes and a
//! kube-state-metrics, hosting `tenants_per_cell` tenant control planes (apiserver, etcd,
//! scheduler, controller-manager). Counters grow at a per-series rate derived from a hash
//! of their labels, so values are deterministic for a given time since start. `--scale N`
//! repeats every series N times per target under a `shard` label, for storage benchmarks
//! that need tens of thousands of series without thousands of targets.
//!
//! Faults: `POST /faults/etcd-leader/{tenant}?has_leader=0|1` turns a tenant's etcd leader
//! off or on; `--flap-tenant` makes one tenant's etcd lose its leader for two minutes of
//! every five, so the demo's default rule fires and resolves on its own.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

#[derive(clap::Args, Clone, Debug)]
pub struct FleetArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9300")]
    listen: SocketAddr,
    /// Number of meta clusters.
    #[arg(long, default_value_t = 2)]
    cells: usize,
    /// Tenant clusters hosted by each meta cluster.
    #[arg(long, default_value_t = 12)]
    tenants_per_cell: usize,
    /// Nodes of each meta cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Write file_sd target files here, one folder per cell and one file per job.
    #[arg(long)]
    sd_dir: Option<PathBuf>,
    /// A tenant whose etcd loses its leader for minutes 1-3 of every five.
    #[arg(long)]
    flap_tenant: Option<String>,
    /// Serve every series this many times per target, told apart by a `shard` label
    /// (benchmarks reach many series without thousands of targets; 1 adds no label).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    scale: u32,
}

/// The jobs each cell's edge scrapes, with the file_sd file name that lists their targets.
pub const JOBS: [&str; 6] = [
    "node-exporter",
    "kube-state-metrics",
    "apiserver",
    "etcd",
    "scheduler",
    "controller-manager",
];

struct Fleet {
    args: FleetArgs,
    started: Instant,
    leaderless: Mutex<HashSet<String>>,
}

fn cell_name(c: usize) -> String {
    format!("cell-{:02}", c + 1)
}

fn tenant_name(c: usize, t: usize, per_cell: usize) -> String {
    format!("tenant-{:03}", c * per_cell + t + 1)
}

fn cluster_type(tenant_index: usize) -> &'static str {
    ["standard", "standard", "serverless", "edge"][tenant_index % 4]
}

pub async fn run(args: FleetArgs) -> Result<(), String> {
    if let Some(dir) = &args.sd_dir {
        write_sd_files(&args, dir)?;
    }
    let fleet = Arc::new(Fleet {
        args: args.clone(),
        started: Instant::now(),
        leaderless: Mutex::new(HashSet::new()),
    });
    let app = Router::new()
        .route("/cells/{cell}/nodes/{node}/metrics", get(node_metrics))
        .route("/cells/{cell}/kube-state-metrics/metrics", get(ksm_metrics))
        .route("/tenants/{tenant}/{component}/metrics", get(tenant_metrics))
        .route("/faults/etcd-leader/{tenant}", post(set_leader))
        .with_state(fleet);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", args.listen))?;
    println!(
        "fleet: {} cells x {} tenants ({} tenant clusters) on http://{}/",
        args.cells,
        args.tenants_per_cell,
        args.cells * args.tenants_per_cell,
        args.listen
    );
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

/// What a target serves.
enum Source {
    Node,
    Ksm(usize),
    Tenant { tenant: String, component: &'static str },
}

/// One scrape target of the fleet, with the labels its file_sd group gives it.
struct Target {
    cell: usize,
    job: &'static str,
    path: String,
    instance: String,
    cluster: String,
    cluster_type: &'static str,
    source: Source,
}

/// Every target, by cell and then job in [`JOBS`] order.
fn targets(args: &FleetArgs) -> Vec<Target> {
    let mut out = Vec::new();
    for c in 0..args.cells {
        let cell = cell_name(c);
        for job in JOBS {
            let mut add = |path: String, instance: String, cluster: &str, cluster_type: &'static str, source: Source| {
                out.push(Target {
                    cell: c,
                    job,
                    path,
                    instance,
                    cluster: cluster.to_string(),
                    cluster_type,
                    source,
                })
            };
            match job {
                "node-exporter" => {
                    for n in 0..args.nodes {
                        let (path, instance) = (format!("/cells/{cell}/nodes/node-{n}/metrics"), format!("{cell}-node-{n}:9100"));
                        add(path, instance, &cell, "meta", Source::Node);
                    }
                }
                "kube-state-metrics" => {
                    let (path, instance) = (format!("/cells/{cell}/kube-state-metrics/metrics"), format!("{cell}-ksm:8080"));
                    add(path, instance, &cell, "meta", Source::Ksm(c));
                }
                component => {
                    for t in 0..args.tenants_per_cell {
                        let tenant = tenant_name(c, t, args.tenants_per_cell);
                        let (path, instance) = (format!("/tenants/{tenant}/{component}/metrics"), format!("{tenant}-{component}-0"));
                        let source = Source::Tenant {
                            tenant: tenant.clone(),
                            component,
                        };
                        add(path, instance, &tenant, cluster_type(t), source);
                    }
                }
            }
        }
    }
    out
}

/// Writes `<dir>/<cell>/<job>.json` in Prometheus's file_sd format.
fn write_sd_files(args: &FleetArgs, dir: &std::path::Path) -> Result<(), String> {
    let addr = args.listen.to_string();
    let all = targets(args);
    for c in 0..args.cells {
        let cell_dir = dir.join(cell_name(c));
        std::fs::create_dir_all(&cell_dir).map_err(|e| format!("{}: {e}", cell_dir.display()))?;
        for job in JOBS {
            let groups: Vec<serde_json::Value> = all
                .iter()
                .filter(|t| t.cell == c && t.job == job)
                .map(|t| {
                    serde_json::json!({
                        "targets": [addr],
                        "labels": {"__metrics_path__": t.path, "instance": t.instance, "cluster": t.cluster, "cluster_type": t.cluster_type},
                    })
                })
                .collect();
            let path = cell_dir.join(format!("{job}.json"));
            let text = serde_json::to_string_pretty(&groups).map_err(|e| e.to_string())?;
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

#[derive(clap::Args, Clone, Debug)]
pub struct DumpArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// Seconds between two renderings of every target (the scrape interval).
    #[arg(long, default_value_t = 5.0)]
    every: f64,
    /// Seconds of fleet time to render, from start.
    #[arg(long, default_value_t = 7200.0)]
    duration: f64,
}

/// Writes what every target would serve at start, `every` seconds later, and so on for
/// `duration` seconds, without waiting: one `#@ <ms since start> <target labels>` line (the
/// labels as in a selector: `job`, `instance`, `cluster`, `cluster_type`) before each body.
/// Storage benchmarks read it to store hours of the fleet's data in minutes.
pub fn dump(args: DumpArgs) -> Result<(), String> {
    use std::io::Write as _;
    if !(args.every > 0.0) || !(args.duration >= 0.0) {
        return Err("--every must be above zero and --duration not negative".into());
    }
    let fleet = Fleet {
        args: args.fleet.clone(),
        started: Instant::now(),
        leaderless: Mutex::new(HashSet::new()),
    };
    let all = targets(&args.fleet);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let steps = (args.duration / args.every).floor() as u64;
    for step in 0..=steps {
        let at = step as f64 * args.every;
        for t in &all {
            let body = match &t.source {
                Source::Node => node_body(&fleet, at),
                Source::Ksm(c) => ksm_body(&fleet, at, *c),
                Source::Tenant { tenant, component } => tenant_body(&fleet, at, tenant, component).unwrap_or_default(),
            };
            writeln!(
                out,
                "#@ {} job=\"{}\",instance=\"{}\",cluster=\"{}\",cluster_type=\"{}\"",
                (at * 1000.0).round() as i64,
                t.job,
                t.instance,
                t.cluster,
                t.cluster_type
            )
            .and_then(|()| out.write_all(body.as_bytes()))
            .map_err(|e| format!("writing the dump: {e}"))?;
        }
    }
    out.flush().map_err(|e| format!("writing the dump: {e}"))
}

/// Text-format writer that adds HELP/TYPE once per family.
struct Exposition {
    out: String,
    elapsed: f64,
    /// Values of the `shard` label each series is repeated under; empty for `--scale 1`.
    shards: Vec<String>,
}

impl Exposition {
    fn new(elapsed: f64, scale: u32) -> Self {
        let shards = if scale > 1 {
            (0..scale).map(|k| k.to_string()).collect()
        } else {
            Vec::new()
        };
        Exposition {
            out: String::with_capacity(16 * 1024 * scale as usize),
            elapsed,
            shards,
        }
    }

    /// Calls `f` once per copy of a series: with `labels` as given, or once per shard with
    /// a `shard` label added.
    fn each_copy(&mut self, labels: &[(&str, &str)], mut f: impl FnMut(&mut Self, &[(&str, &str)])) {
        if self.shards.is_empty() {
            f(self, labels);
            return;
        }
        let shards = std::mem::take(&mut self.shards);
        let mut l = labels.to_vec();
        l.push(("shard", ""));
        let last = l.len() - 1;
        for shard in &shards {
            l[last].1 = shard;
            f(self, &l);
        }
        self.shards = shards;
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.each_copy(labels, |e, l| e.line(name, l, value));
    }

    fn line(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A counter value: a per-series rate (from the label hash) times seconds since start.
    fn counter(&mut self, name: &str, labels: &[(&str, &str)], max_rate: f64) {
        self.each_copy(labels, |e, labels| {
            let r = unit_hash(name, labels);
            let v = (1000.0 * r).floor() + (max_rate * (0.2 + 0.8 * r) * e.elapsed).floor();
            e.line(name, labels, v);
        });
    }

    /// A gauge wandering around `base` by up to `spread`.
    fn gauge(&mut self, name: &str, labels: &[(&str, &str)], base: f64, spread: f64) {
        self.each_copy(labels, |e, labels| {
            let r = unit_hash(name, labels);
            let v = base + spread * (2.0 * r - 1.0) * (0.5 + 0.5 * (e.elapsed / 60.0 + r * std::f64::consts::TAU).sin());
            e.line(name, labels, (v * 1000.0).round() / 1000.0);
        });
    }

    /// A classic histogram whose observations arrive at up to `rate`/s, most under `typical`.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], bounds: &[&str], rate: f64, typical: f64) {
        let bucket = format!("{name}_bucket");
        let (sum, count_name) = (format!("{name}_sum"), format!("{name}_count"));
        self.each_copy(labels, |e, labels| {
            let r = unit_hash(name, labels);
            let count = (rate * (0.2 + 0.8 * r) * e.elapsed).floor();
            for le in bounds.iter().copied().chain(["+Inf"]) {
                let bound: f64 = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(0.0) };
                let share = if bound.is_infinite() { 1.0 } else { 1.0 - (-bound / typical).exp() };
                let mut l = labels.to_vec();
                l.push(("le", le));
                e.line(&bucket, &l, (count * share).floor());
            }
            e.line(&sum, labels, (count * typical * 1000.0).round() / 1000.0);
            e.line(&count_name, labels, count);
        });
    }
}

fn unit_hash(name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut key = String::from(name);
    for (k, v) in labels {
        let _ = write!(key, "\u{ff}{k}\u{ff}{v}");
    }
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % 10_000) as f64 / 10_000.0
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

impl Fleet {
    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn has_cell(&self, cell: &str) -> bool {
        (0..self.args.cells).any(|c| cell_name(c) == cell)
    }

    fn has_tenant(&self, tenant: &str) -> bool {
        (0..self.args.cells).any(|c| (0..self.args.tenants_per_cell).any(|t| tenant_name(c, t, self.args.tenants_per_cell) == tenant))
    }

    /// One election at start, and one each time a flapping tenant regains its leader.
    fn leader_changes(&self, tenant: &str, at: f64) -> f64 {
        let minutes = (at / 60.0) as u64;
        let regained = if self.args.flap_tenant.as_deref() == Some(tenant) && minutes >= 3 {
            (minutes - 3) / 5 + 1
        } else {
            0
        };
        (1 + regained) as f64
    }

    fn has_leader(&self, tenant: &str, at: f64) -> bool {
        if self.leaderless.lock().unwrap_or_else(|e| e.into_inner()).contains(tenant) {
            return false;
        }
        let flapping = self.args.flap_tenant.as_deref() == Some(tenant);
        let minute_of_cycle = (at / 60.0) as u64 % 5;
        !(flapping && (1..3).contains(&minute_of_cycle))
    }
}

async fn node_metrics(State(f): State<Arc<Fleet>>, Path((cell, node)): Path<(String, String)>) -> Response {
    if !f.has_cell(&cell) || !(0..f.args.nodes).any(|n| format!("node-{n}") == node) {
        return StatusCode::NOT_FOUND.into_response();
    }
    text(node_body(&f, f.elapsed()))
}

/// A node exporter's body `at` seconds after start.
fn node_body(f: &Fleet, at: f64) -> String {
    let mut e = Exposition::new(at, f.args.scale);
    e.family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.");
    for cpu in ["0", "1", "2", "3"] {
        for (mode, rate) in [("idle", 0.6), ("user", 0.25), ("system", 0.1), ("iowait", 0.02)] {
            e.counter("node_cpu_seconds_total", &[("cpu", cpu), ("mode", mode)], rate);
        }
    }
    e.family("node_memory_MemTotal_bytes", "gauge", "Memory information field MemTotal_bytes.");
    e.sample("node_memory_MemTotal_bytes", &[], 68_719_476_736.0);
    e.family(
        "node_memory_MemAvailable_bytes",
        "gauge",
        "Memory information field MemAvailable_bytes.",
    );
    e.gauge("node_memory_MemAvailable_bytes", &[], 30e9, 10e9);
    e.family("node_filesystem_size_bytes", "gauge", "Filesystem size in bytes.");
    e.sample(
        "node_filesystem_size_bytes",
        &[("device", "/dev/vda1"), ("fstype", "ext4"), ("mountpoint", "/")],
        107_374_182_400.0,
    );
    e.family(
        "node_filesystem_avail_bytes",
        "gauge",
        "Filesystem space available to non-root users in bytes.",
    );
    e.gauge(
        "node_filesystem_avail_bytes",
        &[("device", "/dev/vda1"), ("fstype", "ext4"), ("mountpoint", "/")],
        50e9,
        20e9,
    );
    e.family("node_load1", "gauge", "1m load average.");
    e.gauge("node_load1", &[], 2.0, 1.5);
    e.family(
        "node_network_receive_bytes_total",
        "counter",
        "Network device statistic receive_bytes.",
    );
    e.counter("node_network_receive_bytes_total", &[("device", "eth0")], 5e6);
    e.out
}

async fn ksm_metrics(State(f): State<Arc<Fleet>>, Path(cell): Path<String>) -> Response {
    let Some(c) = (0..f.args.cells).find(|&c| cell_name(c) == cell) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    text(ksm_body(&f, f.elapsed(), c))
}

/// Cell `c`'s kube-state-metrics body `at` seconds after start.
fn ksm_body(f: &Fleet, at: f64, c: usize) -> String {
    let mut e = Exposition::new(at, f.args.scale);
    e.family(
        "kube_pod_status_ready",
        "gauge",
        "Describes whether the pod is ready to serve requests.",
    );
    let per = f.args.tenants_per_cell;
    let pods: Vec<(String, String)> = (0..per)
        .flat_map(|t| {
            let ns = tenant_name(c, t, per);
            ["apiserver", "etcd", "scheduler", "controller-manager"].map(|p| (ns.clone(), format!("{p}-0")))
        })
        .collect();
    for (ns, pod) in &pods {
        for (cond, v) in [("true", 1.0), ("false", 0.0), ("unknown", 0.0)] {
            e.sample("kube_pod_status_ready", &[("namespace", ns), ("pod", pod), ("condition", cond)], v);
        }
    }
    e.family(
        "kube_pod_container_status_restarts_total",
        "counter",
        "The number of container restarts per container.",
    );
    for (ns, pod) in &pods {
        let container = pod.trim_end_matches("-0");
        e.sample(
            "kube_pod_container_status_restarts_total",
            &[("namespace", ns), ("pod", pod), ("container", container)],
            0.0,
        );
    }
    e.family("kube_node_status_condition", "gauge", "The condition of a cluster node.");
    for n in 0..f.args.nodes {
        let node = format!("node-{n}");
        for (status, v) in [("true", 1.0), ("false", 0.0), ("unknown", 0.0)] {
            e.sample(
                "kube_node_status_condition",
                &[("node", &node), ("condition", "Ready"), ("status", status)],
                v,
            );
        }
    }
    e.out
}

async fn tenant_metrics(State(f): State<Arc<Fleet>>, Path((tenant, component)): Path<(String, String)>) -> Response {
    if !f.has_tenant(&tenant) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tenant_body(&f, f.elapsed(), &tenant, &component) {
        Some(body) => text(body),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A tenant control-plane component's body `at` seconds after start; `None` for an unknown
/// component.
fn tenant_body(f: &Fleet, at: f64, tenant: &str, component: &str) -> Option<String> {
    let mut e = Exposition::new(at, f.args.scale);
    match component {
        "apiserver" => {
            e.family(
                "apiserver_request_total",
                "counter",
                "Counter of apiserver requests broken out for each verb, resource and HTTP response code.",
            );
            for (verb, resource, code, rate) in [
                ("GET", "pods", "200", 40.0),
                ("LIST", "pods", "200", 5.0),
                ("WATCH", "configmaps", "200", 2.0),
                ("POST", "pods", "201", 3.0),
                ("GET", "pods", "404", 0.5),
                ("GET", "pods", "500", 0.05),
            ] {
                e.counter(
                    "apiserver_request_total",
                    &[("code", code), ("resource", resource), ("verb", verb)],
                    rate,
                );
            }
            e.family(
                "apiserver_request_duration_seconds",
                "histogram",
                "Response latency distribution in seconds for each verb.",
            );
            let bounds = ["0.005", "0.025", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"];
            for verb in ["GET", "LIST", "POST"] {
                e.histogram("apiserver_request_duration_seconds", &[("verb", verb)], &bounds, 20.0, 0.04);
            }
        }
        "etcd" => {
            e.family(
                "etcd_server_has_leader",
                "gauge",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            );
            e.sample("etcd_server_has_leader", &[], if f.has_leader(tenant, at) { 1.0 } else { 0.0 });
            e.family(
                "etcd_server_leader_changes_seen_total",
                "counter",
                "The number of leader changes seen.",
            );
            e.sample("etcd_server_leader_changes_seen_total", &[], f.leader_changes(tenant, at));
            e.family(
                "etcd_mvcc_db_total_size_in_bytes",
                "gauge",
                "Total size of the underlying database physically allocated in bytes.",
            );
            e.gauge("etcd_mvcc_db_total_size_in_bytes", &[], 1.5e9, 1e9);
            e.family(
                "etcd_server_quota_backend_bytes",
                "gauge",
                "Current backend storage quota size in bytes.",
            );
            // etcd's default quota of 8 GiB, which the rule pack measures the database against.
            e.sample("etcd_server_quota_backend_bytes", &[], 8_589_934_592.0);
            e.family(
                "etcd_disk_wal_fsync_duration_seconds",
                "histogram",
                "The latency distributions of fsync called by WAL.",
            );
            let bounds = [
                "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256", "0.512",
            ];
            e.histogram("etcd_disk_wal_fsync_duration_seconds", &[], &bounds, 50.0, 0.003);
        }
        "scheduler" => {
            e.family("scheduler_pending_pods", "gauge", "Number of pending pods, by the queue type.");
            for queue in ["active", "backoff", "unschedulable"] {
                e.gauge("scheduler_pending_pods", &[("queue", queue)], 2.0, 2.0);
            }
            e.family(
                "scheduler_schedule_attempts_total",
                "counter",
                "Number of attempts to schedule pods, by the result.",
            );
            for (result, rate) in [("scheduled", 2.0), ("unschedulable", 0.1), ("error", 0.01)] {
                e.counter("scheduler_schedule_attempts_total", &[("result", result)], rate);
            }
        }
        "controller-manager" => {
            e.family("workqueue_depth", "gauge", "Current depth of workqueue.");
            for name in ["deployment", "replicaset", "endpoint", "namespace"] {
                e.gauge("workqueue_depth", &[("name", name)], 3.0, 3.0);
            }
            e.family("workqueue_adds_total", "counter", "Total number of adds handled by workqueue.");
            for name in ["deployment", "replicaset", "endpoint", "namespace"] {
                e.counter("workqueue_adds_total", &[("name", name)], 4.0);
            }
        }
        _ => return None,
    }
    e.family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    e.sample("process_start_time_seconds", &[], 1.7e9);
    Some(e.out)
}

#[derive(serde::Deserialize)]
struct LeaderQuery {
    has_leader: u8,
}

async fn set_leader(State(f): State<Arc<Fleet>>, Path(tenant): Path<String>, Query(q): Query<LeaderQuery>) -> Response {
    if !f.has_tenant(&tenant) {
        return (StatusCode::NOT_FOUND, format!("no tenant {tenant}\n")).into_response();
    }
    let mut set = f.leaderless.lock().unwrap_or_else(|e| e.into_inner());
    if q.has_leader == 0 {
        set.insert(tenant);
    } else {
        set.remove(&tenant);
    }
    StatusCode::NO_CONTENT.into_response()
}
