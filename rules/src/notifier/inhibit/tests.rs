use super::*;

fn labels(s: &str) -> Labels {
    Labels::from_pairs(s.split(',').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap();
        (k, v)
    }))
}

fn rule(source: &[&str], target: &[&str], equal: &[&str]) -> InhibitRule {
    let source_matchers = Some(source.iter().map(|s| s.to_string()).collect());
    let target_matchers = Some(target.iter().map(|s| s.to_string()).collect());
    let equal = Some(equal.iter().map(|s| s.to_string()).collect());
    InhibitRule::from_raw(RawSides {
        source_match: &None,
        source_match_re: &None,
        source_matchers: &source_matchers,
        target_match: &None,
        target_match_re: &None,
        target_matchers: &target_matchers,
        equal: &equal,
    })
    .unwrap()
}

/// Alertmanager's documented behaviour (docs/configuration.md `<inhibit_rule>` and the
/// cases of inhibit/inhibit_test.go), one row per situation.
#[test]
fn inhibition_table() {
    let crit_warn = rule(&["severity=critical"], &["severity=warning"], &["cluster"]);
    let both = rule(&["s=1"], &["t=1"], &["e"]);
    // (rule, alert, firing alerts, expected inhibitors as indexes into firing)
    type Case<'a> = (&'a str, &'a InhibitRule, &'a str, &'a [&'a str], &'a [usize]);
    let cases: &[Case] = &[
        (
            "source fires, equal labels equal",
            &crit_warn,
            "severity=warning,cluster=a",
            &["severity=critical,cluster=a"],
            &[0],
        ),
        (
            "equal label differs",
            &crit_warn,
            "severity=warning,cluster=a",
            &["severity=critical,cluster=b"],
            &[],
        ),
        (
            "equal label absent on both sides counts as equal",
            &crit_warn,
            "severity=warning",
            &["severity=critical"],
            &[0],
        ),
        (
            "equal label absent on one side",
            &crit_warn,
            "severity=warning",
            &["severity=critical,cluster=a"],
            &[],
        ),
        (
            "target side does not match",
            &crit_warn,
            "severity=info,cluster=a",
            &["severity=critical,cluster=a"],
            &[],
        ),
        (
            "no firing source",
            &crit_warn,
            "severity=warning,cluster=a",
            &["severity=warning,cluster=a"],
            &[],
        ),
        (
            "every matching source is reported",
            &crit_warn,
            "severity=warning,cluster=a",
            &[
                "severity=critical,cluster=a,i=1",
                "severity=critical,cluster=b",
                "severity=critical,cluster=a,i=2",
            ],
            &[0, 2],
        ),
        (
            "an alert matching both sides does not inhibit itself",
            &both,
            "s=1,t=1,e=1",
            &["s=1,t=1,e=1"],
            &[],
        ),
        (
            "two alerts matching both sides do not inhibit each other",
            &both,
            "s=1,t=1,e=1,a=x",
            &["s=1,t=1,e=1,a=y"],
            &[],
        ),
        (
            "a two-sided alert is inhibited by a source-only alert",
            &both,
            "s=1,t=1,e=1",
            &["s=1,t=0,e=1", "s=1,t=1,e=1"],
            &[0],
        ),
        (
            "a target-only alert is inhibited by a two-sided alert",
            &both,
            "s=0,t=1,e=1",
            &["s=1,t=1,e=1"],
            &[0],
        ),
    ];
    for (name, rule, alert, firing, want) in cases {
        let firing_labels: Vec<Labels> = firing.iter().map(|s| labels(s)).collect();
        let firing: Vec<(u64, &Labels)> = firing_labels.iter().enumerate().map(|(i, l)| (i as u64, l)).collect();
        let got = inhibited_by(std::slice::from_ref(*rule), &labels(alert), &firing);
        let want: Vec<u64> = want.iter().map(|i| *i as u64).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn deprecated_match_maps_combine_with_matchers() {
    let eq = Some(BTreeMap::from([("severity".to_string(), "critical".to_string())]));
    let re = Some(BTreeMap::from([("service".to_string(), Some("api|db".to_string()))]));
    let target = Some(BTreeMap::from([("severity".to_string(), "warning".to_string())]));
    let target_matchers = Some(vec!["team!=ops".to_string()]);
    let r = InhibitRule::from_raw(RawSides {
        source_match: &eq,
        source_match_re: &re,
        source_matchers: &None,
        target_match: &target,
        target_match_re: &None,
        target_matchers: &target_matchers,
        equal: &None,
    })
    .unwrap();
    let src_ok = labels("severity=critical,service=db");
    let src_partial_re = labels("severity=critical,service=dbx");
    for (alert, source, inhibited) in [
        ("severity=warning", &src_ok, true),
        ("severity=warning,team=ops", &src_ok, false),
        ("severity=warning", &src_partial_re, false),
    ] {
        let got = !inhibited_by(std::slice::from_ref(&r), &labels(alert), &[(1, source)]).is_empty();
        assert_eq!(got, inhibited, "{alert} by {source:?}");
    }
}

#[test]
fn invalid_rules_are_rejected_with_the_field() {
    let bad_re = Some(BTreeMap::from([("a".to_string(), Some("(".to_string()))]));
    let nil_re = Some(BTreeMap::from([("a".to_string(), None)]));
    let bad_equal = Some(vec!["0x".to_string()]);
    for (sides, needle) in [
        ((&bad_re, &None), "source_match_re"),
        ((&nil_re, &None), "invalid regexp value for \"a\" in source_match_re"),
        ((&None, &bad_equal), "equal: invalid label name \"0x\""),
    ] {
        let e = InhibitRule::from_raw(RawSides {
            source_match: &None,
            source_match_re: sides.0,
            source_matchers: &None,
            target_match: &None,
            target_match_re: &None,
            target_matchers: &None,
            equal: sides.1,
        })
        .unwrap_err();
        assert!(e.contains(needle), "{e}");
    }
}
