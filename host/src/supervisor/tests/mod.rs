//! Tests of the whole room through its public verbs, with real `/bin/sh`
//! children, one behaviour each.
//!
//! Kept apart from `supervisor.rs` because they exercise every part at once
//! (runner, stop, output, reaper). Waits poll with a generous limit only to
//! avoid hanging; nothing asserts on timing.

use std::time::Duration;

pub(super) use serde_json::Value;

pub(super) use super::stop::read_stat;
pub(super) use super::*;
pub(super) use crate::bus::{Bus, BusConfig};
use crate::bus::{Event, EventQuery};

pub(super) const PATIENCE: Duration = Duration::from_secs(60);

pub(super) fn setup() -> (Supervisor, Bus, tempfile::TempDir) {
    setup_with(|_| {})
}

/// [`setup`] with a config adjusted by `adjust`.
pub(super) fn setup_with(
    adjust: impl FnOnce(&mut SupervisorConfig),
) -> (Supervisor, Bus, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    let mut config = SupervisorConfig::new(dir.path());
    adjust(&mut config);
    let sup = Supervisor::new(bus.clone(), config);
    (sup, bus, dir)
}

pub(super) fn spec(name: &str, command: &str) -> ProcessSpec {
    let mut spec = ProcessSpec::new(name, command);
    spec.stop_timeout = Duration::from_secs(20);
    spec
}

/// Polls `check` until it holds; panics (naming `what`) after [`PATIENCE`].
pub(super) async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(super) async fn wait_state(sup: &Supervisor, name: &str, state: ProcessState) {
    wait_until(&format!("{name} to be {state}"), || {
        sup.get(name).is_some_and(|p| p.state == state)
    })
    .await;
}

/// Every event about process `name`, oldest first. Flushes first: the
/// supervisor hands its events to the bus without waiting for the commit.
pub(super) fn events(bus: &Bus, name: &str) -> Vec<Event> {
    bus.flush().unwrap();
    let query = EventQuery {
        subject: Some(name.to_string()),
        ..Default::default()
    };
    let mut all = bus.query(&query).unwrap();
    all.sort_by_key(|e| e.sequence);
    all
}

/// Lifecycle event types, without the output ones and resource samples
/// (which arrive whenever the sampler ticks).
pub(super) fn lifecycle(bus: &Bus, name: &str) -> Vec<String> {
    events(bus, name)
        .into_iter()
        .map(|e| e.ty)
        .filter(|t| !t.starts_with("process.output") && t != "process.resource")
        .collect()
}

pub(super) fn of_type(bus: &Bus, name: &str, ty: &str) -> Vec<Value> {
    events(bus, name)
        .into_iter()
        .filter(|e| e.ty == ty)
        .map(|e| e.data.into_value())
        .collect()
}

/// True once `pid` (with this start time) has exited and been reaped.
pub(super) fn vanished(pid: i32, start_time: u64) -> bool {
    read_stat(pid).is_none_or(|p| p.start_time != start_time)
}

/// Shell that prints the pid of the shell running it as the host sees it:
/// in a PID namespace `$$` and `$!` are pids inside the namespace, but the
/// host's `/proc` (which the children share) answers with real ones.
pub(super) const PRINT_PID: &str = "read p r < /proc/self/stat; echo $p";

/// A command that prints its real pid (see [`PRINT_PID`]), then becomes
/// `sleep SECS`; `redirect` applies to the sleep.
pub(super) fn sleeper(secs: u32, redirect: &str) -> String {
    format!("sh -c '{PRINT_PID}; exec sleep {secs} {redirect}'")
}

/// Waits for the first stdout line and parses it as a pid.
pub(super) async fn first_line_pid(sup: &Supervisor, name: &str) -> (i32, u64) {
    wait_until("the child to print a pid", || {
        !sup.output(name, 1).unwrap().is_empty()
    })
    .await;
    let pid: i32 = sup.output(name, 100).unwrap()[0]
        .line
        .trim()
        .parse()
        .unwrap();
    let start = read_stat(pid)
        .expect("the grandchild is running")
        .start_time;
    (pid, start)
}

mod crashloop;
mod lifecycle;
mod namespace;
mod output;
mod probes;
mod recovery;
mod resources;
mod rotation;
mod runtime;
mod trees;
