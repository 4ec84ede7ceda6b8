//! Dependencies and probes, as golden state-transition traces: the
//! harness and the probe scenarios here, the dependency scenarios in
//! `probes/dependencies.rs`.
//!
//! [`trace`] records, for a scenario, the sequence of (process, event
//! type, from→to) from the bus, and each test compares it with the list it
//! expects, written out in the test. Where two processes run independently
//! their interleaving is not part of the contract, so a test traces them
//! apart, or traces only the events the dependency graph orders.
//! The harness is `pub(super)` for the other scenario files (crash loops,
//! recovery) to write their traces the same way.

use std::time::Duration;

use super::*;
use crate::bus::Event;

/// The dependency scenarios: chains, gates, failures, stops.
mod dependencies;

/// One line of a golden trace: `"db: started starting→running"`, or
/// `"db: ready"` for an event that is not a state transition.
fn step(event: &Event) -> String {
    let ty = event.ty.strip_prefix("process.").unwrap_or(&event.ty);
    let subject = event.subject.as_deref().unwrap_or("?");
    match (event.data.get("from"), event.data.get("to")) {
        (Some(Value::String(from)), Some(Value::String(to))) => {
            format!("{subject}: {ty} {from}→{to}")
        }
        _ => format!("{subject}: {ty}"),
    }
}

/// The golden trace of `names`: their lifecycle events (no output,
/// resource samples, status reports or `created`) in bus order.
pub(super) fn trace(bus: &Bus, names: &[&str]) -> Vec<String> {
    trace_where(bus, names, |ty| {
        !ty.starts_with("process.output")
            && !matches!(
                ty,
                "process.resource" | "process.status" | "process.created"
            )
    })
}

/// [`trace`] keeping only the event types `keep` accepts.
pub(super) fn trace_where(bus: &Bus, names: &[&str], keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut all: Vec<Event> = names
        .iter()
        .flat_map(|name| events(bus, name))
        .filter(|e| keep(&e.ty))
        .collect();
    all.sort_by_key(|e| e.sequence);
    all.iter().map(step).collect()
}

/// [`trace`] keeping only these event types (`"started"` for `process.started`).
pub(super) fn trace_of(bus: &Bus, names: &[&str], types: &[&str]) -> Vec<String> {
    trace_where(bus, names, |ty| {
        types.iter().any(|t| ty.strip_prefix("process.") == Some(t))
    })
}

/// Asserts a trace, printing both in full when they differ.
#[track_caller]
pub(super) fn assert_trace(actual: Vec<String>, expected: &[&str]) {
    assert_eq!(
        actual,
        expected,
        "\nactual trace:\n  {}\nexpected:\n  {}",
        actual.join("\n  "),
        expected.join("\n  ")
    );
}

/// A quick probe: checks every 30 ms, fails after `failures` in a row.
fn quick(check: ProbeCheck, failures: u32) -> Box<Probe> {
    let mut probe = Box::new(Probe::new(check));
    probe.period = Duration::from_millis(30);
    probe.timeout = Duration::from_secs(5);
    probe.failure_threshold = failures;
    probe
}

fn log_ready(pattern: &str) -> Option<Box<Probe>> {
    Some(quick(ProbeCheck::Log(pattern.into()), 1))
}

fn depends(spec: &mut ProcessSpec, on: &[(&str, Condition)]) {
    spec.depends_on = DependsOn(on.iter().map(|(n, c)| (n.to_string(), *c)).collect());
}

async fn wait_ready(sup: &Supervisor, name: &str, ready: bool) {
    wait_until(&format!("{name} ready = {ready}"), || {
        sup.get(name).is_some_and(|p| p.ready == Some(ready))
    })
    .await;
}

