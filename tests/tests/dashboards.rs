//! Every panel of every dashboard in `dashboards/` runs against a central fed by an edge
//! that scrapes the simulated fleet (and both tiers' own `/metrics`), the way Grafana would
//! run it: template variables resolved through `label_values(...)` (each must list
//! something; "All" is chosen, as Grafana does for a new dashboard with `includeAll`),
//! `$__rate_interval` replaced, and the query sent as a POST form `query_range`. Each query
//! must succeed and return series, except the few listed in `MAY_BE_EMPTY`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fedwatch_e2e::*;
use serde_json::Value;

/// Panel queries that may rightly answer nothing on a healthy fleet, with the reason.
const MAY_BE_EMPTY: &[(&str, &str)] = &[("sum by (alertname, alertstate, severity) (ALERTS)", "nothing need be firing")];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = repo_root().join("dashboards");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (p.file_name().unwrap_or_default().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Replaces `$name` and `${name}` of every variable, longest names first.
fn substitute(expr: &str, vars: &[(String, String)]) -> String {
    let mut out = expr.to_string();
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, value) in &vars {
        out = out.replace(&format!("${{{name}}}"), value).replace(&format!("${name}"), value);
    }
    out
}

/// `label_values(selector, label)` → (selector, label).
fn label_values_query(q: &str) -> Option<(String, String)> {
    let inner = q.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_string(), label.trim().to_string()))
}

async fn post_json(client: &reqwest::Client, url: &str, form: &[(&str, String)]) -> Value {
    let resp = client.post(url).form(form).send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let text = resp.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_answers_from_the_central() {
    let scratch = Scratch::new("dashboards");
    let client = fedwatch_config::http::client();
    let fleet = start_fleet(&scratch, 1, 2).await;
    let rules = repo_root().join("rules/packs");
    let central = start_tier(
        "central",
        "central",
        &scratch,
        &format!("global:\n  evaluation_interval: 1s\nrule_files:\n  - {}/*.yml\n", rules.display()),
        &[],
    );
    wait_ready(&client, central.port, "central").await;
    let jobs: String = [
        "node-exporter",
        "kube-state-metrics",
        "apiserver",
        "etcd",
        "scheduler",
        "controller-manager",
    ]
    .iter()
    .map(|job| {
        format!(
            "  - job_name: {job}\n    file_sd_configs:\n      - files: ['{}']\n",
            fleet.sd.join(format!("cell-01/{job}.json")).display()
        )
    })
    .collect();
    let self_sd = scratch.path("fedwatch-sd.json");
    let edge = start_tier(
        "edge",
        "edge",
        &scratch,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels:\n    cell: cell-01\n    region: test-1\n\
             scrape_configs:\n{jobs}  - job_name: fedwatch\n    file_sd_configs:\n      - files: ['{}']\n\
             remote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n",
            self_sd.display(),
            central.port
        ),
        &[],
    );
    wait_ready(&client, edge.port, "edge").await;
    // Both tiers' own metrics, scraped by the edge (its port is known only now).
    scratch.write(
        "fedwatch-sd.json",
        &format!(r#"[{{"targets": ["127.0.0.1:{}", "127.0.0.1:{}"]}}]"#, edge.port, central.port),
    );
    // Enough data for rates over `$__rate_interval` on every job, at the central.
    eventually("the central to hold 20 s of every job", Duration::from_secs(90), || async {
        let jobs = query(&client, central.port, "count by (job) (count_over_time(up[1m]) >= 20)").await?;
        (jobs.len() >= 7).then_some(())
    })
    .await;

    let base = format!("http://127.0.0.1:{}", central.port);
    let (end, start) = (unix_now(), unix_now() - 60.0);
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, d) in dashboards() {
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()), "{file}: a dashboard needs a uid");
        // Grafana's own interval variables, as it computes them for a 1 s scrape interval.
        let mut vars: Vec<(String, String)> = vec![
            ("__rate_interval".into(), "20s".into()),
            ("__interval".into(), "5s".into()),
            ("__range".into(), "60s".into()),
            ("datasource".into(), "central".into()),
        ];
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            let name = v["name"].as_str().unwrap_or_default().to_string();
            if v["type"] != "query" {
                continue;
            }
            let q = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap_or_default();
            let (selector, label) = label_values_query(q).unwrap_or_else(|| panic!("{file}: variable {name}: not label_values(): {q}"));
            let selector = substitute(&selector, &vars);
            let url = format!("{base}/api/v1/label/{label}/values?match[]={}", urlencode(&selector));
            let answer: Value = client.get(&url).send().await.expect("label values").json().await.expect("JSON");
            let values = answer["data"].as_array().cloned().unwrap_or_default();
            if values.is_empty() {
                failures.push(format!("{file}: variable {name} ({q}) lists nothing: {answer}"));
            }
            let all = v["allValue"].as_str().unwrap_or(".*").to_string();
            vars.push((name, all));
        }
        let panels = d["panels"].as_array().cloned().unwrap_or_default();
        assert!(!panels.is_empty(), "{file}: no panels");
        for p in panels {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{file}: panel {title} must use the datasource variable"
            );
            for t in p["targets"].as_array().into_iter().flatten() {
                let raw = t["expr"].as_str().unwrap_or_default();
                let expr = substitute(raw, &vars);
                checked += 1;
                let form = [
                    ("query", expr.clone()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", "5".to_string()),
                ];
                let answer = post_json(&client, &format!("{base}/api/v1/query_range"), &form).await;
                if answer["status"] != "success" {
                    failures.push(format!("{file}: {title}: {expr}: {answer}"));
                    continue;
                }
                let empty = answer["data"]["result"].as_array().is_none_or(Vec::is_empty);
                if empty && !MAY_BE_EMPTY.iter().any(|(q, _)| raw.contains(q)) {
                    failures.push(format!("{file}: {title}: {expr}: no series"));
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} panel queries found");
    assert!(
        failures.is_empty(),
        "{} of {checked} panel queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
