//! What Grafana's Prometheus data source sends, sent to stock Prometheus 2.42 and to our
//! central holding identical data: the JSON answers must agree.
//!
//! Both are fed the same remote_write request (Prometheus with
//! `--web.enable-remote-write-receiver`). Samples sit at 15 s steps offset by 7 s, so no
//! sample falls exactly on a query window's edge: Prometheus 2.x windows are closed on the
//! left and 3.x windows (which we follow, as the promqltest files pin) are open there, and
//! this data keeps that known difference out of the comparison. Every query's windows lie
//! inside the data, away from series starts (where prometheus#13725 changed `rate`).
//!
//! Compared: the `data` of every successful answer (vectors and matrices sorted by their
//! labels, since Prometheus leaves instant-vector order unspecified), and the status code,
//! `errorType` and `error` of every failing one. `status/buildinfo` is compared by shape.
//! The few messages that changed between 2.42 and 3.x are compared in their 3.x form.

use std::time::{SystemTime, UNIX_EPOCH};

use fedwatch_e2e::*;
use fedwatch_model::{Labels, Sample, TimeSeries, stale_nan};
use serde_json::Value;

const STEP_MS: i64 = 15_000;
/// Samples are at `k * STEP_MS + OFFSET_MS`.
const OFFSET_MS: i64 = 7_000;
const SPAN_MS: i64 = 30 * 60_000;

fn series(name: &str, pairs: &[(&str, &str)], mut value: impl FnMut(i64) -> f64, from: i64, to: i64) -> TimeSeries {
    let mut labels = vec![("__name__", name)];
    labels.extend_from_slice(pairs);
    let samples = (from..=to)
        .step_by(STEP_MS as usize)
        .enumerate()
        .map(|(i, t)| Sample { t, v: value(i as i64) })
        .collect();
    TimeSeries {
        labels: Labels::from_pairs(labels),
        samples,
    }
}

/// The fleet-shaped data set: counters (one with a reset), classic histogram buckets,
/// gauges, an info metric to join on, and a series that ends with a stale marker.
fn dataset(first: i64, last: i64) -> Vec<TimeSeries> {
    let mut out = Vec::new();
    for cluster in ["c1", "c2"] {
        for (n, instance) in ["i0", "i1", "i2", "i3"].into_iter().enumerate() {
            let n = n as i64 + if cluster == "c2" { 4 } else { 0 };
            for code in ["200", "500"] {
                let rate = if code == "200" { 10 + n } else { 1 + n % 3 };
                let reset_at = if n == 2 && code == "200" { 70 } else { i64::MAX };
                out.push(series(
                    "http_requests_total",
                    &[("cluster", cluster), ("instance", instance), ("job", "api"), ("code", code)],
                    |i| {
                        let i = if i >= reset_at { i - reset_at } else { i };
                        (i * rate + (i * i) % 7) as f64
                    },
                    first,
                    last,
                ));
            }
            let mut cum = 0.0;
            for le in ["0.05", "0.1", "0.5", "1", "+Inf"] {
                let per: f64 = match le {
                    "0.05" => 3.0,
                    "0.1" => 5.0 + n as f64,
                    "0.5" => 2.0,
                    "1" => 0.5,
                    _ => 0.25,
                };
                cum += per;
                let c = cum;
                out.push(series(
                    "request_duration_seconds_bucket",
                    &[("cluster", cluster), ("instance", instance), ("job", "api"), ("le", le)],
                    move |i| (i as f64 * c + ((i * 3) % 5) as f64).floor(),
                    first,
                    last,
                ));
            }
            out.push(series(
                "node_memory_free_bytes",
                &[("cluster", cluster), ("instance", instance), ("job", "node")],
                |i| 1e9 + ((i * 7919 + n * 104_729) % 1000) as f64 * 1e5,
                first,
                last,
            ));
            out.push(series(
                "machine_cpu_cores",
                &[("cluster", cluster), ("instance", instance), ("job", "node")],
                |_| (4 + 4 * (n % 2)) as f64,
                first,
                last,
            ));
            out.push(series(
                "kube_node_info",
                &[
                    ("cluster", cluster),
                    ("instance", instance),
                    ("node", &format!("node-{cluster}-{n}")),
                ],
                |_| 1.0,
                first,
                last,
            ));
        }
    }
    // A target that went away ten minutes before the end: its last sample is a stale marker.
    let mut gone = series(
        "gone_gauge",
        &[("cluster", "c1"), ("instance", "i9")],
        |i| i as f64,
        first,
        last - 10 * 60_000,
    );
    if let Some(s) = gone.samples.last_mut() {
        s.v = stale_nan();
    }
    out.push(gone);
    out
}

