use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use super::*;

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, v)
}

fn app() -> (Router, Notifier) {
    let yaml = "route:\n  receiver: team\n  group_by: [alertname]\n  routes:\n  - receiver: pager\n    matchers: [severity=page]\n    continue: true\n\
                inhibit_rules:\n- source_matchers: [severity=page]\n  target_matchers: [severity=info]\n  equal: [alertname]\n\
                receivers:\n- name: team\n- name: pager\n";
    let (n, _) = crate::test_support::notifier(yaml);
    (router(n.clone()), n)
}

fn silence_body(matchers: Value, from_now_ms: i64, to_now_ms: i64) -> Value {
    let now = now_ms();
    json!({
        "matchers": matchers,
        "startsAt": api_time(now + from_now_ms),
        "endsAt": api_time(now + to_now_ms),
        "createdBy": "amtool",
        "comment": "maintenance",
    })
}

#[tokio::test]
async fn silences_create_list_get_update_expire() {
    let (app, _) = app();
    let m = json!([{"name": "alertname", "value": "Down", "isRegex": false}]);
    let (st, v) = call(&app, "POST", "/api/v2/silences", Some(silence_body(m.clone(), 0, 3_600_000))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let id = v["silenceID"].as_str().unwrap().to_string();

    let (st, s) = call(&app, "GET", &format!("/api/v2/silence/{id}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s["status"]["state"], "active");
    assert_eq!(
        s["matchers"],
        json!([{"name": "alertname", "value": "Down", "isRegex": false, "isEqual": true}])
    );
    assert_eq!(s["createdBy"], "amtool");
    assert!(s["endsAt"].as_str().unwrap().ends_with('Z'));
    for key in [
        "id",
        "status",
        "updatedAt",
        "matchers",
        "startsAt",
        "endsAt",
        "createdBy",
        "comment",
        "annotations",
    ] {
        assert!(s.get(key).is_some(), "gettableSilence needs {key}: {s}");
    }

    // A pending silence sorts after the active one; filters select by equality matchers.
    let m2 = json!([{"name": "alertname", "value": "Other", "isRegex": false}]);
    call(&app, "POST", "/api/v2/silences", Some(silence_body(m2, 600_000, 3_600_000))).await;
    let (_, list) = call(&app, "GET", "/api/v2/silences", None).await;
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["active", "pending"]);
    let (_, list) = call(&app, "GET", "/api/v2/silences?filter=alertname%3D%22Down%22", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, list) = call(&app, "GET", "/api/v2/silences?pending=false", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Changing the matchers of an active silence expires it and creates a new one.
    let mut body = silence_body(json!([{"name": "alertname", "value": "Down2", "isRegex": false}]), 0, 3_600_000);
    body["id"] = json!(id);
    let (st, v) = call(&app, "POST", "/api/v2/silences", Some(body)).await;
    assert_eq!(st, StatusCode::OK);
    let new_id = v["silenceID"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    let (_, old) = call(&app, "GET", &format!("/api/v2/silence/{id}"), None).await;
    assert_eq!(old["status"]["state"], "expired");

    let (st, _) = call(&app, "DELETE", &format!("/api/v2/silence/{new_id}"), None).await;
    assert_eq!(st, StatusCode::OK);
    let (_, s) = call(&app, "GET", &format!("/api/v2/silence/{new_id}"), None).await;
    assert_eq!(s["status"]["state"], "expired");
    let (st, _) = call(&app, "DELETE", "/api/v2/silence/00000000-0000-4000-8000-000000000000", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call(&app, "GET", "/api/v2/silence/nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_silences_get_400_with_alertmanagers_message() {
    let (app, _) = app();
    let m = json!([{"name": "alertname", "value": "X", "isRegex": false}]);
    let mut no_comment = silence_body(m.clone(), 0, 60_000);
    no_comment["comment"] = json!("");
    let mut unknown = silence_body(m.clone(), 0, 60_000);
    unknown["id"] = json!("nope");
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            silence_body(m.clone(), 60_000, 0),
            StatusCode::BAD_REQUEST,
            "start time must be before end time",
        ),
        (
            silence_body(m.clone(), -120_000, -60_000),
            StatusCode::BAD_REQUEST,
            "end time can't be in the past",
        ),
        (no_comment, StatusCode::BAD_REQUEST, "comment in body is required"),
        (
            silence_body(json!([]), 0, 60_000),
            StatusCode::BAD_REQUEST,
            "matchers in body is required",
        ),
        (
            silence_body(json!([{"name": "a", "value": ".*", "isRegex": true}]), 0, 60_000),
            StatusCode::BAD_REQUEST,
            "must not match the empty string",
        ),
        (unknown, StatusCode::NOT_FOUND, "not found"),
    ];
    for (body, want, needle) in cases {
        let (st, v) = call(&app, "POST", "/api/v2/silences", Some(body)).await;
        assert_eq!(st, want, "{v}");
        assert!(v.as_str().unwrap().contains(needle), "{v} should contain {needle}");
    }
}

#[tokio::test]
async fn posted_alerts_are_listed_with_receivers_and_state() {
    let (app, _) = app();
    let alerts = json!([
        {"labels": {"alertname": "Down", "severity": "page"}, "annotations": {"summary": "down"}},
        {"labels": {"alertname": "Down", "severity": "info"}},
        {"labels": {"alertname": "Quiet"}, "generatorURL": "http://x/graph"},
        {"labels": {"alertname": "Old"}, "startsAt": api_time(now_ms() - 120_000), "endsAt": api_time(now_ms() - 60_000)},
    ]);
    let (st, _) = call(&app, "POST", "/api/v2/alerts", Some(alerts)).await;
    assert_eq!(st, StatusCode::OK);
    let m = json!([{"name": "alertname", "value": "Quiet", "isRegex": false}]);
    let (_, v) = call(&app, "POST", "/api/v2/silences", Some(silence_body(m, 0, 60_000))).await;
    let sid = v["silenceID"].as_str().unwrap().to_string();

    let (st, list) = call(&app, "GET", "/api/v2/alerts", None).await;
    assert_eq!(st, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "the resolved alert is not listed: {list:?}");
    let find = |name: &str, sev: Option<&str>| {
        list.iter()
            .find(|a| a["labels"]["alertname"] == name && a["labels"].get("severity").and_then(Value::as_str) == sev)
            .unwrap()
            .clone()
    };
    let page = find("Down", Some("page"));
    assert_eq!(page["status"]["state"], "active");
    // `continue` on the only matching child: the root is not used (Alertmanager routing).
    assert_eq!(page["receivers"], json!([{"name": "pager"}]));
    assert_eq!(find("Quiet", None)["receivers"], json!([{"name": "team"}]));
    assert_eq!(page["annotations"]["summary"], "down");
    assert_eq!(page["endsAt"].as_str().unwrap().len(), 24, "now + resolve_timeout, ms precision");
    let info = find("Down", Some("info"));
    assert_eq!(info["status"]["state"], "suppressed");
    assert_eq!(info["status"]["inhibitedBy"], json!([page["fingerprint"]]));
    let quiet = find("Quiet", None);
    assert_eq!(quiet["status"]["silencedBy"], json!([sid]));
    assert_eq!(quiet["generatorURL"], "http://x/graph");
    for key in [
        "annotations",
        "receivers",
        "fingerprint",
        "startsAt",
        "updatedAt",
        "endsAt",
        "status",
        "labels",
    ] {
        assert!(page.get(key).is_some(), "gettableAlert needs {key}");
    }

    // amtool's default query: active only.
    let (_, active) = call(&app, "GET", "/api/v2/alerts?active=true&silenced=false&inhibited=false", None).await;
    assert_eq!(active.as_array().unwrap().len(), 1);
    let (_, f) = call(&app, "GET", "/api/v2/alerts?filter=severity%3D~%22p.*%22", None).await;
    assert_eq!(f.as_array().unwrap().len(), 1);
    let (_, r) = call(&app, "GET", "/api/v2/alerts?receiver=pag.*", None).await;
    assert_eq!(r.as_array().unwrap().len(), 1);
    let (st, _) = call(&app, "GET", "/api/v2/alerts?silenced=maybe", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (_, groups) = call(&app, "GET", "/api/v2/alerts/groups", None).await;
    let groups = groups.as_array().unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g["receiver"]["name"] == "pager" && g["labels"]["alertname"] == "Down")
    );
    let (_, unmuted) = call(&app, "GET", "/api/v2/alerts/groups?muted=false", None).await;
    assert!(!unmuted.as_array().unwrap().iter().any(|g| g["labels"]["alertname"] == "Quiet"));
}

#[tokio::test]
async fn invalid_alerts_are_rejected_and_valid_ones_kept() {
    let (app, n) = app();
    let alerts = json!([
        {"labels": {}},
        {"labels": {"alertname": "Ok"}},
        {"labels": {"alertname": "Back"}, "startsAt": api_time(now_ms()), "endsAt": api_time(now_ms() - 60_000)},
    ]);
    let (st, v) = call(&app, "POST", "/api/v2/alerts", Some(alerts)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let msg = v.as_str().unwrap();
    assert!(msg.contains("alert 0: at least one label pair required"), "{msg}");
    assert!(msg.contains("alert 2: start time must be before end time"), "{msg}");
    assert_eq!(n.alerts(now_ms()).len(), 1);
}

#[tokio::test]
async fn status_and_receivers() {
    let (app, _) = app();
    let (st, s) = call(&app, "GET", "/api/v2/status", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(s["config"]["original"].as_str().unwrap().contains("receiver: team"));
    assert_eq!(s["cluster"]["status"], "disabled");
    for key in ["version", "revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(s["versionInfo"][key].is_string(), "versionInfo.{key}");
    }
    assert!(parse_api_time("uptime", s["uptime"].as_str().unwrap()).is_ok());
    let (_, r) = call(&app, "GET", "/api/v2/receivers", None).await;
    assert_eq!(r, json!([{"name": "team"}, {"name": "pager"}]));
}

#[test]
fn times_and_query_decoding() {
    assert_eq!(api_time(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
    assert_eq!(api_time(0), "0001-01-01T00:00:00.000Z");
    assert_eq!(parse_api_time("t", "2026-01-01T01:00:00.5+01:00").unwrap(), 1_767_225_600_500);
    assert_eq!(parse_api_time("t", "0001-01-01T00:00:00Z").unwrap(), 0);
    assert!(parse_api_time("t", "yesterday").is_err());
    assert_eq!(
        query_pairs(Some("filter=a%3D%22b+c%22&filter=x&active=")),
        vec![
            ("filter".into(), "a=\"b c\"".into()),
            ("filter".into(), "x".into()),
            ("active".into(), "".into())
        ]
    );
    assert_eq!(decode("100%"), "100%");
}