/// The `reason` of the last `process.failed` of `name`.
fn failed_reason(bus: &Bus, name: &str) -> String {
    of_type(bus, name, "process.failed")
        .last()
        .and_then(|d| d["reason"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liveness_failure_restarts_through_the_restart_accounting() {
    let (sup, bus, _dir) = setup();
    let mut app = spec("app", "exec sleep 60");
    app.restart = RestartMode::OnFailure;
    app.max_restarts = 1;
    app.backoff = Duration::from_millis(10);
    app.liveness_probe = Some(quick(ProbeCheck::Exec("exit 1".into()), 2));
    sup.add(app).unwrap();
    sup.start("app").await.unwrap();
    wait_until("app to give up", || {
        !of_type(&bus, "app", "process.gave_up").is_empty()
    })
    .await;
    let run = [
        "app: started starting→running",
        "app: stopping running→stopping",
        "app: exited stopping→failed",
        "app: failed stopping→failed",
    ];
    let mut expected = vec!["app: starting pending→starting"];
    expected.extend(run);
    expected.extend([
        "app: backoff failed→backoff",
        "app: starting backoff→starting",
    ]);
    expected.extend(run);
    expected.push("app: gave_up");
    assert_trace(trace(&bus, &["app"]), &expected);
    assert_eq!(
        of_type(&bus, "app", "process.stopping")[0]["reason"],
        "liveness"
    );
    let reason = failed_reason(&bus, "app");
    assert!(
        reason.starts_with("liveness probe failed 2 times: exited with exit status: 1"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_startup_probe_holds_liveness_and_readiness_off_until_it_passes() {
    let (sup, bus, dir) = setup();
    let started = dir.path().join("started");
    let mut app = spec("app", "exec sleep 60");
    app.startup_probe = Some(quick(
        ProbeCheck::Exec(format!("test -f {}", started.display())),
        1000,
    ));
    app.readiness_probe = Some(quick(ProbeCheck::Exec("true".into()), 1));
    // A liveness probe that always fails: only the startup probe keeps it off.
    app.liveness_probe = Some(quick(ProbeCheck::Exec("false".into()), 2));
    sup.add(app).unwrap();
    sup.start("app").await.unwrap();
    // Many liveness periods pass; the startup probe has not passed, so
    // the run is neither killed nor ready.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_trace(
        trace(&bus, &["app"]),
        &[
            "app: starting pending→starting",
            "app: started starting→running",
        ],
    );
    std::fs::write(&started, "").unwrap();
    wait_state(&sup, "app", ProcessState::Failed).await;
    assert_trace(
        trace(&bus, &["app"]),
        &[
            "app: starting pending→starting",
            "app: started starting→running",
            "app: ready",
            "app: stopping running→stopping",
            "app: unready",
            "app: exited stopping→failed",
            "app: failed stopping→failed",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_against_a_server_that_never_answers_fails_at_its_timeout() {
    let (sup, bus, _dir) = setup();
    // The hostile server: accepts every connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut app = spec("app", "exec sleep 60");
    let mut probe = quick(ProbeCheck::HttpGet(url), 2);
    probe.timeout = Duration::from_millis(100);
    app.liveness_probe = Some(probe);
    sup.add(app).unwrap();
    sup.start("app").await.unwrap();
    wait_state(&sup, "app", ProcessState::Failed).await;
    assert_trace(
        trace(&bus, &["app"]),
        &[
            "app: starting pending→starting",
            "app: started starting→running",
            "app: stopping running→stopping",
            "app: exited stopping→failed",
            "app: failed stopping→failed",
        ],
    );
    let reason = failed_reason(&bus, "app");
    assert!(
        reason.contains("liveness probe failed 2 times: timed out after 100ms"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_process_is_not_probed_so_it_stays_ready_and_alive() {
    let (sup, bus, _dir) = setup();
    let port = free_port();
    let mut web = spec(
        "web",
        &format!("exec python3 -m http.server {port} --bind 127.0.0.1"),
    );
    let url = format!("http://127.0.0.1:{port}/");
    web.readiness_probe = Some(quick(ProbeCheck::HttpGet(url.clone()), 1));
    let mut live = quick(ProbeCheck::Tcp(format!("127.0.0.1:{port}")), 1);
    // Only the initial wait for python to listen; after that any failure kills.
    live.initial_delay = Duration::from_secs(5);
    web.liveness_probe = Some(live);
    sup.add(web).unwrap();
    sup.start("web").await.unwrap();
    wait_ready(&sup, "web", true).await;
    sup.pause("web").unwrap();
    // A frozen server answers nothing: probed now, it would go unready
    // at once and be killed once the liveness delay is over.
    tokio::time::sleep(Duration::from_secs(6)).await;
    sup.resume("web").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_trace(
        trace(&bus, &["web"]),
        &[
            "web: starting pending→starting",
            "web: started starting→running",
            "web: ready",
            "web: paused running→paused",
            "web: resumed paused→running",
        ],
    );
    sup.shutdown(false).await;
}
