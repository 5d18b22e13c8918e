//! The API driven in-process through the router, as a client would call it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fedwatch_model::Matcher;
use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::textparse::{Format, parse_samples};
use fedwatch_model::{Labels, Sample, TimeSeries};
use fedwatch_promql::Engine;
use fedwatch_server::sources::{
    AlertInfo, AlertStateInfo, AlertingRuleInfo, ConfigStatus, HeadInfo, HeadInfoSource, RecordingRuleInfo, ReloadHook, RuleGroupInfo,
    RuleInfo, RuleKind, RulesSource, TargetHealthState, TargetInfo, TargetsSource,
};
use fedwatch_server::{ApiState, BuildInfo, router};
use fedwatch_tsdb::{Appender, MemStore, Querier, SelectError, SelectHints};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn mk(name: &str, pairs: &[(&str, &str)], pts: &[(i64, f64)]) -> TimeSeries {
    let mut l = vec![("__name__", name)];
    l.extend_from_slice(pairs);
    TimeSeries {
        labels: Labels::from_pairs(l),
        samples: pts.iter().map(|&(t, v)| Sample { t, v }).collect(),
    }
}

fn state_over(store: Arc<MemStore>) -> ApiState {
    let registry = Registry::new();
    registry.counter("fedwatch_test_total", "A test counter.", &[]).inc();
    ApiState::new(
        "central",
        Engine::new(store.clone()),
        store,
        registry,
        Arc::new(AtomicBool::new(true)),
        BuildInfo {
            version: "0.1.0".into(),
            revision: "test".into(),
        },
    )
}

fn test_store() -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    store
        .append(&[
            mk(
                "up",
                &[("job", "node"), ("instance", "a:9100")],
                &[(1_000_000, 1.0), (1_015_000, 1.0)],
            ),
            mk(
                "up",
                &[("job", "etcd"), ("instance", "b:2379")],
                &[(1_000_000, 0.0), (1_015_000, f64::INFINITY)],
            ),
            // Only at t=1s, far before the others: start/end restrictions leave it out.
            mk("old", &[("env", "x")], &[(1_000, 5.0)]),
        ])
        .unwrap();
    store
}

fn test_state() -> ApiState {
    let flags = BTreeMap::from([("web.listen-address".to_string(), ":9090".to_string())]);
    state_over(test_store())
        .with_flags(flags)
        .with_config(ConfigStatus::loaded("global: {}\n", 1_700_000_000_000))
        .with_retention("15d")
}

fn app() -> axum::Router {
    router(test_state())
}

async fn call(req: Request<Body>) -> (StatusCode, String) {
    call_on(app(), req).await
}

