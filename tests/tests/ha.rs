//! A real cascade started with `--receiver.ha.enable` keeps one copy of each cluster's series
//! when an HA pair of edges (external label `__replica__`) sends the same data.

use std::time::Duration;

use fedwatch_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascade_deduplicates_an_ha_pair_of_edges() {
    let scratch = Scratch::new("ha-cascade");
    let client = fedwatch_config::http::client();
    let _fleet = start_fleet(&scratch, 1, 2).await;
    let cascade = start_tier(
        "cascade",
        "cascade",
        &scratch,
        "global:\n  external_labels:\n    region: eu-1\n",
        &["--receiver.ha.enable".into(), "--receiver.ha.failover-timeout=3s".into()],
    );
    let cascade_port = cascade.port;
    let mut edges = Vec::new();
    for replica in ["a", "b"] {
        edges.push(start_tier(
            &format!("edge-{replica}"),
            "edge",
            &scratch,
            &format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels:\n    cell: cell-01\n    __replica__: {replica}\n\
                 scrape_configs:\n  - job_name: etcd\n    file_sd_configs:\n      - files: ['sd/cell-01/etcd.json']\n\
                 remote_write:\n  - url: http://127.0.0.1:{cascade_port}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n"
            ),
            &[],
        ));
    }
    wait_ready(&client, cascade_port, "cascade").await;
    let deduplicated = || async {
        let m = client
            .get(format!("http://127.0.0.1:{cascade_port}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let line = m
            .lines()
            .find(|l| l.starts_with("fedwatch_receiver_ha_deduplicated_samples_total"))?;
        line.rsplit(' ').next()?.parse::<f64>().ok()
    };
    eventually("samples from the standby replica dropped", Duration::from_secs(60), || async {
        deduplicated().await.filter(|n| *n > 0.0)
    })
    .await;
    let series = eventually("both tenants at the cascade", Duration::from_secs(60), || async {
        query(&client, cascade_port, "etcd_server_has_leader")
            .await
            .filter(|r| r.len() >= 2)
    })
    .await;
    assert_eq!(series.len(), 2, "one series per tenant cluster: {series:?}");
    assert!(series.iter().all(|s| s["metric"].get("__replica__").is_none()), "{series:?}");
}
