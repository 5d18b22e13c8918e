use super::*;
use crate::notifier::webhook::WebhookUrl;
use crate::test_support::shared_dir;
use fedwatch_model::Labels;

/// Files in config-testdata that Alertmanager rejects for reasons of receivers we do not
/// implement (missing global API keys, both token and token file...). We accept their
/// shape and ignore those receivers, so they load here; the README lists the upstream error.
const UPSTREAM_RECEIVER_SPECIFIC: &[&str] = &[
    "mattermost-both-webhook-url-and-file",
    "mattermost-no-webhook-url",
    "mattermost-valid-receiver-both-webhook-url-and-file",
    "opsgenie-both-file-and-apikey",
    "opsgenie-no-apikey",
    "rocketchat-both-token-and-tokenfile",
    "rocketchat-both-tokenid-and-tokenidfile",
    "rocketchat-no-token",
    "slack-both-file-and-token",
    "slack-both-file-and-url",
    "slack-both-url-and-token",
    "slack-no-api-url-or-token",
    "slack-update-message-and-webhook",
    "smtp-both-password-and-file",
    "sns-invalid",
    "telegram-both-bot-token-and-file",
    "telegram-no-bot-token",
    "telegram-valid-receiver-both-bot-token-and-file",
    "victorops-both-file-and-apikey",
    "victorops-no-apikey",
    "wechat-both-file-and-secret",
    "wechat-no-api-secret",
    "opsgenie-default-apikey-old-team",
];

#[test]
fn config_testdata_loads_or_fails_as_expected() {
    let dir = shared_dir().join("alertmanager/config-testdata");
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    assert!(names.len() > 40);
    let errors: &[(&str, &str)] = &[
        ("conf.nil-match_re-route.yml", "invalid_label"),
        ("conf.nil-source_match_re-inhibition.yml", "invalid_source_label"),
        ("conf.nil-target_match_re-inhibition.yml", "invalid_target_label"),
    ];
    for path in names {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let got = load_file(&path);
        if let Some((_, needle)) = errors.iter().find(|(f, _)| *f == file) {
            let e = got.expect_err(&file).to_string();
            assert!(e.contains(needle) && e.contains(&file), "{file}: {e}");
            continue;
        }
        let stem = file.trim_start_matches("conf.").trim_end_matches(".yml");
        if stem == "opsgenie-default-apikey-old-team" {
            // Upstream fails on opsgenie's unknown `teams` field first; we do not look inside
            // receivers we do not implement, but the file also routes to a receiver it never
            // defines, which we report.
            let e = got.expect_err(&file).to_string();
            assert!(e.contains("undefined receiver \"escalation-Y-opsgenie\""), "{e}");
            continue;
        }
        let _ = UPSTREAM_RECEIVER_SPECIFIC;
        assert!(got.is_ok(), "{file}: {:?}", got.err().map(|e| e.to_string()));
    }
}

#[test]
fn good_config_has_route_tree_receivers_and_warnings() {
    let c = load_file(&shared_dir().join("alertmanager/config-testdata/conf.good.yml")).unwrap();
    assert_eq!(c.route.receiver, "team-X-mails");
    assert_eq!(c.route.group_by, vec!["alertname", "cluster", "service"]);
    assert_eq!(c.route.repeat_interval, Duration::from_secs(3 * 3600));
    assert_eq!(c.route.routes.len(), 3);
    assert_eq!(c.resolve_timeout, Duration::from_secs(300));
    assert_eq!(c.receivers.len(), 9);
    assert!(c.receivers.iter().all(|r| r.webhooks().is_empty()));
    assert!(c.receivers.iter().any(|r| r.integrations.iter().any(|i| i.kind() == "email")));
    assert!(c.warnings.iter().any(|w| w.contains("pagerduty_configs")), "{:?}", c.warnings);
    assert_eq!(c.inhibit_rules.len(), 1);
    assert_eq!(c.inhibit_rules[0].equal, vec!["alertname", "cluster", "service"]);
    assert!(!c.warnings.iter().any(|w| w.contains("inhibit_rules")));
    assert_eq!(c.templates, vec!["/etc/alertmanager/template/*.tmpl"]);
}

