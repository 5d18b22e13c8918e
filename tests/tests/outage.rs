//! Forwarding loses nothing through outages: edge → cascade → two centrals on loopback, with
//! the cascade SIGKILLed for a minute, one central down for a while and the edge SIGKILLed
//! mid-forward. Afterwards both centrals hold, per series, exactly the samples (timestamps
//! and values) the edge stored in each phase's window: nothing missing, nothing doubled.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fedwatch_e2e::*;

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Every etcd sample in `(from, to]` as `labels → [(t, v)]` (a range-vector query: the
/// samples themselves, so a gap or a doubled timestamp shows).
async fn counts(client: &reqwest::Client, port: u16, from: f64, to: f64) -> Option<BTreeMap<String, Vec<(String, String)>>> {
    let range = format!("{}ms", ((to - from) * 1000.0).round() as i64);
    let result = query_at(client, port, &format!(r#"{{job="etcd"}}[{range}]"#), to).await?;
    let mut out = BTreeMap::new();
    for s in result {
        let mut labels: Vec<String> = s["metric"].as_object()?.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let samples = s["values"]
            .as_array()?
            .iter()
            .map(|p| (p[0].to_string(), p[1].as_str().unwrap_or("").to_string()))
            .collect();
        out.insert(labels.join(","), samples);
    }
    Some(out)
}

/// Waits until `port` holds the same samples per series as the edge over the window, and
/// fails with both maps when it never does.
async fn assert_same_counts(client: &reqwest::Client, what: &str, edge: u16, port: u16, from: f64, to: f64) {
    let want = counts(client, edge, from, to).await.expect("edge counts");
    assert!(!want.is_empty(), "{what}: the edge stored nothing in the window");
    let started = std::time::Instant::now();
    let until = started + Duration::from_secs(180);
    loop {
        let got = counts(client, port, from, to).await.unwrap_or_default();
        if got == want {
            let samples: usize = want.values().map(Vec::len).sum();
            eprintln!(
                "{what}: {} series, {samples} samples match (after {:?} of polling)",
                want.len(),
                started.elapsed()
            );
            return;
        }
        if std::time::Instant::now() > until {
            let diff: Vec<_> = want
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(v))
                .map(|(k, v)| format!("{k}: edge {} samples, upstream {:?}", v.len(), got.get(k).map(Vec::len)))
                .take(10)
                .collect();
            panic!("{what}: upstream never matched the edge ({} series): {diff:#?}", want.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn remote_write(urls: &[String]) -> String {
    let mut out = String::from("remote_write:\n");
    for u in urls {
        out.push_str(&format!(
            "  - url: {u}\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n"
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_central_and_edge_outages_lose_nothing() {
    let scratch = Scratch::new("outage");
    let client = fedwatch_config::http::client();
    let _fleet = start_fleet(&scratch, 1, 2).await;
    let central_a = start_tier("central-a", "central", &scratch, "global:\n  evaluation_interval: 1s\n", &[]);
    let central_b = start_tier("central-b", "central", &scratch, "global:\n  evaluation_interval: 1s\n", &[]);
    let (a_port, b_port) = (central_a.port, central_b.port);
    let write = |port: u16| format!("http://127.0.0.1:{port}/api/v1/write");
    let cascade = start_tier("cascade", "cascade", &scratch, &remote_write(&[write(a_port), write(b_port)]), &[]);
    let cascade_port = cascade.port;
    let edge = start_tier(
        "edge",
        "edge",
        &scratch,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: etcd\n    file_sd_configs:\n      - files: ['sd/cell-01/etcd.json']\n{}",
            remote_write(&[write(cascade_port)])
        ),
        &[],
    );
    let edge_port = edge.port;
    for (port, name) in [(a_port, "central-a"), (b_port, "central-b")] {
        eventually(&format!("samples at {name}"), Duration::from_secs(60), || async {
            query_value(&client, port, r#"count(count_over_time(up{job="etcd"}[1h]) >= 3)"#)
                .await
                .filter(|n| *n >= 1.0)
        })
        .await;
    }

    // (a) The cascade is SIGKILLed for a minute, then started again on the same storage.
    let a_from = now_secs();
    let (mut cascade_proc, cascade_args) = (cascade.proc, cascade.args);
    cascade_proc.kill();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let cascade_proc = Proc::start("cascade-restarted", &binary("cascade"), &cascade_args, &scratch);
    wait_ready(&client, cascade_port, &cascade_proc.name).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let a_to = now_secs();

    // (b) central-b is SIGKILLed for 30 s; central-a keeps everything, b catches up.
    let b_from = now_secs();
    let (mut b_proc, b_args) = (central_b.proc, central_b.args);
    b_proc.kill();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let b_proc = Proc::start("central-b-restarted", &binary("central"), &b_args, &scratch);
    wait_ready(&client, b_port, &b_proc.name).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let b_to = now_secs();

    // (c) The edge is SIGKILLed mid-forward (it forwards continuously) and restarted at once;
    // it resumes from its position file.
    let c_from = now_secs();
    let (mut edge_proc, edge_args) = (edge.proc, edge.args);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    edge_proc.kill();
    let edge_proc = Proc::start("edge-restarted", &binary("edge"), &edge_args, &scratch);
    wait_ready(&client, edge_port, &edge_proc.name).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c_to = now_secs();

    for (what, from, to) in [
        ("cascade outage", a_from, a_to),
        ("central-b outage", b_from, b_to),
        ("edge crash", c_from, c_to),
    ] {
        assert_same_counts(&client, &format!("{what} at central-a"), edge_port, a_port, from, to).await;
        assert_same_counts(&client, &format!("{what} at central-b"), edge_port, b_port, from, to).await;
    }
    // The whole run in one window as well.
    assert_same_counts(&client, "whole run at central-b", edge_port, b_port, a_from, c_to).await;
    drop((cascade_proc, b_proc, edge_proc, central_a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_gone_at_the_edge_ends_its_series_at_the_central() {
    let scratch = Scratch::new("outage-stale");
    let client = fedwatch_config::http::client();
    let fleet = start_fleet(&scratch, 1, 1).await;
    let central = start_tier("central", "central", &scratch, "global:\n  evaluation_interval: 1s\n", &[]);
    let write = |port: u16| format!("http://127.0.0.1:{port}/api/v1/write");
    let cascade = start_tier("cascade", "cascade", &scratch, &remote_write(&[write(central.port)]), &[]);
    // The edge discovers its targets from a copy of the fleet's file, which the test empties.
    let targets = std::fs::read_to_string(fleet.sd.join("cell-01/etcd.json")).expect("fleet sd file");
    let sd = scratch.write("edge-sd/etcd.json", &targets);
    let _edge = start_tier(
        "edge",
        "edge",
        &scratch,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: etcd\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n{}",
            sd.display(),
            remote_write(&[write(cascade.port)])
        ),
        &[],
    );
    let live = r#"count(up{job="etcd"})"#;
    eventually("the target's up at the central", Duration::from_secs(60), || async {
        query_value(&client, central.port, live).await.filter(|n| *n >= 1.0)
    })
    .await;
    std::fs::write(&sd, "[]").expect("empty the target file");
    // The stale marker travels edge → cascade → central: the instant query finds nothing
    // while the samples before it are still there.
    eventually("the series to end at the central", Duration::from_secs(60), || async {
        let now = query(&client, central.port, r#"up{job="etcd"}"#).await?;
        now.is_empty().then_some(())
    })
    .await;
    let before = query_value(&client, central.port, r#"count(count_over_time(up{job="etcd"}[10m]))"#).await;
    assert!(
        before.is_some_and(|n| n >= 1.0),
        "the series' samples before the marker stay: {before:?}"
    );
}
