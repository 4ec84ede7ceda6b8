//! Scenario: stopping the host is bounded. A process tree that ignores the
//! stop signal is killed when `[host] shutdown_timeout` runs out, or at
//! once on a second Ctrl-C; either way the journal ends with `host.stopped`
//! saying the stop was forced and nothing of the tree is left.

use std::path::Path;
use std::time::Duration;

use host_tests::{RunningHost, eventually, pid_alive};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::PATIENCE;

/// A shell that ignores SIGTERM (and so does its background `sleep`:
/// an ignored signal stays ignored across exec), whose sleep prints its
/// pid (from `/proc/self/stat`: the pid the host sees, where `$!` would be
/// the one inside the PID namespace), and waits.
const STUBBORN: &str =
    "trap '' TERM; sh -c 'read p r < /proc/self/stat; echo $p; exec sleep 1000' & wait";

/// A host supervising [`STUBBORN`] with a long stop grace, so only the
/// shutdown bound or a second signal can end it.
fn start(tmp: &Path, shutdown_timeout: &str) -> RunningHost {
    let plugins = tmp.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let config = tmp.join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\nshutdown_timeout = \"{shutdown_timeout}\"\n\n\
             [process.stubborn]\ncommand = \"{STUBBORN}\"\nstop_timeout = \"300s\"\n"
        ),
    )
    .unwrap();
    RunningHost::start(
        &plugins,
        &tmp.join("state"),
        &["--config", config.to_str().unwrap()],
    )
}

/// The shell's pid and its `sleep`'s, once both run.
fn pids(host: &mut RunningHost) -> [i32; 2] {
    let started = host
        .wait_for("process.started", PATIENCE, |e| e["subject"] == "stubborn")
        .unwrap();
    let shell = started["data"]["pid"].as_i64().unwrap() as i32;
    let sleep_pid = |e: &Value| {
        e["data"]["lines"][0]
            .as_str()
            .and_then(|l| l.trim().parse::<i32>().ok())
    };
    let output = host
        .wait_for("process.output", PATIENCE, |e| sleep_pid(e).is_some())
        .unwrap();
    [shell, sleep_pid(&output).unwrap()]
}

fn interrupt(host: &RunningHost) {
    kill(Pid::from_raw(host.child.id() as i32), Signal::SIGINT).unwrap();
}

/// Waits for the host to exit and returns the `host.stopped` event.
fn stopped(host: &mut RunningHost) -> Value {
    assert!(
        eventually(PATIENCE, || !host.is_running()),
        "the host did not exit:\n{}",
        host.stderr()
    );
    host.events("host.stopped")
        .pop()
        .unwrap_or_else(|| panic!("no host.stopped:\n{}", host.stderr()))
}

#[test]
fn a_second_ctrl_c_kills_the_trees_the_first_was_still_stopping_and_the_host_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = start(tmp.path(), "300s");
    let tree = pids(&mut host);

    interrupt(&host);
    host.wait_for("host.stopping", PATIENCE, |_| true).unwrap();
    // The tree ignores SIGTERM and has a 300 s grace: it is still there.
    std::thread::sleep(Duration::from_millis(500));
    assert!(host.is_running(), "the first Ctrl-C waits for the tree");
    assert!(tree.iter().all(|&p| pid_alive(p)), "{tree:?}");

    interrupt(&host);
    let stopped = stopped(&mut host);
    assert_eq!(stopped["data"]["forced"], "signal", "{stopped:#}");
    assert!(
        eventually(Duration::from_secs(5), || tree
            .iter()
            .all(|&p| !pid_alive(p))),
        "left running after the forced stop: {tree:?}"
    );
}

#[test]
fn a_tree_that_ignores_the_stop_signal_is_killed_when_the_shutdown_timeout_runs_out() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = start(tmp.path(), "1s");
    let tree = pids(&mut host);

    interrupt(&host);
    let stopped = stopped(&mut host);
    assert_eq!(stopped["data"]["forced"], "timeout", "{stopped:#}");
    assert!(
        eventually(Duration::from_secs(5), || tree
            .iter()
            .all(|&p| !pid_alive(p))),
        "left running after the shutdown timeout: {tree:?}"
    );
}
