//! The probes of one run: a task beside the runner that checks at each
//! probe's rhythm, keeps the record's `ready` flag, publishes
//! `process.ready` / `process.unready`, and asks the runner to stop the run
//! when its liveness (or startup) probe fails.
//!
//! Phases, as in Kubernetes: while a startup probe has not passed, it is
//! the only probe checked (readiness and liveness are held off); once it
//! passes, readiness and liveness run, each on its own clock from then.
//! A startup probe that fails `failure_threshold` times in a row fails the
//! run as a liveness failure does. Nothing is checked while the process is
//! not `running` (paused, stopping): a frozen tree is not a dead one.
//!
//! The task never stops a tree itself: it sends the runner a request, so
//! the stop, the outcome and the restart go through the runner's one path
//! (and its restart accounting), like a memory limit.

use std::sync::Arc;

use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Probe;
use super::check::{self, Context, LogCursor};
use crate::supervisor::events::{self, EventType};
use crate::supervisor::runner::{Control, ControlSender, Unhealthy};
use crate::supervisor::spec::ProcessSpec;
use crate::supervisor::state::ProcessState;
use crate::supervisor::table::Inner;

/// The running probes of one run; dropping it stops them.
pub(in crate::supervisor) struct ProbeTask {
    handle: JoinHandle<()>,
}

impl Drop for ProbeTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Which probe of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Startup,
    Readiness,
    Liveness,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Startup => "startup",
            Role::Readiness => "readiness",
            Role::Liveness => "liveness",
        }
    }
}

/// One probe's counters and clock.
struct Tracked {
    role: Role,
    probe: Probe,
    successes: u32,
    failures: u32,
    /// Readiness: ready; liveness: alive (assumed until proven otherwise);
    /// startup: passed.
    passing: bool,
    next_at: Instant,
    log: Option<LogCursor>,
    last_error: String,
}

impl Tracked {
    fn new(role: Role, probe: &Probe, from: Instant, run_output_offset: u64) -> Tracked {
        Tracked {
            role,
            log: probe
                .log
                .as_deref()
                .and_then(|p| LogCursor::new(p, run_output_offset)),
            probe: probe.clone(),
            successes: 0,
            failures: 0,
            passing: role == Role::Liveness,
            next_at: from + probe.initial_delay,
            last_error: String::new(),
        }
    }
}

/// Who the task reports to.
struct Target {
    inner: Arc<Inner>,
    name: String,
    generation: u64,
    pid: u32,
    control: ControlSender,
}

/// Starts the probes of run `pid` of process `name`; `None` when its spec
/// has none.
pub(in crate::supervisor) fn start(
    inner: Arc<Inner>,
    name: &str,
    generation: u64,
    pid: u32,
    spec: &ProcessSpec,
) -> Option<ProbeTask> {
    if spec.readiness_probe.is_none()
        && spec.liveness_probe.is_none()
        && spec.startup_probe.is_none()
    {
        return None;
    }
    let (control, ring, run_output_offset) = inner.with_run(name, generation, |rec, _| {
        let control = rec.run.as_ref().map(|r| r.control.clone());
        (control, rec.ring.clone(), rec.run_output_offset)
    })?;
    let ctx = Context {
        cwd: spec.cwd.clone(),
        env: spec.env.clone(),
        ring,
        run_output_offset,
        http: [
            &spec.readiness_probe,
            &spec.liveness_probe,
            &spec.startup_probe,
        ]
        .iter()
        .any(|p| p.as_ref().is_some_and(|p| p.http_get.is_some()))
        .then(check::http_client)
        .flatten(),
    };
    let target = Target {
        inner,
        name: name.to_string(),
        generation,
        pid,
        control: control?,
    };
    let probes = (
        spec.startup_probe.as_deref().cloned(),
        spec.readiness_probe.as_deref().cloned(),
        spec.liveness_probe.as_deref().cloned(),
    );
    Some(ProbeTask {
        handle: tokio::spawn(run(target, ctx, probes)),
    })
}

