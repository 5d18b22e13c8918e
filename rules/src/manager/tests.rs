use std::sync::Mutex as StdMutex;

use fedwatch_model::Matcher;
use fedwatch_tsdb::{MemStore, Querier, SelectHints};

use super::*;

#[derive(Default)]
struct Captured(StdMutex<Vec<(i64, Vec<PostableAlert>)>>);

impl AlertSender for Captured {
    fn send(&self, alerts: Vec<PostableAlert>, now_ms: i64) {
        self.0.lock().unwrap().push((now_ms, alerts));
    }
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().to_string()
}

fn up(store: &MemStore, t: i64, v: f64) {
    let labels = Labels::from_pairs([("__name__", "up"), ("job", "x"), ("instance", "a")]);
    store
        .append(&[TimeSeries {
            labels,
            samples: vec![Sample { t, v }],
        }])
        .unwrap();
}

fn setup(rules: &str) -> (tempdir::Dir, RuleManager, Arc<MemStore>, Arc<Captured>) {
    let dir = tempdir::Dir::new();
    let path = write(dir.path(), "a.rules.yml", rules);
    let store = Arc::new(MemStore::new());
    let sender = Arc::new(Captured::default());
    let opts = RuleManagerOptions {
        evaluation_interval: Duration::from_secs(10),
        resend_delay: Duration::from_secs(60),
        external_labels: Labels::from_pairs([("region", "eu")]),
        external_url: "http://fw:9090".into(),
        ..RuleManagerOptions::default()
    };
    let m = RuleManager::new(
        opts,
        Engine::new(store.clone()),
        Some(store.clone()),
        Some(sender.clone()),
        Registry::new(),
    );
    m.reload(&[path]).unwrap();
    (dir, m, store, sender)
}

