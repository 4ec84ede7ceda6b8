//! Crash loops: backoff, stable-uptime reset and the circuit breaker, seen through the real binary.
//!
//! Timing is checked to the millisecond on a virtual clock in the
//! supervisor's own tests (`supervisor::tests::crashloop`); here the real
//! binary shows the same accounting from its config and API: doubling
//! attempts then `process.gave_up`, a run past `stable_after` backing off
//! as a first attempt, and restarts asked through the API refused once
//! they would exceed the limit. Nothing asserts how long anything took.

use std::path::Path;

use host_tests::RunningHost;
use serde_json::{Value, json};

use crate::PATIENCE;

const CONFIG: &str = r#"
[process.crashy]
command = "exit 3"
restart = "on-failure"
backoff = "100ms"
backoff_max = "400ms"
max_restarts = 4
restart_window = "10m"

[process.steady]
command = "sleep 1; exit 3"
restart = "on-failure"
backoff = "100ms"
backoff_max = "10s"
stable_after = "500ms"
max_restarts = 3
restart_window = "10m"

[process.web]
command = "sleep 1000"
max_restarts = 1
restart_window = "10m"
"#;

fn start(tmp: &Path) -> RunningHost {
    let plugins = tmp.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let config = tmp.join("host.toml");
    std::fs::write(&config, CONFIG).unwrap();
    RunningHost::start(
        &plugins,
        &tmp.join("state"),
        &["--config", config.to_str().unwrap(), "--no-build"],
    )
}

fn backoffs(host: &RunningHost, name: &str) -> Vec<Value> {
    host.events("process.backoff")
        .into_iter()
        .filter(|e| e["subject"] == name)
        .map(|e| e["data"].clone())
        .collect()
}

#[test]
fn a_crash_loop_doubles_its_backoff_up_to_the_cap_then_gives_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = start(tmp.path());
    let gave_up = host
        .wait_for("process.gave_up", PATIENCE, |e| e["subject"] == "crashy")
        .unwrap();
    assert_eq!(gave_up["data"]["restarts"], 4, "{gave_up:#}");
    assert_eq!(gave_up["data"]["max_restarts"], 4);
    let backoffs = backoffs(&host, "crashy");
    let attempts: Vec<u64> = backoffs
        .iter()
        .map(|b| b["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    // 100, 200, 400, 400 ms (capped), each spread by at most ±20% and
    // never past the cap.
    for (b, base) in backoffs.iter().zip([100u64, 200, 400, 400]) {
        let d = b["delay_ms"].as_u64().unwrap();
        assert!(
            d * 10 >= base * 8 && d * 10 <= base * 12 && d <= 400,
            "{b} vs {base}"
        );
    }
    let failed = host
        .events("process.failed")
        .into_iter()
        .filter(|e| e["subject"] == "crashy")
        .count();
    assert_eq!(failed, 5, "the first run and four restarts");
    host.terminate().unwrap();
}

#[test]
fn runs_that_stay_up_past_stable_after_back_off_as_first_attempts_until_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = start(tmp.path());
    host.wait_for("process.gave_up", PATIENCE, |e| e["subject"] == "steady")
        .unwrap();
    let attempts: Vec<u64> = backoffs(&host, "steady")
        .iter()
        .map(|b| b["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 1, 1], "every run lasted past stable_after");
    host.terminate().unwrap();
}

#[test]
fn restarts_asked_through_the_api_count_towards_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = start(tmp.path());
    let api = host.api();
    api.wait_process("web", |p| p["state"] == "running");
    let (status, body) = api.post("/v1/processes/web/restart", &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "running", "{body}");
    let (status, body) = api.post("/v1/processes/web/restart", &json!({}));
    assert_eq!(status, 409, "the second restart within the window: {body}");
    assert!(
        body["error"].as_str().unwrap().contains("restart limit"),
        "{body}"
    );
    let (_, web) = api.get("/v1/processes/web");
    assert_eq!(
        web["state"], "running",
        "a refused restart leaves the run alone: {web}"
    );
    assert_eq!(backoffs(&host, "web").len(), 1);
    host.terminate().unwrap();
}
