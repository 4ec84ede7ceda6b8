//! `host plugin check --conformance`: the kind-level contract check.
//!
//! Hostile components first: a `describe` that blocks, a handler that
//! emits and restarts without grants, a malformed subscription (all the
//! `hostile` fixture, configured by its manifest). Then good ones: shipped
//! Rust plugins and the JavaScript and Python examples of every kind.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use host_tests::{
    EMITS_TEST, example_component, fixture, install_plugin_folder, run_host, shipped_plugin,
};
use serde_json::Value;

use crate::PATIENCE;

/// An 18 MB Python component compiles from cold in each check (no cache):
/// tens of seconds on a loaded machine.
const COMPILE_PATIENCE: Duration = Duration::from_secs(300);

fn conformance(path: &Path) -> (Output, Value) {
    let args = [
        OsStr::new("plugin"),
        OsStr::new("check"),
        OsStr::new("--conformance"),
        OsStr::new("--json"),
        path.as_os_str(),
    ];
    let out = run_host(args, COMPILE_PATIENCE).unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report for {} ({e}):\n{}\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, report)
}

/// `(check, passed, detail)` of each check.
fn checks(report: &Value) -> Vec<(String, bool, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                c["passed"].as_bool().unwrap(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn failures(report: &Value) -> Vec<(String, String)> {
    checks(report)
        .into_iter()
        .filter(|(_, passed, _)| !passed)
        .map(|(c, _, d)| (c, d))
        .collect()
}

/// The `hostile` fixture in a plugin folder with `manifest_tail`.
fn hostile(dir: &Path, manifest_tail: &str) -> PathBuf {
    install_plugin_folder(dir, "hostile", &fixture("hostile"), manifest_tail)
}

#[test]
fn a_plugin_whose_describe_blocks_fails_the_deadline_check_and_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let folder = hostile(
        dir.path(),
        &format!(
            "[config]\nsleep_in = \"describe\"\nsleep_ms = \"5000\"\n[limits]\ndeadline_ms = 200\n{EMITS_TEST}"
        ),
    );
    let (out, report) = conformance(&folder);
    assert!(!out.status.success(), "{report:#}");
    let failed = failures(&report);
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0].0, "describe", "{report:#}");
    assert!(
        failed[0].1.contains("deadline of 200 ms"),
        "{}",
        failed[0].1
    );
}

#[test]
fn a_handler_that_emits_and_restarts_without_grants_fails_the_grants_check_naming_each() {
    let dir = tempfile::tempdir().unwrap();
    let emits = hostile(
        dir.path(),
        &format!("[config]\nreact_to = \"alert.*\"\nreact = \"emit:alert.forged\"\n{EMITS_TEST}"),
    );
    let (out, report) = conformance(&emits);
    assert!(!out.status.success(), "{report:#}");
    let failed = failures(&report);
    assert_eq!(
        failed.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["grants"],
        "{report:#}"
    );
    assert!(
        failed[0]
            .1
            .contains("emitting `alert.forged` is not granted"),
        "{}",
        failed[0].1
    );

    let other = tempfile::tempdir().unwrap();
    let restarts = hostile(
        other.path(),
        "[config]\nreact_to = \"process.failed\"\nreact = \"restart:web\"\n[permissions]\nrestart = [\"db\"]\nemit = [\"test.>\"]\n",
    );
    let (out, report) = conformance(&restarts);
    assert!(!out.status.success(), "{report:#}");
    let failed = failures(&report);
    assert_eq!(failed.len(), 1, "{report:#}");
    assert!(
        failed[0].1.contains("`restart web` is not granted"),
        "{}",
        failed[0].1
    );
    // Granted, the same plugin passes: the check judges the grants, not the
    // action.
    let granted = tempfile::tempdir().unwrap();
    let folder = hostile(
        granted.path(),
        "[config]\nreact_to = \"process.failed\"\nreact = \"restart:web\"\n[permissions]\nrestart = [\"web\"]\nemit = [\"test.>\"]\n",
    );
    let (out, report) = conformance(&folder);
    assert!(out.status.success(), "{report:#}");
}

#[test]
fn a_malformed_subscription_fails_the_subscriptions_check_with_the_parser_s_words() {
    let dir = tempfile::tempdir().unwrap();
    let folder = hostile(
        dir.path(),
        &format!("[config]\nreact_to = \"alert.>.late\"\n{EMITS_TEST}"),
    );
    let (out, report) = conformance(&folder);
    assert!(!out.status.success(), "{report:#}");
    let failed = failures(&report);
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0].0, "subscriptions", "{report:#}");
    assert!(failed[0].1.contains("malformed"), "{}", failed[0].1);
}

