//! Scrapes ignore proxy settings in the environment, as Prometheus 2.42 does (it uses a
//! proxy only when `proxy_url` says so). The environment is process-wide, so the test runs
//! this binary again with the proxy variables pointing at a closed port and checks that the
//! child's scrape still reaches the target directly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use fedwatch_model::Matcher;
use fedwatch_model::selfmetrics::Registry;
use fedwatch_scrape::ScrapeManager;
use fedwatch_tsdb::{MemStore, Querier, SelectHints};

const CHILD: &str = "FEDWATCH_PROXY_ENV_CHILD";

#[test]
fn scrapes_do_not_go_through_environment_proxies() {
    // A port nothing listens on: a scrape sent through this "proxy" fails to connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let proxy = format!("http://{closed}");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_scrapes_a_local_target", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("HTTP_PROXY", &proxy)
        .env("http_proxy", &proxy)
        .env("ALL_PROXY", &proxy)
        .env("all_proxy", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("scraped directly"), "the child test did not run:\n{text}");
}

#[tokio::test]
async fn child_scrapes_a_local_target() {
    if std::env::var_os(CHILD).is_none() {
        return; // Only meaningful inside the environment the test above sets up.
    }
    let app = Router::new().route("/metrics", get(|| async { "m 1\n" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let yaml = format!(
        "scrape_configs:\n- job_name: j\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\n  static_configs: [{{targets: ['{addr}']}}]\n"
    );
    let cfg = fedwatch_config::parse(&yaml, "test.yml").unwrap();
    let store = Arc::new(MemStore::new());
    let mgr = ScrapeManager::new(store.clone(), Registry::new());
    mgr.apply(&cfg, &BTreeMap::new());
    let up = Matcher::new(fedwatch_model::MatchOp::Equal, "__name__", "up").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = store
            .select(
                std::slice::from_ref(&up),
                SelectHints {
                    start: i64::MIN,
                    end: i64::MAX,
                    ..Default::default()
                },
            )
            .unwrap();
        match got.first().and_then(|s| s.samples.last()) {
            Some(s) if s.v == 1.0 => break,
            _ => {}
        }
        let last = got.first().and_then(|s| s.samples.last()).map(|s| s.v);
        assert!(std::time::Instant::now() < deadline, "up never became 1 (last up: {last:?})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("scraped directly");
}
