//! The receiver's limits, ingestion budget and HA dedupe over real HTTP.

use std::sync::Arc;
use std::time::Duration;

use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::{Labels, TimeSeries};
use fedwatch_tsdb::{AppendError, AppendStats, Appender, MemStore};
use fedwatch_wire::dedupe::{HaConfig, HaTracker};
use fedwatch_wire::limits::{IngestBudget, IngestLimits};
use fedwatch_wire::{ManualClock, ReceiverState, encode_write_request, write_router};

use crate::{series, serve, stored};

async fn post(addr: std::net::SocketAddr, body: &[TimeSeries]) -> (u16, Option<String>, String) {
    let resp = fedwatch_config::http::client()
        .post(format!("http://{addr}/api/v1/write"))
        .body(encode_write_request(body))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, retry_after, resp.text().await.expect("body"))
}

fn names(store: &MemStore) -> Vec<String> {
    stored(store).iter().map(|s| s.labels.to_string()).collect()
}

#[tokio::test]
async fn limits_refuse_with_400_naming_the_series() {
    let limits = IngestLimits {
        max_series_per_request: 3,
        max_samples_per_request: 4,
        max_labels_per_series: 3,
        max_label_name_length: 10,
        max_label_value_length: 10,
        validate_names: true,
    };
    let ok = || series(&[("__name__", "ok")], &[(1, 1.0)]);
    struct Case {
        name: &'static str,
        body: Vec<TimeSeries>,
        status: u16,
        message: &'static str,
        stored: &'static [&'static str],
    }
    let cases = vec![
        Case {
            name: "within limits",
            body: vec![ok(), series(&[("__name__", "job:up:sum"), ("job", "a")], &[(1, 1.0)])],
            status: 204,
            message: "",
            stored: &["job:up:sum{job=\"a\"}", "ok{}"],
        },
        Case {
            name: "too many series",
            body: vec![ok(), ok(), ok(), ok()],
            status: 400,
            message: "request has 4 series, more than max_series_per_request=3 (first series ok{})",
            stored: &[],
        },
        Case {
            name: "too many samples",
            body: vec![series(&[("__name__", "many")], &[(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 1.0)])],
            status: 400,
            message: "request has 5 samples, more than max_samples_per_request=4 (first series many{})",
            stored: &[],
        },
        Case {
            name: "too many labels: that series only",
            body: vec![
                ok(),
                series(&[("__name__", "wide"), ("a", "1"), ("b", "2"), ("c", "3")], &[(1, 1.0)]),
            ],
            status: 400,
            message: r#"invalid labels for series wide{a="1", b="2", c="3"} (timeseries[1]): 4 labels, more than the limit of 3"#,
            stored: &["ok{}"],
        },
        Case {
            name: "long name",
            body: vec![series(&[("__name__", "n"), ("abcdefghijk", "1")], &[(1, 1.0)]), ok()],
            status: 400,
            message: r#"(timeseries[0]): label name "abcdefghijk" is longer than the limit of 10"#,
            stored: &["ok{}"],
        },
        Case {
            name: "long value",
            body: vec![series(&[("__name__", "v"), ("pod", "12345678901")], &[(1, 1.0)])],
            status: 400,
            message: r#"invalid labels for series v{pod="12345678901"} (timeseries[0]): value of label "pod" is 11 bytes, more than the limit of 10"#,
            stored: &[],
        },
        Case {
            name: "invalid label name",
            body: vec![ok(), series(&[("__name__", "x"), ("a.b", "1")], &[(1, 1.0)])],
            status: 400,
            message: r#"(timeseries[1]): invalid label name "a.b", expected [a-zA-Z_][a-zA-Z0-9_]*"#,
            stored: &["ok{}"],
        },
        Case {
            name: "invalid metric name",
            body: vec![series(&[("__name__", "http.req")], &[(1, 1.0)])],
            status: 400,
            message: r#"invalid metric name "http.req", expected [a-zA-Z_:][a-zA-Z0-9_:]*"#,
            stored: &[],
        },
    ];
    for case in cases {
        let store = Arc::new(MemStore::new());
        let mut state = ReceiverState::new(store.clone(), Registry::new());
        state.limits = limits.clone();
        let addr = serve(write_router(state)).await;
        let (status, _, text) = post(addr, &case.body).await;
        assert_eq!(status, case.status, "{}: {text}", case.name);
        assert!(text.contains(case.message), "{}: {text:?} lacks {:?}", case.name, case.message);
        assert_eq!(names(&store), case.stored, "{}", case.name);
    }
}

/// A store with its own label limit: refuses any batch holding a series with `bad="1"`.
struct PickyStore(MemStore);

impl Appender for PickyStore {
    fn append(&self, batch: &[TimeSeries]) -> Result<AppendStats, AppendError> {
        if let Some(bad) = batch.iter().find(|s| s.labels.get("bad").is_some()) {
            return Err(AppendError::LabelLimit {
                series: bad.labels.to_string(),
                reason: "value of label \"bad\" is too long".into(),
            });
        }
        self.0.append(batch)
    }
}