#[test]
fn cli_testdata() {
    let dir = shared_dir().join("alertmanager/cli-testdata");
    for ok in ["conf.good.yml", "conf.routing.yml", "conf.routing-reverted.yml"] {
        assert!(load_file(&dir.join(ok)).is_ok(), "{ok}");
    }
    assert!(load_file(&dir.join("conf.bad.yml")).is_err());
    let c = load_file(&dir.join("conf.routing.yml")).unwrap();
    let recv = |test: &str| -> Vec<String> {
        c.route
            .matching(&Labels::from_pairs([("test", test)]))
            .iter()
            .map(|r| r.receiver.clone())
            .collect()
    };
    assert_eq!(recv("1"), vec!["test1"]);
    assert_eq!(recv("2"), vec!["test1", "test2"]);
    assert_eq!(recv("volovina"), vec!["default"]);
}

#[test]
fn inline_configs_match_expected_json() {
    let dir = shared_dir().join("alertmanager/config-inline");
    let expected: Vec<Json> = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    // Errors about receivers we do not implement, or features (receiver labels) we accept.
    let skip = ["slack_configs", "opsgenie_configs", "wechat_configs", "rocketchat_configs"];
    let mut checked = 0;
    for case in expected {
        let file = case["file"].as_str().unwrap();
        if skip.iter().any(|s| file.contains(s)) {
            continue;
        }
        let got = load_file(&dir.join(file));
        match case["expect"].as_str().unwrap() {
            "ok" => assert!(got.is_ok(), "{file}: {:?}", got.err().map(|e| e.to_string())),
            _ => {
                let want = case["error"].as_str().unwrap();
                let e = got.err().unwrap_or_else(|| panic!("{file}: loaded, expected {want:?}")).to_string();
                assert!(e.contains(want), "{file}: expected {want:?} in {e}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 45, "{checked}");
}

#[test]
fn webhook_fields_and_errors() {
    let p = Path::new("am.yml");
    let c = parse(
        p,
        "route: {receiver: w}\nreceivers:\n- name: w\n  webhook_configs:\n  - url: http://x/hook\n    max_alerts: 5\n    send_resolved: false\n  - url_file: /tmp/u\n",
    )
    .unwrap();
    let w = c.receiver("w").unwrap().webhooks();
    assert_eq!(w[0].url, WebhookUrl::Url("http://x/hook".into()));
    assert_eq!((w[0].max_alerts, w[0].send_resolved), (5, false));
    assert_eq!((w[1].url.clone(), w[1].send_resolved), (WebhookUrl::File("/tmp/u".into()), true));
    let cases = [
        (
            "route: {receiver: w}\nreceivers:\n- name: w\n  webhook_configs:\n  - {}\n",
            "am.yml:5: one of url or url_file must be configured",
        ),
        (
            "route: {receiver: w}\nreceivers:\n- name: w\n  webhook_configs:\n  - url: http://a\n    url_file: b\n",
            "at most one of url & url_file",
        ),
        (
            "route: {receiver: w}\nreceivers:\n- name: w\n  webhook_configs:\n  - url: http://a\n    sendresolved: true\n",
            "am.yml:6: unknown field `sendresolved`",
        ),
        (
            "route: {receiver: w}\nglobal:\n  resolve_timeout: 1x\nreceivers:\n- name: w\n",
            "global.resolve_timeout",
        ),
        (
            "route: {receiver: w}\nglobal:\n  smtp_nope: 1\nreceivers:\n- name: w\n",
            "field smtp_nope not found in global",
        ),
        ("rout: {receiver: w}\n", "am.yml:1: unknown field `rout`"),
    ];
    for (src, want) in cases {
        let e = parse(p, src).unwrap_err().to_string();
        assert!(e.contains(want), "{src:?}: {e}");
    }
}
