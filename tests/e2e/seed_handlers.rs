//! Seed 001's handlers and seed 002's agents on the real binary (metrics, warnings, pm, gatherer, security).
//!
//! Each scenario installs the shipped components under manifests of its
//! own (short intervals, small limits) in a temporary plugins folder, runs
//! `host run` with a config of its own, and reads the journal.

use std::time::{Duration, Instant};

use host_tests::{RunningHost, install_plugin_folder, sequence, shipped_component};
use serde_json::{Value, json};

use crate::PATIENCE;

fn start(plugins: &std::path::Path, dir: &std::path::Path, config: &str) -> RunningHost {
    let path = dir.join("host.toml");
    std::fs::write(&path, config).unwrap();
    RunningHost::start(
        plugins,
        &dir.join("state"),
        &["--config", path.to_str().unwrap(), "--no-build"],
    )
}

fn of(events: Vec<Value>, subject: &str) -> Vec<Value> {
    events
        .into_iter()
        .filter(|e| e["subject"] == subject)
        .collect()
}

/// Prints once, then says nothing: a stall after one second of silence.
/// Its own restart limit is well above the PM's, so the PM's is the one
/// that stops the healing.
const PM_HOST: &str = r#"
[process.quiet]
command = "echo ready; exec sleep 100000"
restart = "never"
max_restarts = 10
restart_window = "10m"
backoff = "50ms"
backoff_max = "100ms"

[process.chatty]
command = "while true; do echo tick; sleep 0.2; done"
"#;

const PM_MANIFEST: &str = r#"
[config]
interval_ms = 200
stall_after_secs = 1
max_heals = 2
heal_window_secs = 3600
checkin_every_secs = 3600

[permissions]
emit = ["process.stalled", "pm.>"]
restart = ["*"]
"#;

#[test]
fn the_pm_heals_a_stalled_process_through_the_supervisor_and_not_more_often_than_its_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_plugin_folder(&plugins, "pm", &shipped_component("pm"), PM_MANIFEST);
    let mut host = start(&plugins, tmp.path(), PM_HOST);

    let skipped = host
        .wait_for("pm.heal_skipped", PATIENCE, |e| e["subject"] == "quiet")
        .unwrap();
    assert_eq!(skipped["data"]["why"], "heal limit reached", "{skipped}");
    // Some more ticks: the limit holds.
    std::thread::sleep(Duration::from_millis(1500));

    let healed = of(host.events("pm.healed"), "quiet");
    assert_eq!(healed.len(), 2, "max_heals = 2: {healed:#?}");
    assert_eq!(healed[0]["data"]["attempt"], 1);
    assert_eq!(healed[1]["data"]["attempt"], 2);
    assert!(
        healed[0]["data"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("no output for"),
        "{}",
        healed[0]
    );
    // Each heal was a restart the supervisor performed: the run stopped
    // for a restart and started again, three runs in all.
    let actions: Vec<Value> = of(host.events("plugin.action"), "quiet")
        .into_iter()
        .filter(|e| e["data"]["action"] == "restart")
        .collect();
    assert_eq!(actions.len(), 2, "{actions:#?}");
    assert!(
        actions.iter().all(|a| a["data"]["ok"] == true),
        "{actions:#?}"
    );
    let stopping: Vec<Value> = of(host.events("process.stopping"), "quiet")
        .into_iter()
        .filter(|e| e["data"]["reason"] == "restart")
        .collect();
    assert_eq!(stopping.len(), 2, "{stopping:#?}");
    assert_eq!(of(host.events("process.started"), "quiet").len(), 3);
    assert!(sequence(&healed[1]) < sequence(&skipped));

    // The process that keeps talking was never touched.
    assert!(of(host.events("pm.>"), "chatty").is_empty());
    assert!(of(host.events("process.stalled"), "chatty").is_empty());
    // And the seed's check-in was published at the first tick.
    let checkins = host.events("pm.checkin");
    assert!(!checkins.is_empty());
    assert!(
        checkins[0]["data"]["findings"]["progress"].is_object(),
        "{}",
        checkins[0]
    );

    let status = host.terminate().unwrap();
    assert!(status.success(), "{}", host.stderr());
}

