//! A running edge picks up a changed configuration on `POST /-/reload` and on SIGHUP, and
//! keeps its running configuration when the new file is invalid.

use std::time::Duration;

use fedwatch_e2e::*;

fn edge_config(fleet_port: u16, tenants: &[&str]) -> String {
    let mut text = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    for t in tenants {
        text.push_str(&format!(
            "  - job_name: etcd-{t}\n    metrics_path: /tenants/{t}/etcd/metrics\n    static_configs:\n      - targets: ['127.0.0.1:{fleet_port}']\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_good_config_and_keeps_the_old_one_on_a_bad_one() {
    let scratch = Scratch::new("reload");
    let client = fedwatch_config::http::client();
    let fleet = start_fleet(&scratch, 1, 3).await;
    let fleet_port = fleet.port;
    let edge = start_tier("edge", "edge", &scratch, &edge_config(fleet_port, &["tenant-001"]), &[]);
    let (port, edge) = (edge.port, edge.proc);
    let up = |job: &'static str| {
        let client = client.clone();
        async move {
            query(&client, port, &format!("up{{job=\"{job}\"}} == 1"))
                .await
                .filter(|r| !r.is_empty())
                .map(|_| ())
        }
    };
    eventually("the first job up", Duration::from_secs(30), || up("etcd-tenant-001")).await;

    // A good file over HTTP.
    scratch.write("edge.yml", &edge_config(fleet_port, &["tenant-001", "tenant-002"]));
    let r = client.post(format!("http://127.0.0.1:{port}/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap_or_default());
    eventually("the added job up after POST /-/reload", Duration::from_secs(30), || {
        up("etcd-tenant-002")
    })
    .await;

    // A bad file is refused with its line, and the running jobs go on.
    scratch.write(
        "edge.yml",
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: x\n    scrape_intervall: 1s\n",
    );
    let r = client.post(format!("http://127.0.0.1:{port}/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let body = r.text().await.unwrap();
    assert!(body.contains("edge.yml:5") && body.contains("scrape_intervall"), "{body}");
    let status: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/api/v1/status/runtimeinfo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["data"]["reloadConfigSuccess"], false, "{status}");
    let scrapes = r#"count_over_time(up{job="etcd-tenant-002"}[1h])"#;
    let before = query_value(&client, port, scrapes).await.expect("scrape count");
    eventually("the old jobs keep scraping", Duration::from_secs(30), || async {
        let now = query_value(&client, port, scrapes).await?;
        (now >= before + 2.0).then_some(())
    })
    .await;

    // SIGHUP applies a fixed file.
    scratch.write("edge.yml", &edge_config(fleet_port, &["tenant-003"]));
    edge.signal("HUP");
    eventually("the job added by SIGHUP up", Duration::from_secs(30), || up("etcd-tenant-003")).await;
    let status: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/api/v1/status/runtimeinfo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["data"]["reloadConfigSuccess"], true, "{status}");
}
