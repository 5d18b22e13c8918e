//! HTTPS scrapes with `tls_config`: the real prometheus-node-exporter serves TLS and demands
//! a client certificate (its `--web.config.file`), signed by a CA made here with the real
//! `openssl`. An edge job with the CA, the client certificate and a `server_name` scrapes it
//! (`up` 1, node metrics stored); a job without the client certificate, one that does not
//! trust the CA, and one whose CA file is missing each report `up` 0 with the reason on
//! `/api/v1/targets`, while the good job keeps scraping.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fedwatch_e2e::*;

/// Runs openssl with `args` in `dir`, panicking with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (.ci/run installs it)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, a server certificate for `node.fedwatch.test` and a client certificate, in `dir`.
fn make_certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca: Vec<&str> = ["req", "-x509"]
        .into_iter()
        .chain(ec)
        .chain(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=fedwatch test CA"])
        .collect();
    openssl(dir, &ca);
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:node.fedwatch.test\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn) in [("server", "node.fedwatch.test"), ("client", "fedwatch edge")] {
        let subj = format!("/CN={cn}");
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let req: Vec<&str> = ["req"]
            .into_iter()
            .chain(ec)
            .chain(["-keyout", &key, "-out", &csr, "-subj", &subj])
            .collect();
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
    // A second CA the server's certificate does not chain to.
    let other: Vec<&str> = ["req", "-x509"]
        .into_iter()
        .chain(ec)
        .chain([
            "-keyout",
            "other.key",
            "-out",
            "other.crt",
            "-days",
            "2",
            "-subj",
            "/CN=someone else",
        ])
        .collect();
    openssl(dir, &other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_scrapes_with_client_certificates() {
    let Some(node_exporter) = system_binary("prometheus-node-exporter") else {
        panic!("prometheus-node-exporter is not installed: .ci/run installs it (apt-get install prometheus-node-exporter)");
    };
    let scratch = Scratch::new("tls-scrape");
    let dir = scratch.path("pki");
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let client = fedwatch_config::http::client();

    let web = scratch.write(
        "node-web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {d}/server.crt\n  key_file: {d}/server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {d}/ca.crt\n",
            d = dir.display()
        ),
    );
    let node_port = free_port();
    let _node = Proc::start(
        "node-exporter",
        &node_exporter,
        &[
            format!("--web.listen-address=127.0.0.1:{node_port}"),
            format!("--web.config.file={}", web.display()),
            "--collector.disable-defaults".into(),
            "--collector.meminfo".into(),
        ],
        &scratch,
    );

    // Paths are relative to the config file's directory, as in Prometheus.
    let job = |name: &str, tls: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    static_configs: [{{targets: ['127.0.0.1:{node_port}']}}]\n    tls_config:\n{tls}"
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n{}{}{}{}",
        job(
            "mtls",
            "      ca_file: pki/ca.crt\n      cert_file: pki/client.crt\n      key_file: pki/client.key\n      server_name: node.fedwatch.test\n"
        ),
        job(
            "no-client-cert",
            "      ca_file: pki/ca.crt\n      server_name: node.fedwatch.test\n"
        ),
        job(
            "wrong-ca",
            "      ca_file: pki/other.crt\n      cert_file: pki/client.crt\n      key_file: pki/client.key\n      server_name: node.fedwatch.test\n"
        ),
        job("missing-ca", "      ca_file: pki/absent.crt\n"),
    );
    let edge = start_tier("edge", "edge", &scratch, &config, &[]);
    wait_ready(&client, edge.port, "edge").await;

    let up = eventually("the mTLS job scrapes the node exporter", Duration::from_secs(60), || async {
        query_value(&client, edge.port, r#"up{job="mtls"}"#).await.filter(|v| *v == 1.0)
    })
    .await;
    assert_eq!(up, 1.0);
    let mem = eventually("node metrics from the HTTPS target are stored", Duration::from_secs(30), || async {
        query_value(&client, edge.port, r#"node_memory_MemTotal_bytes{job="mtls"}"#).await
    })
    .await;
    assert!(mem > 0.0, "MemTotal {mem}");

    // Each broken job is down with a reason that says why.
    let targets_url = format!("http://127.0.0.1:{}/api/v1/targets", edge.port);
    for (job, want) in [
        ("no-client-cert", ""),
        ("wrong-ca", "certificate"),
        ("missing-ca", "reading ca_file"),
    ] {
        let error = eventually(&format!("job {job} reports its failure"), Duration::from_secs(30), || async {
            let body: serde_json::Value = client.get(&targets_url).send().await.ok()?.json().await.ok()?;
            let t = body["data"]["activeTargets"]
                .as_array()?
                .iter()
                .find(|t| t["labels"]["job"] == job && t["health"] == "down")?
                .clone();
            t["lastError"].as_str().map(str::to_string)
        })
        .await;
        assert!(
            !error.is_empty() && error.contains(want),
            "job {job}: lastError {error:?} should mention {want:?}"
        );
        assert_eq!(
            query_value(&client, edge.port, &format!("up{{job=\"{job}\"}}")).await,
            Some(0.0),
            "job {job}"
        );
    }
    assert_eq!(
        query_value(&client, edge.port, r#"up{job="mtls"}"#).await,
        Some(1.0),
        "the good job keeps scraping"
    );
}
