//! The same files run under the stock tools: promtool and amtool accept our example
//! configurations, and one edge configuration file drives both a stock Prometheus and our
//! edge, which then see the same targets up.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fedwatch_e2e::*;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root")
}

#[test]
fn example_configs_pass_promtool_and_amtool() {
    let promtool = system_binary("promtool").expect("promtool (Debian package prometheus) is not installed: run scripts/install-deps");
    let amtool =
        system_binary("amtool").expect("amtool (Debian package prometheus-alertmanager) is not installed: run scripts/install-deps");
    let demo = repo_root().join("examples/demo");
    let mut checked = 0;
    for entry in std::fs::read_dir(&demo).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let (tool, args): (&Path, Vec<&str>) = if path.file_name().is_some_and(|n| n == "alertmanager.yml") {
            (&amtool, vec!["check-config"])
        } else {
            (&promtool, vec!["check", "config"])
        };
        let out = Command::new(tool).args(args).arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{} rejects {}: {}",
            tool.display(),
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 5, "expected the demo's configurations, found {checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_config_file_runs_under_stock_prometheus_and_our_edge() {
    let scratch = Scratch::new("stock-prometheus");
    let client = fedwatch_config::http::client();

    let fleet = start_fleet(&scratch, 1, 2).await;
    let fleet_port = fleet.port;
    let config = scratch.write(
        "edge.yml",
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels:\n    cell: cell-01\n\
         scrape_configs:\n  - job_name: apiserver\n    file_sd_configs:\n      - files: ['sd/cell-01/apiserver.json']\n\
         \x20 - job_name: etcd\n    metrics_path: /tenants/tenant-001/etcd/metrics\n    static_configs:\n      - targets: ['127.0.0.1:FLEET']\n        labels:\n          cluster: tenant-001\n"
            .replace("FLEET", &fleet_port.to_string())
            .as_str(),
    );

    let prom = start_prometheus(&scratch, &config, &[]);
    let prom_port = prom.port;
    let edge_port = free_port();
    let _edge = Proc::start(
        "edge",
        &binary("edge"),
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", scratch.path("edge-data").display()),
            format!("--web.listen-address=127.0.0.1:{edge_port}"),
        ],
        &scratch,
    );
    // Both see the same targets up, with the same target labels.
    for (who, port) in [("prometheus", prom_port), ("edge", edge_port)] {
        let up = eventually(&format!("three targets up at {who}"), Duration::from_secs(60), || async {
            query(&client, port, "up == 1").await.filter(|r| r.len() == 3)
        })
        .await;
        let mut seen: Vec<String> = up
            .iter()
            .map(|s| format!("{}/{}/{}", s["metric"]["job"], s["metric"]["cluster"], s["metric"]["instance"]))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                format!("\"apiserver\"/\"tenant-001\"/\"tenant-001-apiserver-0\""),
                format!("\"apiserver\"/\"tenant-002\"/\"tenant-002-apiserver-0\""),
                format!("\"etcd\"/\"tenant-001\"/\"127.0.0.1:{fleet_port}\""),
            ],
            "{who}"
        );
        let has_leader = query(&client, port, r#"etcd_server_has_leader{cluster="tenant-001"}"#)
            .await
            .unwrap_or_default();
        assert_eq!(has_leader.len(), 1, "{who}: {has_leader:?}");
        assert_eq!(has_leader[0]["value"][1], "1", "{who}");
    }
}