#[tokio::test]
async fn store_label_limit_is_400_and_the_other_series_are_kept() {
    let store = Arc::new(PickyStore(MemStore::new()));
    let registry = Registry::new();
    let addr = serve(write_router(ReceiverState::new(store.clone(), registry.clone()))).await;
    let body = vec![
        series(&[("__name__", "a")], &[(1, 1.0)]),
        series(&[("__name__", "b"), ("bad", "1")], &[(1, 1.0), (2, 2.0)]),
        series(&[("__name__", "c"), ("bad", "1")], &[(1, 1.0)]),
        series(&[("__name__", "d")], &[(1, 1.0)]),
    ];
    let (status, _, text) = post(addr, &body).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains(r#"invalid labels for series b{bad="1"} (refused by storage): value of label "bad" is too long"#),
        "{text}"
    );
    assert!(text.contains(r#"c{bad="1"}"#), "{text}");
    assert_eq!(names(&store.0), ["a{}", "d{}"]);
    assert_eq!(registry.counter("fedwatch_receiver_samples_total", "", &[]).get(), 2);
    assert_eq!(registry.counter("fedwatch_receiver_invalid_labels_samples_total", "", &[]).get(), 3);
}

#[tokio::test]
async fn over_budget_is_429_with_retry_after() {
    let clock = ManualClock::new(0);
    let store = Arc::new(MemStore::new());
    let registry = Registry::new();
    let mut state = ReceiverState::new(store.clone(), registry.clone());
    state.budget = Some(IngestBudget::new(10.0, 20.0, clock.clock()).expect("budget"));
    let addr = serve(write_router(state)).await;
    let batch = |name: &str, n: i64| series(&[("__name__", name)], &(0..n).map(|t| (t, 1.0)).collect::<Vec<_>>());

    assert_eq!(post(addr, &[batch("first", 15)]).await.0, 204);
    let (status, retry_after, text) = post(addr, &[batch("second", 15)]).await;
    assert_eq!(status, 429, "{text}");
    assert_eq!(retry_after.as_deref(), Some("1"), "10 samples short at 10/s");
    assert!(
        text.contains("ingestion budget of 10 samples/s (burst 20) exceeded: request of 15 samples refused"),
        "{text}"
    );
    clock.advance(1_000);
    assert_eq!(post(addr, &[batch("second", 15)]).await.0, 204, "the retry is admitted");
    assert_eq!(names(&store), ["first{}", "second{}"]);
    assert_eq!(
        registry
            .counter("fedwatch_receiver_rejected_requests_total", "", &[("reason", "over_budget")])
            .get(),
        1
    );
}

#[tokio::test]
async fn ha_keeps_one_replica_per_cluster_and_fails_over() {
    let clock = ManualClock::new(1_000_000);
    let store = Arc::new(MemStore::new());
    let registry = Registry::new();
    let mut state = ReceiverState::new(store.clone(), registry.clone());
    let cfg = HaConfig {
        failover_timeout: Duration::from_secs(30),
        ..HaConfig::default()
    };
    state.ha = Some(HaTracker::new(cfg, clock.clock()));
    let addr = serve(write_router(state)).await;
    let from = |replica: &str, t: i64| {
        vec![series(
            &[
                ("__name__", "up"),
                ("cluster", "meta-01"),
                ("__replica__", replica),
                ("job", "node"),
            ],
            &[(t, if replica == "a" { 1.0 } else { 2.0 })],
        )]
    };
    // (advance seconds, replica, sample time, expected status)
    let steps: &[(i64, &str, i64, u16)] = &[
        (0, "a", 1000, 204),
        (0, "b", 1000, 202), // deduplicated: accepted, nothing stored
        (10, "a", 2000, 204),
        (10, "b", 2000, 202),
        (31, "b", 3000, 204), // a silent for 31 s: b takes over
        (1, "a", 4000, 202),  // a is back but is the standby now
    ];
    for (i, &(adv, replica, t, want)) in steps.iter().enumerate() {
        clock.advance(adv * 1000);
        let (status, _, text) = post(addr, &from(replica, t)).await;
        assert_eq!(status, want, "step {i}: {replica} at {t}: {text}");
    }
    let got = stored(&store);
    assert_eq!(got.len(), 1, "one series, replica label dropped: {got:?}");
    assert_eq!(
        got[0].labels,
        Labels::from_pairs([("__name__", "up"), ("cluster", "meta-01"), ("job", "node")])
    );
    let samples: Vec<(i64, f64)> = got[0].samples.iter().map(|s| (s.t, s.v)).collect();
    assert_eq!(samples, [(1000, 1.0), (2000, 1.0), (3000, 2.0)]);
    assert_eq!(
        registry.counter("fedwatch_receiver_ha_deduplicated_samples_total", "", &[]).get(),
        3
    );
    assert_eq!(registry.counter("fedwatch_receiver_ha_failovers_total", "", &[]).get(), 1);
}
