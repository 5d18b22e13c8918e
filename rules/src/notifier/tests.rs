use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::mpsc;

use super::*;

/// A webhook receiver on 127.0.0.1:0 that answers with `statuses` in turn (then 200) and
/// forwards every body it accepts.
async fn receiver(statuses: Vec<u16>) -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let statuses = Arc::new(Mutex::new(statuses.into_iter()));
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let tx = tx.clone();
            let statuses = statuses.clone();
            async move {
                let status = statuses.lock().unwrap().next().unwrap_or(200);
                assert_eq!(headers.get("content-type").unwrap(), "application/json");
                if status == 200 {
                    let _ = tx.send(serde_json::from_str::<Value>(&body).unwrap());
                }
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), rx)
}

/// The next payload; fails instead of hanging when none arrives.
async fn recv(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no webhook notification within 10s")
        .expect("receiver closed")
}

fn notifier(url: &str, route: &str) -> (Notifier, Registry) {
    let src = format!("route:\n  receiver: hook\n{route}\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: {url}\n");
    let config = config::parse(Path::new("am.yml"), &src).unwrap();
    let registry = Registry::new();
    let n = Notifier::new(config, "http://fw:9090", registry.clone()).with_backoff(Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(20),
    });
    (n, registry)
}

fn alert(name: &str, inst: &str, starts: i64, ends: i64) -> PostableAlert {
    PostableAlert {
        labels: Labels::from_pairs([("alertname", name), ("instance", inst)]),
        annotations: BTreeMap::new(),
        starts_at: starts,
        ends_at: ends,
        generator_url: "http://fw:9090/graph".into(),
    }
}

async fn flush(n: &Notifier, t: i64) -> usize {
    let handles = n.flush_due(t);
    let count = handles.len();
    for h in handles {
        h.await.unwrap();
    }
    count
}

const S: i64 = 1000;
const T0: i64 = 1_767_225_600_000;