mod tempdir {
    /// A directory under the system temp dir removed on drop.
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("fedwatch-rules-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const RULES: &str = r#"
groups:
- name: g
  rules:
  - record: job:up:sum
    expr: up * 2
    labels: {kind: recorded}
  - alert: Down
    expr: up{job="x"} == 0
    for: 20s
    labels: {severity: page}
    annotations: {summary: "{{ $labels.instance }} down"}
"#;

fn select(store: &MemStore, name: &str, t: i64) -> Vec<TimeSeries> {
    store
        .select(
            &[Matcher::equal("__name__", name)],
            SelectHints {
                start: 0,
                end: t,
                ..Default::default()
            },
        )
        .unwrap()
}

#[test]
fn evaluates_records_alerts_and_sends() {
    let (_dir, m, store, sent) = setup(RULES);
    const S: i64 = 1000;
    up(&store, 0, 0.0);
    m.eval_all_at(0);
    let rec = select(&store, "job:up:sum", 0);
    assert_eq!(rec[0].labels.to_string(), r#"job:up:sum{instance="a", job="x", kind="recorded"}"#);
    let active = m.active_alerts();
    assert_eq!((active.len(), active[0].state, active[0].active_at), (1, AlertState::Pending, 0));
    assert!(sent.0.lock().unwrap().is_empty(), "pending alerts are not sent");
    assert!(
        select(&store, "ALERTS", 0).is_empty(),
        "the first evaluation after startup writes no ALERTS until 'for' state is restored"
    );
    up(&store, 10 * S, 0.0);
    m.eval_all_at(10 * S);
    let alerts = select(&store, "ALERTS", 10 * S);
    assert_eq!(alerts[0].labels.get("alertstate"), Some("pending"));
    let for_state = select(&store, "ALERTS_FOR_STATE", 10 * S);
    assert_eq!(for_state[0].samples, vec![Sample { t: 10 * S, v: 0.0 }], "activeAt in seconds");

    up(&store, 20 * S, 0.0);
    m.eval_all_at(20 * S);
    assert_eq!(m.active_alerts()[0].state, AlertState::Firing);
    {
        let sent = sent.0.lock().unwrap();
        let (t, alerts) = &sent[0];
        assert_eq!(*t, 20 * S);
        let a = &alerts[0];
        assert_eq!(
            a.labels.to_string(),
            r#"{alertname="Down", instance="a", job="x", region="eu", severity="page"}"#
        );
        assert_eq!((a.starts_at, a.ends_at), (20 * S, 20 * S + 4 * 60 * S));
        assert_eq!(
            a.generator_url,
            "http://fw:9090/graph?g0.expr=up%7Bjob%3D%22x%22%7D+%3D%3D+0&g0.tab=1"
        );
        assert_eq!(a.annotations["summary"], "a down");
    }
    // ALERTS went from pending to firing: the pending series gets a staleness marker.
    let pending = store
        .select(
            &[Matcher::equal("alertstate", "pending")],
            SelectHints {
                start: 0,
                end: 20 * S,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(fedwatch_model::is_stale_nan(pending[0].samples.last().unwrap().v));

    up(&store, 30 * S, 1.0);
    m.eval_all_at(30 * S);
    assert!(m.active_alerts().is_empty());
    let sent = sent.0.lock().unwrap();
    let resolved = &sent[1].1[0];
    assert_eq!(resolved.ends_at, 30 * S, "resolved alerts carry their resolution time");
}

#[test]
fn reload_keeps_state_and_rejects_bad_files() {
    let (dir, m, store, _sent) = setup(RULES);
    up(&store, 0, 0.0);
    m.eval_all_at(0);
    assert_eq!(m.active_alerts()[0].active_at, 0);
    // Same rule with a changed annotation: state carries over.
    let changed = RULES.replace("down\"}", "is down\"}");
    let path = write(dir.path(), "a.rules.yml", &changed);
    m.reload(std::slice::from_ref(&path)).unwrap();
    assert_eq!(m.active_alerts()[0].active_at, 0, "alert state kept across reload");
    // A bad file rejects the reload; the old rules keep running.
    let bad = write(
        dir.path(),
        "b.rules.yml",
        "groups:\n- name: g2\n  rules:\n  - alert: X\n    expr: up ==\n",
    );
    let err = m
        .reload(&[format!("{}/*.rules.yml", dir.path().display())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("b.rules.yml:5:") && err.contains("could not parse expression"),
        "{err}"
    );
    assert_eq!(m.rule_groups().len(), 1);
    std::fs::remove_file(bad).unwrap();
    m.reload(&[format!("{}/*.rules.yml", dir.path().display())]).unwrap();
    assert_eq!(m.active_alerts().len(), 1);
}

#[test]
fn schedule_is_aligned_and_generator_urls_escape() {
    assert_eq!(next_eval(1_000, 10_000, 3_000), 3_000);
    assert_eq!(next_eval(3_000, 10_000, 3_000), 13_000);
    assert_eq!(next_eval(12_999, 10_000, 3_000), 13_000);
    assert_eq!(generator_url("http://p/", "a > 1"), "http://p/graph?g0.expr=a+%3E+1&g0.tab=1");
}

#[test]
fn for_state_survives_a_restart() {
    const M: i64 = 60_000;
    let rules = "groups:\n- name: g\n  interval: 1m\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 30m\n";
    let (dir, m, store, _) = setup(rules);
    for t in 0..=10 {
        up(&store, t * M, 0.0);
        m.eval_all_at(t * M);
    }
    assert_eq!(m.active_alerts()[0].active_at, 0);
    m.stop();
    drop(m);
    // Down from 10m to 15m; a new manager over the same store.
    let m = RuleManager::new(
        RuleManagerOptions::default(),
        Engine::new(store.clone()),
        Some(store.clone()),
        None,
        Registry::new(),
    );
    m.reload(&[dir.path().join("a.rules.yml").to_string_lossy().into_owned()]).unwrap();
    let mut states = Vec::new();
    for t in [15, 34, 35] {
        up(&store, t * M, 0.0);
        m.eval_all_at(t * M);
        let a = &m.active_alerts()[0];
        states.push((t, a.state, a.active_at / M));
    }
    // The 5 minutes down do not count as pending: fires at 35m instead of 30m.
    assert_eq!(
        states,
        vec![
            (15, AlertState::Pending, 5),
            (34, AlertState::Pending, 5),
            (35, AlertState::Firing, 5)
        ]
    );
}

#[test]
fn rule_groups_show_each_rule_with_its_state() {
    use fedwatch_server::sources::{AlertStateInfo, RuleKind};
    const S: i64 = 1000;
    let (_dir, m, store, _sent) = setup(RULES);
    let before = &m.rule_groups()[0];
    assert_eq!(
        (before.name.as_str(), before.interval, before.rules.len()),
        ("g", Duration::from_secs(10), 2)
    );
    assert_eq!(before.rules[0].last_evaluation_ms, 0, "never evaluated: health unknown");
    up(&store, 10 * S, 0.0);
    m.eval_all_at(10 * S);
    let g = &m.rule_groups()[0];
    assert_eq!(g.last_evaluation_ms, 10 * S);
    let RuleKind::Recording(rec) = &g.rules[0].kind else {
        panic!("{:?}", g.rules[0])
    };
    assert_eq!((rec.name.as_str(), rec.query.as_str()), ("job:up:sum", "up * 2"));
    assert_eq!(rec.labels.get("kind"), Some("recorded"));
    let RuleKind::Alerting(alert) = &g.rules[1].kind else {
        panic!("{:?}", g.rules[1])
    };
    assert_eq!((alert.name.as_str(), alert.duration), ("Down", Duration::from_secs(20)));
    assert_eq!(
        alert.annotations.get("summary").map(String::as_str),
        Some("{{ $labels.instance }} down")
    );
    assert_eq!(alert.alerts.len(), 1);
    assert_eq!(alert.alerts[0].state, AlertStateInfo::Pending);
    assert_eq!(alert.alerts[0].annotations.get("summary").map(String::as_str), Some("a down"));
    assert!(g.rules.iter().all(|r| r.last_error.is_empty() && r.last_evaluation_ms == 10 * S));
}
