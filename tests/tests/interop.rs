//! Interop with stock peers, real processes on loopback:
//! - stock Prometheus scrapes the simulated fleet and remote-writes into our cascade; both
//!   answer the same queries with the same series and values;
//! - our edge remote-writes into stock Prometheus and into VictoriaMetrics; both hold the
//!   edge's series with its external labels;
//! - our cascade scrapes a stock Prometheus's `/federate` as an ordinary job (`honor_labels`)
//!   and holds the same series, with Prometheus's external labels;
//! - two edges of an HA pair (`__replica__` a and b) write into a receiver with HA dedupe
//!   (in-process until the tiers wire it); one copy is kept and it fails over when the
//!   elected edge dies.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fedwatch_e2e::*;
use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::{MatchOp, Matcher};
use fedwatch_tsdb::{MemStore, Querier, SelectHints};
use fedwatch_wire::dedupe::{HaConfig, HaTracker};
use fedwatch_wire::{ReceiverState, system_clock, write_router};

/// `scrape_configs:` for the fleet's apiserver and etcd jobs, every second.
fn fleet_scrape_configs(fleet: &Fleet) -> String {
    let file = |job: &str| fleet.sd.join(format!("cell-01/{job}.json")).display().to_string();
    format!(
        "scrape_configs:\n  - job_name: apiserver\n    file_sd_configs:\n      - files: ['{}']\n\
         \x20 - job_name: etcd\n    file_sd_configs:\n      - files: ['{}']\n",
        file("apiserver"),
        file("etcd")
    )
}

const FAST_GLOBAL: &str = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n";