#[tokio::test]
async fn group_wait_interval_repeat_and_resolution() {
    let (url, mut rx) = receiver(vec![]).await;
    let (n, registry) = notifier(
        &url,
        "  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 1h",
    );
    let far = T0 + 24 * 3600 * S;
    n.receive(vec![alert("Down", "a", T0, far)], T0);
    assert_eq!(n.groups()[0].0, "{}:{alertname=\"Down\"}");
    assert_eq!(flush(&n, T0 + 29 * S).await, 0, "group_wait not over");
    n.receive(vec![alert("Down", "b", T0 + 10 * S, far)], T0 + 10 * S);
    flush(&n, T0 + 30 * S).await;
    let p = recv(&mut rx).await;
    assert_eq!(p["alerts"].as_array().unwrap().len(), 2, "both alerts batched by group_wait");
    assert_eq!(p["notification_reason"], "first notification");
    assert_eq!(p["groupKey"], "{}:{alertname=\"Down\"}");
    assert_eq!(p["groupLabels"]["alertname"], "Down");

    // Nothing new: no notification at the next group_interval.
    flush(&n, T0 + 330 * S).await;
    // A resolution is sent at the next group_interval.
    n.receive(vec![alert("Down", "a", T0, T0 + 400 * S)], T0 + 400 * S);
    flush(&n, T0 + 630 * S).await;
    let p = recv(&mut rx).await;
    assert_eq!(p["notification_reason"], "some alerts resolved");
    assert_eq!(p["status"], "firing");
    let statuses: Vec<&str> = p["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["resolved", "firing"]);
    assert_eq!(p["alerts"][0]["endsAt"], "2026-01-01T00:06:40Z");
    assert_eq!(p["alerts"][1]["endsAt"], webhook::ZERO_TIME);
    assert_eq!(n.groups()[0].1.len(), 1, "the resolved alert left the group");

    // repeat_interval: the unchanged group is re-sent an hour after the last notification.
    flush(&n, T0 + 930 * S).await;
    flush(&n, T0 + 630 * S + 3600 * S).await;
    let p = recv(&mut rx).await;
    assert_eq!(p["notification_reason"], "repeat interval elapsed");
    assert!(rx.try_recv().is_err(), "exactly the notifications asserted above");
    let metrics = registry.render();
    assert!(
        metrics.contains("fedwatch_notifications_total{integration=\"webhook\",receiver=\"hook\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn failures_are_retried_counted_and_do_not_block_other_groups() {
    let (url, mut rx) = receiver(vec![500, 503]).await;
    let (n, registry) = notifier(&url, "  group_by: [alertname]\n  group_wait: 0s");
    n.receive(vec![alert("A", "a", T0, 0), alert("B", "b", T0, 0)], T0);
    assert_eq!(flush(&n, T0).await, 2);
    let mut names: Vec<String> = [recv(&mut rx).await, recv(&mut rx).await]
        .iter()
        .map(|p| p["commonLabels"]["alertname"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["A", "B"]);
    let m = registry.render();
    assert!(
        m.contains("fedwatch_notification_requests_failed_total{integration=\"webhook\",receiver=\"hook\"} 2"),
        "{m}"
    );
    assert!(!m.contains("fedwatch_notifications_failed_total"), "retries succeeded: {m}");

    let (url, _rx) = receiver(vec![400]).await;
    let (n, registry) = notifier(&url, "  group_wait: 0s");
    n.receive(vec![alert("A", "a", T0, 0)], T0);
    flush(&n, T0).await;
    let m = registry.render();
    assert!(
        m.contains("fedwatch_notifications_failed_total{integration=\"webhook\",receiver=\"hook\"} 1"),
        "4xx is not retried: {m}"
    );
    assert!(
        m.contains("fedwatch_notification_requests_total{integration=\"webhook\",receiver=\"hook\"} 1"),
        "{m}"
    );
    assert_eq!(n.groups()[0].1.len(), 1, "the alert stays for the next attempt");
}

#[test]
fn dedup_rule_table() {
    let set = |v: &[u64]| v.iter().copied().collect::<HashSet<u64>>();
    let entry = |f: &[u64], r: &[u64], at: i64| LogEntry {
        firing: set(f),
        resolved: set(r),
        at,
    };
    let h = 3_600_000;
    // (log entry, firing, resolved, send_resolved, now, expected reason)
    type Case<'a> = (Option<LogEntry>, &'a [u64], &'a [u64], bool, i64, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (None, &[1], &[], true, 0, Some("first notification")),
        (None, &[], &[1], true, 0, None),
        (Some(entry(&[1], &[], 0)), &[1, 2], &[], true, 1, Some("new alerts added")),
        (Some(entry(&[1, 2], &[], 0)), &[1], &[2], true, 1, Some("some alerts resolved")),
        (Some(entry(&[1, 2], &[], 0)), &[1], &[2], false, 1, None),
        (Some(entry(&[1], &[], 0)), &[], &[1], false, 1, Some("all alerts resolved")),
        (Some(entry(&[], &[1], 0)), &[], &[1], true, 1, None),
        (Some(entry(&[1], &[], 0)), &[1], &[], true, h - 1, None),
        (Some(entry(&[1], &[], 0)), &[1], &[], true, h, Some("repeat interval elapsed")),
    ];
    for (i, (e, f, r, send_resolved, now, want)) in cases.into_iter().enumerate() {
        assert_eq!(needs_update(e.as_ref(), &set(f), &set(r), h, send_resolved, now), want, "case {i}");
    }
}

#[tokio::test]
async fn a_failing_integration_does_not_stop_the_others_of_its_receiver() {
    let (url, mut rx) = receiver(vec![]).await;
    let dead = format!("http://127.0.0.1:{}/sms", crate::test_support::free_port());
    // group_interval 3s: the dead gateway is retried for 3s; the webhook must not wait.
    let yaml = format!(
        "route:\n  receiver: r\n  group_interval: 3s\nreceivers:\n- name: r\n  sms_configs:\n  - url: {dead}\n    to: ['+1']\n  webhook_configs:\n  - url: {url}\n"
    );
    let (n, registry) = crate::test_support::notifier(&yaml);
    n.receive(vec![crate::test_support::firing("X", "a", T0)], T0);
    let handles = n.flush_due(T0);
    let started = std::time::Instant::now();
    assert_eq!(recv(&mut rx).await["status"], "firing");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the webhook waited for the failing SMS gateway"
    );
    for h in handles {
        h.await.unwrap();
    }
    let m = registry.render();
    assert!(
        m.contains("fedwatch_notifications_failed_total{integration=\"sms\",receiver=\"r\"} 1"),
        "{m}"
    );
    assert!(!m.contains("fedwatch_notifications_failed_total{integration=\"webhook\""), "{m}");
}

fn labelled(pairs: &[(&str, &str)], starts: i64, ends: i64) -> PostableAlert {
    PostableAlert {
        labels: Labels::from_pairs(pairs.iter().copied()),
        annotations: BTreeMap::new(),
        starts_at: starts,
        ends_at: ends,
        generator_url: String::new(),
    }
}

fn equality(name: &str, value: &str) -> silence::SilenceMatcher {
    silence::SilenceMatcher {
        name: name.into(),
        value: value.into(),
        is_regex: false,
        is_equal: true,
    }
}

fn silence_of(matchers: Vec<silence::SilenceMatcher>, starts: i64, ends: i64) -> Silence {
    Silence {
        id: String::new(),
        matchers,
        starts_at: starts,
        ends_at: ends,
        updated_at: 0,
        created_by: "test".into(),
        comment: "test".into(),
        annotations: BTreeMap::new(),
    }
}

/// Inhibited and silenced alerts are left out of notifications and show as suppressed;
/// once the source resolves or the silence expires they are notified.
#[tokio::test]
async fn muted_alerts_are_not_notified_until_unmuted() {
    let (url, mut rx) = receiver(vec![]).await;
    let yaml = format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1m\n\
         inhibit_rules:\n- source_matchers: [severity=critical]\n  target_matchers: [severity=warning]\n  equal: [cluster]\n\
         receivers:\n- name: hook\n  webhook_configs:\n  - url: {url}\n"
    );
    let (n, _) = crate::test_support::notifier(&yaml);
    let far = T0 + 24 * 3600 * S;
    let critical = labelled(&[("alertname", "Down"), ("severity", "critical"), ("cluster", "c")], T0, far);
    let warning = labelled(&[("alertname", "Slow"), ("severity", "warning"), ("cluster", "c")], T0, far);
    let other_cluster = labelled(&[("alertname", "Slow"), ("severity", "warning"), ("cluster", "d")], T0, far);
    let silenced = labelled(&[("alertname", "Noisy")], T0, far);
    let sid = n
        .set_silence(silence_of(vec![equality("alertname", "Noisy")], T0, T0 + 5 * 60 * S), T0)
        .unwrap();
    n.receive(vec![critical.clone(), warning.clone(), other_cluster, silenced], T0);
    flush(&n, T0).await;
    let mut got = Vec::new();
    while let Ok(p) = rx.try_recv() {
        got.push(p);
    }
    got.sort_by_key(|p| p["groupLabels"]["alertname"].as_str().unwrap().to_string());
    assert_eq!(got.len(), 2, "Down, and Slow for cluster d only: {got:?}");
    assert_eq!(got[0]["groupLabels"]["alertname"], "Down");
    assert_eq!(got[1]["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(got[1]["alerts"][0]["labels"]["cluster"], "d");

    let views = n.alerts(T0);
    let state_of = |name: &str, cluster: Option<&str>| {
        views
            .iter()
            .find(|a| a.labels.get("alertname") == Some(name) && a.labels.get("cluster") == cluster)
            .map(|a| (a.state(), a.silenced_by.clone(), a.inhibited_by.len()))
            .unwrap()
    };
    assert_eq!(state_of("Down", Some("c")), ("active", vec![], 0));
    assert_eq!(state_of("Slow", Some("c")), ("suppressed", vec![], 1));
    assert_eq!(state_of("Slow", Some("d")), ("active", vec![], 0));
    assert_eq!(state_of("Noisy", None), ("suppressed", vec![sid.clone()], 0));

    // The source resolves: the inhibited alert is announced at the next group_interval.
    n.receive(
        vec![labelled(
            &[("alertname", "Down"), ("severity", "critical"), ("cluster", "c")],
            T0,
            T0 + 30 * S,
        )],
        T0 + 30 * S,
    );
    flush(&n, T0 + 60 * S).await;
    let mut got = Vec::new();
    while let Ok(p) = rx.try_recv() {
        got.push(p);
    }
    let slow = got.iter().find(|p| p["groupLabels"]["alertname"] == "Slow").expect("Slow notified");
    assert_eq!(slow["notification_reason"], "new alerts added");
    assert_eq!(slow["alerts"].as_array().unwrap().len(), 2);
    assert!(!got.iter().any(|p| p["groupLabels"]["alertname"] == "Noisy"), "still silenced");

    // Expiring the silence lets the silenced alert through at its group's next flush.
    n.expire_silence(&sid, T0 + 90 * S).unwrap();
    flush(&n, T0 + 120 * S).await;
    let p = recv(&mut rx).await;
    assert_eq!(p["groupLabels"]["alertname"], "Noisy");
    assert_eq!(p["notification_reason"], "first notification");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fedwatch-notifier-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn with_state(url: &str, dir: &Path, now: i64) -> Notifier {
    let src = format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 1m\n  repeat_interval: 4h\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: {url}\n"
    );
    let config = config::parse(Path::new("am.yml"), &src).unwrap();
    Notifier::new(config, "http://fw:9090", Registry::new())
        .with_backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
        })
        .with_state_dir(dir, now)
        .unwrap()
}

/// Alertmanager issues 627 and 2370: a restart repeats nothing, and an alert that resolved
/// while the notifier was down still gets its resolved notification.
#[tokio::test]
async fn restarts_repeat_nothing_and_still_announce_resolutions() {
    let (url, mut rx) = receiver(vec![]).await;
    let dir = scratch("restart");
    // endsAt as the rule manager sends it: 4 minutes ahead, refreshed while firing.
    let firing = |t: i64| alert("Down", "a", T0 - 60 * S, t + 240 * S);

    let n = with_state(&url, &dir, T0);
    let sid = n
        .set_silence(silence_of(vec![equality("alertname", "Other")], T0, T0 + 3600 * S), T0)
        .unwrap();
    n.receive(vec![firing(T0)], T0);
    flush(&n, T0).await;
    assert_eq!(recv(&mut rx).await["notification_reason"], "first notification");
    n.persist(T0);
    drop(n);

    // Restart a minute later; the rule manager re-sends the alert. Nothing is repeated.
    let n = with_state(&url, &dir, T0 + 60 * S);
    assert_eq!(n.silence(&sid).unwrap().comment, "test", "silences survive");
    assert_eq!(n.groups().len(), 1, "the held alert is restored");
    flush(&n, T0 + 60 * S).await;
    n.receive(vec![firing(T0 + 61 * S)], T0 + 61 * S);
    flush(&n, T0 + 120 * S).await;
    assert!(rx.try_recv().is_err(), "no repeat after a restart");
    n.persist(T0 + 120 * S);
    drop(n);

    // Down for ten minutes while the alert stopped firing: its endsAt passed unrefreshed.
    let n = with_state(&url, &dir, T0 + 720 * S);
    flush(&n, T0 + 720 * S).await;
    let p = recv(&mut rx).await;
    assert_eq!(p["status"], "resolved");
    assert_eq!(p["notification_reason"], "all alerts resolved");
    assert_eq!(p["alerts"][0]["labels"]["alertname"], "Down");
    assert!(n.groups().is_empty(), "the resolved alert is done with");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn unreadable_state_files_are_set_aside() {
    let dir = scratch("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(persist::SILENCES), b"garbage").unwrap();
    let n = with_state("http://127.0.0.1:1/hook", &dir, T0);
    assert!(n.silences().is_empty());
    assert!(dir.join("silences.json.corrupt").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_route_muted_by_a_time_interval_sends_nothing_inside_it_and_sends_after() {
    let (url, mut rx) = receiver(vec![]).await;
    // T0 is 2026-01-01 00:00 UTC: inside "night" until 06:00.
    let src = format!(
        "route:\n  receiver: hook\n  group_wait: 30s\n  group_interval: 1m\n  routes:\n  - matchers: [team=\"db\"]\n    mute_time_intervals: [night]\n\
         receivers:\n- name: hook\n  webhook_configs:\n  - url: {url}\n\
         time_intervals:\n- name: night\n  time_intervals:\n  - times: [{{start_time: '00:00', end_time: '06:00'}}]\n"
    );
    let config = config::parse(Path::new("am.yml"), &src).unwrap();
    let n = Notifier::new(config, "http://fw:9090", Registry::new());
    let mut a = alert("Down", "a", T0, T0 + 48 * 3600 * S);
    a.labels = Labels::from_pairs([("alertname", "Down"), ("instance", "a"), ("team", "db")]);
    n.receive(vec![a], T0);

    for minute in [1, 2, 359] {
        assert_eq!(
            flush(&n, T0 + minute * 60 * S).await,
            0,
            "muted at minute {minute}: no delivery started"
        );
    }
    assert!(rx.try_recv().is_err(), "nothing sent inside the interval");
    let views = n.alerts(T0 + 359 * 60 * S);
    assert_eq!(views[0].muted_by, vec!["night".to_string()]);
    assert_eq!(views[0].state(), "active", "time muting is not a silence or inhibition");

    // 06:00 is outside (end exclusive): the first notification goes out, since nothing was logged.
    flush(&n, T0 + 360 * 60 * S).await;
    let p = recv(&mut rx).await;
    assert_eq!(p["notification_reason"], "first notification");
    assert!(n.alerts(T0 + 360 * 60 * S)[0].muted_by.is_empty());
}

#[test]
fn active_time_intervals_mute_outside_every_named_interval() {
    let src = "route:\n  receiver: r\n  routes:\n  - receiver: r\n    active_time_intervals: [weekdays, mornings]\n\
               receivers:\n- name: r\n\
               time_intervals:\n- name: weekdays\n  time_intervals:\n  - weekdays: ['monday:friday']\n\
               - name: mornings\n  time_intervals:\n  - times: [{start_time: '06:00', end_time: '12:00'}]\n";
    let config = config::parse(Path::new("am.yml"), src).unwrap();
    let route = &config.route.routes[0];
    // 2026-01-03 is a Saturday, 2026-01-01 a Thursday.
    let sat_night = T0 + 2 * 24 * 3600 * S + 23 * 3600 * S;
    let sat_morning = T0 + 2 * 24 * 3600 * S + 7 * 3600 * S;
    let thu_night = T0 + 23 * 3600 * S;
    assert_eq!(config.muted_by(route, sat_night), vec!["mornings", "weekdays"]);
    assert!(config.muted_by(route, sat_morning).is_empty());
    assert!(config.muted_by(route, thu_night).is_empty());
    assert!(config.muted_by(&config.route, sat_night).is_empty(), "the root has no intervals");
}

#[test]
fn webhook_signature_matches_rfc4231_vector() {
    // RFC 4231 test case 2 (HMAC-SHA256, key "Jefe").
    assert_eq!(
        webhook::signature("Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

/// A secret file of its own for each test, under the system temp dir.
fn secret_file(test: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fedwatch-rules-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hmac.secret");
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn webhook_hmac_secret_file_is_checked_at_load() {
    let cfg = |file: &str| {
        format!(
            "route:\n  receiver: hook\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: http://127.0.0.1:1/hook\n    fedwatch_hmac_secret_file: {file}\n"
        )
    };
    let good = secret_file("load", "s3cret\n");
    let c = config::parse(Path::new("am.yml"), &cfg(&good.display().to_string())).unwrap();
    assert_eq!(c.receivers[0].webhooks()[0].hmac_secret_file.as_deref(), Some(good.as_path()));
    let empty = secret_file("load-empty", " \n");
    for (file, want) in [
        ("/nonexistent/fedwatch.secret", "cannot read"),
        (&*empty.display().to_string(), "is empty"),
    ] {
        let err = config::parse(Path::new("am.yml"), &cfg(file)).unwrap_err().to_string();
        assert!(err.contains("fedwatch_hmac_secret_file") && err.contains(want), "{err}");
    }
}

#[tokio::test]
async fn webhook_body_is_signed_with_hmac_sha256_on_every_attempt() {
    use hmac::{Hmac, Mac};
    // The receiver answers 503 once (so the retry is signed too), then 200; it records the
    // raw body bytes and the signature header of every request.
    let (tx, mut rx) = mpsc::unbounded_channel::<(u16, String, Option<String>)>();
    let calls = Arc::new(Mutex::new(0u32));
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (tx, calls) = (tx.clone(), calls.clone());
            async move {
                let status = {
                    let mut c = calls.lock().unwrap();
                    *c += 1;
                    if *c == 1 { 503 } else { 200 }
                };
                let sig = headers.get("x-fedwatch-signature").map(|v| v.to_str().unwrap().to_string());
                let _ = tx.send((status, String::from_utf8(body.to_vec()).unwrap(), sig));
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let secret = secret_file("sign", "top-secret\n");
    let src = format!(
        "route:\n  receiver: hook\n  group_wait: 0s\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: http://{addr}/hook\n    fedwatch_hmac_secret_file: {}\n",
        secret.display()
    );
    let n = Notifier::new(config::parse(Path::new("am.yml"), &src).unwrap(), "http://fw:9090", Registry::new()).with_backoff(Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(20),
    });
    n.receive(vec![alert("Down", "a", T0, T0 + 3600 * S)], T0);
    flush(&n, T0).await;

    let mut seen = Vec::new();
    while let Ok((status, body, sig)) = rx.try_recv() {
        seen.push(status);
        let sig = sig.expect("every attempt carries X-Fedwatch-Signature");
        let hex = sig.strip_prefix("sha256=").expect("sha256= prefix");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        // Verified independently of the notifier's own signing code, with the trimmed secret.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"top-secret").unwrap();
        mac.update(body.as_bytes());
        mac.verify_slice(&bytes).expect("signature verifies over the exact body bytes");
        let mut tampered = Hmac::<sha2::Sha256>::new_from_slice(b"top-secret").unwrap();
        tampered.update(body.replace("Down", "Up").as_bytes());
        assert!(tampered.verify_slice(&bytes).is_err(), "a changed body does not verify");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["alerts"][0]["labels"]["alertname"], "Down");
    }
    assert_eq!(seen, vec![503, 200], "retried once after the 503, both attempts signed");
}