/// Range queries Grafana dashboards run (the on-call dashboards' shapes and the functions
/// around them); each is also run as an instant query.
const QUERIES: &[&str] = &[
    "sum by (cluster) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.99, sum by (le, cluster) (rate(request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(request_duration_seconds_bucket{cluster=\"c2\"}[5m]))",
    "topk(3, rate(http_requests_total[5m]))",
    "bottomk(2, sum by (instance) (node_memory_free_bytes))",
    "rate(http_requests_total{instance=~\"i[12]\", code!~\"5..\"}[5m])",
    "sum by (cluster) (rate(http_requests_total{code=~\"5..\"}[5m])) / sum by (cluster) (rate(http_requests_total[5m]))",
    "node_memory_free_bytes * on (cluster, instance) group_left (node) kube_node_info",
    "increase(http_requests_total{code=\"200\"}[10m])",
    "irate(http_requests_total{cluster=\"c1\"}[1m])",
    "resets(http_requests_total[15m])",
    "changes(node_memory_free_bytes[5m])",
    "delta(node_memory_free_bytes[5m])",
    "deriv(node_memory_free_bytes[5m])",
    "predict_linear(node_memory_free_bytes[10m], 3600)",
    "avg_over_time(node_memory_free_bytes[5m])",
    "quantile_over_time(0.9, node_memory_free_bytes[5m])",
    "stddev by (cluster) (node_memory_free_bytes)",
    "quantile by (cluster) (0.25, node_memory_free_bytes)",
    "count_values(\"cores\", machine_cpu_cores)",
    "max_over_time(rate(http_requests_total[1m])[10m:1m])",
    "sum(rate(http_requests_total[5m] offset 5m))",
    "gone_gauge",
    "absent(nonexistent_metric{job=\"x\"})",
    "label_replace(machine_cpu_cores, \"host\", \"$1\", \"instance\", \"i(.*)\")",
    "sort_desc(sum by (instance) (machine_cpu_cores))",
    "scalar(sum(machine_cpu_cores)) * 2",
    "clamp_max(node_memory_free_bytes / 1e9, 1.05)",
    "time() - timestamp(node_memory_free_bytes)",
    "sum without (code) (rate(http_requests_total[5m])) > bool 20",
];

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

/// An answer, reduced to what must agree.
#[derive(Debug, PartialEq)]
enum Answer {
    Data(Value),
    Error { status: u16, error_type: String, error: String },
}

fn normalise(mut data: Value) -> Value {
    if let Some(result) = data.get_mut("result").and_then(Value::as_array_mut) {
        result.sort_by_key(|s| s["metric"].to_string());
    } else if let Some(list) = data.as_array_mut() {
        // series, labels and label values: Prometheus sorts labels and values; series in
        // index order, which may differ.
        list.sort_by_key(|v| v.to_string());
    }
    data
}

async fn ask(client: &reqwest::Client, port: u16, method: &str, path: &str, params: &[(&str, String)]) -> Answer {
    let url = format!("http://127.0.0.1:{port}{path}");
    let req = match method {
        "POST" => client.post(&url).form(params),
        _ => client.get(&url).query(params),
    };
    let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path} on {port}: not JSON ({e}): {text}"));
    if v["status"] == "success" {
        Answer::Data(normalise(v["data"].clone()))
    } else {
        Answer::Error {
            status,
            error_type: v["errorType"].as_str().unwrap_or("").to_string(),
            error: v["error"].as_str().unwrap_or("").to_string(),
        }
    }
}

/// Prometheus prefixes parse errors with `line:col: parse error: `; promql-parser reports
/// no position, so we leave the prefix out (docs/COMPATIBILITY.md) and compare the rest.
fn without_parse_position(a: Answer) -> Answer {
    let Answer::Error { status, error_type, error } = a else { return a };
    let error = match error.split_once("\": ") {
        Some((param, rest)) => match rest.split_once(": parse error: ") {
            Some((pos, msg)) if pos.split(':').all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) => {
                format!("{param}\": {msg}")
            }
            _ => error,
        },
        None => error,
    };
    Answer::Error { status, error_type, error }
}

