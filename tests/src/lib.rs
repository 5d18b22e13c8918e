//! The harness for end-to-end tests: finds the built binaries, writes real config files into
//! a scratch directory, starts real processes on loopback ports and stops them on drop.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which the test
//! command does); a missing one fails with that instruction.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory holding the workspace's built binaries (next to this test executable).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>
    exe.parent().and_then(Path::parent).expect("target directory").to_path_buf()
}

/// The path of a workspace binary, failing with an instruction when it was not built.
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the end-to-end tests",
        p.display()
    );
    p
}

/// A system binary (from Debian's packages), or None when it is not installed.
pub fn system_binary(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("fedwatch-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    /// Writes `text` to `name` inside the scratch directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("parent directory");
        }
        std::fs::write(&p, text).expect("write scratch file");
        p
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A child process killed on drop; its output goes to `<scratch>/<name>.log`.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn start(name: &str, program: &Path, args: &[String], scratch: &Scratch) -> Proc {
        let log = scratch.path(&format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// What the process has logged so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit on its own and returns its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Sends `signal` (e.g. "HUP") to the process with the system's `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.child.id());
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- {} log ({}) ----\n{}", self.name, self.log.display(), self.output());
        }
    }
}

/// Polls `check` until it returns Some or `deadline` passes; the deadline is a bound on
/// waiting, never an assertion about speed.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < until, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs an instant query against a tier and returns the JSON `data.result` array.
pub async fn query(client: &reqwest::Client, port: u16, promql: &str) -> Option<Vec<serde_json::Value>> {
    let resp = client
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = resp.json().await.ok()?;
    v["data"]["result"].as_array().cloned()
}

/// Waits until `GET /-/ready` answers 200.
pub async fn wait_ready(client: &reqwest::Client, port: u16, proc_name: &str) {
    eventually(
        &format!("{proc_name} on port {port} to be ready"),
        Duration::from_secs(30),
        || async {
            let r = client.get(format!("http://127.0.0.1:{port}/-/ready")).send().await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await
}

/// Runs an instant query evaluated at `time` (Unix seconds) and returns `data.result`.
pub async fn query_at(client: &reqwest::Client, port: u16, promql: &str, time: f64) -> Option<Vec<serde_json::Value>> {
    let resp = client
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", promql), ("time", &format!("{time:.3}"))])
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = resp.json().await.ok()?;
    v["data"]["result"].as_array().cloned()
}

/// A query result as sorted `(labels without `drop`, value)` pairs, for comparing the
/// answers of two servers that differ only in some labels.
pub fn series_values(result: &[serde_json::Value], drop: &[&str]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = result
        .iter()
        .map(|s| {
            let mut labels: Vec<String> = s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| !drop.contains(&k.as_str()))
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect()
                })
                .unwrap_or_default();
            labels.sort();
            (labels.join(","), s["value"][1].as_str().unwrap_or("").to_string())
        })
        .collect();
    out.sort();
    out
}

/// A running simulated fleet (`fedwatch-sim fleet`) and where its file_sd files are.
pub struct Fleet {
    pub proc: Proc,
    pub port: u16,
    /// `<sd>/<cell>/<job>.json`, e.g. `<sd>/cell-01/etcd.json`.
    pub sd: PathBuf,
}

/// Starts a fleet of `cells` meta clusters with `tenants` tenant clusters each, and waits
/// for its file_sd files.
pub async fn start_fleet(scratch: &Scratch, cells: usize, tenants: usize) -> Fleet {
    let port = free_port();
    let sd = scratch.path("sd");
    let proc = Proc::start(
        "fleet",
        &binary("fedwatch-sim"),
        &[
            "fleet".into(),
            format!("--listen=127.0.0.1:{port}"),
            format!("--cells={cells}"),
            format!("--tenants-per-cell={tenants}"),
            format!("--sd-dir={}", sd.display()),
        ],
        scratch,
    );
    let etcd = sd.join("cell-01/etcd.json");
    eventually("the fleet's file_sd files", Duration::from_secs(20), || async {
        etcd.exists().then_some(())
    })
    .await;
    Fleet { proc, port, sd }
}

/// A running tier binary and its port.
pub struct Tier {
    pub proc: Proc,
    pub port: u16,
    /// The arguments it was started with, to start it again on the same files.
    pub args: Vec<String>,
}

/// Starts our binary `bin` as `name`, with `config` written to `<name>.yml`, its store in
/// `<name>-data`, a free port, and `extra` flags.
pub fn start_tier(name: &str, bin: &str, scratch: &Scratch, config: &str, extra: &[String]) -> Tier {
    let port = free_port();
    let config_path = scratch.write(&format!("{name}.yml"), config);
    let mut args = vec![
        format!("--config.file={}", config_path.display()),
        format!("--storage.path={}", scratch.path(&format!("{name}-data")).display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    args.extend_from_slice(extra);
    Tier {
        proc: Proc::start(name, &binary(bin), &args, scratch),
        port,
        args,
    }
}

/// The value of the first series an instant query returns, as a number.
pub async fn query_value(client: &reqwest::Client, port: u16, promql: &str) -> Option<f64> {
    let r = query(client, port, promql).await?;
    r.first()?["value"][1].as_str()?.parse().ok()
}

/// Webhook payloads a [`webhook_receiver`] got, in arrival order.
pub type Payloads = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// An Alertmanager-style webhook receiver on a free port, recording every POST to `/hook`
/// (a body that is not JSON is kept as a string saying so).
pub async fn webhook_receiver() -> (u16, Payloads) {
    use axum::extract::State;
    let payloads: Payloads = Payloads::default();
    async fn hook(State(p): State<Payloads>, body: axum::body::Bytes) -> &'static str {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| serde_json::Value::String(format!("not JSON: {e}")));
        p.lock().unwrap_or_else(|e| e.into_inner()).push(v);
        "ok"
    }
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(payloads.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a webhook receiver");
    let port = listener.local_addr().expect("local address").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, payloads)
}

/// A running stock Prometheus (Debian's package) and its port.
pub struct Prometheus {
    pub proc: Proc,
    pub port: u16,
}

/// Starts Debian's Prometheus on `config` with its store in `prom-data`, a free port and
/// `extra` flags; fails with an instruction when the package is missing.
pub fn start_prometheus(scratch: &Scratch, config: &Path, extra: &[&str]) -> Prometheus {
    let program = system_binary("prometheus").expect("prometheus is not installed: run scripts/install-deps");
    let port = free_port();
    let mut args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", scratch.path("prom-data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Prometheus {
        proc: Proc::start("prometheus", &program, &args, scratch),
        port,
    }
}