#[test]
fn an_agent_whose_tick_blocks_fails_the_actions_check_with_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let folder = hostile(
        dir.path(),
        &format!(
            "[config]\nsleep_in = \"tick\"\nsleep_ms = \"5000\"\n[limits]\ndeadline_ms = 200\n{EMITS_TEST}"
        ),
    );
    let (out, report) = conformance(&folder);
    assert!(!out.status.success(), "{report:#}");
    let failed = failures(&report);
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0].0, "actions", "{report:#}");
    assert!(
        failed[0].1.contains("tick") && failed[0].1.contains("deadline"),
        "{}",
        failed[0].1
    );
}

#[test]
fn something_that_is_not_a_plugin_fails_the_exports_check() {
    let (out, report) = conformance(&fixture("bad-kind"));
    assert!(!out.status.success(), "{report:#}");
    let failed = failures(&report);
    assert_eq!(failed[0].0, "exports", "{report:#}");
    assert!(
        failed[0].1.contains("no known plugin kind"),
        "{}",
        failed[0].1
    );
}

#[test]
fn shipped_rust_plugins_of_every_kind_pass_every_check() {
    for name in [
        "failure-alert",
        "api-contract-rule",
        "progress-mapper",
        "pm",
    ] {
        let (out, report) = conformance(&shipped_plugin(name));
        assert!(out.status.success(), "{name}: {report:#}");
        assert!(failures(&report).is_empty(), "{name}: {report:#}");
        assert!(checks(&report).len() >= 3, "{name}: {report:#}");
    }
    // A rule that remembers tasks is also asked by numbers, and must agree.
    let (_, report) = conformance(&shipped_plugin("api-contract-rule"));
    let memory = checks(&report)
        .into_iter()
        .find(|(check, _, _)| check == "memory")
        .expect("a memory check for a rule with task-memory");
    assert!(
        memory.1 && memory.2.contains("answers as check-batch"),
        "{report:#}"
    );
}

#[test]
fn a_rule_that_forgets_what_it_is_handed_fails_the_memory_check() {
    let dir = tempfile::tempdir().unwrap();
    let folder = install_plugin_folder(
        dir.path(),
        "forgetful",
        &fixture("forgetful-rule"),
        "[config]\nmemory = \"forgets\"\n",
    );
    let (out, report) = conformance(&folder);
    assert!(!out.status.success(), "{report:#}");
    let failed = failures(&report);
    assert_eq!(
        failed.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["memory"],
        "{report:#}"
    );
    assert!(
        failed[0]
            .1
            .contains("does not remember right after being handed them"),
        "{}",
        failed[0].1
    );
}

#[test]
fn the_javascript_and_python_examples_pass_every_check_and_the_text_says_so() {
    for (folder, file) in [
        ("js/api-contract-rule", "api-contract-rule.wasm"),
        ("js/failure-alert", "failure-alert.wasm"),
        ("js/summary-agent", "summary-agent.wasm"),
        ("js/restart-on-failure", "restart-on-failure.wasm"),
        ("python/api-contract-rule", "api-contract-rule.wasm"),
        ("python/failure-alert", "failure-alert.wasm"),
        ("python/summary-agent", "summary-agent.wasm"),
        ("python/pytest-progress", "pytest-progress.wasm"),
    ] {
        let component = example_component(folder, file);
        let plugin = component.parent().unwrap();
        let (out, report) = conformance(plugin);
        assert!(out.status.success(), "{folder}: {report:#}");
        assert!(failures(&report).is_empty(), "{folder}: {report:#}");
    }
    // The words, not only the JSON.
    let plugin = example_component("js/failure-alert", "failure-alert.wasm");
    let out = run_host(
        [
            OsStr::new("plugin"),
            OsStr::new("check"),
            OsStr::new("--conformance"),
            plugin.parent().unwrap().as_os_str(),
        ],
        PATIENCE,
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for check in ["exports", "describe", "subscriptions", "actions", "grants"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with("passed") && l.contains(check)),
            "no passed `{check}` line:\n{stdout}"
        );
    }
    assert!(stdout.contains("checks passed"), "{stdout}");
}