async fn run(target: Target, ctx: Context, probes: (Option<Probe>, Option<Probe>, Option<Probe>)) {
    let (startup, readiness, liveness) = probes;
    let offset = ctx.run_output_offset;
    if let Some(probe) = startup {
        let mut tracked = Tracked::new(Role::Startup, &probe, Instant::now(), offset);
        while !tracked.passing {
            if !step(&target, &ctx, &mut tracked).await {
                return;
            }
        }
    }
    let now = Instant::now();
    let mut all: Vec<Tracked> = [(Role::Readiness, readiness), (Role::Liveness, liveness)]
        .into_iter()
        .filter_map(|(role, probe)| Some(Tracked::new(role, probe.as_ref()?, now, offset)))
        .collect();
    loop {
        let Some(next) = all.iter_mut().min_by_key(|t| t.next_at) else {
            return;
        };
        if !step(&target, &ctx, next).await {
            return;
        }
    }
}

/// Waits for `tracked`'s next check, makes it and acts on the result;
/// false when the probes of this run are over.
async fn step(target: &Target, ctx: &Context, tracked: &mut Tracked) -> bool {
    tokio::time::sleep_until(tracked.next_at).await;
    tracked.next_at = Instant::now() + tracked.probe.period;
    let state = target
        .inner
        .with_run(&target.name, target.generation, |rec, _| {
            (rec.pid == Some(target.pid)).then_some(rec.state)
        });
    match state {
        Some(Some(ProcessState::Running)) => {}
        // Paused or stopping: check again later, counters untouched.
        Some(Some(_)) => return true,
        // Another run, or the record is gone.
        _ => return false,
    }
    let check = tracked.probe.check();
    let result = check::run(check, tracked.probe.timeout, ctx, tracked.log.as_mut()).await;
    match result {
        Ok(()) => {
            tracked.successes = tracked.successes.saturating_add(1);
            tracked.failures = 0;
            if !tracked.passing && tracked.successes >= tracked.probe.success_threshold {
                tracked.passing = true;
                if tracked.role == Role::Readiness {
                    set_ready(target, true, json!({ "probe": check_name(tracked) }));
                }
            }
        }
        Err(error) => {
            tracked.failures = tracked.failures.saturating_add(1);
            tracked.successes = 0;
            tracked.last_error = error;
            if tracked.failures >= tracked.probe.failure_threshold {
                match tracked.role {
                    Role::Readiness if tracked.passing => {
                        tracked.passing = false;
                        set_ready(
                            target,
                            false,
                            json!({
                                "probe": check_name(tracked),
                                "reason": tracked.last_error,
                                "failures": tracked.failures,
                            }),
                        );
                    }
                    Role::Readiness => {}
                    Role::Liveness | Role::Startup => {
                        let reason = format!(
                            "{} probe failed {} times: {}",
                            tracked.role.as_str(),
                            tracked.failures,
                            tracked.last_error
                        );
                        let _ = target.control.send(Control::Unhealthy(Box::new(Unhealthy {
                            pid: target.pid,
                            probe: tracked.role.as_str(),
                            reason,
                        })));
                        return false;
                    }
                }
            }
        }
    }
    true
}

fn check_name(tracked: &Tracked) -> &'static str {
    match tracked.probe.check() {
        super::Check::Exec(_) => "exec",
        super::Check::HttpGet(_) => "http_get",
        super::Check::Tcp(_) => "tcp",
        super::Check::Log(_) => "log",
    }
}

/// Sets the record's `ready` flag for this run and publishes the change.
fn set_ready(target: &Target, ready: bool, data: serde_json::Value) {
    // Published under the table's lock: a dependant that saw the flag is
    // logged after it (`Inner::with_run_logged`).
    target
        .inner
        .with_run_logged(&target.name, target.generation, |rec, _| {
            if rec.pid != Some(target.pid) || rec.ready == Some(ready) {
                return Vec::new();
            }
            rec.ready = Some(ready);
            let ty = if ready {
                EventType::Ready
            } else {
                EventType::Unready
            };
            vec![events::new(&target.name, ty, data)]
        });
}