async fn call_on(app: axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(uri: &str) -> (StatusCode, String) {
    call(Request::get(uri).body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn responses_have_prometheus_shapes() {
    let cases: &[(&str, u16, &str)] = &[
        (
            "/api/v1/query?query=up%7Bjob%3D%22node%22%7D&time=1015",
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a:9100","job":"node"},"value":[1015,"1"]}]}}"#,
        ),
        (
            "/api/v1/query?query=up%7Bjob%21~%22no.*%22%7D&time=1015.5",
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"b:2379","job":"etcd"},"value":[1015.5,"+Inf"]}]}}"#,
        ),
        (
            "/api/v1/query?query=1%2B1&time=1970-01-01T00:16:40Z",
            200,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1000,"2"]}}"#,
        ),
        (
            "/api/v1/query?query=up%7B&time=1015",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"#,
        ),
        (
            "/api/v1/query?query=up&time=yesterday",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"time\": invalid time value for 'time': cannot parse \"yesterday\" to a valid timestamp"}"#,
        ),
        (
            "/api/v1/query_range?query=up%7Bjob%3D%22node%22%7D&start=1000&end=1015&step=15",
            200,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"a:9100","job":"node"},"values":[[1000,"1"],[1015,"1"]]}]}}"#,
        ),
        (
            "/api/v1/query_range?query=up&start=1000&end=900&step=15",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"end\": end timestamp must not be before start time"}"#,
        ),
        (
            "/api/v1/query_range?query=up&start=1000&end=1100&step=0",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"}"#,
        ),
        (
            "/api/v1/labels",
            200,
            r#"{"status":"success","data":["__name__","env","instance","job"]}"#,
        ),
        ("/api/v1/label/job/values", 200, r#"{"status":"success","data":["etcd","node"]}"#),
        (
            "/api/v1/label/job/values?match[]=up%7Binstance%3D%22a%3A9100%22%7D",
            200,
            r#"{"status":"success","data":["node"]}"#,
        ),
        (
            "/api/v1/series?match[]=up%7Bjob%3D%22etcd%22%7D",
            200,
            r#"{"status":"success","data":[{"__name__":"up","instance":"b:2379","job":"etcd"}]}"#,
        ),
        (
            "/api/v1/series",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}"#,
        ),
        // Query errors and limits.
        (
            "/api/v1/query?query=up%7B&time=1015",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": "#,
        ),
        (
            "/api/v1/query?query=up&timeout=soon",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration"}"#,
        ),
        (
            "/api/v1/query?query=up&time=1015&timeout=0",
            503,
            r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=1000&step=1s&timeout=0",
            503,
            r#"{"status":"error","errorType":"timeout","error":"query timed out"#,
        ),
        (
            "/api/v1/query?query=up&time=1015&limit=1",
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a:9100","job":"node"},"value":[1015,"1"]}]},"warnings":["results truncated due to limit"]}"#,
        ),
        (
            "/api/v1/query?query=rate(up%7Bjob%3D%22node%22%7D%5B5m%5D)&time=1015",
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"a:9100","job":"node"},"value":[1015,"0"]}]},"infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"up\""]}"#,
        ),
        (
            "/api/v1/query?query=up&limit=-1",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\": limit must be non-negative"}"#,
        ),
        (
            "/api/v1/query?query=up&limit=ten",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\": strconv.Atoi: parsing \"ten\": invalid syntax"}"#,
        ),
        (
            "/api/v1/query_range?query=up&end=1000&step=15",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": cannot parse \"\" to a valid timestamp"}"#,
        ),
        (
            "/api/v1/query_range?query=up&start=1000&end=x&step=15",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"end\": cannot parse \"x\" to a valid timestamp"}"#,
        ),
        (
            "/api/v1/query_range?query=up&start=1000&end=2000",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": cannot parse \"\" to a valid duration"}"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=11001&step=1",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}"#,
        ),
        (
            "/api/v1/query_range?query=missing&start=0&end=11000&step=1&timeout=1m",
            200,
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
        ),
        (
            "/api/v1/query_range?query=up%5B5m%5D&start=0&end=10&step=1",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": invalid expression type"#,
        ),
        // Labels and series: time windows, limits, matcher checks.
        (
            "/api/v1/labels?start=900&end=1100",
            200,
            r#"{"status":"success","data":["__name__","instance","job"]}"#,
        ),
        ("/api/v1/labels?end=2", 200, r#"{"status":"success","data":["__name__","env"]}"#),
        (
            "/api/v1/labels?limit=2",
            200,
            r#"{"status":"success","data":["__name__","env"],"warnings":["results truncated due to limit"]}"#,
        ),
        (
            "/api/v1/labels?start=soon",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": invalid time value for 'start': cannot parse \"soon\" to a valid timestamp"}"#,
        ),
        (
            "/api/v1/labels?match[]=%7Bjob%3D~%22.*%22%7D",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"match[] must contain at least one non-empty matcher"}"#,
        ),
        ("/api/v1/label/__name__/values", 200, r#"{"status":"success","data":["old","up"]}"#),
        (
            "/api/v1/label/__name__/values?start=1000",
            200,
            r#"{"status":"success","data":["up"]}"#,
        ),
        (
            "/api/v1/label/job/values?limit=1",
            200,
            r#"{"status":"success","data":["etcd"],"warnings":["results truncated due to limit"]}"#,
        ),
        (
            "/api/v1/label/U__j_6f_b/values",
            200,
            r#"{"status":"success","data":["etcd","node"]}"#,
        ),
        (
            "/api/v1/label/%FF/values",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid label name"#,
        ),
        (
            "/api/v1/series?match[]=%7B__name__%21%3D%22%22%7D&limit=1",
            200,
            r#"{"status":"success","data":[{"__name__":"old","env":"x"}],"warnings":["results truncated due to limit"]}"#,
        ),
        (
            "/api/v1/series?match[]=%7B__name__%21%3D%22%22%7D&start=1000&end=1015",
            200,
            r#"{"status":"success","data":[{"__name__":"up","instance":"a:9100","job":"node"},{"__name__":"up","instance":"b:2379","job":"etcd"}]}"#,
        ),
        (
            "/api/v1/series?match[]=%7Bjob%3D~%22.*%22%7D",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"match[]\": match[] must contain at least one non-empty matcher"}"#,
        ),
        (
            "/api/v1/series?match[]=rate(up%5B5m%5D)",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"match[]\": "#,
        ),
        // The rest of the API.
        ("/api/v1/metadata", 200, r#"{"status":"success","data":{}}"#),
        (
            "/api/v1/metadata?limit=all",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"limit must be a number"}"#,
        ),
        (
            "/api/v1/query_exemplars?query=up&start=1&end=2",
            200,
            r#"{"status":"success","data":[]}"#,
        ),
        (
            "/api/v1/query_exemplars?query=up&start=2&end=1",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"end timestamp must not be before start timestamp"}"#,
        ),
        (
            "/api/v1/format_query?query=sum%20by(job)(rate(x_total%5B5m%5D))",
            200,
            r#"{"status":"success","data":"sum by (job) (rate(x_total[5m]))"}"#,
        ),
        (
            "/api/v1/status/buildinfo",
            200,
            r#"{"status":"success","data":{"branch":"","buildDate":"","buildUser":"","goVersion":"","revision":"test","version":"0.1.0"}}"#,
        ),
        (
            "/api/v1/status/flags",
            200,
            r#"{"status":"success","data":{"web.listen-address":":9090"}}"#,
        ),
        (
            "/api/v1/status/config",
            200,
            r#"{"status":"success","data":{"yaml":"global: {}\n"}}"#,
        ),
        (
            "/api/v1/status/tsdb?limit=0",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"limit must be a positive number"}"#,
        ),
        (
            "/api/v1/status/tsdb?limit=10001",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"limit must not exceed 10000"}"#,
        ),
        ("/api/v1/alerts", 200, r#"{"status":"success","data":{"alerts":[]}}"#),
        ("/api/v1/rules", 200, r#"{"status":"success","data":{"groups":[]}}"#),
        (
            "/api/v1/rules?type=both",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"type\": not supported value \"both\""}"#,
        ),
        (
            "/api/v1/targets",
            200,
            r#"{"status":"success","data":{"activeTargets":[],"droppedTargetCounts":{},"droppedTargets":[]}}"#,
        ),
        (
            "/api/v1/nope",
            404,
            r#"{"status":"error","errorType":"not_found","error":"unknown API endpoint GET /api/v1/nope"}"#,
        ),
        ("/federate", 200, ""),
        ("/-/healthy", 200, "Fedwatch central is Healthy.\n"),
        ("/-/ready", 200, "Fedwatch central is Ready.\n"),
    ];
    for (uri, status, want) in cases {
        let (got_status, body) = get(uri).await;
        assert_eq!(got_status.as_u16(), *status, "{uri}: {body}");
        assert!(body.starts_with(want), "{uri}\n got: {body}\nwant: {want}");
    }
}

