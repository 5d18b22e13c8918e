//! `amtool` against the central: a silence added with the real `amtool` (Debian's
//! prometheus-alertmanager 0.25) keeps its alert from the webhook while an unsilenced alert
//! is delivered; `amtool silence query` and `amtool alert query` see what Alertmanager
//! would show; after a restart the silence is still there and nothing is notified again.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fedwatch_e2e::*;
use serde_json::Value;

/// Runs amtool against the central and returns its stdout; fails with its stderr.
fn amtool(amtool: &PathBuf, port: u16, args: &[&str]) -> String {
    let out = Command::new(amtool)
        .arg(format!("--alertmanager.url=http://127.0.0.1:{port}"))
        .args(args)
        .output()
        .expect("run amtool");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "amtool {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Notifications received so far for the group of `alertname`.
fn count(payloads: &Payloads, alertname: &str) -> usize {
    payloads
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p["groupLabels"]["alertname"] == alertname)
        .count()
}

/// The central's alerts by name, with their API state.
async fn alert_states(client: &reqwest::Client, port: u16) -> Option<Vec<(String, String)>> {
    let v: Value = client
        .get(format!("http://127.0.0.1:{port}/api/v2/alerts"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let mut out: Vec<(String, String)> = v
        .as_array()?
        .iter()
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                a["status"]["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    Some(out)
}

const RULES: &str = "groups:\n  - name: demo\n    interval: 1s\n    rules:\n      - alert: Loud\n        expr: vector(1)\n\
                     \x20     - alert: Quiet\n        expr: vector(1)\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_silences_an_alert_and_the_silence_survives_a_restart() {
    let amtool_bin =
        system_binary("amtool").expect("amtool (Debian package prometheus-alertmanager) is not installed: run scripts/install-deps");
    let scratch = Scratch::new("silences");
    let client = fedwatch_config::http::client();
    let (hook_port, payloads) = webhook_receiver().await;

    // No rules yet: the silence goes in before anything can fire.
    scratch.write("rules/demo.yml", "groups: []\n");
    scratch.write(
        "alertmanager.yml",
        &format!(
            "route:\n  receiver: on-call\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
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
    let port = central.port;
    wait_ready(&client, port, "central").await;

    let id = amtool(&amtool_bin, port, &["silence", "add", "alertname=Quiet", "-c", "test", "-a", "e2e"]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 36, "amtool prints the new silence's id: {id:?}");
    let listed = amtool(&amtool_bin, port, &["silence", "query"]);
    assert!(
        listed.contains(&id) && listed.contains("alertname=\"Quiet\"") && listed.contains("test"),
        "{listed}"
    );

    scratch.write("rules/demo.yml", RULES);
    let r = client.post(format!("http://127.0.0.1:{port}/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap_or_default());

    eventually("the unsilenced alert at the webhook", Duration::from_secs(60), || async {
        (count(&payloads, "Loud") > 0).then_some(())
    })
    .await;
    let states = eventually("both alerts in the API", Duration::from_secs(30), || async {
        alert_states(&client, port).await.filter(|s| s.len() == 2)
    })
    .await;
    assert_eq!(
        states,
        vec![
            ("Loud".to_string(), "active".to_string()),
            ("Quiet".to_string(), "suppressed".to_string())
        ]
    );
    let active = amtool(&amtool_bin, port, &["alert", "query"]);
    assert!(
        active.contains("Loud") && !active.contains("Quiet"),
        "amtool alert query shows active alerts only:\n{active}"
    );
    let silenced = amtool(&amtool_bin, port, &["alert", "query", "--silenced", "-o", "json"]);
    let silenced: Value = serde_json::from_str(&silenced).expect("amtool JSON output");
    let quiet = silenced
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "Quiet")
        .unwrap_or_else(|| panic!("Quiet among silenced alerts: {silenced}"));
    assert_eq!(quiet["status"]["silencedBy"], serde_json::json!([id]));

    // Both groups flush every second; a few flushes later the silenced one has still sent nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&payloads, "Quiet"), 0, "the silenced alert was notified");
    let loud_before = count(&payloads, "Loud");
    assert_eq!(loud_before, 1, "one notification until repeat_interval");

    // Restart on the same files and store.
    let args = central.args.clone();
    let mut proc = central.proc;
    proc.signal("TERM");
    assert!(proc.wait_exit(Duration::from_secs(30)).is_some(), "central did not stop");
    let restarted = Proc::start("central-restarted", &binary("central"), &args, &scratch);
    wait_ready(&client, port, "central (restarted)").await;

    let listed = amtool(&amtool_bin, port, &["silence", "query"]);
    assert!(listed.contains(&id), "the silence survives a restart:\n{listed}");
    eventually("the alerts back after the restart", Duration::from_secs(30), || async {
        alert_states(&client, port)
            .await
            .filter(|s| s.iter().any(|(n, st)| n == "Loud" && st == "active") && s.iter().any(|(n, st)| n == "Quiet" && st == "suppressed"))
    })
    .await;
    // Several evaluation and flush cycles of the restarted central.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(count(&payloads, "Loud"), loud_before, "a restart repeated a notification");
    assert_eq!(count(&payloads, "Quiet"), 0, "the silenced alert was notified after the restart");

    // Expiring the silence with amtool lets the alert through.
    amtool(&amtool_bin, port, &["silence", "expire", &id]);
    eventually("the formerly silenced alert at the webhook", Duration::from_secs(60), || async {
        (count(&payloads, "Quiet") > 0).then_some(())
    })
    .await;
    drop(restarted);
}
