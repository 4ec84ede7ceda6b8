//! The same policies in Rust, JavaScript and Python: identical decisions on shared fixtures, loaded by the real host.
//!
//! The decisions are compared call by call in `host/tests/plugins/languages.rs`
//! (the conformance suite); here the JavaScript and Python rule, handler
//! and agent are installed as a user installs them (their own
//! `plugin.toml` and component, copied into the plugins folder) beside the
//! shipped Rust plugins, and a real `host run` must show each of them act:
//! the rules link a task pair, the handlers alert on a process failing
//! three times, the agents publish their summaries.

use std::path::Path;
use std::time::Duration;

use host_tests::{RunningHost, example_component, install_shipped_plugin};
use serde_json::{Value, json};

use crate::PATIENCE;

/// Copies `examples/<folder>` (its `plugin.toml` and built component) into
/// `plugins/<its name>/`, the manifest's `[config]` lines replaced by
/// `config` where they set the same key.
fn install_example(folder: &str, plugins: &Path, config: &[(&str, &str)]) -> String {
    let name = folder.rsplit('/').next().unwrap();
    let component = example_component(folder, &format!("{name}.wasm"));
    let source = component.parent().unwrap();
    let manifest = std::fs::read_to_string(source.join("plugin.toml")).unwrap();
    let plugin = manifest_name(&manifest);
    let target = plugins.join(&plugin);
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(&component, target.join(format!("{name}.wasm"))).unwrap();
    let manifest: String = manifest
        .lines()
        .map(|line| {
            config
                .iter()
                .find(|(key, _)| line.starts_with(&format!("{key} =")))
                .map_or(line.to_string(), |(key, value)| format!("{key} = {value}"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(target.join("plugin.toml"), manifest + "\n").unwrap();
    plugin
}

/// The `name = "..."` of a manifest.
fn manifest_name(manifest: &str) -> String {
    let line = manifest
        .lines()
        .find(|l| l.starts_with("name ="))
        .expect("a manifest with a name");
    line.split('"').nth(1).expect("a quoted name").to_string()
}

/// Fails at once, every time, three runs in all.
const CONFIG: &str = r#"
[process.flaky]
command = "echo 'cannot connect' >&2; exit 3"
restart = "on-failure"
max_restarts = 2
restart_window = "10m"
backoff = "50ms"
backoff_max = "200ms"

[[task]]
id = "define-auth-api"
repository = "backend-api"
title = "Define user authentication API"
description = "Create OpenAPI spec for user auth endpoints"
"#;

#[test]
fn javascript_and_python_rules_handlers_and_agents_act_in_a_real_host_beside_rust() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_shipped_plugin("failure-alert", &plugins);
    install_shipped_plugin("api-contract-rule", &plugins);
    let mut names = Vec::new();
    for lang in ["js", "python"] {
        names.push(install_example(
            &format!("{lang}/failure-alert"),
            &plugins,
            &[],
        ));
        names.push(install_example(
            &format!("{lang}/api-contract-rule"),
            &plugins,
            &[],
        ));
        names.push(install_example(
            &format!("{lang}/summary-agent"),
            &plugins,
            &[("interval_ms", "2000")],
        ));
    }
    let config = tmp.path().join("host.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut host = RunningHost::start(
        &plugins,
        &tmp.path().join("state"),
        &["--config", config.to_str().unwrap(), "--no-build"],
    );
    // Three 18 MB Python components and three QuickJS ones compile side by
    // side on the first start: minutes on a loaded two-core machine.
    for name in &names {
        host.wait_for("plugin.loaded", Duration::from_secs(600), |e| {
            e["subject"] == name.as_str()
        })
        .unwrap_or_else(|e| panic!("{name} did not load: {e}"));
    }

    // The handlers: the same alert from the Rust, JavaScript and Python
    // failure-alert, each under its own source.
    let mut alerts = Vec::new();
    for source in [
        "plugin/failure-alert",
        "plugin/failure-alert-js",
        "plugin/failure-alert-py",
    ] {
        let alert = host
            .wait_for("alert.process_failures", PATIENCE, |e| {
                e["source"] == source
            })
            .unwrap_or_else(|e| panic!("no alert from {source}: {e}"));
        alerts.push(alert);
    }
    for alert in &alerts {
        assert_eq!(alert["subject"], "flaky", "{alert}");
        assert_eq!(alert["data"]["failures"], 3, "{alert}");
        assert_eq!(alert["data"], alerts[0]["data"], "{alert} vs {}", alerts[0]);
    }

    // The rules: the seed pair, linked by each version with the same
    // reason and confidence.
    let api = host.api();
    let (status, body) = api.post(
        "/v1/tasks",
        &json!({ "id": "auth-endpoint", "repository": "frontend-app",
                 "title": "Implement authentication endpoint" }),
    );
    assert_eq!(status, 201, "{body}");
    let mut found: Vec<Value> = Vec::new();
    for rule in [
        "api-contract-rule",
        "api-contract-rule-js",
        "api-contract-rule-py",
    ] {
        let event = host
            .wait_for("dependency.detected", PATIENCE, |e| {
                e["subject"] == "auth-endpoint" && e["data"]["rule"] == rule
            })
            .unwrap_or_else(|e| panic!("no dependency from {rule}: {e}"));
        // One event per rule, its hits listed: here the one.
        let listed = super::rules::hits(&event);
        assert_eq!(listed.len(), 1, "{event}");
        assert_eq!(listed[0]["depends_on"], "define-auth-api", "{event}");
        found.push(listed[0].clone());
    }
    for d in &found {
        assert_eq!(d["reason"], found[0]["reason"], "{d}");
        assert_eq!(d["confidence"], found[0]["confidence"], "{d}");
    }

    // The agents: summaries of an interval with events in it (a few
    // published now, so a quiet moment cannot leave them nothing to say).
    for n in 0..5 {
        let (status, body) = api.post(
            "/v1/events",
            &json!({ "type": "test.note", "data": { "n": n } }),
        );
        assert_eq!(status, 201, "{body}");
    }
    for source in ["plugin/summary-agent-js", "plugin/summary-agent-py"] {
        let summary = host
            .wait_for("summary.window", PATIENCE, |e| e["source"] == source)
            .unwrap_or_else(|e| panic!("no summary from {source}: {e}"));
        assert!(summary["data"]["events"].as_u64().unwrap() > 0, "{summary}");
        assert!(summary["data"]["top"].is_array(), "{summary}");
    }
    assert!(
        host.events("plugin.error").is_empty() && host.events("plugin.failed").is_empty(),
        "{:#?}",
        host.events("plugin.>")
    );
    host.terminate().unwrap();
}
