//! The forwarder against real HTTP upstreams on loopback: our receiver, and a scripted
//! upstream that fails in chosen ways before accepting.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fedwatch_model::Labels;
use fedwatch_model::selfmetrics::Registry;
use fedwatch_tsdb::{Appender, MemStore};
use fedwatch_wire::forward::parse_retry_after;
use fedwatch_wire::{Forwarder, ForwarderConfig, ReceiverState, decode_write_request, write_router};

use crate::{bits, series, serve, stored};

fn fast_config(url: String) -> ForwarderConfig {
    let mut c = ForwarderConfig::new(url);
    c.batch_send_deadline = Duration::from_millis(20);
    c.min_backoff = Duration::from_millis(10);
    c.max_backoff = Duration::from_millis(40);
    c.timeout = Duration::from_secs(5);
    c
}

fn count(r: &Registry, name: &str, url: &str) -> u64 {
    r.counter(name, "", &[("url", url)]).get()
}

#[tokio::test]
async fn forwards_into_a_receiver_with_external_labels() {
    let store = Arc::new(MemStore::new());
    let addr = serve(write_router(ReceiverState::new(store.clone(), Registry::new()))).await;
    let registry = Registry::new();
    let mut cfg = fast_config(format!("http://{addr}/api/v1/write"));
    cfg.external_labels = Labels::from_pairs([("region", "eu-1"), ("cluster", "meta-a")]);
    cfg.max_samples_per_send = 3;
    let fwd = Forwarder::spawn(cfg, &registry).expect("spawn");

    // Two appends; the series with its own `cluster` keeps it. Five samples of one series
    // cross batch boundaries (3 per send) and must arrive in order.
    fwd.append(&[series(&[("__name__", "up"), ("job", "node")], &[(1, 1.0), (2, 1.0), (3, 0.0)])])
        .expect("append");
    fwd.append(&[
        series(&[("__name__", "up"), ("cluster", "tenant-7")], &[(1, 1.0)]),
        series(
            &[("__name__", "up"), ("job", "node")],
            &[(4, 1.0), (5, fedwatch_model::stale_nan())],
        ),
    ])
    .expect("append");
    fwd.flush(Duration::from_secs(5)).await.expect("flushed");

    let want = vec![
        series(
            &[("__name__", "up"), ("cluster", "meta-a"), ("job", "node"), ("region", "eu-1")],
            &[(1, 1.0), (2, 1.0), (3, 0.0), (4, 1.0), (5, fedwatch_model::stale_nan())],
        ),
        series(&[("__name__", "up"), ("cluster", "tenant-7"), ("region", "eu-1")], &[(1, 1.0)]),
    ];
    assert_eq!(bits(&stored(&store)), bits(&want));
    let url = fwd.url().to_string();
    assert_eq!(count(&registry, "fedwatch_forward_samples_sent_total", &url), 6);
    assert_eq!(count(&registry, "fedwatch_forward_samples_retried_total", &url), 0);
    assert_eq!(registry.gauge("fedwatch_forward_pending_samples", "", &[("url", &url)]).get(), 0.0);
    fwd.shutdown(Duration::from_secs(1)).await.expect("clean shutdown");
    assert!(
        fwd.append(&[series(&[("__name__", "late")], &[(1, 1.0)])]).is_err(),
        "append after shutdown"
    );
}

