//! No orphans: a process's whole tree dies with its PID namespace, even
//! after `kill -9` of the host (issue 8). The tree is the issue's: a
//! `setsid`'d grandchild, a double-forked one and a foreground child, each
//! printing its real pid (read from `/proc/self/stat`, which the host's
//! `/proc` answers with the pid the host sees; `$!` would be the pid inside
//! the namespace).
//!
//! No timing is asserted: "gone" is polled with a generous limit; the
//! figures are in `host bench --only idle`.

use std::path::Path;
use std::time::Duration;

use host_tests::{RunningHost, eventually, pid_alive};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::PATIENCE;

/// A shell that prints its real pid, then becomes `sleep SECS`.
fn sleeper(secs: u32) -> String {
    format!("sh -c 'read p r < /proc/self/stat; echo $p; exec sleep {secs}'")
}

/// The three descendants: `setsid`'d, double-forked, foreground.
fn three_descendants() -> String {
    format!(
        "setsid {} & ({} &); {}",
        sleeper(300),
        sleeper(301),
        sleeper(302)
    )
}

/// Starts a host supervising [`three_descendants`] as process `tree`,
/// with `host_section` lines under `[host]`.
fn start(tmp: &Path, host_section: &str) -> RunningHost {
    let plugins = tmp.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let config = tmp.join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\n{host_section}\n[process.tree]\ncommand = \"{}\"\nstop_timeout = \"5s\"\n",
            three_descendants()
        ),
    )
    .unwrap();
    RunningHost::start(
        &plugins,
        &tmp.join("state"),
        &["--config", config.to_str().unwrap()],
    )
}

/// The leader's pid (from `process.started`) and the three descendants'
/// (from its output), once all of them run.
fn tree(host: &mut RunningHost) -> Vec<i32> {
    let started = host
        .wait_for("process.started", PATIENCE, |e| e["subject"] == "tree")
        .unwrap();
    let leader = started["data"]["pid"].as_i64().unwrap() as i32;
    let mut pids = Vec::new();
    assert!(
        eventually(PATIENCE, || {
            pids = printed_pids(host);
            pids.len() == 3
        }),
        "the three descendants never printed their pids: {pids:?}\n{}",
        host.stderr()
    );
    pids.push(leader);
    for &pid in &pids {
        assert!(pid_alive(pid), "{pid} of {pids:?} should be running");
    }
    pids
}

/// Every pid the tree printed so far.
fn printed_pids(host: &RunningHost) -> Vec<i32> {
    host.events("process.output")
        .iter()
        .filter(|e| e["subject"] == "tree")
        .flat_map(|e| e["data"]["lines"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l.as_str().and_then(|l| l.trim().parse().ok()))
        .collect()
}

/// `pid_namespaces` of `host.started`.
fn namespaced(host: &mut RunningHost) -> Value {
    host.wait_for("host.started", PATIENCE, |_| true).unwrap()["data"]["pid_namespaces"].clone()
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn assert_all_gone(pids: &[i32], after: &str) {
    assert!(
        eventually(Duration::from_secs(10), || pids
            .iter()
            .all(|&p| !pid_alive(p))),
        "still running after {after}: {:?} of {pids:?}",
        pids.iter().filter(|&&p| pid_alive(p)).collect::<Vec<_>>()
    );
}

#[test]
fn kill_9_of_the_host_leaves_none_of_a_tree_that_setsids_and_double_forks() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = start(tmp.path(), "");
    if running_as_root() {
        assert_eq!(namespaced(&mut host), true, "{}", host.stderr());
    }
    let pids = tree(&mut host);
    kill(Pid::from_raw(host.child.id() as i32), Signal::SIGKILL).unwrap();
    host.child.wait().unwrap();
    assert_all_gone(&pids, "kill -9 of the host");
}

#[test]
fn a_normal_stop_of_the_host_leaves_none_of_that_tree_either() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = start(tmp.path(), "");
    let pids = tree(&mut host);
    let status = host.terminate().unwrap();
    assert!(
        status.success(),
        "host exited with {status}:\n{}",
        host.stderr()
    );
    assert_all_gone(&pids, "SIGTERM of the host");
    let cancelled = host.events("process.cancelled");
    assert!(
        cancelled.iter().any(|e| e["subject"] == "tree"),
        "the tree's run should end cancelled:\n{}",
        host.stderr()
    );
}

#[test]
fn with_pid_namespaces_off_the_host_says_so_and_a_normal_stop_still_ends_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = start(tmp.path(), "pid_namespaces = false\n");
    assert_eq!(namespaced(&mut host), false, "{}", host.stderr());
    let pids = tree(&mut host);
    let status = host.terminate().unwrap();
    assert!(
        status.success(),
        "host exited with {status}:\n{}",
        host.stderr()
    );
    assert_all_gone(&pids, "SIGTERM of the host without namespaces");
}
