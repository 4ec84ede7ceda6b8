//! Scenario: a supervised process that forks a grandchild is stopped as a
//! whole tree — when the host is terminated (also when the grandchild moved
//! to its own session), and when the process runs past its `timeout` while
//! the host carries on.

use std::path::Path;
use std::time::Duration;

use host_tests::{RunningHost, eventually, pid_alive};
use serde_json::Value;

use crate::PATIENCE;

/// The shell (the supervised child) starts `sleep` in the background (the
/// grandchild), which prints its pid, and waits for it. The pid is read
/// from `/proc/self/stat`, which answers with the pid the host sees; `$!`
/// would be the pid inside the process's PID namespace.
const TREE: &str = "sh -c 'read p r < /proc/self/stat; echo $p; exec sleep 1000' & wait";

/// As [`TREE`], but the grandchild leaves the process group and session of
/// the shell (`setsid`), so signalling the group alone would miss it.
const ESCAPING_TREE: &str =
    "setsid sh -c 'read p r < /proc/self/stat; echo $p; exec sleep 1000' & wait";

/// Starts a host supervising `command` as process `tree`.
fn start(tmp: &Path, command: &str, extra_fields: &str) -> RunningHost {
    let plugins = tmp.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let config = tmp.join("host.toml");
    std::fs::write(
        &config,
        format!("[process.tree]\ncommand = \"{command}\"\nstop_timeout = \"5s\"\n{extra_fields}"),
    )
    .unwrap();
    RunningHost::start(
        &plugins,
        &tmp.join("state"),
        &["--config", config.to_str().unwrap()],
    )
}

/// The pids of the shell and of its background `sleep`, from
/// `process.started` and the shell's first output line.
fn tree_pids(host: &mut RunningHost) -> (i32, i32) {
    let started = host
        .wait_for("process.started", PATIENCE, |e| e["subject"] == "tree")
        .unwrap();
    let child = started["data"]["pid"]
        .as_i64()
        .expect("pid in process.started") as i32;
    let first_line = |e: &Value| {
        e["data"]["lines"]
            .as_array()
            .and_then(|lines| lines.first())
            .and_then(Value::as_str)
            .and_then(|l| l.trim().parse::<i32>().ok())
    };
    let output = host
        .wait_for("process.output", PATIENCE, |e| {
            e["subject"] == "tree" && first_line(e).is_some()
        })
        .unwrap();
    let grandchild = first_line(&output).unwrap();
    assert_ne!(child, grandchild);
    assert!(pid_alive(child), "the shell {child} should be running");
    assert!(
        pid_alive(grandchild),
        "the sleep {grandchild} should be running"
    );
    (child, grandchild)
}

#[test]
fn terminating_the_host_stops_a_process_and_its_grandchild_and_ends_the_journal_with_host_stopped()
{
    let tmp = tempfile::tempdir().unwrap();
    let mut host = start(tmp.path(), TREE, "");
    let (child, grandchild) = tree_pids(&mut host);

    let status = host.terminate().unwrap();
    assert!(
        status.success(),
        "host exited with {status}:\n{}",
        host.stderr()
    );
    assert!(
        eventually(Duration::from_secs(10), || !pid_alive(child)
            && !pid_alive(grandchild)),
        "after the host exited: shell {child} alive = {}, sleep {grandchild} alive = {}",
        pid_alive(child),
        pid_alive(grandchild)
    );
    let all = host.events(">");
    let last = all.last().expect("a journal");
    assert_eq!(
        last["type"],
        "host.stopped",
        "the journal should end with host.stopped; its last events: {:#?}",
        &all[all.len().saturating_sub(5)..]
    );
}

#[test]
fn a_process_running_past_its_timeout_is_stopped_with_its_grandchild_while_the_host_keeps_running()
{
    let tmp = tempfile::tempdir().unwrap();
    let mut host = start(tmp.path(), TREE, "timeout = \"2s\"\n");
    let (child, grandchild) = tree_pids(&mut host);

    let timeout = host
        .wait_for("process.timeout", PATIENCE, |e| e["subject"] == "tree")
        .unwrap();
    assert_eq!(timeout["data"]["timeout_ms"], 2000, "{timeout}");
    assert!(
        eventually(Duration::from_secs(10), || !pid_alive(child)
            && !pid_alive(grandchild)),
        "after process.timeout: shell {child} alive = {}, sleep {grandchild} alive = {}",
        pid_alive(child),
        pid_alive(grandchild)
    );
    assert!(
        host.is_running(),
        "the host should outlive its process's timeout:\n{}",
        host.stderr()
    );

    let status = host.terminate().unwrap();
    assert!(
        status.success(),
        "host exited with {status}:\n{}",
        host.stderr()
    );
}

#[test]
fn terminating_the_host_also_stops_a_grandchild_that_left_the_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = start(tmp.path(), ESCAPING_TREE, "");
    let (child, grandchild) = tree_pids(&mut host);

    let status = host.terminate().unwrap();
    assert!(
        status.success(),
        "host exited with {status}:\n{}",
        host.stderr()
    );
    assert!(
        eventually(Duration::from_secs(10), || !pid_alive(child)
            && !pid_alive(grandchild)),
        "after the host exited: shell {child} alive = {}, setsid sleep {grandchild} alive = {}",
        pid_alive(child),
        pid_alive(grandchild)
    );
}
