//! remote_write 2.0 from our edge, real processes on loopback:
//! - to our cascade, which speaks 2.0: the data arrives and the edge never falls back;
//! - to Debian's stock Prometheus 2.42 (`--web.enable-remote-write-receiver`), which predates
//!   2.0 (2.54): it does not answer 415 as the spec asks of a receiver that does not take a
//!   content type, but decodes the 2.0 body as an empty 1.0 request and answers 204 without
//!   `X-Prometheus-Remote-Write-Samples-Written`. The edge takes the missing header as "not
//!   a 2.0 receiver", resends as 1.0 and stays on 1.0: the data arrives there too, and
//!   `fedwatch_forward_protocol_fallbacks_total` says it happened. (The 415 fall-back itself
//!   is tested against a mock in lib/wire/tests/sender_compliance.rs.)

use std::time::Duration;

use fedwatch_e2e::*;

async fn metric(client: &reqwest::Client, port: u16, name: &str, label: &str) -> Option<f64> {
    let text = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_sends_remote_write_2_to_a_cascade_and_falls_back_for_prometheus_2_42() {
    let scratch = Scratch::new("rw2-edge");
    let client = fedwatch_config::http::client();
    let fleet = start_fleet(&scratch, 1, 2).await;

    let cascade = start_tier("cascade", "cascade", &scratch, "global:\n  scrape_interval: 15s\n", &[]);
    let prom_config = scratch.write("prometheus.yml", "global:\n  scrape_interval: 15s\n");
    let prom = start_prometheus(&scratch, &prom_config, &["--web.enable-remote-write-receiver"]);
    wait_ready(&client, cascade.port, "cascade").await;
    wait_ready(&client, prom.port, "prometheus").await;

    let rw = |port: u16| {
        format!(
            "  - url: http://127.0.0.1:{port}/api/v1/write\n    protobuf_message: io.prometheus.write.v2.Request\n    \
             queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n"
        )
    };
    let etcd = fleet.sd.join("cell-01/etcd.json").display().to_string();
    let edge = start_tier(
        "edge",
        "edge",
        &scratch,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels:\n    cell: cell-01\n\
             scrape_configs:\n  - job_name: etcd\n    file_sd_configs:\n      - files: ['{etcd}']\nremote_write:\n{}{}",
            rw(cascade.port),
            rw(prom.port)
        ),
        &[],
    );
    wait_ready(&client, edge.port, "edge").await;

    for (who, port) in [("cascade", cascade.port), ("prometheus 2.42", prom.port)] {
        eventually(&format!("the edge's etcd series at {who}"), Duration::from_secs(60), || async {
            query(&client, port, r#"etcd_server_has_leader{cell="cell-01"}"#)
                .await
                .filter(|r| r.len() == 2)
        })
        .await;
    }
    let fallbacks = |port: u16| {
        let client = client.clone();
        let edge_port = edge.port;
        async move {
            metric(
                &client,
                edge_port,
                "fedwatch_forward_protocol_fallbacks_total",
                &format!("127.0.0.1:{port}/"),
            )
            .await
        }
    };
    assert_eq!(fallbacks(cascade.port).await, Some(0.0), "the cascade takes 2.0");
    assert_eq!(fallbacks(prom.port).await, Some(1.0), "Prometheus 2.42 needs 1.0, once");
    // The cascade answered 2.0 requests with 204: nothing refused.
    let refused = metric(&client, cascade.port, "fedwatch_receiver_requests_total", "code=\"4").await;
    assert_eq!(refused, None, "no 4xx at the cascade");
}