/// Two messages changed between Prometheus 2.42 and 3.x, and we answer as 3.x does:
/// "invalid time value" lost its capital (prometheus#13516), and the two series of a
/// many-to-many error are listed in sorted order (prometheus#14079).
fn as_prometheus_3(a: Answer) -> Answer {
    let Answer::Error {
        status,
        error_type,
        mut error,
    } = a
    else {
        return a;
    };
    error = error.replace("Invalid time value for", "invalid time value for");
    if let Some((head, rest)) = error.split_once("hand-side of the operation: [") {
        if let Some((pair, tail)) = rest.split_once("];") {
            if let Some((a, b)) = pair.split_once("}, {") {
                let (a, b) = (format!("{a}}}"), format!("{{{b}"));
                let (a, b) = if a > b { (b, a) } else { (a, b) };
                error = format!("{head}hand-side of the operation: [{a}, {b}];{tail}");
            }
        }
    }
    Answer::Error { status, error_type, error }
}

/// Equal, except that sample values may differ in the last bits: Prometheus 2.42 sums in
/// plain floating point and 3.x (and we) with Kahan compensation, in another order.
fn agree(a: &Answer, b: &Answer) -> bool {
    match (a, b) {
        (Answer::Data(x), Answer::Data(y)) => same(x, y),
        _ => a == b,
    }
}

