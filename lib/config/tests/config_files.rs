//! Whole configuration files: our example, the shared promtool fixtures, and a table of
//! invalid files with the messages we give (the reason in each was first checked against
//! `promtool check config` 2.42, which rejects the same files).

use std::path::{Path, PathBuf};
use std::time::Duration;

use fedwatch_config::{Action, ConfigError, check_files, load, parse};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

/// `../shared/config-fixtures` beside the repository, or `$FEDWATCH_SHARED/config-fixtures`.
fn shared_fixtures() -> PathBuf {
    if let Ok(p) = std::env::var("FEDWATCH_SHARED") {
        return PathBuf::from(p).join("config-fixtures");
    }
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let candidate = d.join("shared");
        if candidate.join("README.md").is_file() && candidate.join("config-fixtures").is_dir() {
            return candidate.join("config-fixtures");
        }
        dir = d.parent();
    }
    panic!(
        "shared/config-fixtures not found above {}; set FEDWATCH_SHARED",
        env!("CARGO_MANIFEST_DIR")
    );
}

#[test]
fn example_edge_config_loads_with_defaults_resolved() {
    let cfg = load(testdata("edge.yml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.global.scrape_interval.0, Duration::from_secs(15));
    assert_eq!(cfg.global.external_labels.get("region").map(String::as_str), Some("eu-1"));
    assert_eq!(cfg.base_dir, testdata(""));
    assert_eq!(cfg.resolve_path("rules/a.yml"), testdata("rules/a.yml"));

    let node = cfg.scrape_config("node").unwrap();
    assert_eq!(node.scrape_interval.0, Duration::from_secs(90));
    assert_eq!(node.scrape_timeout.0, Duration::from_secs(5), "timeout from global");
    assert_eq!((node.metrics_path.as_str(), node.scheme.as_str()), ("/metrics", "http"));
    assert!(node.honor_timestamps && !node.honor_labels);
    assert_eq!(node.file_sd_configs[0].refresh_interval.0, Duration::from_secs(60));
    assert_eq!(node.relabel_configs[1].action, Action::LabelDrop);
    assert_eq!(node.metric_relabel_configs[0].action, Action::Drop);
    assert_eq!((node.sample_limit, node.label_limit), (50_000, 64));

    let api = cfg.scrape_config("apiserver").unwrap();
    assert_eq!(api.scrape_interval.0, Duration::from_secs(15), "interval from global");
    assert!(api.honor_labels && !api.honor_timestamps);
    assert_eq!(api.params["format"], vec!["prometheus".to_string()]);
    assert!(api.unsupported_fields().contains(&"dns_sd_configs"));

    let rw = &cfg.remote_write[0];
    assert_eq!(rw.remote_timeout.0, Duration::from_secs(30));
    assert_eq!(rw.queue_config.capacity, 10_000);
    assert_eq!(rw.queue_config.min_backoff.0, Duration::from_millis(30));
    assert!(!rw.metadata_config.send);
    assert_eq!(
        cfg.alerting.alertmanagers[0].static_configs[0].targets,
        vec!["alertmanager:9093".to_string()]
    );
    assert_eq!(cfg.remote_read.len(), 1);
}

#[test]
fn defaults_of_an_empty_scrape_config() {
    let cfg = parse("scrape_configs:\n- job_name: a\nremote_write:\n- url: http://x/w\n", "t.yml").unwrap();
    let sc = &cfg.scrape_configs[0];
    assert_eq!(
        (sc.scrape_interval.0, sc.scrape_timeout.0),
        (Duration::from_secs(60), Duration::from_secs(10))
    );
    assert_eq!(cfg.global.evaluation_interval.0, Duration::from_secs(60));
    let q = &cfg.remote_write[0].queue_config;
    assert_eq!((q.capacity, q.max_samples_per_send, q.max_shards), (2500, 500, 200));
    assert_eq!(
        (q.batch_send_deadline.0, q.max_backoff.0),
        (Duration::from_secs(5), Duration::from_secs(5))
    );
    // A 5s interval caps the default 10s timeout, as in Prometheus.
    let cfg = parse(
        "global: {scrape_interval: 5s}\nscrape_configs:\n- job_name: a\n- job_name: b\n  scrape_interval: 2s\n",
        "t.yml",
    )
    .unwrap();
    assert_eq!(cfg.global.scrape_timeout.0, Duration::from_secs(5));
    assert_eq!(cfg.scrape_configs[1].scrape_timeout.0, Duration::from_secs(2));
}

/// What `cmd/promtool/main_test.go` expects of each fixture, where it concerns what we check.
#[test]
fn shared_promtool_fixtures() {
    enum Want {
        /// Parses, and the full check finds nothing.
        Valid,
        /// Parse fails with a message containing this.
        ParseError(&'static str),
        /// Parses (`--syntax-only` succeeds), the full check reports this.
        CheckError(&'static str),
    }
    let cases = [
        ("prometheus-config.good.yml", Want::Valid),
        (
            "prometheus-config.bad.yml",
            Want::ParseError("prometheus-config.bad.yml:1: unknown field \"not-prometheus\""),
        ),
        // Lint findings (duplicate rules, long interval) belong to the rules crate; syntax is valid.
        ("prometheus-config.lint.yml", Want::Valid),
        ("prometheus-config.lint.too_long_scrape_interval.yml", Want::Valid),
        ("prometheus-aws-sd-empty-region.good.yml", Want::Valid),
        (
            "config_with_rule_files.yml",
            Want::CheckError("\"non-existent-file.yml\" does not point to an existing file"),
        ),
        ("config_with_service_discovery_files.yml", Want::Valid),
        (
            "config_with_tls_files.yml",
            Want::CheckError("error checking client cert file \"nonexistent_cert_file.yml\""),
        ),
        (
            "authorization_credentials_file.bad.yml",
            Want::CheckError("error checking authorization credentials or bearer token file \"/random/file/which/does/not/exist.yml\""),
        ),
        ("authorization_credentials_file.good.yml", Want::Valid),
        ("url_in_scrape_targetgroup_with_relabel_config.good.yml", Want::Valid),
        (
            "url_in_scrape_targetgroup_with_relabel_config.bad.yml",
            Want::CheckError("instance 0 in group 0: \"http://bad\" is not a valid hostname"),
        ),
        // Alertmanager targets are the notifier's; we accept the structure and keep it.
        ("url_in_alert_targetgroup_with_relabel_config.good.yml", Want::Valid),
    ];
    // Skipped: url_in_alert_targetgroup_with_relabel_config.bad.yml (alertmanager target
    // checks belong to the notifier), prometheus-config.rules.good.yml and
    // prometheus-rules.lint.yml (rule files, not configs), *sd-file* (file_sd target files,
    // covered by discovery's unit tests).
    let dir = shared_fixtures();
    for (name, want) in cases {
        let loaded = load(dir.join(name));
        match (loaded, want) {
            (Ok(cfg), Want::Valid) => assert_eq!(check_files(&cfg), Vec::<String>::new(), "{name}"),
            (Ok(cfg), Want::CheckError(msg)) => {
                let problems = check_files(&cfg);
                assert!(problems.iter().any(|p| p.contains(msg)), "{name}: {problems:?} lacks {msg:?}");
            }
            (Err(e), Want::ParseError(msg)) => {
                let text = e.to_string();
                assert!(text.contains(msg), "{name}: {text:?} lacks {msg:?}");
            }
            (Ok(_), Want::ParseError(msg)) => panic!("{name}: parsed, expected error {msg:?}"),
            (Err(e), _) => panic!("{name}: {e}"),
        }
    }
}

#[test]
fn invalid_files_table() {
    let cases: &[(&str, &str)] = &[
        (
            "global:\n  scrape_interval: 5x\n",
            "edge.yml:2: bad duration \"5x\": not a valid duration string",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n",
            "edge.yml:3: unknown field \"scrape_intervall\", expected one of job_name,",
        ),
        (
            "global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n",
            "edge.yml:3: global scrape timeout greater than scrape interval",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
            "edge.yml:2: scrape timeout greater than scrape interval for scrape config with job name \"a\"",
        ),
        (
            "scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: 'a'\n",
            "edge.yml:4: found multiple scrape configs with job name \"a\"",
        ),
        ("scrape_configs:\n  - scrape_interval: 5s\n", "edge.yml: job_name is empty"),
        (
            "global:\n  external_labels:\n    \"1a\": x\n",
            "edge.yml:3: \"1a\" is not a valid label name",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - labels: {\"a-b\": x}\n",
            "edge.yml:2: \"a-b\" is not a valid label name",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    scheme: ftp\n",
            "edge.yml:3: scrape config for job \"a\": unsupported scheme \"ftp\", expected \"http\" or \"https\"",
        ),
        (
            "remote_write:\n  - url: not a url\n",
            "edge.yml:2: remote_write[0]: invalid url \"not a url\"",
        ),
        (
            "remote_write:\n  - name: x\n",
            "edge.yml: remote_write[0]: url for remote_write is empty",
        ),
        (
            "remote_write:\n  - url: http://a\n    protobuf_message: io.prometheus.write.v3.Request\n",
            "edge.yml:3: remote_write[0]: unknown remote write protobuf message \"io.prometheus.write.v3.Request\"; expected \"prometheus.WriteRequest\" or \"io.prometheus.write.v2.Request\"",
        ),
        (
            "remote_write:\n  - url: http://a\n    headers: {User-Agent: x}\n",
            "edge.yml:3: User-Agent is a reserved header. It must not be changed",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: replace\n",
            "edge.yml:4: relabel configuration for replace action requires 'target_label' value",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: ['*/x.yml']\n",
            "edge.yml:2: path name \"*/x.yml\" is not valid for file discovery",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - refresh_interval: 1m\n",
            "edge.yml:2: file service discovery config must contain at least one path name",
        ),
        ("scrape_configs:\n  - job_name: a\n    sample_limit: -1\n", "edge.yml:3:"),
        ("scrape_configs: {job_name: a}\n", "edge.yml:1:"),
        ("global: {scrape_interval: 1s\n", "edge.yml:1: "),
    ];
    for (yaml, want) in cases {
        match parse(yaml, "edge.yml") {
            Ok(_) => panic!("accepted:\n{yaml}"),
            Err(e) => {
                let text = e.to_string();
                assert!(text.starts_with(want), "{yaml}\n got: {text}\nwant: {want}");
            }
        }
    }
}

#[test]
fn missing_file_names_the_path() {
    match load("/nonexistent/edge.yml") {
        Err(ConfigError::Io { path, .. }) => assert_eq!(path, "/nonexistent/edge.yml"),
        other => panic!("{other:?}"),
    }
}
