//! Forwarding to a REAL Alertmanager (Debian's `prometheus-alertmanager`, started here on a
//! free loopback port with clustering off): the rule manager evaluates `up == 0` and feeds
//! both the built-in notifier and an [`AlertmanagerSender`] built from the central's
//! `alerting.alertmanagers` block; the alert must then be listed by Alertmanager's own
//! `GET /api/v2/alerts` (and by `amtool`, when installed) with our labels, annotations and
//! generator URL. Also shows `/api/v1/rules` data for the same rule.
//!
//! Lives here rather than in `tests/` because it needs this crate as a library.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::{Labels, Sample, TimeSeries};
use fedwatch_promql::Engine;
use fedwatch_rules::notifier::alertmanager::{AlertmanagerSender, FanOut, targets};
use fedwatch_rules::notifier::now_ms;
use fedwatch_rules::{AlertSender, Notifier, RuleManager, RuleManagerOptions};
use fedwatch_server::sources::{AlertStateInfo, RuleKind};
use fedwatch_tsdb::{Appender, MemStore};
use serde_json::Value;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_a_real_alertmanager() {
    let binary = Path::new("/usr/bin/prometheus-alertmanager");
    assert!(
        binary.exists(),
        "{} is required (apt-get install prometheus-alertmanager)",
        binary.display()
    );
    let dir = std::env::temp_dir().join(format!("fedwatch-am-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("am.yml"), "route:\n  receiver: nobody\nreceivers:\n- name: nobody\n").unwrap();
    let port = free_port();
    let _am = Killed(
        Command::new(binary)
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("am.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let client = fedwatch_config::http::client();
    let base = format!("http://127.0.0.1:{port}");
    eventually("Alertmanager ready", async || {
        client
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;

    // The central's Prometheus configuration names the Alertmanager.
    let prom = fedwatch_config::parse(
        &format!("alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['127.0.0.1:{port}']\n"),
        "prometheus.yml",
    )
    .unwrap();
    let (targets, warnings) = targets(&prom.alerting).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let registry = Registry::new();
    let forward: Arc<dyn AlertSender> = Arc::new(AlertmanagerSender::new(targets, registry.clone()));
    let builtin = Notifier::new(
        fedwatch_rules::notifier::config::parse(Path::new("am.yml"), "route:\n  receiver: x\nreceivers:\n- name: x\n").unwrap(),
        "http://fedwatch:9090",
        registry.clone(),
    );
    let sender: Arc<dyn AlertSender> = Arc::new(FanOut(vec![forward, Arc::new(builtin.clone())]));

    let rules = dir.join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: g\n  rules:\n  - alert: InstanceDown\n    expr: up == 0\n    labels: {severity: page}\n    annotations: {summary: '{{ $labels.instance }} down'}\n",
    )
    .unwrap();
    let store = Arc::new(MemStore::new());
    let manager = RuleManager::new(
        RuleManagerOptions {
            external_labels: Labels::from_pairs([("region", "eu-1")]),
            external_url: "http://fedwatch:9090".into(),
            ..Default::default()
        },
        Engine::new(store.clone()),
        Some(store.clone()),
        Some(sender),
        registry.clone(),
    );
    manager.reload(&[rules.to_string_lossy().into_owned()]).unwrap();
    let now = now_ms();
    store
        .append(&[TimeSeries {
            labels: Labels::from_pairs([("__name__", "up"), ("instance", "h1:9100"), ("job", "node")]),
            samples: vec![Sample { t: now - 1000, v: 0.0 }],
        }])
        .unwrap();
    manager.eval_all_at(now);

    let alert = eventually("the alert in Alertmanager", async || {
        let list: Value = client.get(format!("{base}/api/v2/alerts")).send().await.ok()?.json().await.ok()?;
        list.as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "InstanceDown")
            .cloned()
    })
    .await;
    assert_eq!(alert["labels"]["instance"], "h1:9100");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["labels"]["region"], "eu-1", "external labels are added to sent alerts");
    assert_eq!(alert["annotations"]["summary"], "h1:9100 down");
    assert_eq!(alert["status"]["state"], "active");
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with("http://fedwatch:9090/graph?g0.expr=up"),
        "{alert}"
    );
    assert_eq!(builtin.groups().len(), 1, "the built-in notifier got the same alert");
    assert!(
        !registry.render().contains("fedwatch_notifications_failed_total"),
        "{}",
        registry.render()
    );

    let amtool = Path::new("/usr/bin/amtool");
    if amtool.exists() {
        let out = Command::new(amtool)
            .args(["alert", "query", "-o", "simple", &format!("--alertmanager.url={base}")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("InstanceDown"),
            "amtool: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let groups = manager.rule_groups();
    let rule = &groups[0].rules[0];
    let RuleKind::Alerting(alerting) = &rule.kind else {
        panic!("the rule is an alerting rule: {rule:?}")
    };
    assert!(
        rule.last_error.is_empty() && rule.last_evaluation_ms > 0,
        "evaluated without error: {rule:?}"
    );
    assert_eq!(alerting.alerts.len(), 1, "{rule:?}");
    assert_eq!((alerting.alerts[0].state, alerting.alerts[0].value), (AlertStateInfo::Firing, 0.0));
    drop(_am);
    let _ = std::fs::remove_dir_all(&dir);
}
