//! Scrape loops against real HTTP targets on loopback, appending into a MemStore. Intervals
//! are 100ms; every wait polls the store for the expected state with a generous deadline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use fedwatch_config::discovery::{TargetGroup, static_groups};
use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::{Labels, Matcher, TimeSeries, is_stale_nan};
use fedwatch_scrape::{ACCEPT_HEADER, ScrapeManager, TargetStatus};
use fedwatch_tsdb::{Appender, Db, DbOptions, FsyncPolicy, MemStore, Querier, SelectHints};
use tokio::sync::watch;

/// What the fake target answers, and the headers of the last request it got.
#[derive(Clone)]
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

#[derive(Clone, Default)]
struct TargetState {
    reply: Arc<Mutex<Option<Reply>>>,
    last_headers: Arc<Mutex<Option<HeaderMap>>>,
}

impl TargetState {
    fn set(&self, status: u16, content_type: &str, body: &str) {
        *self.reply.lock().unwrap() = Some(Reply {
            status,
            content_type: content_type.into(),
            body: body.into(),
        });
    }
}

async fn metrics(State(state): State<TargetState>, headers: HeaderMap) -> (StatusCode, [(header::HeaderName, String); 1], String) {
    *state.last_headers.lock().unwrap() = Some(headers);
    let reply = state.reply.lock().unwrap().clone().expect("reply set");
    (
        StatusCode::from_u16(reply.status).unwrap(),
        [(header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
}

async fn serve(state: TargetState) -> SocketAddr {
    let app = Router::new().route("/metrics", get(metrics)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn config(job: &str, addr: &str, extra: &str) -> fedwatch_config::Config {
    let yaml = format!(
        "scrape_configs:\n- job_name: {job}\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\n  static_configs: [{{targets: ['{addr}']}}]\n{extra}"
    );
    fedwatch_config::parse(&yaml, "test.yml").unwrap_or_else(|e| panic!("{e}"))
}

fn select(store: &dyn Querier, matchers: &[Matcher]) -> Vec<TimeSeries> {
    store
        .select(
            matchers,
            SelectHints {
                start: i64::MIN,
                end: i64::MAX,
                ..Default::default()
            },
        )
        .unwrap()
}

fn name(n: &str) -> Matcher {
    Matcher::equal("__name__", n)
}

/// The last value of the single series matching `matchers`, if exactly one exists.
fn last(store: &dyn Querier, matchers: &[Matcher]) -> Option<f64> {
    let got = select(store, matchers);
    match got.as_slice() {
        [one] => one.samples.last().map(|s| s.v),
        _ => None,
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn labels(l: &Labels) -> Vec<(String, String)> {
    l.iter().map(|l| (l.name.clone(), l.value.clone())).collect()
}

fn manager<S: Appender + 'static>(store: &Arc<S>) -> (ScrapeManager, Registry) {
    let registry = Registry::new();
    (ScrapeManager::new(store.clone(), registry.clone()), registry)
}

/// A store for the loop to append to: the in-memory one (no series refs, so the loop appends
/// by labels) or the storage engine (refs), each with what a test needs to reach it.
trait Store: Appender + Querier + 'static {}
impl Store for MemStore {}
impl Store for Db {}

/// A storage engine in a scratch directory, removed on drop.
struct TempDb {
    db: Arc<Db>,
    dir: std::path::PathBuf,
}

impl TempDb {
    fn new(tag: &str, retention: Option<Duration>) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("fedwatch-scrape-{tag}-{}-{nanos}", std::process::id()));
        let opts = DbOptions {
            retention,
            fsync: FsyncPolicy::Never,
            block_duration: None,
            ..Default::default()
        };
        TempDb {
            db: Arc::new(Db::open(&dir, opts).unwrap()),
            dir,
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Both stores, each with the scratch directory it needs kept alive.
fn stores(tag: &str) -> Vec<(&'static str, Arc<dyn Store>, Option<TempDb>)> {
    let db = TempDb::new(tag, None);
    vec![("mem", Arc::new(MemStore::new()), None), ("db", db.db.clone(), Some(db))]
}

fn manager_for(store: &Arc<dyn Store>) -> (ScrapeManager, Registry) {
    let registry = Registry::new();
    (ScrapeManager::new(store.clone(), registry.clone()), registry)
}

/// How many stale markers the series matching `matchers` holds.
fn markers(store: &dyn Querier, matchers: &[Matcher]) -> usize {
    select(store, matchers)
        .iter()
        .flat_map(|s| &s.samples)
        .filter(|x| is_stale_nan(x.v))
        .count()
}

#[tokio::test]
async fn scrapes_with_target_labels_and_report_series() {
    let state = TargetState::default();
    state.set(
        200,
        TEXT,
        "# TYPE m counter\nm{a=\"1\",job=\"pushed\"} 5\nwith_ts 2 1000\n# TYPE dropped_metric gauge\ndropped_metric 1\n",
    );
    let addr = serve(state.clone()).await.to_string();
    let store = Arc::new(MemStore::new());
    let (mgr, registry) = manager(&store);
    let cfg = config(
        "j",
        &addr,
        "  metric_relabel_configs: [{source_labels: [__name__], regex: dropped_.*, action: drop}]\n",
    );
    mgr.apply(&cfg, &BTreeMap::new());

    wait_until("up == 1", || last(&*store, &[name("up")]) == Some(1.0)).await;
    let up = select(&*store, &[name("up")]);
    assert_eq!(
        labels(&up[0].labels),
        vec![
            ("__name__".into(), "up".into()),
            ("instance".into(), addr.clone()),
            ("job".into(), "j".into())
        ]
    );
    let m = select(&*store, &[name("m")]);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].labels.get("job"), Some("j"));
    assert_eq!(m[0].labels.get("exported_job"), Some("pushed"));
    assert_eq!(m[0].labels.get("instance"), Some(addr.as_str()));
    assert_eq!(m[0].samples[0].v, 5.0);
    // honor_timestamps (the default) keeps the exposed timestamp.
    let with_ts = select(&*store, &[name("with_ts")]);
    assert_eq!(with_ts[0].samples[0].t, 1000);
    assert!(select(&*store, &[name("dropped_metric")]).is_empty());

    assert_eq!(last(&*store, &[name("scrape_samples_scraped")]), Some(3.0));
    assert_eq!(last(&*store, &[name("scrape_samples_post_metric_relabeling")]), Some(2.0));
    let added = select(&*store, &[name("scrape_series_added")]);
    assert_eq!(added[0].samples[0].v, 2.0, "first scrape adds both series");
    wait_until("a second scrape", || {
        select(&*store, &[name("scrape_series_added")])[0].samples.len() >= 2
    })
    .await;
    assert_eq!(select(&*store, &[name("scrape_series_added")])[0].samples[1].v, 0.0);
    assert!(last(&*store, &[name("scrape_duration_seconds")]).unwrap() > 0.0);
    // The sample timestamp is the scrape time, shared by the report series.
    assert_eq!(m[0].samples[0].t, up[0].samples[0].t);

    let headers = state.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(headers.get("accept").unwrap(), ACCEPT_HEADER);
    assert_eq!(headers.get("x-prometheus-scrape-timeout-seconds").unwrap(), "0.1");

    let health = mgr.targets();
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].status, TargetStatus::Up);
    assert_eq!(health[0].target.url(), format!("http://{addr}/metrics"));

    let text = registry.render();
    assert!(text.contains("fedwatch_scrape_targets{job=\"j\"} 1\n"), "{text}");
    assert!(text.contains("fedwatch_scrapes_total{job=\"j\"}"), "{text}");
    assert!(text.contains("fedwatch_scrape_samples_total"), "{text}");
    mgr.stop().await;
}

#[tokio::test]
async fn honor_labels_and_honor_timestamps_false() {
    let state = TargetState::default();
    state.set(200, TEXT, "m{job=\"pushed\",instance=\"i\"} 1 1000\n");
    let addr = serve(state).await.to_string();
    let store = Arc::new(MemStore::new());
    let (mgr, _) = manager(&store);
    mgr.apply(
        &config("j", &addr, "  honor_labels: true\n  honor_timestamps: false\n"),
        &BTreeMap::new(),
    );
    wait_until("m scraped", || !select(&*store, &[name("m")]).is_empty()).await;
    let m = &select(&*store, &[name("m")])[0];
    assert_eq!(
        labels(&m.labels),
        vec![
            ("__name__".into(), "m".into()),
            ("instance".into(), "i".into()),
            ("job".into(), "pushed".into())
        ]
    );
    assert!(m.samples[0].t > 1000, "scrape time used, not the exposed timestamp");
    mgr.stop().await;
}

#[tokio::test]
async fn openmetrics_and_unknown_content_types() {
    let cases = [
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "# TYPE foo counter\nfoo_total 3\n# EOF\n",
            "foo_total",
        ),
        ("", "bar 4\n", "bar"),
        ("application/json", "baz 5\n", "baz"),
    ];
    for (content_type, body, metric) in cases {
        let state = TargetState::default();
        state.set(200, content_type, body);
        let addr = serve(state).await.to_string();
        let store = Arc::new(MemStore::new());
        let (mgr, _) = manager(&store);
        mgr.apply(&config("om", &addr, ""), &BTreeMap::new());
        wait_until(&format!("{metric} via {content_type:?}"), || last(&*store, &[name("up")]).is_some()).await;
        assert_eq!(last(&*store, &[name("up")]), Some(1.0), "{content_type:?}");
        assert!(last(&*store, &[name(metric)]).is_some(), "{content_type:?}");
        mgr.stop().await;
    }
}

#[tokio::test]
async fn failing_targets_report_up_zero_and_keep_going() {
    // A port that was open and is now closed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    // (job, reply (None: closed port), config lines, failure reason, scrape_samples_scraped)
    type Case<'a> = (&'a str, Option<(u16, &'a str)>, &'a str, &'a str, f64);
    let cases: [Case; 5] = [
        ("status", Some((500, "oops")), "", "http_status", 0.0),
        ("garbage", Some((200, "this is {not metrics\n")), "", "parse", 0.0),
        ("closed", None, "", "connect", 0.0),
        // Prometheus reports what was scraped even when a limit fails the scrape.
        ("limit", Some((200, "a 1\nb 2\nc 3\n")), "  sample_limit: 2\n", "sample_limit", 3.0),
        (
            "labels",
            Some((200, "a{x=\"1\",y=\"2\"} 1\n")),
            "  label_limit: 3\n",
            "label_limit",
            1.0,
        ),
    ];
    for ((job, reply, extra, reason, scraped), (kind, store, _dir)) in
        cases.into_iter().flat_map(|c| stores("fail").into_iter().map(move |s| (c, s)))
    {
        let job = &format!("{job}_{kind}");
        let addr = match reply {
            Some((status, body)) => {
                let state = TargetState::default();
                state.set(status, TEXT, body);
                serve(state).await.to_string()
            }
            None => closed.clone(),
        };
        let (mgr, registry) = manager_for(&store);
        mgr.apply(&config(job, &addr, extra), &BTreeMap::new());
        let store = &*store;
        wait_until(&format!("{job}: two failed scrapes"), || {
            select(store, &[name("up")]).first().is_some_and(|s| s.samples.len() >= 2)
        })
        .await;
        let up = &select(store, &[name("up")])[0];
        assert!(up.samples.iter().all(|s| s.v == 0.0), "{job}: {up:?}");
        assert_eq!(last(store, &[name("scrape_samples_post_metric_relabeling")]), Some(0.0), "{job}");
        assert_eq!(last(store, &[name("scrape_samples_scraped")]), Some(scraped), "{job}");
        assert!(select(store, &[name("a")]).is_empty(), "{job}: nothing appended on failure");
        let text = registry.render();
        let counter = format!("fedwatch_scrape_failures_total{{job=\"{job}\",reason=\"{reason}\"}}");
        assert!(text.contains(&counter), "{job}: {counter} missing from\n{text}");
        let health = mgr.targets();
        assert_eq!(health[0].status, TargetStatus::Down, "{job}");
        assert!(health[0].last_error.is_some(), "{job}");
        mgr.stop().await;
    }
}

#[tokio::test]
async fn vanished_series_get_stale_markers() {
    for (kind, store, _dir) in stores("vanished") {
        let state = TargetState::default();
        state.set(200, TEXT, "a 1\nb 2\n");
        let addr = serve(state.clone()).await.to_string();
        let (mgr, _) = manager_for(&store);
        let store = &*store;
        mgr.apply(&config("j", &addr, ""), &BTreeMap::new());
        wait_until("a and b", || last(store, &[name("b")]) == Some(2.0)).await;

        state.set(200, TEXT, "a 1\n");
        wait_until("b stale", || last(store, &[name("b")]).is_some_and(is_stale_nan)).await;
        let a = select(store, &[name("a")]);
        assert!(a[0].samples.iter().all(|s| s.v == 1.0), "{kind}");

        // A failed scrape marks everything stale; recovery brings values back.
        state.set(500, TEXT, "");
        wait_until("a stale after failure", || last(store, &[name("a")]).is_some_and(is_stale_nan)).await;
        state.set(200, TEXT, "a 7\n");
        wait_until("a back", || last(store, &[name("a")]) == Some(7.0)).await;
        assert_eq!(markers(store, &[name("a")]), 1, "{kind}");
        assert_eq!(markers(store, &[name("b")]), 1, "{kind}");
        mgr.stop().await;
    }
}

#[tokio::test]
async fn removed_target_gets_stale_markers_for_all_series() {
    let state = TargetState::default();
    state.set(200, TEXT, "a 1\n");
    let addr = serve(state).await.to_string();
    let store = Arc::new(MemStore::new());
    let (mgr, registry) = manager(&store);
    let cfg = config("j", &addr, "");
    let (tx, rx) = watch::channel(static_groups(&cfg.scrape_configs[0]));
    mgr.apply(&cfg, &BTreeMap::from([("j".to_string(), rx)]));
    wait_until("up", || last(&*store, &[name("up")]) == Some(1.0)).await;

    tx.send_replace(Vec::<TargetGroup>::new());
    for metric in [
        "a",
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_series_added",
    ] {
        wait_until(&format!("{metric} stale"), || {
            last(&*store, &[name(metric)]).is_some_and(is_stale_nan)
        })
        .await;
    }
    wait_until("targets gauge 0", || {
        registry.render().contains("fedwatch_scrape_targets{job=\"j\"} 0\n")
    })
    .await;
    assert!(mgr.targets().is_empty());
    mgr.stop().await;
}

#[tokio::test]
async fn reload_restarts_changed_jobs_and_stops_removed_ones() {
    let state = TargetState::default();
    state.set(200, TEXT, "a 1\n");
    let addr = serve(state).await.to_string();
    let store = Arc::new(MemStore::new());
    let (mgr, _) = manager(&store);
    let mut cfg = config("j", &addr, "");
    let mut second = config("k", &addr, "").scrape_configs.remove(0);
    second.static_configs[0].labels.insert("zone".into(), "z1".into());
    cfg.scrape_configs.push(second);
    mgr.apply(&cfg, &BTreeMap::new());
    wait_until("both jobs up", || select(&*store, &[name("up")]).len() == 2).await;

    // Job j changes its target labels; job k goes away.
    let mut next = config("j", &addr, "");
    next.scrape_configs[0].static_configs[0].labels.insert("env".into(), "prod".into());
    mgr.apply(&next, &BTreeMap::new());
    let new_up = [name("up"), Matcher::equal("env", "prod")];
    wait_until("new target up", || last(&*store, &new_up) == Some(1.0)).await;
    let old_up = [name("up"), Matcher::equal("job", "j"), Matcher::equal("env", "")];
    wait_until("old target stale", || last(&*store, &old_up).is_some_and(is_stale_nan)).await;
    let k_up = [name("up"), Matcher::equal("job", "k")];
    wait_until("removed job stale", || last(&*store, &k_up).is_some_and(is_stale_nan)).await;
    assert_eq!(mgr.targets().len(), 1);

    // An unchanged reload keeps the loop (no stale marker on the running target).
    mgr.apply(&next, &BTreeMap::new());
    let before = select(&*store, &new_up)[0].samples.len();
    wait_until("more scrapes", || select(&*store, &new_up)[0].samples.len() >= before + 2).await;
    assert!(!select(&*store, &new_up)[0].samples.iter().any(|s| is_stale_nan(s.v)));

    // After stop nothing more is appended and no markers are written.
    mgr.stop().await;
    let count = select(&*store, &new_up)[0].samples.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = &select(&*store, &new_up)[0];
    assert_eq!(after.samples.len(), count);
    assert!(!is_stale_nan(after.samples.last().unwrap().v));
}

#[tokio::test]
async fn target_limit_fails_every_target_of_the_job() {
    let state = TargetState::default();
    state.set(200, TEXT, "a 1\n");
    let addr = serve(state).await;
    let store = Arc::new(MemStore::new());
    let (mgr, registry) = manager(&store);
    let two = format!("{addr}', 'localhost:{}", addr.port());
    let cfg = config("j", &two, "  target_limit: 1\n");
    mgr.apply(&cfg, &BTreeMap::new());
    wait_until("both targets report twice", || {
        let up = select(&*store, &[name("up")]);
        up.len() == 2 && up.iter().all(|s| s.samples.len() >= 2)
    })
    .await;
    assert!(select(&*store, &[name("up")]).iter().all(|s| s.samples.iter().all(|x| x.v == 0.0)));
    assert!(registry.render().contains("reason=\"target_limit\""));
    assert!(
        mgr.targets()
            .iter()
            .all(|t| t.last_error.as_deref() == Some("target_limit exceeded (number of targets: 2, limit: 1)"))
    );
    mgr.stop().await;
}

/// Waits for `n` more scrapes of the single `up` series.
async fn scrapes(store: &dyn Querier, n: usize) {
    let before = select(store, &[name("up")]).first().map_or(0, |s| s.samples.len());
    wait_until(&format!("{n} more scrapes"), || {
        select(store, &[name("up")]).first().is_some_and(|s| s.samples.len() >= before + n)
    })
    .await;
}

#[tokio::test]
async fn cache_keeps_staleness_per_series_not_per_line() {
    for (kind, store, _dir) in stores("cache-stale") {
        let state = TargetState::default();
        // Two lines of one series (the same labels written in two orders): one series,
        // the second line a duplicate.
        state.set(200, TEXT, "a{x=\"1\",y=\"2\"} 1\nb 1\ndrop_me 1\n");
        let addr = serve(state.clone()).await.to_string();
        let (mgr, _) = manager_for(&store);
        let store = &*store;
        let extra = "  metric_relabel_configs: [{source_labels: [__name__], regex: drop_me, action: drop}]\n";
        mgr.apply(&config("j", &addr, extra), &BTreeMap::new());
        wait_until("a", || last(store, &[name("a")]) == Some(1.0)).await;
        assert_eq!(last(store, &[name("scrape_series_added")]), Some(2.0), "{kind}");

        // The line text changes, the series does not: no marker, nothing added.
        state.set(200, TEXT, "a{y=\"2\",x=\"1\"} 2\nb 1\n");
        wait_until("a from the new line", || last(store, &[name("a")]) == Some(2.0)).await;
        scrapes(store, 2).await;
        assert_eq!(markers(store, &[name("a")]), 0, "{kind}");
        assert_eq!(last(store, &[name("scrape_series_added")]), Some(0.0), "{kind}");

        // Both lines at once, then one of them goes: still no marker.
        state.set(200, TEXT, "a{y=\"2\",x=\"1\"} 3\na{x=\"1\",y=\"2\"} 3\nb 1\n");
        wait_until("a 3", || last(store, &[name("a")]) == Some(3.0)).await;
        state.set(200, TEXT, "a{x=\"1\",y=\"2\"} 3\nb 1\n");
        scrapes(store, 3).await;
        assert_eq!(markers(store, &[name("a")]), 0, "{kind}");

        // The series goes: exactly one marker however many scrapes follow.
        state.set(200, TEXT, "b 1\n");
        wait_until("a stale", || last(store, &[name("a")]).is_some_and(is_stale_nan)).await;
        scrapes(store, 3).await;
        assert_eq!(markers(store, &[name("a")]), 1, "{kind}");

        // A dropped line and a stale series come back: the dropped one stays out, the
        // other is counted as added again and gets its value.
        state.set(200, TEXT, "b 1\ndrop_me 2\na{x=\"1\",y=\"2\"} 4\n");
        wait_until("a back", || last(store, &[name("a")]) == Some(4.0)).await;
        assert!(select(store, &[name("drop_me")]).is_empty(), "{kind}");
        assert_eq!(last(store, &[name("scrape_series_added")]), Some(1.0), "{kind}");
        assert_eq!(last(store, &[name("scrape_samples_post_metric_relabeling")]), Some(2.0), "{kind}");
        assert_eq!(markers(store, &[name("b")]), 0, "{kind}");
        mgr.stop().await;
    }
}

#[tokio::test]
async fn refs_dropped_by_head_retention_are_resolved_again() {
    let tmp = TempDb::new("cache-retention", Some(Duration::from_secs(3600)));
    let db = tmp.db.clone();
    let state = TargetState::default();
    state.set(200, TEXT, "a 1\n");
    let addr = serve(state.clone()).await.to_string();
    let (mgr, _) = manager(&db);
    mgr.apply(&config("j", &addr, ""), &BTreeMap::new());
    wait_until("a", || last(&*db, &[name("a")]) == Some(1.0)).await;
    scrapes(&*db, 1).await;

    // A sample two hours ahead moves the retention cut past everything the loop appended,
    // so the head drops those series and the loop's refs with them.
    let future = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 2 * 3600 * 1000;
    let far = Labels::from_pairs([("__name__", "far")]);
    db.append(&[TimeSeries {
        labels: far,
        samples: vec![fedwatch_model::Sample { t: future, v: 1.0 }],
    }])
    .unwrap();
    wait_until("a and up dropped", || db.stats().series_removed >= 2).await;
    state.set(200, TEXT, "a 2\n");
    wait_until("a appended again", || last(&*db, &[name("a")]) == Some(2.0)).await;
    wait_until("up appended again", || last(&*db, &[name("up")]) == Some(1.0)).await;
    mgr.stop().await;
}

#[tokio::test]
async fn reload_hands_staleness_to_the_new_loop() {
    for (kind, store, _dir) in stores("cache-reload") {
        let state = TargetState::default();
        state.set(200, TEXT, "a 1\nb 2\n");
        let addr = serve(state.clone()).await.to_string();
        let (mgr, _) = manager_for(&store);
        let store = &*store;
        mgr.apply(&config("j", &addr, ""), &BTreeMap::new());
        wait_until("a and b", || last(store, &[name("b")]) == Some(2.0)).await;

        // The new config drops b: the new loop marks it stale once, a never.
        let extra = "  metric_relabel_configs: [{source_labels: [__name__], regex: b, action: drop}]\n";
        mgr.apply(&config("j", &addr, extra), &BTreeMap::new());
        wait_until("b stale", || last(store, &[name("b")]).is_some_and(is_stale_nan)).await;
        scrapes(store, 3).await;
        assert_eq!(markers(store, &[name("b")]), 1, "{kind}");
        assert_eq!(markers(store, &[name("a")]), 0, "{kind}");
        assert_eq!(last(store, &[name("scrape_series_added")]), Some(0.0), "{kind}");
        mgr.stop().await;
    }
}