fn remote_write(url: &str) -> String {
    format!("  - url: {url}\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n")
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_prometheus_remote_writes_into_our_cascade_and_both_answer_alike() {
    let scratch = Scratch::new("interop-prom-to-cascade");
    let client = fedwatch_config::http::client();
    let fleet = start_fleet(&scratch, 1, 2).await;

    let cascade = start_tier(
        "cascade",
        "cascade",
        &scratch,
        "global:\n  external_labels:\n    region: eu-1\n",
        &[],
    );
    wait_ready(&client, cascade.port, "cascade").await;

    let config = scratch.write(
        "prometheus.yml",
        &format!(
            "{FAST_GLOBAL}  external_labels:\n    cell: cell-01\n{}remote_write:\n{}",
            fleet_scrape_configs(&fleet),
            remote_write(&format!("http://127.0.0.1:{}/api/v1/write", cascade.port))
        ),
    );
    let prom = start_prometheus(&scratch, &config, &[]);
    let prom_port = prom.port;
    wait_ready(&client, prom_port, "prometheus").await;

    // Compare at a time a few seconds back, so both have every sample up to it; poll until
    // the remote-written data has caught up, then the answers must be identical.
    // (selector, series expected at least: every target of the two tenants scraped)
    let selectors = [
        ("up", 4),
        ("etcd_server_has_leader", 2),
        ("etcd_server_leader_changes_seen_total", 2),
        (r#"apiserver_request_total{code="200"}"#, 2),
    ];
    let until = Instant::now() + Duration::from_secs(50);
    let agreed = loop {
        let at = (unix_now() - 4.0).floor();
        let mut answers = Vec::new();
        for (sel, min) in selectors {
            let p = query_at(&client, prom_port, sel, at).await.unwrap_or_default();
            let c = query_at(&client, cascade.port, sel, at).await.unwrap_or_default();
            let p = series_values(&p, &[]);
            let complete = p.len() >= min;
            answers.push((sel, p, series_values(&c, &["cell"]), c, complete));
        }
        let ok = answers.iter().all(|(_, p, c, _, complete)| *complete && p == c);
        if ok {
            break answers;
        }
        assert!(
            Instant::now() < until,
            "prometheus and the cascade never agreed; last answers (selector, prometheus, cascade): {:#?}",
            answers.iter().map(|(s, p, c, _, _)| (s, p, c)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (sel, _, _, raw, _) in &agreed {
        for s in raw {
            assert_eq!(
                s["metric"]["cell"], "cell-01",
                "{sel}: Prometheus's external label reaches the cascade: {s}"
            );
            assert!(
                s["metric"].get("region").is_none(),
                "{sel}: the cascade's own external labels are for upstream: {s}"
            );
        }
    }
    assert_eq!(agreed[0].1.len(), 4, "up: 2 apiservers and 2 etcds: {:?}", agreed[0].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_edge_remote_writes_into_stock_prometheus_and_victoria_metrics() {
    let vm = system_binary("victoria-metrics").expect("victoria-metrics is not installed: run scripts/install-deps");
    let scratch = Scratch::new("interop-edge-to-stock");
    let client = fedwatch_config::http::client();
    let fleet = start_fleet(&scratch, 1, 2).await;

    let prom_config = scratch.write("prometheus.yml", "global:\n  scrape_interval: 15s\n");
    let prom = start_prometheus(&scratch, &prom_config, &["--web.enable-remote-write-receiver"]);
    let prom_port = prom.port;
    let vm_port = free_port();
    let _vm = Proc::start(
        "victoria-metrics",
        &vm,
        &[
            format!("-httpListenAddr=127.0.0.1:{vm_port}"),
            format!("-storageDataPath={}", scratch.path("vm-data").display()),
            // Instant queries must see samples written a moment ago.
            "-search.latencyOffset=1s".into(),
            "-search.disableCache".into(),
        ],
        &scratch,
    );
    wait_ready(&client, prom_port, "prometheus").await;
    eventually("victoria-metrics to be healthy", Duration::from_secs(30), || async {
        let r = client.get(format!("http://127.0.0.1:{vm_port}/health")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    let edge = start_tier(
        "edge",
        "edge",
        &scratch,
        &format!(
            "{FAST_GLOBAL}  external_labels:\n    cell: cell-01\n    region: eu-1\n{}remote_write:\n{}{}",
            fleet_scrape_configs(&fleet),
            remote_write(&format!("http://127.0.0.1:{prom_port}/api/v1/write")),
            remote_write(&format!("http://127.0.0.1:{vm_port}/api/v1/write")),
        ),
        &[],
    );
    wait_ready(&client, edge.port, "edge").await;

    let at_edge = eventually("etcd_server_has_leader at the edge", Duration::from_secs(40), || async {
        query(&client, edge.port, "etcd_server_has_leader").await.filter(|r| r.len() == 2)
    })
    .await;
    let mut want: Vec<(String, String)> = series_values(&at_edge, &[]);
    for (labels, _) in &mut want {
        // What the edge adds on the way up, in sorted position for this label set.
        let mut parts: Vec<String> = labels.split(',').map(str::to_string).collect();
        parts.push(r#"cell="cell-01""#.into());
        parts.push(r#"region="eu-1""#.into());
        parts.sort();
        *labels = parts.join(",");
    }
    let want_labels: Vec<&String> = want.iter().map(|(l, _)| l).collect();

    for (who, port) in [("prometheus", prom_port), ("victoria-metrics", vm_port)] {
        let got = eventually(
            &format!("the edge's etcd series with external labels at {who}"),
            Duration::from_secs(40),
            || async {
                query(&client, port, r#"etcd_server_has_leader{cell="cell-01",region="eu-1"}"#)
                    .await
                    .filter(|r| r.len() == 2)
            },
        )
        .await;
        let got = series_values(&got, &[]);
        let got_labels: Vec<&String> = got.iter().map(|(l, _)| l).collect();
        assert_eq!(got_labels, want_labels, "{who}");
        assert!(got.iter().all(|(_, v)| v == "1"), "{who}: {got:?}");
        // Counters arrive as counters: a rate over them is computable and not negative.
        let rate = eventually(&format!("a rate at {who}"), Duration::from_secs(40), || async {
            query(&client, port, r#"rate(apiserver_request_total{cell="cell-01",code="200"}[30s])"#)
                .await
                .filter(|r| !r.is_empty())
        })
        .await;
        for s in &rate {
            let v: f64 = s["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(-1.0);
            assert!(v >= 0.0, "{who}: {s}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_cascade_federates_a_stock_prometheus() {
    let scratch = Scratch::new("interop-federate");
    let client = fedwatch_config::http::client();
    let fleet = start_fleet(&scratch, 1, 2).await;

    let config = scratch.write(
        "prometheus.yml",
        &format!(
            "{FAST_GLOBAL}  external_labels:\n    cell: cell-01\n{}",
            fleet_scrape_configs(&fleet)
        ),
    );
    let prom = start_prometheus(&scratch, &config, &[]);
    let prom_port = prom.port;
    let cascade = start_tier(
        "cascade",
        "cascade",
        &scratch,
        &format!(
            "{FAST_GLOBAL}scrape_configs:\n  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n\
             \x20   params:\n      'match[]': ['{{job=\"etcd\"}}']\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\n"
        ),
        &[],
    );
    wait_ready(&client, prom_port, "prometheus").await;
    wait_ready(&client, cascade.port, "cascade").await;

    let at_prom = eventually("both etcds scraped by prometheus", Duration::from_secs(40), || async {
        query(&client, prom_port, "etcd_server_has_leader").await.filter(|r| r.len() == 2)
    })
    .await;
    let want = series_values(&at_prom, &[]);
    let got = eventually("the federated etcd series at the cascade", Duration::from_secs(40), || async {
        query(&client, cascade.port, r#"etcd_server_has_leader{cell="cell-01"}"#)
            .await
            .filter(|r| r.len() == 2)
    })
    .await;
    // honor_labels: job and instance are Prometheus's, not the federate job's; the cell
    // label is Prometheus's external label, which /federate adds.
    assert_eq!(series_values(&got, &["cell"]), want);
    let up = eventually("up of the federate job", Duration::from_secs(20), || async {
        query(&client, cascade.port, r#"up{job="federate"}"#)
            .await
            .filter(|r| !r.is_empty())
    })
    .await;
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
}

/// Every series in `store` named `name`.
fn stored_named(store: &MemStore, name: &str) -> Vec<fedwatch_model::TimeSeries> {
    let m = Matcher::new(MatchOp::Equal, "__name__", name).expect("matcher");
    store
        .select(
            &[m],
            SelectHints {
                start: i64::MIN,
                end: i64::MAX,
                ..Default::default()
            },
        )
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ha_pair_of_edges_is_deduplicated_and_fails_over() {
    let scratch = Scratch::new("interop-ha");
    let client = fedwatch_config::http::client();
    let fleet = start_fleet(&scratch, 1, 2).await;

    // The receiving side in-process: the receiver route with HA dedupe over a MemStore.
    let store = Arc::new(MemStore::new());
    let registry = Registry::new();
    let tracker = HaTracker::new(
        HaConfig {
            failover_timeout: Duration::from_secs(3),
            ..HaConfig::default()
        },
        system_clock(),
    );
    let mut state = ReceiverState::new(store.clone(), registry.clone());
    state.ha = Some(tracker.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let recv_port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, write_router(state)).await });

    let mut edges = Vec::new();
    for replica in ["a", "b"] {
        let edge = start_tier(
            &format!("edge-{replica}"),
            "edge",
            &scratch,
            &format!(
                "{FAST_GLOBAL}  external_labels:\n    cell: cell-01\n    __replica__: {replica}\n{}remote_write:\n{}",
                fleet_scrape_configs(&fleet),
                remote_write(&format!("http://127.0.0.1:{recv_port}/api/v1/write")),
            ),
            &[],
        );
        edges.push((replica, edge));
    }
    for (_, e) in &edges {
        wait_ready(&client, e.port, &e.proc.name).await;
    }

    let dedupe = || registry.counter("fedwatch_receiver_ha_deduplicated_samples_total", "", &[]).get();
    eventually(
        "both replicas sending, one deduplicated, both tenants stored",
        Duration::from_secs(40),
        || async {
            let stored = stored_named(&store, "etcd_server_has_leader").len();
            (dedupe() > 0 && tracker.elected("tenant-001").is_some() && stored >= 2).then_some(())
        },
    )
    .await;
    let leader = stored_named(&store, "etcd_server_has_leader");
    let names: Vec<String> = leader.iter().map(|s| s.labels.to_string()).collect();
    assert_eq!(leader.len(), 2, "one series per tenant cluster, no replica label: {names:?}");
    assert!(leader.iter().all(|s| s.labels.get("__replica__").is_none()), "{names:?}");

    // Kill the elected edge; the other takes over after the 3 s timeout and its samples
    // continue the same series.
    let elected = tracker.elected("tenant-001").expect("elected");
    let standby = if elected == "a" { "b" } else { "a" };
    let killed_at = (unix_now() * 1000.0) as i64;
    for (replica, e) in &mut edges {
        if *replica == elected.as_str() {
            e.proc.kill();
        }
    }
    eventually(
        &format!("failover from {elected} to {standby}"),
        Duration::from_secs(40),
        || async { (tracker.elected("tenant-001").as_deref() == Some(standby)).then_some(()) },
    )
    .await;
    eventually("samples after the failover in the same series", Duration::from_secs(30), || async {
        let s = stored_named(&store, "etcd_server_has_leader");
        let latest = s.iter().find(|s| s.labels.get("cluster") == Some("tenant-001"))?.samples.last()?.t;
        (s.len() == 2 && latest > killed_at + 3_000).then_some(())
    })
    .await;
    assert!(registry.counter("fedwatch_receiver_ha_failovers_total", "", &[]).get() >= 1);
    let after = stored_named(&store, "etcd_server_has_leader");
    assert_eq!(
        after.len(),
        2,
        "still one copy per tenant: {:?}",
        after.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>()
    );
}