/// A scripted answer: status and extra response headers.
type Answer = (u16, Vec<(&'static str, String)>);

/// An upstream that answers from a script, then stores like a receiver.
#[derive(Clone, Default)]
struct Scripted {
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// (arrival time, request headers) of every request.
    requests: Arc<Mutex<Vec<(Instant, HeaderMap)>>>,
    store: Arc<MemStore>,
}

async fn scripted(State(s): State<Scripted>, headers: HeaderMap, body: Bytes) -> Response {
    s.requests.lock().expect("lock").push((Instant::now(), headers));
    let next = s.script.lock().expect("lock").pop_front();
    if let Some((code, headers)) = next {
        let mut resp = (StatusCode::from_u16(code).expect("status"), format!("scripted {code}")).into_response();
        for (k, v) in headers {
            resp.headers_mut().insert(k, v.parse().expect("header value"));
        }
        return resp;
    }
    match decode_write_request(&body) {
        Ok(series) => {
            s.store.append(&series).expect("memstore");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn scripted_upstream(script: Vec<Answer>) -> (Scripted, String) {
    let s = Scripted {
        script: Arc::new(Mutex::new(script.into())),
        ..Scripted::default()
    };
    let addr = serve(
        axum::Router::new()
            .route("/write", axum::routing::post(scripted))
            .with_state(s.clone()),
    )
    .await;
    (s, format!("http://{addr}/write"))
}

#[tokio::test]
async fn retries_5xx_then_delivers_once_with_the_right_headers() {
    // Two failures, then the upstream stores and answers 204.
    let (up, url) = scripted_upstream(vec![(500, vec![]), (503, vec![])]).await;
    let registry = Registry::new();
    let fwd = Forwarder::spawn(fast_config(url.clone()), &registry).expect("spawn");
    fwd.append(&[series(&[("__name__", "up")], &[(1, 1.0), (2, 2.0)])]).expect("append");
    fwd.flush(Duration::from_secs(5)).await.expect("flushed");

    assert_eq!(
        bits(&stored(&up.store)),
        bits(&[series(&[("__name__", "up")], &[(1, 1.0), (2, 2.0)])])
    );
    let requests = up.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 3, "two failures and one success");
    for (_, h) in &requests {
        let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert_eq!(get("content-encoding"), "snappy");
        assert_eq!(get("content-type"), "application/x-protobuf");
        assert_eq!(get("x-prometheus-remote-write-version"), "0.1.0");
        assert_eq!(get("user-agent"), format!("fedwatch/{}", env!("CARGO_PKG_VERSION")));
    }
    assert_eq!(count(&registry, "fedwatch_forward_samples_sent_total", &url), 2);
    assert_eq!(
        count(&registry, "fedwatch_forward_samples_retried_total", &url),
        4,
        "2 samples retried twice"
    );
    assert_eq!(count(&registry, "fedwatch_forward_samples_failed_total", &url), 0);
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let (up, url) = scripted_upstream(vec![(429, vec![("retry-after", "1".to_string())])]).await;
    let registry = Registry::new();
    let fwd = Forwarder::spawn(fast_config(url.clone()), &registry).expect("spawn");
    fwd.append(&[series(&[("__name__", "up")], &[(1, 1.0)])]).expect("append");
    fwd.flush(Duration::from_secs(5)).await.expect("flushed");
    let requests = up.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].0.duration_since(requests[0].0);
    // The backoff alone would wait 10 ms.
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}, Retry-After said 1s");
    assert_eq!(stored(&up.store).len(), 1);
    assert_eq!(count(&registry, "fedwatch_forward_samples_retried_total", &url), 1);
}

#[tokio::test]
async fn non_retryable_4xx_drops_the_batch_and_moves_on() {
    let (up, url) = scripted_upstream(vec![(400, vec![])]).await;
    let registry = Registry::new();
    let fwd = Forwarder::spawn(fast_config(url.clone()), &registry).expect("spawn");
    fwd.append(&[series(&[("__name__", "refused")], &[(1, 1.0), (2, 1.0), (3, 1.0)])])
        .expect("append");
    fwd.flush(Duration::from_secs(5)).await.expect("flushed");
    assert_eq!(up.requests.lock().expect("lock").len(), 1, "a 400 is not retried");
    assert_eq!(count(&registry, "fedwatch_forward_samples_failed_total", &url), 3);
    assert_eq!(count(&registry, "fedwatch_forward_samples_retried_total", &url), 0);
    assert_eq!(count(&registry, "fedwatch_forward_samples_sent_total", &url), 0);

    // The queue is not stuck behind the refused batch.
    fwd.append(&[series(&[("__name__", "next")], &[(4, 1.0)])]).expect("append");
    fwd.flush(Duration::from_secs(5)).await.expect("flushed");
    let names: Vec<_> = stored(&up.store).iter().map(|s| s.labels.to_string()).collect();
    assert_eq!(names, vec!["next{}"]);
}

#[tokio::test]
async fn full_queue_refuses_and_counts_and_shutdown_counts_the_rest() {
    // An address nothing listens on: every send is a connection error.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/api/v1/write", listener.local_addr().expect("addr"));
    drop(listener);
    let registry = Registry::new();
    let mut cfg = fast_config(url.clone());
    cfg.capacity = 5;
    let fwd = Forwarder::spawn(cfg, &registry).expect("spawn");

    fwd.append(&[series(&[("__name__", "a")], &[(1, 1.0), (2, 1.0), (3, 1.0)])])
        .expect("fits");
    let err = fwd
        .append(&[series(&[("__name__", "b")], &[(1, 1.0), (2, 1.0), (3, 1.0)])])
        .expect_err("queue full");
    assert!(err.to_string().contains("forward queue full: 3 of 5 samples pending"), "{err}");
    let dropped = |reason| {
        registry
            .counter("fedwatch_forward_dropped_total", "", &[("url", &url), ("reason", reason)])
            .get()
    };
    assert_eq!(dropped("queue_full"), 3);

    let flushed = fwd.shutdown(Duration::from_millis(300)).await;
    assert_eq!(flushed.expect_err("upstream is down").pending, 3);
    assert_eq!(dropped("shutdown"), 3);
    assert!(
        count(&registry, "fedwatch_forward_samples_retried_total", &url) >= 3,
        "connection errors are retried"
    );
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_sender() {
    let (up, url) = scripted_upstream(vec![]).await;
    let registry = Registry::new();
    let mut cfg = fast_config(url.clone());
    cfg.batch_send_deadline = Duration::from_secs(60);
    let fwd = Forwarder::spawn(cfg, &registry).expect("spawn");
    let clone = fwd.clone();
    fwd.append(&[series(&[("__name__", "a")], &[(1, 1.0)])]).expect("append");
    drop(fwd);
    clone
        .append(&[series(&[("__name__", "a")], &[(2, 1.0)])])
        .expect("a clone still feeds the queue");
    drop(clone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dropped = registry
        .counter("fedwatch_forward_dropped_total", "", &[("url", &url), ("reason", "shutdown")])
        .get();
    assert_eq!(dropped, 2);
    assert!(
        up.requests.lock().expect("lock").is_empty(),
        "nothing sent before the 60 s batch deadline"
    );
}

#[test]
fn retry_after_in_seconds_or_http_date() {
    let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let cases: Vec<(&str, Option<(u64, u64)>)> = vec![
        ("1", Some((1, 1))),
        (" 30 ", Some((30, 30))),
        ("Wed, 21 Oct 2015 07:28:00 GMT", Some((0, 0))),
        (&future, Some((118, 120))),
        ("soon", None),
        ("-1", None),
        ("", None),
    ];
    for (value, want) in cases {
        let got = parse_retry_after(value).map(|d| d.as_secs());
        match want {
            None => assert_eq!(got, None, "{value:?}"),
            Some((lo, hi)) => assert!(got.is_some_and(|g| (lo..=hi).contains(&g)), "{value:?}: {got:?}"),
        }
    }
}

#[tokio::test]
async fn invalid_configs_are_refused_with_the_field_named() {
    let registry = Registry::new();
    let mut zero_batch = ForwarderConfig::new("http://127.0.0.1:1/write");
    zero_batch.max_samples_per_send = 0;
    let mut backoffs = ForwarderConfig::new("http://127.0.0.1:1/write");
    backoffs.min_backoff = Duration::from_secs(10);
    let cases = [
        (ForwarderConfig::new("not a url"), "forwarder url \"not a url\""),
        (ForwarderConfig::new("ftp://x/write"), "scheme \"ftp\""),
        (zero_batch, "max_samples_per_send must be at least 1"),
        (backoffs, "min_backoff must not exceed max_backoff"),
    ];
    for (cfg, want) in cases {
        let err = Forwarder::spawn(cfg, &registry).err().expect("refused");
        assert!(err.to_string().contains(want), "{err}");
    }
}

fn relabel(action: fedwatch_config::Action, source: &[&str], regex: &str, target: &str) -> fedwatch_config::RelabelConfig {
    fedwatch_config::RelabelConfig {
        source_labels: source.iter().map(|s| s.to_string()).collect(),
        regex: fedwatch_config::RelabelRegex::new(regex).expect("regex"),
        target_label: target.into(),
        action,
        ..fedwatch_config::RelabelConfig::default()
    }
}

#[tokio::test]
async fn write_relabel_runs_after_external_labels_and_counts_drops() {
    use fedwatch_config::Action;
    let store = Arc::new(MemStore::new());
    let addr = serve(write_router(ReceiverState::new(store.clone(), Registry::new()))).await;
    let registry = Registry::new();
    let mut cfg = fast_config(format!("http://{addr}/api/v1/write"));
    cfg.external_labels = Labels::from_pairs([("region", "eu-1")]);
    cfg.write_relabel = vec![
        // Sees the external label: it was added first.
        relabel(Action::Replace, &["region"], "eu-(.*)", "zone"),
        relabel(Action::Drop, &["__name__"], "go_.*", ""),
        relabel(Action::LabelDrop, &[], "region", ""),
    ];
    let fwd = Forwarder::spawn(cfg, &registry).expect("spawn");
    fwd.append(&[
        series(&[("__name__", "up"), ("job", "node")], &[(1, 1.0)]),
        series(&[("__name__", "go_goroutines")], &[(1, 7.0), (2, 8.0)]),
    ])
    .expect("append");
    fwd.flush(Duration::from_secs(5)).await.expect("flushed");
    let want = vec![series(&[("__name__", "up"), ("job", "node"), ("zone", "1")], &[(1, 1.0)])];
    assert_eq!(bits(&stored(&store)), bits(&want));
    let url = fwd.url().to_string();
    assert_eq!(
        registry
            .counter("fedwatch_forward_dropped_total", "", &[("url", &url), ("reason", "write_relabel")])
            .get(),
        2
    );
    assert_eq!(count(&registry, "fedwatch_forward_relabel_dropped_series_total", &url), 1);
}

#[tokio::test]
async fn resolution_downsamples_and_shutdown_releases_what_is_held() {
    let store = Arc::new(MemStore::new());
    let addr = serve(write_router(ReceiverState::new(store.clone(), Registry::new()))).await;
    let registry = Registry::new();
    let mut cfg = fast_config(format!("http://{addr}/api/v1/write"));
    cfg.resolution = Some(Duration::from_secs(60));
    let fwd = Forwarder::spawn(cfg, &registry).expect("spawn");
    // Scrapes every 15 s over 3 minutes; the counter resets at 95 s.
    let counter: Vec<(i64, f64)> = (0..12)
        .map(|i| (i * 15_000, if i < 6 { i as f64 * 10.0 } else { (i - 6) as f64 }))
        .collect();
    let gauge: Vec<(i64, f64)> = (0..12).map(|i| (i * 15_000, (i % 5) as f64)).collect();
    for i in 0..12 {
        fwd.append(&[
            series(&[("__name__", "req_total")], &counter[i..=i]),
            series(&[("__name__", "temp")], &gauge[i..=i]),
        ])
        .expect("append");
    }
    fwd.shutdown(Duration::from_secs(5)).await.expect("clean shutdown");
    let got: Vec<(String, Vec<(i64, f64)>)> = stored(&store)
        .iter()
        .map(|s| (s.labels.to_string(), s.samples.iter().map(|x| (x.t, x.v)).collect()))
        .collect();
    // Counter: first, last of minute 0 (45 s), pre-reset (75 s) and post-reset (90 s), last of
    // minute 1 (105 s), last of minute 2 (165 s). Gauge: first and last of each minute.
    assert_eq!(
        got,
        [
            (
                "req_total{}".to_string(),
                vec![
                    (0, 0.0),
                    (45_000, 30.0),
                    (75_000, 50.0),
                    (90_000, 0.0),
                    (105_000, 1.0),
                    (165_000, 5.0)
                ]
            ),
            ("temp{}".to_string(), vec![(0, 0.0), (45_000, 3.0), (105_000, 2.0), (165_000, 1.0)]),
        ]
    );
    let url = fwd.url().to_string();
    assert_eq!(count(&registry, "fedwatch_forward_downsampled_away_samples_total", &url), 24 - 10);
}

/// A scratch directory removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let nanos = SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!("fedwatch-wire-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wal_db(dir: &std::path::Path) -> Arc<fedwatch_tsdb::Db> {
    let opts = fedwatch_tsdb::DbOptions {
        fsync: fedwatch_tsdb::FsyncPolicy::Never,
        wal_segment_size: 4096,
        block_duration: None,
        ..Default::default()
    };
    Arc::new(fedwatch_tsdb::Db::open(dir.join("data"), opts).expect("open db"))
}

fn wal_opts(dir: &std::path::Path) -> fedwatch_wire::forward::WalForwarderOptions {
    let mut o = fedwatch_wire::forward::WalForwarderOptions::new(dir.join("forward"));
    o.poll_interval = Duration::from_millis(10);
    o
}

/// Polls `cond` for up to 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn wal_forwarder_sends_what_the_store_logged_through_an_outage_and_a_restart() {
    use fedwatch_wire::forward::WalForwarder;
    let scratch = Scratch::new("walfwd");
    let db = wal_db(&scratch.0);
    // The upstream fails three times (an outage) before it stores.
    let (up, url) = scripted_upstream(vec![(503, vec![]), (500, vec![]), (503, vec![])]).await;
    let registry = Registry::new();
    let mut cfg = fast_config(url.clone());
    cfg.external_labels = Labels::from_pairs([("region", "eu-1")]);
    cfg.max_samples_per_send = 7;
    cfg.shards = 3;
    let fwd = WalForwarder::spawn(cfg.clone(), db.clone(), wal_opts(&scratch.0), &registry).expect("spawn");

    // 20 series × 30 samples over many small segments, plus one sample the store refuses
    // as out of order: it is not in the log, so it must not go upstream.
    for t in 0..30i64 {
        let batch: Vec<_> = (0..20)
            .map(|i| series(&[("__name__", "m"), ("i", &i.to_string())], &[(t * 1000, (t * i) as f64)]))
            .collect();
        db.append(&batch).expect("append");
    }
    db.append(&[series(&[("__name__", "m"), ("i", "0")], &[(500, 99.0)])])
        .expect("append");
    fwd.flush(Duration::from_secs(20)).await.expect("flushed");
    let got = stored(&up.store);
    assert_eq!(got.len(), 20);
    for ts in &got {
        assert_eq!(ts.labels.get("region"), Some("eu-1"));
        let times: Vec<i64> = ts.samples.iter().map(|s| s.t).collect();
        assert_eq!(times, (0..30).map(|t| t * 1000).collect::<Vec<_>>(), "{}", ts.labels);
    }
    assert_eq!(count(&registry, "fedwatch_forward_samples_sent_total", &url), 600);
    assert!(count(&registry, "fedwatch_forward_samples_retried_total", &url) > 0);
    fwd.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    drop(fwd);

    // Written while no forwarder runs; a new one resumes at the saved position.
    db.append(&[series(&[("__name__", "late")], &[(1, 1.0), (2, 2.0)])])
        .expect("append");
    let requests_before = up.requests.lock().expect("lock").len();
    let registry2 = Registry::new();
    let fwd = WalForwarder::spawn(cfg, db.clone(), wal_opts(&scratch.0), &registry2).expect("respawn");
    fwd.flush(Duration::from_secs(20)).await.expect("flushed");
    assert_eq!(
        count(&registry2, "fedwatch_forward_samples_sent_total", &url),
        2,
        "only what came after the position is sent again"
    );
    assert!(up.requests.lock().expect("lock").len() > requests_before);
    eventually("late series upstream", || stored(&up.store).len() == 21).await;
    fwd.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test]
async fn wal_forwarder_holds_the_log_while_the_upstream_is_down() {
    use fedwatch_wire::forward::WalForwarder;
    let scratch = Scratch::new("walhold");
    let db = wal_db(&scratch.0);
    // Nothing listens: every send fails until the test ends.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/api/v1/write", listener.local_addr().expect("addr"));
    drop(listener);
    let registry = Registry::new();
    let fwd = WalForwarder::spawn(fast_config(url.clone()), db.clone(), wal_opts(&scratch.0), &registry).expect("spawn");
    let first = db.wal_end().segment;
    for t in 0..200i64 {
        db.append(&[series(&[("__name__", "m")], &[(t, 1.0)])]).expect("append");
    }
    db.checkpoint().expect("checkpoint");
    let segments = fedwatch_tsdb::wal::list_segments(&db.wal_dir()).expect("list");
    assert_eq!(segments.first(), Some(&first), "the unsent segments stay: {segments:?}");
    let pending = || registry.gauge("fedwatch_forward_pending_samples", "", &[("url", &url)]).get();
    eventually("pending samples reported", || pending() >= 100.0).await;
    assert!(fwd.shutdown(Duration::from_millis(200)).await.is_err(), "upstream is down");
}

#[tokio::test]
async fn sends_remote_write_2_and_falls_back_when_the_upstream_is_1x() {
    use fedwatch_wire::WireProtocol;
    let data = || {
        vec![
            series(
                &[("__name__", "up"), ("job", "node")],
                &[(1, 1.0), (2, fedwatch_model::stale_nan())],
            ),
            series(&[("__name__", "temp_celsius"), ("room", "ünï")], &[(1, -3.5)]),
        ]
    };
    // (upstream, the version header of every request in order, fall-backs counted)
    // - our receiver speaks 2.0: every request is 2.0;
    // - a 1.x receiver that ignores Content-Type (the scripted one, like Prometheus 2.42)
    //   decodes the 2.0 body as an empty 1.0 request and answers 204 without written
    //   headers: the forwarder resends as 1.0 and stays on 1.0.
    for ours in [true, false] {
        let (store, url, scripted) = if ours {
            let store = Arc::new(MemStore::new());
            let addr = serve(write_router(ReceiverState::new(store.clone(), Registry::new()))).await;
            (store, format!("http://{addr}/api/v1/write"), None)
        } else {
            let (up, url) = scripted_upstream(vec![]).await;
            (up.store.clone(), url, Some(up))
        };
        let registry = Registry::new();
        let mut cfg = fast_config(url.clone());
        cfg.protocol = WireProtocol::from_message("io.prometheus.write.v2.Request").expect("known message");
        let fwd = Forwarder::spawn(cfg, &registry).expect("spawn");
        fwd.append(&data()).expect("append");
        fwd.flush(Duration::from_secs(10)).await.expect("flushed");
        fwd.append(&[series(&[("__name__", "up"), ("job", "node")], &[(3, 1.0)])])
            .expect("append");
        fwd.flush(Duration::from_secs(10)).await.expect("flushed");

        let mut want = data();
        want[0].samples.push(fedwatch_model::Sample { t: 3, v: 1.0 });
        want.sort_by(|a, b| a.labels.cmp(&b.labels));
        assert_eq!(bits(&stored(&store)), bits(&want), "ours={ours}");
        assert_eq!(count(&registry, "fedwatch_forward_samples_sent_total", &url), 4, "ours={ours}");
        let fallbacks = count(&registry, "fedwatch_forward_protocol_fallbacks_total", &url);
        if let Some(up) = scripted {
            let versions: Vec<String> = up
                .requests
                .lock()
                .expect("lock")
                .iter()
                .map(|(_, h)| {
                    h.get("x-prometheus-remote-write-version")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            assert_eq!(versions, ["2.0.0", "0.1.0", "0.1.0"]);
            assert_eq!(fallbacks, 1);
        } else {
            assert_eq!(fallbacks, 0);
        }
    }
    assert!(WireProtocol::from_message("prometheus.WriteRequest").is_ok());
    let err = WireProtocol::from_message("io.prometheus.write.v3.Request").expect_err("unknown message");
    assert!(
        err.contains("expected \"prometheus.WriteRequest\" or \"io.prometheus.write.v2.Request\""),
        "{err}"
    );
}