fn same(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::String(a), Value::String(b)) if a != b => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(a), Ok(b)) => (a - b).abs() <= 1e-12 * a.abs().max(b.abs()),
            _ => false,
        },
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b)),
        (Value::Object(a), Value::Object(b)) => a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w))),
        _ => x == y,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_requests_get_the_answers_prometheus_gives() {
    let scratch = Scratch::new("grafana-api");
    let client = fedwatch_config::http::client();

    let central = start_tier("central", "central", &scratch, "global: {}\n", &[]);
    let config = scratch.write("prometheus.yml", "global: {}\n");
    let prom = start_prometheus(&scratch, &config, &["--web.enable-remote-write-receiver"]);
    let prom_port = prom.port;
    wait_ready(&client, central.port, "central").await;
    wait_ready(&client, prom_port, "prometheus").await;

    let end = (unix_ms() - 60_000) / STEP_MS * STEP_MS;
    let first = end - SPAN_MS + OFFSET_MS;
    let last = end - STEP_MS + OFFSET_MS;
    let body = fedwatch_wire::encode_write_request(&dataset(first, last));
    for port in [prom_port, central.port] {
        let resp = client
            .post(format!("http://127.0.0.1:{port}/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.clone())
            .send()
            .await
            .expect("remote write");
        assert!(resp.status().is_success(), "remote write to port {port}: {}", resp.status());
    }

    // Grafana's time picker: the last 15 minutes of the data, step 30 s.
    let (start, stop) = (end - 15 * 60_000, end);
    let mut requests: Vec<(&str, String, Vec<(&str, String)>)> = Vec::new();
    for q in QUERIES {
        requests.push((
            "POST",
            "/api/v1/query_range".into(),
            vec![
                ("query", q.to_string()),
                ("start", secs(start)),
                ("end", secs(stop)),
                ("step", "30".into()),
                ("timeout", "30s".into()),
            ],
        ));
        requests.push(("POST", "/api/v1/query".into(), vec![("query", q.to_string()), ("time", secs(stop))]));
    }
    let window = || vec![("start", secs(start)), ("end", secs(stop))];
    let with = |mut v: Vec<(&'static str, String)>, extra: &[(&'static str, &str)]| {
        v.extend(extra.iter().map(|(k, x)| (*k, x.to_string())));
        v
    };
    // A malformed `query_range` of `up`: start, end and the step (None leaves it out).
    let range = |start: String, end: String, step: Option<&str>| {
        let mut p = vec![("query", "up".to_string()), ("start", start), ("end", end)];
        p.extend(step.map(|s| ("step", s.to_string())));
        ("POST", "/api/v1/query_range".to_string(), p)
    };
    requests.extend([
        (
            "POST",
            "/api/v1/query".into(),
            vec![("query", "\"a string\"".into()), ("time", secs(stop))],
        ),
        ("POST", "/api/v1/query".into(), vec![("query", "42".into()), ("time", secs(stop))]),
        ("GET", "/api/v1/labels".into(), window()),
        (
            "POST",
            "/api/v1/labels".into(),
            with(window(), &[("match[]", "node_memory_free_bytes")]),
        ),
        ("GET", "/api/v1/label/__name__/values".into(), window()),
        (
            "GET",
            "/api/v1/label/instance/values".into(),
            with(window(), &[("match[]", "machine_cpu_cores{cluster=\"c2\"}")]),
        ),
        ("GET", "/api/v1/label/nonexistent/values".into(), window()),
        ("POST", "/api/v1/series".into(), with(window(), &[("match[]", "kube_node_info")])),
        (
            "POST",
            "/api/v1/series".into(),
            with(
                window(),
                &[
                    ("match[]", "machine_cpu_cores{instance=~\"i[01]\"}"),
                    ("match[]", "kube_node_info{cluster=\"c1\"}"),
                ],
            ),
        ),
        ("GET", "/api/v1/metadata".into(), vec![]),
        ("GET", "/api/v1/metadata".into(), vec![("metric", "http_requests_total".into())]),
        (
            "POST",
            "/api/v1/query_exemplars".into(),
            vec![("query", "http_requests_total".into()), ("start", secs(start)), ("end", secs(stop))],
        ),
        // Malformed input: each must fail the same way.
        ("POST", "/api/v1/query".into(), vec![("query", "sum(rate(x[5m])".into())]),
        ("POST", "/api/v1/query".into(), vec![("query", "rate(x)".into())]),
        (
            "POST",
            "/api/v1/query".into(),
            vec![("query", "up".into()), ("time", "yesterday".into())],
        ),
        ("POST", "/api/v1/query".into(), vec![("query", "".into())]),
        (
            "POST",
            "/api/v1/query".into(),
            vec![("query", "up".into()), ("timeout", "soon".into())],
        ),
        range(secs(stop), secs(start), Some("30")),
        range(secs(start), secs(stop), None),
        range(secs(start), secs(stop), Some("0")),
        range(secs(start), secs(stop), Some("-15")),
        range("0".into(), "100000".into(), Some("1")),
        range("abc".into(), secs(stop), Some("15")),
        (
            "POST",
            "/api/v1/query".into(),
            vec![
                ("query", "http_requests_total + on (cluster) machine_cpu_cores".into()),
                ("time", secs(stop)),
            ],
        ),
        (
            "POST",
            "/api/v1/query".into(),
            vec![
                ("query", "machine_cpu_cores * on (cluster) group_left kube_node_info".into()),
                ("time", secs(stop)),
            ],
        ),
        ("POST", "/api/v1/series".into(), window()),
        ("POST", "/api/v1/series".into(), with(window(), &[("match[]", "{job=~\".*\"}")])),
        ("POST", "/api/v1/series".into(), with(window(), &[("match[]", "up{")])),
        ("GET", "/api/v1/labels".into(), vec![("start", "x".into())]),
    ]);

    let mut differences = Vec::new();
    for (method, path, params) in &requests {
        let ours = ask(&client, central.port, method, path, params).await;
        let theirs = as_prometheus_3(without_parse_position(ask(&client, prom_port, method, path, params).await));
        if !agree(&ours, &theirs) {
            differences.push(format!(
                "{method} {path} {params:?}\n  prometheus: {theirs:?}\n  ours:       {ours:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} requests answered differently:\n{}",
        differences.len(),
        requests.len(),
        differences.join("\n")
    );

    // Some answers must hold data, so agreeing on empty results cannot pass by accident.
    let Answer::Data(d) = ask(&client, central.port, "POST", "/api/v1/query_range", &requests[0].2).await else {
        panic!("the first dashboard query failed")
    };
    assert_eq!(d["result"].as_array().map(Vec::len), Some(2), "one series per cluster: {d}");

    // Grafana's rule-source discovery reads `features`: absent means Prometheus, present
    // (even `[]`, which is truthy in JavaScript) means Mimir. So ours has exactly
    // Prometheus's fields and no `features`.
    let build = |port| {
        let client = client.clone();
        async move {
            let v: Value = client
                .get(format!("http://127.0.0.1:{port}/api/v1/status/buildinfo"))
                .send()
                .await
                .expect("buildinfo")
                .json()
                .await
                .expect("buildinfo JSON");
            v
        }
    };
    let (ours, theirs) = (build(central.port).await, build(prom_port).await);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v["data"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        k.sort();
        k
    };
    assert_eq!(keys(&ours), keys(&theirs), "buildinfo fields: ours {ours}, prometheus {theirs}");
    assert!(ours["data"].get("features").is_none(), "no features field: {ours}");
}