const GHP: &str = "ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
const PASSWORD: &str = "correct-horse-battery";

/// A job that completes, one that fails, one with secrets in its command
/// line and environment (which prints nothing, so its output cannot carry
/// them into the log either).
fn handlers_host() -> String {
    format!(
        r#"
[process.job]
command = "sleep 0.3"
kind = "build"
restart = "never"

[process.broken]
command = "exit 4"
kind = "build"
restart = "never"

[process.leaky]
command = "true deploy --token {GHP}"
kind = "deploy"
restart = "never"
env = {{ DB_PASSWORD = "{PASSWORD}", HOME = "/tmp" }}
"#
    )
}

#[test]
fn metrics_warnings_and_secret_findings_come_from_the_real_host_without_leaking_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_plugin_folder(
        &plugins,
        "completion-metrics",
        &shipped_component("completion-metrics"),
        "[permissions]\nemit = [\"metrics.>\"]\n",
    );
    install_plugin_folder(
        &plugins,
        "system-warnings",
        &shipped_component("system-warnings"),
        "[config]\nwindow_secs = 600\n[permissions]\nemit = [\"system.warning\"]\n",
    );
    install_plugin_folder(
        &plugins,
        "security",
        &shipped_component("security"),
        "[permissions]\nemit = [\"security.>\"]\n",
    );
    let mut host = start(&plugins, tmp.path(), &handlers_host());

    // Metrics: one completion per run, with its duration and outcome.
    let done = host
        .wait_for("metrics.completion", PATIENCE, |e| e["subject"] == "job")
        .unwrap();
    assert_eq!(done["data"]["kind"], "build");
    assert_eq!(done["data"]["state"], "completed");
    assert!(
        done["data"]["duration_ms"].as_u64().unwrap() >= 250,
        "{done}"
    );
    let broken = host
        .wait_for("metrics.completion", PATIENCE, |e| e["subject"] == "broken")
        .unwrap();
    assert_eq!(
        (&broken["data"]["state"], &broken["data"]["exit_code"]),
        (&json!("failed"), &json!(4))
    );
    let summary = host
        .wait_for("metrics.summary", PATIENCE, |e| e["data"]["count"] == 2)
        .unwrap();
    assert_eq!(summary["subject"], "build");
    assert_eq!(
        summary["data"]["by_state"],
        json!({ "completed": 1, "failed": 1 })
    );

    // Warnings: a flood of rate limits through the API is one warning.
    let api = host.api();
    for _ in 0..30 {
        let (code, _) = api.post(
            "/v1/events",
            &json!({ "type": "provider.rate_limited", "subject": "claude",
                     "data": { "provider": "anthropic", "retry_after": 30 }, "source": "coder-7" }),
        );
        assert_eq!(code, 201);
    }
    let (code, _) = api.post(
        "/v1/events",
        &json!({ "type": "provider.error", "subject": "claude",
                 "data": { "provider": "openai", "status": 429 } }),
    );
    assert_eq!(code, 201);
    host.wait_for("system.warning", PATIENCE, |e| {
        e["data"]["source"] == "openai"
    })
    .unwrap();
    let warnings = host.events("system.warning");
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert_eq!(warnings[0]["data"]["source"], "anthropic");
    assert_eq!(warnings[0]["data"]["type"], "rate_limit");
    assert!(
        warnings[0]["data"]["message"]
            .as_str()
            .unwrap()
            .contains("retry after 30 s")
    );

    // Security: where and what, never the value.
    let found = host
        .wait_for("security.secret_found", PATIENCE, |e| {
            e["data"]["where"] == "env:DB_PASSWORD"
        })
        .unwrap();
    assert_eq!(found["data"]["kind"], "password");
    let mut kinds: Vec<(String, String)> = of(host.events("security.secret_found"), "leaky")
        .iter()
        .map(|e| {
            (
                e["data"]["where"].as_str().unwrap().to_string(),
                e["data"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("command".to_string(), "github_token".to_string()),
            ("command".to_string(), "token".to_string()),
            ("env:DB_PASSWORD".to_string(), "password".to_string()),
        ]
    );
    assert!(of(host.events("security.>"), "job").is_empty());

    let status = host.terminate().unwrap();
    assert!(status.success(), "{}", host.stderr());
    // Nothing the plugins published, and nothing in the host's log, holds
    // a prefix of either secret. (The supervisor's own `process.created`
    // carries the spec, secrets included: that is the host's journal, not
    // the plugin's doing; the plugin's README says so.)
    let published: Vec<Value> = host
        .events(">")
        .into_iter()
        .filter(|e| e["source"].as_str().unwrap_or("").starts_with("plugin/"))
        .collect();
    let published = serde_json::to_string(&published).unwrap();
    let log = host.stderr();
    for secret in [GHP, PASSWORD] {
        for n in 6..=secret.len() {
            let prefix = &secret[..n];
            assert!(!published.contains(prefix), "{prefix} in a plugin event");
            assert!(!log.contains(prefix), "{prefix} in the host's log");
        }
    }
}

#[test]
fn the_gatherer_reads_its_granted_folder_and_a_plugin_without_the_grant_cannot() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let manifest = |grant: &str| {
        format!(
            "[config]\ninterval_ms = 100\nrescan_secs = 3600\n[permissions]\n{grant}emit = [\"gatherer.>\"]\n"
        )
    };
    let folder = install_plugin_folder(
        &plugins,
        "gatherer",
        &shipped_component("gatherer"),
        &manifest("dirs = [{ host = \"project\", guest = \"/data\", read_only = true }]\n"),
    );
    std::fs::create_dir_all(folder.join("project/src")).unwrap();
    std::fs::write(
        folder.join("project/src/main.rs"),
        "fn main() {\n    // TODO: parse arguments\n}\n// HACK around the borrow checker\n",
    )
    .unwrap();
    install_plugin_folder(
        &plugins,
        "blind",
        &shipped_component("gatherer"),
        &manifest(""),
    );
    let mut host = start(&plugins, tmp.path(), "");

    let found = host
        .wait_for("gatherer.findings", PATIENCE, |_| true)
        .unwrap();
    assert_eq!(found["source"], "plugin/gatherer");
    assert_eq!(found["subject"], "/data/src/main.rs");
    assert_eq!(
        found["data"]["findings"],
        json!([
            { "line": 2, "tag": "TODO", "text": "parse arguments" },
            { "line": 4, "tag": "HACK", "text": "around the borrow checker" },
        ])
    );
    host.wait_for("gatherer.scan_completed", PATIENCE, |e| {
        e["source"] == "plugin/gatherer"
    })
    .unwrap();

    let error = host
        .wait_for("agent.error", PATIENCE, |e| e["data"]["agent"] == "blind")
        .unwrap();
    let text = error["data"]["error"].as_str().unwrap();
    assert!(text.contains("cannot read /data"), "{text}");
    assert!(text.contains("[permissions] dirs"), "{text}");
    // Give the blind one a few more ticks: still nothing.
    let until = Instant::now() + Duration::from_millis(800);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let from_blind: Vec<Value> = host
        .events("gatherer.>")
        .into_iter()
        .filter(|e| e["source"] == "plugin/blind")
        .collect();
    assert!(from_blind.is_empty(), "{from_blind:#?}");
    // The blind agent retries every 100 ms and shows "running" while a
    // retry's tick runs: read the listing until it falls between ticks,
    // where it must show the error.
    let api = host.api();
    let until = Instant::now() + PATIENCE;
    let blind = loop {
        let (code, agents) = api.get("/v1/agents");
        assert_eq!(code, 200);
        let blind = agents["agents"]
            .as_array()
            .or(agents.as_array())
            .unwrap()
            .iter()
            .find(|a| a["plugin"] == "blind")
            .cloned()
            .unwrap();
        if blind["status"] != "running" || Instant::now() > until {
            break blind;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(blind["status"], "error", "{blind}");

    let status = host.terminate().unwrap();
    assert!(status.success(), "{}", host.stderr());
}
