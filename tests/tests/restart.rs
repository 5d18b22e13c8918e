//! A tier killed with SIGKILL keeps every sample it acknowledged: the WAL is replayed when
//! it starts again on the same storage path.

use std::time::Duration;

use fedwatch_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_killed_with_sigkill_keeps_what_it_acknowledged() {
    let scratch = Scratch::new("restart");
    let client = fedwatch_config::http::client();
    let _fleet = start_fleet(&scratch, 1, 2).await;
    let central = start_tier("central", "central", &scratch, "global:\n  evaluation_interval: 1s\n", &[]);
    let central_port = central.port;
    let mut central_proc = central.proc;
    let _edge = start_tier(
        "edge",
        "edge",
        &scratch,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: etcd\n    file_sd_configs:\n      - files: ['sd/cell-01/etcd.json']\n\
             remote_write:\n  - url: http://127.0.0.1:{central_port}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n"
        ),
        &[],
    );

    // Wait until the central holds several samples of each series, then kill it hard.
    let count_query = r#"count_over_time(etcd_server_has_leader{cluster="tenant-001"}[1h])"#;
    let before = eventually("five samples at the central", Duration::from_secs(60), || async {
        query_value(&client, central_port, count_query).await.filter(|c| *c >= 5.0)
    })
    .await;
    central_proc.kill();

    let central = Proc::start("central-restarted", &binary("central"), &central.args, &scratch);
    wait_ready(&client, central_port, &central.name).await;
    let after = query_value(&client, central_port, count_query).await.unwrap_or(0.0);
    assert!(
        after >= before,
        "the central had {before} samples before SIGKILL and {after} after restart"
    );
}
