//! The promtool-like subcommands, run as a user would: every default rule pack checks clean
//! and passes its unit tests under both our `central` and stock `promtool`, a failing unit
//! test and a broken rule file fail with the reason, and the example configurations check
//! clean.

use std::path::Path;
use std::process::Command;

use fedwatch_e2e::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root")
}

fn shared() -> std::path::PathBuf {
    repo().join("../shared")
}

fn central(args: &[&str]) -> (bool, String) {
    let out = Command::new(binary("central"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run central");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// The default rule packs in rules/packs/: file stem and the number of rules it holds. Each
/// has its promtool-format unit test at rules/packs/tests/<stem>.yml.
const PACKS: &[(&str, usize)] = &[
    ("node", 9),
    ("control-plane", 15),
    ("etcd", 8),
    ("kube-state-metrics", 5),
    ("federation", 9),
];

fn promtool(args: &[&str]) -> (bool, String) {
    let promtool = system_binary("promtool").expect("promtool (Debian package prometheus) is not installed: run scripts/install-deps");
    let out = Command::new(promtool)
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run promtool");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn every_rule_pack_is_in_the_table_and_has_a_unit_test() {
    let mut stems: Vec<String> = std::fs::read_dir(repo().join("rules/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    stems.sort();
    let mut listed: Vec<String> = PACKS.iter().map(|(s, _)| s.to_string()).collect();
    listed.sort();
    assert_eq!(stems, listed, "rules/packs/*.yml and PACKS differ");
    for (stem, _) in PACKS {
        assert!(
            repo().join(format!("rules/packs/tests/{stem}.yml")).is_file(),
            "no unit test for {stem}"
        );
    }
}

#[test]
fn rule_packs_check_and_pass_their_unit_tests_under_central() {
    for (stem, rules) in PACKS {
        let (ok, out) = central(&["check-rules", &format!("rules/packs/{stem}.yml")]);
        assert!(ok && out.contains(&format!("SUCCESS: {rules} rules found")), "{stem}: {out}");
        let (ok, out) = central(&["test-rules", &format!("rules/packs/tests/{stem}.yml")]);
        assert!(ok && out.contains("SUCCESS"), "{stem}: {out}");
    }
}

#[test]
fn rule_packs_check_and_pass_their_unit_tests_under_stock_promtool() {
    for (stem, rules) in PACKS {
        let (ok, out) = promtool(&["check", "rules", &format!("rules/packs/{stem}.yml")]);
        assert!(ok && out.contains(&format!("SUCCESS: {rules} rules found")), "{stem}: {out}");
        let (ok, out) = promtool(&["test", "rules", &format!("rules/packs/tests/{stem}.yml")]);
        assert!(ok && out.contains("SUCCESS"), "{stem}: {out}");
    }
}

#[test]
fn failing_unit_tests_and_bad_rules_fail_with_the_reason() {
    let failing = shared().join("rules-fixtures/promtool/failing.yml");
    let (ok, out) = central(&["test-rules", failing.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("AlwaysFiring"), "{out}");

    let bad = shared().join("rules-fixtures/rulefmt/bad_expr.bad.yaml");
    let (ok, out) = central(&["check-rules", bad.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("bad_expr.bad.yaml:5") && out.contains("could not parse expression"),
        "{out}"
    );
}

#[test]
fn example_configs_check_clean() {
    let (ok, out) = central(&[
        "check-config",
        "examples/demo/central.yml",
        "examples/demo/edge-cell-01.yml",
        "examples/demo/cascade.yml",
    ]);
    assert!(ok, "{out}");
}