#[tokio::test]
async fn post_form_bodies_are_read() {
    let req = Request::post("/api/v1/query")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("query=up%7Bjob%3D%22etcd%22%7D&time=1000"))
        .unwrap();
    let (status, body) = call(req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#""value":[1000,"0"]"#), "{body}");
}

#[tokio::test]
async fn metrics_endpoint_serves_the_registry() {
    let (status, body) = get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("fedwatch_test_total 1\n"), "{body}");
}

/// A store whose selects take a while and are counted, to see a query stop early.
struct SlowStore {
    inner: Arc<MemStore>,
    selects: Arc<AtomicUsize>,
}

impl Querier for SlowStore {
    fn select(&self, matchers: &[Matcher], hints: SelectHints) -> Result<Vec<TimeSeries>, SelectError> {
        self.selects.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        self.inner.select(matchers, hints)
    }
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, SelectError> {
        self.inner.label_names(matchers)
    }
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, SelectError> {
        self.inner.label_values(name, matchers)
    }
    fn series(&self, matchers: &[Matcher]) -> Result<Vec<Labels>, SelectError> {
        self.inner.series(matchers)
    }
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_its_query() {
    let selects = Arc::new(AtomicUsize::new(0));
    let slow: Arc<dyn Querier> = Arc::new(SlowStore {
        inner: test_store(),
        selects: selects.clone(),
    });
    let mut st = state_over(test_store());
    st.engine = Engine::new(slow.clone());
    st.querier = slow;
    let req = Request::get("/api/v1/query?query=up%20%2B%20old&time=1015")
        .body(Body::empty())
        .unwrap();
    // The client gives up while the first selector is being read; the handler future is
    // dropped, and the engine must not go on to read the second selector.
    let gave_up = tokio::time::timeout(Duration::from_millis(100), router(st.clone()).oneshot(req)).await;
    assert!(gave_up.is_err(), "the query should still have been running");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        selects.load(Ordering::SeqCst),
        1,
        "the second selector was read after the client left"
    );
    // The same query left alone reads both.
    selects.store(0, Ordering::SeqCst);
    let req = Request::get("/api/v1/query?query=up%20%2B%20old&time=1015")
        .body(Body::empty())
        .unwrap();
    let (status, _) = call_on(router(st), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(selects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn federate_serves_latest_samples_in_the_text_format() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let store = Arc::new(MemStore::new());
    store
        .append(&[
            mk(
                "up",
                &[("job", "node"), ("instance", "a")],
                &[(now - 20_000, 0.0), (now - 5_000, 1.0)],
            ),
            mk(
                "up",
                &[("job", "gone"), ("instance", "b")],
                &[(now - 20_000, 1.0), (now - 5_000, fedwatch_model::stale_nan())],
            ),
            mk("up", &[("job", "old"), ("instance", "c")], &[(now - 600_000, 1.0)]),
            mk("x_total", &[("job", "node"), ("tier", "edge-7")], &[(now - 1_000, 12345678.0)]),
        ])
        .unwrap();
    let app = router(state_over(store).with_external_labels(Labels::from_pairs([("tier", "central"), ("dc", "fra")])));
    let req = Request::get("/federate?match[]=up&match[]=%7Bjob%3D%22node%22%7D")
        .body(Body::empty())
        .unwrap();
    let (status, body) = call_on(app.clone(), req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let want = format!(
        "# TYPE up untyped\n\
         up{{instance=\"a\",job=\"node\",dc=\"fra\",tier=\"central\"}} 1 {}\n\
         # TYPE x_total untyped\n\
         x_total{{job=\"node\",tier=\"edge-7\",dc=\"fra\",instance=\"\"}} 1.2345678e+07 {}\n",
        now - 5_000,
        now - 1_000
    );
    assert_eq!(body, want);
    // What a scraper of this endpoint reads back.
    let parsed = parse_samples(body.as_bytes(), Format::Text).unwrap();
    let got: Vec<(String, f64, Option<i64>)> = parsed.iter().map(|s| (s.labels.to_string(), s.value, s.timestamp_ms)).collect();
    assert_eq!(
        got,
        [
            (
                Labels::from_pairs([
                    ("__name__", "up"),
                    ("instance", "a"),
                    ("job", "node"),
                    ("dc", "fra"),
                    ("tier", "central")
                ])
                .to_string(),
                1.0,
                Some(now - 5_000)
            ),
            (
                Labels::from_pairs([("__name__", "x_total"), ("job", "node"), ("tier", "edge-7"), ("dc", "fra")]).to_string(),
                12345678.0,
                Some(now - 1_000)
            ),
        ]
    );
    let cases = [("/federate", 200, ""), ("/federate?match[]=up%7B", 400, "")];
    for (uri, status, want) in cases {
        let (got_status, body) = call_on(app.clone(), Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(got_status.as_u16(), status, "{uri}: {body}");
        assert!(body.starts_with(want), "{uri}: {body}");
    }
}

struct Targets;

impl TargetsSource for Targets {
    fn targets(&self) -> Vec<TargetInfo> {
        vec![TargetInfo {
            scrape_pool: "node".into(),
            discovered_labels: Labels::from_pairs([("__address__", "a:9100")]),
            labels: Labels::from_pairs([("instance", "a:9100"), ("job", "node")]),
            scrape_url: "http://a:9100/metrics".into(),
            health: TargetHealthState::Up,
            last_error: String::new(),
            last_scrape_ms: 1_700_000_000_500,
            last_scrape_duration: Duration::from_millis(250),
            scrape_interval: Duration::from_secs(15),
            scrape_timeout: Duration::from_secs(10),
        }]
    }
}

struct Rules;

impl RulesSource for Rules {
    fn groups(&self) -> Vec<RuleGroupInfo> {
        vec![RuleGroupInfo {
            name: "g".into(),
            file: "rules.yml".into(),
            interval: Duration::from_secs(30),
            limit: 0,
            rules: vec![
                RuleInfo {
                    kind: RuleKind::Alerting(AlertingRuleInfo {
                        name: "Down".into(),
                        query: "up == 0".into(),
                        duration: Duration::from_secs(60),
                        alerts: self.alerts(),
                        ..Default::default()
                    }),
                    last_error: String::new(),
                    last_evaluation_ms: 1_700_000_000_000,
                    evaluation_time: Duration::from_millis(2),
                },
                RuleInfo {
                    kind: RuleKind::Recording(RecordingRuleInfo {
                        name: "job:up:sum".into(),
                        query: "sum by (job) (up)".into(),
                        labels: Labels::default(),
                    }),
                    last_error: "boom".into(),
                    last_evaluation_ms: 1_700_000_000_000,
                    evaluation_time: Duration::ZERO,
                },
            ],
            last_evaluation_ms: 1_700_000_000_000,
            evaluation_time: Duration::from_millis(3),
        }]
    }
    fn alerts(&self) -> Vec<AlertInfo> {
        vec![AlertInfo {
            labels: Labels::from_pairs([("alertname", "Down"), ("job", "etcd")]),
            annotations: BTreeMap::from([("summary".to_string(), "etcd is down".to_string())]),
            state: AlertStateInfo::Firing,
            active_at: 1_699_999_000_000,
            value: 0.0,
            keep_firing_since: None,
        }]
    }
}

/// Compares JSON answers as values, since these bodies come from a map serializer.
#[tokio::test]
async fn status_endpoints_render_their_sources() {
    let app = router(
        test_state()
            .with_targets(Arc::new(Targets))
            .with_rules(Arc::new(Rules))
            .with_head_info(Arc::new(Head)),
    );
    let alert = r#"{"labels":{"alertname":"Down","job":"etcd"},"annotations":{"summary":"etcd is down"},"state":"firing","activeAt":"2023-11-14T21:56:40Z","value":"0e+00"}"#;
    let cases: Vec<(&str, String)> = vec![
        (
            "/api/v1/targets?state=active",
            r#"{"activeTargets":[{"discoveredLabels":{"__address__":"a:9100"},"labels":{"instance":"a:9100","job":"node"},"scrapePool":"node","scrapeUrl":"http://a:9100/metrics","globalUrl":"http://a:9100/metrics","lastError":"","lastScrape":"2023-11-14T22:13:20.500Z","lastScrapeDuration":0.25,"health":"up","scrapeInterval":"15s","scrapeTimeout":"10s"}],"droppedTargets":[]}"#.into(),
        ),
        ("/api/v1/targets?scrapePool=other", r#"{"activeTargets":[],"droppedTargets":[],"droppedTargetCounts":{}}"#.into()),
        ("/api/v1/alerts", format!(r#"{{"alerts":[{alert}]}}"#)),
        (
            "/api/v1/rules",
            format!(
                r#"{{"groups":[{{"name":"g","file":"rules.yml","interval":30.0,"limit":0,"evaluationTime":0.003,"lastEvaluation":"2023-11-14T22:13:20Z","rules":[
                {{"state":"firing","name":"Down","query":"up == 0","duration":60.0,"keepFiringFor":0.0,"labels":{{}},"annotations":{{}},"alerts":[{alert}],"health":"ok","evaluationTime":0.002,"lastEvaluation":"2023-11-14T22:13:20Z","type":"alerting"}},
                {{"name":"job:up:sum","query":"sum by (job) (up)","labels":{{}},"health":"err","lastError":"boom","evaluationTime":0.0,"lastEvaluation":"2023-11-14T22:13:20Z","type":"recording"}}]}}]}}"#
            ),
        ),
        ("/api/v1/rules?type=record&rule_name[]=Down", r#"{"groups":[]}"#.into()),
        (
            "/api/v1/status/tsdb?limit=2",
            r#"{"headStats":{"numSeries":3,"numLabelPairs":7,"chunkCount":7,"minTime":1000,"maxTime":1015000},
               "seriesCountByMetricName":[{"name":"up","value":2},{"name":"old","value":1}],
               "labelValueCountByLabelName":[{"name":"__name__","value":2},{"name":"instance","value":2}],
               "memoryInBytesByLabelName":[{"name":"instance","value":12},{"name":"job","value":8}],
               "seriesCountByLabelValuePair":[{"name":"__name__=up","value":2},{"name":"__name__=old","value":1}]}"#
                .into(),
        ),
    ];
    for (uri, want) in cases {
        let (status, body) = call_on(app.clone(), Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        let got: serde_json::Value = serde_json::from_str(&body).unwrap();
        let want: serde_json::Value = serde_json::from_str(&want).unwrap();
        assert_eq!(got["status"], "success", "{uri}");
        assert_eq!(got["data"], want, "{uri}\n got: {}", got["data"]);
    }
    let (_, body) = call_on(app.clone(), Request::get("/api/v1/status/runtimeinfo").body(Body::empty()).unwrap()).await;
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    let d = &got["data"];
    assert_eq!(d["storageRetention"], "15d");
    assert_eq!(d["reloadConfigSuccess"], true);
    assert_eq!(d["lastConfigTime"], "2023-11-14T22:13:20Z");
    assert!(d["GOMAXPROCS"].as_u64().unwrap() >= 1, "{d}");
    assert!(d["CWD"].as_str().is_some_and(|s| !s.is_empty()), "{d}");
    assert!(d["startTime"].as_str().is_some_and(|s| s.ends_with('Z')), "{d}");
}

struct Head;

impl HeadInfoSource for Head {
    fn head_info(&self) -> HeadInfo {
        HeadInfo {
            chunk_count: 7,
            min_time: 1_000,
            max_time: 1_015_000,
        }
    }
}

#[tokio::test]
async fn reload_calls_the_hook() {
    let calls = Arc::new(AtomicUsize::new(0));
    let ok_calls = calls.clone();
    let ok: ReloadHook = Arc::new(move || {
        ok_calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let failing: ReloadHook = Arc::new(|| Err("line 3: unknown field \"scrape_intervall\"".into()));
    let cases: Vec<(Option<ReloadHook>, &str, u16, &str)> = vec![
        (Some(ok), "POST", 200, ""),
        (
            Some(failing.clone()),
            "PUT",
            500,
            "failed to reload config: line 3: unknown field \"scrape_intervall\"\n",
        ),
        (Some(failing), "GET", 405, ""),
        (None, "POST", 403, "Lifecycle API is not enabled.\n"),
    ];
    for (hook, method, status, want) in cases {
        let mut st = test_state();
        if let Some(h) = hook {
            st = st.with_reload(h);
        }
        let req = Request::builder().method(method).uri("/-/reload").body(Body::empty()).unwrap();
        let (got, body) = call_on(router(st), req).await;
        assert_eq!(got.as_u16(), status, "{method}: {body}");
        assert_eq!(body, want);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn grafana_posts_are_accepted() {
    let cases = [
        (
            "/api/v1/query_range",
            "query=up&start=1000&end=1015&step=15&timeout=30s",
            r#"{"status":"success","data":{"resultType":"matrix""#,
        ),
        (
            "/api/v1/series",
            "match%5B%5D=old&start=0&end=2",
            r#"{"status":"success","data":[{"__name__":"old","env":"x"}]}"#,
        ),
        (
            "/api/v1/labels",
            "match%5B%5D=old",
            r#"{"status":"success","data":["__name__","env"]}"#,
        ),
        (
            "/api/v1/query_exemplars",
            "query=up&start=0&end=2",
            r#"{"status":"success","data":[]}"#,
        ),
        ("/api/v1/format_query", "query=up", r#"{"status":"success","data":"up"}"#),
    ];
    for (uri, form, want) in cases {
        let req = Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let (status, body) = call(req).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert!(body.starts_with(want), "{uri}\n got: {body}\nwant: {want}");
    }
}

/// `/api/v1/parse_query` trees, in the shape of Prometheus 3's `translateAST`
/// (web/api/v1/translate_ast.go): the metric name is the last matcher, `matching` is null
/// unless both sides are instant vectors, set operators are many-to-many.
#[tokio::test]
async fn parse_query_gives_prometheus_syntax_trees() {
    let vs = |name: &str, extra: serde_json::Value| {
        let mut matchers = extra.as_array().cloned().unwrap_or_default();
        matchers.push(serde_json::json!({"name": "__name__", "type": "=", "value": name}));
        serde_json::json!({"type": "vectorSelector", "name": name, "offset": 0, "matchers": matchers, "timestamp": null, "startOrEnd": null})
    };
    let cases = [
        ("up", vs("up", serde_json::json!([]))),
        (
            r#"sum by (job) (rate(http_requests_total{job=~"a.*"}[5m] offset 1m))"#,
            serde_json::json!({"type": "aggregation", "op": "sum", "grouping": ["job"], "without": false, "param": null,
                "expr": {"type": "call",
                    "func": {"name": "rate", "argTypes": ["matrix"], "variadic": 0, "returnType": "vector"},
                    "args": [{"type": "matrixSelector", "name": "http_requests_total", "range": 300000, "offset": 60000,
                        "matchers": [{"name": "job", "type": "=~", "value": "a.*"}, {"name": "__name__", "type": "=", "value": "http_requests_total"}],
                        "timestamp": null, "startOrEnd": null}]}}),
        ),
        (
            "a * on (x) group_left (y) b",
            serde_json::json!({"type": "binaryExpr", "op": "*", "bool": false, "lhs": vs("a", serde_json::json!([])), "rhs": vs("b", serde_json::json!([])),
                "matching": {"card": "many-to-one", "labels": ["x"], "on": true, "include": ["y"]}}),
        ),
        (
            "a unless ignoring (z) b",
            serde_json::json!({"type": "binaryExpr", "op": "unless", "bool": false, "lhs": vs("a", serde_json::json!([])), "rhs": vs("b", serde_json::json!([])),
                "matching": {"card": "many-to-many", "labels": ["z"], "on": false, "include": []}}),
        ),
        (
            "x > bool 1",
            serde_json::json!({"type": "binaryExpr", "op": ">", "bool": true, "lhs": vs("x", serde_json::json!([])),
                "rhs": {"type": "numberLiteral", "val": "1"}, "matching": null}),
        ),
        (
            "topk without (a) (3, -x @ start())",
            serde_json::json!({"type": "aggregation", "op": "topk", "grouping": ["a"], "without": true,
                "param": {"type": "numberLiteral", "val": "3"},
                "expr": {"type": "unaryExpr", "op": "-", "expr": {"type": "vectorSelector", "name": "x", "offset": 0,
                    "matchers": [{"name": "__name__", "type": "=", "value": "x"}], "timestamp": null, "startOrEnd": "start"}}}),
        ),
        (
            "max_over_time(x[10m:1m] @ 100) or vector(Inf)",
            serde_json::json!({"type": "binaryExpr", "op": "or", "bool": false, "matching": {"card": "many-to-many", "labels": [], "on": false, "include": []},
                "lhs": {"type": "call", "func": {"name": "max_over_time", "argTypes": ["matrix"], "variadic": 0, "returnType": "vector"},
                    "args": [{"type": "subquery", "expr": vs("x", serde_json::json!([])), "range": 600000, "offset": 0, "step": 60000,
                        "timestamp": 100000, "startOrEnd": null}]},
                "rhs": {"type": "call", "func": {"name": "vector", "argTypes": ["scalar"], "variadic": 0, "returnType": "vector"},
                    "args": [{"type": "numberLiteral", "val": "+Inf"}]}}),
        ),
        (
            r#"("s")"#,
            serde_json::json!({"type": "parenExpr", "expr": {"type": "stringLiteral", "val": "s"}}),
        ),
    ];
    for (query, want) in cases {
        let (status, body) = get(&format!("/api/v1/parse_query?query={}", urlencode(query))).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let got: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(got["data"], want, "{query}");
    }
    let (status, body) = get("/api/v1/parse_query?query=sum(").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains(r#""errorType":"bad_data""#), "{body}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
