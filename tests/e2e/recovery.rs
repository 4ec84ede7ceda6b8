//! Crash-only recovery: a new `host run` on the state folder of a killed host accounts for every process.
//!
//! The first host runs a config process with `restart = "always"`, one
//! with `autostart = false` started by hand, and two runtime processes
//! created through the API (one `restart = "always"`, one not); it is
//! killed with SIGKILL. The second host, on the same state folder, must
//! end every one of those runs as `interrupted`, say so in
//! `host.recovered`, start again exactly the ones whose policy says so
//! (one new pid each, the runtime one under its old id), and leave the
//! others `interrupted`.

use std::path::Path;

use host_tests::{RunningHost, eventually, pid_alive, sequence};
use serde_json::{Value, json};

use crate::PATIENCE;

const CONFIG: &str = r#"
[process.web]
command = "sleep 1000"
restart = "always"

[process.batch]
command = "sleep 1000"
autostart = false
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

/// Creates a runtime process that sleeps, with `restart`; returns its id.
fn create(api: &host_tests::Api, kind: &str, restart: &str) -> String {
    let (status, body) = api.post(
        "/v1/processes",
        &json!({ "process_type": kind, "name": kind, "command": "sleep 1000", "restart": restart }),
    );
    assert_eq!(status, 201, "{body}");
    body["process_id"].as_str().unwrap().to_string()
}

/// The `process.started` events of `name` after sequence `after`.
fn starts_after(host: &RunningHost, name: &str, after: u64) -> Vec<Value> {
    host.events("process.started")
        .into_iter()
        .filter(|e| e["subject"] == name && sequence(e) > after)
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_host_killed_with_sigkill_is_recovered_from_its_journal_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let mut first = start(tmp.path());
    let api = first.api();
    first
        .wait_for("process.started", PATIENCE, |e| e["subject"] == "web")
        .unwrap();
    let (status, body) = api.post("/v1/processes/batch/start", &json!({}));
    assert_eq!(status, 200, "{body}");
    let server = create(&api, "server", "always");
    let build = create(&api, "build", "never");
    for id in [&server, &build] {
        api.wait_process(id, |p| p["state"] == "running");
    }
    let old_pids: Vec<i32> = first
        .events("process.started")
        .iter()
        .map(|e| e["data"]["pid"].as_i64().unwrap() as i32)
        .collect();
    assert_eq!(old_pids.len(), 4);

    first.child.kill().unwrap(); // SIGKILL: no stop, no last word
    first.child.wait().unwrap();
    let mut second = start(tmp.path());
    let recovered = second
        .wait_for("host.recovered", PATIENCE, |_| true)
        .unwrap();
    let data = &recovered["data"];
    let mut all = vec![
        "batch".to_string(),
        "web".into(),
        server.clone(),
        build.clone(),
    ];
    all.sort();
    assert_eq!(names(&data["interrupted"]), all, "{data:#}");
    let mut again = vec!["web".to_string(), server.clone()];
    again.sort();
    assert_eq!(names(&data["restarting"]), again, "{data:#}");
    let mut restored = vec![server.clone(), build.clone()];
    restored.sort();
    assert_eq!(names(&data["restored"]), restored, "{data:#}");

    // Every run of the first host has its end in the journal.
    let interrupted = second.events("process.interrupted");
    for name in &all {
        let ends: Vec<_> = interrupted
            .iter()
            .filter(|e| e["subject"] == name.as_str())
            .collect();
        assert_eq!(ends.len(), 1, "{name}: {interrupted:#?}");
        assert_eq!(ends[0]["data"]["from"], "running");
    }

    let api = second.api();
    let after = sequence(&recovered);
    for name in [&"web".to_string(), &server] {
        let status = api.wait_process(name, |p| p["state"] == "running");
        let starts = starts_after(&second, name, after);
        assert_eq!(starts.len(), 1, "{name} started once: {starts:#?}");
        let pid = starts[0]["data"]["pid"].as_i64().unwrap() as i32;
        assert_eq!(status["pid"].as_i64(), Some(i64::from(pid)));
        assert!(!old_pids.contains(&pid), "{name} has a new run");
    }
    let (_, srv) = api.get(&format!("/v1/processes/{server}"));
    assert_eq!(
        (srv["origin"].as_str(), srv["process_type"].as_str()),
        (Some("runtime"), Some("server")),
        "{srv}"
    );
    for name in ["batch", build.as_str()] {
        let (status, p) = api.get(&format!("/v1/processes/{name}"));
        assert_eq!(status, 200, "{name} is still known: {p}");
        assert_eq!(p["state"], "interrupted", "{p}");
        assert!(
            starts_after(&second, name, after).is_empty(),
            "{name} was not started"
        );
    }
    // Nothing of the first host's runs is left: one run per restarted process.
    assert!(
        eventually(PATIENCE, || old_pids.iter().all(|&p| !pid_alive(p))),
        "a run of the killed host is still alive: {old_pids:?}"
    );

    // `host ps --json` tells the same story.
    let ps = host_tests::run_host(
        [
            "ps",
            "--json",
            "--state-dir",
            second.state_dir.to_str().unwrap(),
        ],
        PATIENCE,
    )
    .unwrap();
    assert!(
        ps.status.success(),
        "{}",
        String::from_utf8_lossy(&ps.stderr)
    );
    let listed: Value = serde_json::from_slice(&ps.stdout).unwrap();
    let state_of = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name || p["process_id"] == name)
            .map(|p| p["state"].clone())
    };
    assert_eq!(state_of("batch"), Some(json!("interrupted")), "{listed:#}");
    assert_eq!(state_of(&server), Some(json!("running")), "{listed:#}");
    second.terminate().unwrap();
}

/// Without PID namespaces a child's descendants outlive a killed host (the
/// leader dies of its parent-death signal, its group lives on): the next
/// host finds them by the pid and start time in the journal and kills
/// them before the restart, so the process never runs twice.
#[test]
fn without_pid_namespaces_what_outlived_the_killed_host_is_killed_before_the_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let config = tmp.path().join("host.toml");
    std::fs::write(
        &config,
        "[host]\npid_namespaces = false\n\n\
         [process.tree]\ncommand = \"sleep 1000 & echo $!; wait\"\nrestart = \"always\"\n",
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap(), "--no-build"];
    let state = tmp.path().join("state");
    let mut first = RunningHost::start(&plugins, &state, &args);
    let line = first
        .wait_for("process.output", PATIENCE, |e| e["subject"] == "tree")
        .unwrap();
    let sleeper: i32 = line["data"]["lines"][0]
        .as_str()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line}"));
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(
        pid_alive(sleeper),
        "the grandchild should outlive the host here"
    );

    let mut second = RunningHost::start(&plugins, &state, &args);
    let recovered = second
        .wait_for("host.recovered", PATIENCE, |_| true)
        .unwrap();
    assert_eq!(
        recovered["data"]["killed"]["tree"],
        json!([sleeper]),
        "{recovered:#}"
    );
    assert!(
        eventually(PATIENCE, || !pid_alive(sleeper)),
        "the survivor {sleeper} is still alive"
    );
    let interrupted = second.events("process.interrupted");
    assert_eq!(interrupted.len(), 1, "{interrupted:#?}");
    assert_eq!(interrupted[0]["data"]["killed"], json!([sleeper]));
    second
        .wait_for("process.started", PATIENCE, |e| {
            sequence(e) > sequence(&recovered)
        })
        .unwrap();
    assert_eq!(
        starts_after(&second, "tree", sequence(&recovered)).len(),
        1,
        "one new run"
    );
    second.terminate().unwrap();
}
