//! Scenario: a process that keeps failing raises the shipped failure-alert
//! plugin's `alert.process_failures` after its third failure.

use host_tests::{RunningHost, install_shipped_plugin, sequence};
use serde_json::Value;

use crate::PATIENCE;

/// Fails at once, every time; restarted on failure with a short backoff
/// until it has run three times (two restarts), then given up.
const CONFIG: &str = r#"
[process.flaky]
command = "echo 'cannot connect to database' >&2; exit 3"
restart = "on-failure"
max_restarts = 2
restart_window = "10m"
backoff = "50ms"
backoff_max = "200ms"
"#;

#[test]
fn a_process_failing_three_times_raises_the_failure_alert_after_its_third_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_shipped_plugin("failure-alert", &plugins);
    let config = tmp.path().join("host.toml");
    std::fs::write(&config, CONFIG).unwrap();

    let mut host = RunningHost::start(
        &plugins,
        &tmp.path().join("state"),
        &["--config", config.to_str().unwrap(), "--no-build"],
    );
    let alert = host
        .wait_for("alert.process_failures", PATIENCE, |_| true)
        .unwrap();
    // Three runs, two restarts: the supervisor then gives up, so the list
    // of failures is final once `process.gave_up` is in the journal.
    host.wait_for("process.gave_up", PATIENCE, |e| e["subject"] == "flaky")
        .unwrap();

    assert_eq!(alert["subject"], "flaky", "{alert}");
    assert_eq!(alert["source"], "plugin/failure-alert", "{alert}");
    assert_eq!(alert["data"]["process"], "flaky", "{alert}");
    assert_eq!(alert["data"]["failures"], 3, "{alert}");
    assert_eq!(alert["data"]["last_exit_code"], 3, "{alert}");

    let failures: Vec<Value> = host
        .events("process.failed")
        .into_iter()
        .filter(|e| e["subject"] == "flaky")
        .collect();
    assert_eq!(
        failures.len(),
        3,
        "expected exactly three process.failed for `flaky`: {failures:#?}"
    );
    let seqs: Vec<u64> = failures.iter().map(sequence).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "failures out of order: {seqs:?}"
    );
    assert!(
        seqs[2] < sequence(&alert),
        "the alert (#{}) must follow the third failure (#{})",
        sequence(&alert),
        seqs[2]
    );
    for f in &failures {
        assert_eq!(f["data"]["exit_code"], 3, "{f}");
    }
    let alerts = host.events("alert.process_failures");
    assert_eq!(alerts.len(), 1, "one alert per crossing: {alerts:#?}");

    let status = host.terminate().unwrap();
    assert!(
        status.success(),
        "host exited with {status}:\n{}",
        host.stderr()
    );
}
