//! edge → cascade → central with real processes: the real prometheus-node-exporter is
//! scraped by an edge, forwarded through a cascade, and queried at the central with every
//! tier's external labels; then a rule fires and resolves at a real webhook receiver.

use std::time::Duration;

use fedwatch_e2e::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_samples_reach_the_central_with_every_tiers_external_labels() {
    let Some(node_exporter) = system_binary("prometheus-node-exporter") else {
        panic!("prometheus-node-exporter is not installed: .ci/run installs it (apt-get install prometheus-node-exporter)");
    };
    let scratch = Scratch::new("federation");
    let client = fedwatch_config::http::client();

    let node_port = free_port();
    let _node = Proc::start(
        "node-exporter",
        &node_exporter,
        &[
            format!("--web.listen-address=127.0.0.1:{node_port}"),
            "--collector.disable-defaults".into(),
            "--collector.cpu".into(),
            "--collector.meminfo".into(),
        ],
        &scratch,
    );

    let central = start_tier("central", "central", &scratch, "global:\n  evaluation_interval: 1s\n", &[]);
    let cascade = start_tier(
        "cascade",
        "cascade",
        &scratch,
        &format!(
            "global:\n  external_labels:\n    region: eu-1\nremote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n",
            central.port
        ),
        &[],
    );
    let edge = start_tier(
        "edge",
        "edge",
        &scratch,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels:\n    cell: cell-01\n    cluster: meta-01\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n\
             remote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n",
            cascade.port
        ),
        &[],
    );
    for t in [&central, &cascade, &edge] {
        wait_ready(&client, t.port, &t.proc.name).await;
    }

    // The edge has the raw series with only its target labels.
    let at_edge = eventually("node_cpu_seconds_total at the edge", Duration::from_secs(60), || async {
        query(&client, edge.port, r#"node_cpu_seconds_total{job="node",mode="idle"}"#)
            .await
            .filter(|r| !r.is_empty())
    })
    .await;
    assert_eq!(at_edge[0]["metric"]["instance"], format!("127.0.0.1:{node_port}"));
    assert!(
        at_edge[0]["metric"].get("cell").is_none(),
        "external labels are added on the way up, not on ingest"
    );

    // The central has it with the edge's and the cascade's external labels.
    let at_central = eventually("node_cpu_seconds_total at the central", Duration::from_secs(60), || async {
        query(
            &client,
            central.port,
            r#"node_cpu_seconds_total{job="node",mode="idle",cell="cell-01",region="eu-1"}"#,
        )
        .await
        .filter(|r| !r.is_empty())
    })
    .await;
    let m = &at_central[0]["metric"];
    assert_eq!(m["cluster"], "meta-01");
    assert_eq!(m["instance"], format!("127.0.0.1:{node_port}"));
    let up = eventually("up at the central", Duration::from_secs(30), || async {
        query(&client, central.port, r#"up{job="node",region="eu-1"}"#)
            .await
            .filter(|r| !r.is_empty())
    })
    .await;
    assert_eq!(up[0]["value"][1], "1");

    // Every tier reports its own counters.
    for t in [&central, &cascade, &edge] {
        let metrics = client
            .get(format!("http://127.0.0.1:{}/metrics", t.port))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("# TYPE"), "{} /metrics is empty", t.proc.name);
        let healthy = client.get(format!("http://127.0.0.1:{}/-/healthy", t.port)).send().await.unwrap();
        assert!(healthy.status().is_success());
    }
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() >= 20 && s.as_bytes()[4] == b'-' && s.contains('T'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_fires_and_resolves_at_a_webhook_with_the_alertmanager_v4_payload() {
    let scratch = Scratch::new("alerting");
    let client = fedwatch_config::http::client();
    let (hook_port, payloads) = webhook_receiver().await;

    let fleet = start_fleet(&scratch, 1, 3).await;
    let (fleet_port, etcd_sd) = (fleet.port, fleet.sd.join("cell-01/etcd.json"));

    scratch.write(
        "rules/etcd.yml",
        "groups:\n  - name: etcd\n    rules:\n      - alert: EtcdNoLeader\n        expr: etcd_server_has_leader == 0\n        for: 2s\n\
         \x20       labels:\n          severity: critical\n        annotations:\n          summary: 'etcd of {{ $labels.cluster }} has no leader'\n",
    );
    scratch.write(
        "alertmanager.yml",
        &format!(
            "route:\n  receiver: on-call\n  group_by: [alertname, cluster]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: on-call\n    webhook_configs:\n      - url: http://127.0.0.1:{hook_port}/hook\n"
        ),
    );
    let central = start_tier(
        "central",
        "central",
        &scratch,
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - rules/*.yml\n",
        &[format!("--notify.config.file={}", scratch.path("alertmanager.yml").display())],
    );
    let edge = start_tier(
        "edge",
        "edge",
        &scratch,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels:\n    cell: cell-01\n\
             scrape_configs:\n  - job_name: etcd\n    file_sd_configs:\n      - files: ['{}']\n\
             remote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n",
            etcd_sd.display(),
            central.port
        ),
        &[],
    );
    wait_ready(&client, central.port, "central").await;
    wait_ready(&client, edge.port, "edge").await;
    eventually("etcd series at the central", Duration::from_secs(60), || async {
        query(&client, central.port, r#"etcd_server_has_leader{cluster="tenant-002"}"#)
            .await
            .filter(|r| !r.is_empty())
    })
    .await;

    let fault = |has_leader: u8| {
        client
            .post(format!(
                "http://127.0.0.1:{fleet_port}/faults/etcd-leader/tenant-002?has_leader={has_leader}"
            ))
            .send()
    };
    assert!(fault(0).await.unwrap().status().is_success());

    let firing = eventually("a firing notification", Duration::from_secs(60), || async {
        payloads.lock().unwrap().iter().find(|p| p["status"] == "firing").cloned()
    })
    .await;
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["receiver"], "on-call");
    assert_eq!(
        firing["groupLabels"],
        serde_json::json!({"alertname": "EtcdNoLeader", "cluster": "tenant-002"})
    );
    assert_eq!(firing["commonLabels"]["severity"], "critical");
    assert_eq!(firing["commonLabels"]["cell"], "cell-01");
    assert_eq!(firing["commonAnnotations"]["summary"], "etcd of tenant-002 has no leader");
    assert!(
        firing["groupKey"]
            .as_str()
            .is_some_and(|k| k.contains("alertname=\"EtcdNoLeader\"")),
        "{firing}"
    );
    assert_eq!(firing["truncatedAlerts"], 0);
    assert!(firing["externalURL"].is_string());
    let alerts = firing["alerts"].as_array().expect("alerts array");
    assert_eq!(alerts.len(), 1, "{firing}");
    let alert = &alerts[0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "EtcdNoLeader");
    assert_eq!(alert["labels"]["job"], "etcd");
    assert!(is_rfc3339(&alert["startsAt"]) && is_rfc3339(&alert["endsAt"]), "{alert}");
    assert!(alert["generatorURL"].is_string());
    assert!(
        alert["fingerprint"]
            .as_str()
            .is_some_and(|f| f.len() == 16 && f.chars().all(|c| c.is_ascii_hexdigit())),
        "{alert}"
    );

    assert!(fault(1).await.unwrap().status().is_success());
    let resolved = eventually("a resolved notification", Duration::from_secs(60), || async {
        payloads.lock().unwrap().iter().find(|p| p["status"] == "resolved").cloned()
    })
    .await;
    let alert = &resolved["alerts"][0];
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["labels"]["alertname"], "EtcdNoLeader");
    assert_ne!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alert["startsAt"], firing["alerts"][0]["startsAt"], "the same alert resolves");
}
