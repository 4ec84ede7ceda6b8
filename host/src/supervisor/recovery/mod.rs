//! Crash-only recovery: what the last host left running, read back from the
//! journal when a host starts on the same state folder.
//!
//! The journal is the supervisor's memory: `process.created` carries a
//! spec, `process.started` a pid (and its start time in `/proc`), and every
//! run ends with a terminal event. A process whose last lifecycle event is
//! not terminal was running (or starting, stopping, paused, backing off)
//! when the last host ended without ending it: `kill -9`, a crash, power.
//! There is no separate shutdown path to trust: a clean stop leaves every
//! run `cancelled`, so recovery after a clean stop finds nothing to
//! interrupt and is the same code.
//!
//! For each such run, before anything starts:
//! 1. its tree is killed if any of it survived (without a PID namespace, a
//!    child's descendants outlive the host: the leader dies of its
//!    parent-death signal, its group lives on). A member is ours only if it
//!    carries the recorded group id and started no earlier than the
//!    recorded leader, on this boot, while no other process holds the
//!    leader's pid (see `survivors`);
//! 2. `process.interrupted` ends the run in the journal (a terminal state,
//!    not `failed`: the process did nothing wrong), so nobody reading the
//!    log sees a run vanish without an end.
//!
//! Then the table is rebuilt: config processes are already in it (and keep
//! their new spec); runtime processes (created through the API) come back
//! under their ids, from the spec of their last `process.created`, unless
//! `process.removed` came after it. What restarts: an interrupted config
//! process with `autostart` or a restart policy, an interrupted runtime
//! process whose restart policy covers `interrupted`; never a run whose
//! stop a person had asked for. A run that had ended with its restart
//! still to come (the host died between `process.failed` and
//! `process.backoff`) restarts too, as its policy had decided.
//!
//! The runtime publishes `host.recovered` with the [`Recovery`] report.
//! A host killed during recovery is recovered by the next one: a run
//! already marked `interrupted` but not restarted is picked up again from
//! that state, and nothing is interrupted twice.

mod survivors;
mod trail;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};

use super::error::SupervisorError;
use super::events::{self, EventType};
use super::offload::offload;
use super::restart::should_restart;
use super::spec::RestartMode;
use super::state::{Origin, ProcessState};
use super::stop::{self, Procs};
use super::supervisor::Supervisor;
use super::table::{Record, prune_finished};
use crate::bus::NewEvent;
use survivors::kill_survivors;
use trail::{Trail, fold};

/// What recovery found in the journal and did about it: the data of
/// `host.recovered`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Recovery {
    /// The last journal sequence read (the previous host's last event).
    pub up_to: u64,
    /// Processes whose run was under way: now `interrupted`.
    pub interrupted: Vec<String>,
    /// Processes this host starts again (interrupted ones by their policy,
    /// and runs that ended with a restart still to come).
    pub restarting: Vec<String>,
    /// Runtime processes back in the table under their ids.
    pub restored: Vec<String>,
    /// Per process, the pids of a previous run's tree that were still
    /// alive and were killed before anything restarted.
    pub killed: BTreeMap<String, Vec<i32>>,
    /// Processes the journal knows but this host cannot bring back, with
    /// the reason (a runtime process whose spec left the journal, a config
    /// process no longer in the config, a name taken by the config).
    pub lost: BTreeMap<String, String>,
    /// Finished runtime processes beyond `retain_finished`, removed
    /// (`process.removed`, reason `retention`) instead of restored.
    pub pruned: usize,
    /// One line per process with anything to report: what was found.
    pub processes: Vec<Found>,
}

impl Recovery {
    /// True when the journal held nothing to recover.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty() && self.restored.is_empty() && self.pruned == 0
    }
}

/// One process as the journal left it.
#[derive(Clone, Debug, Serialize)]
pub struct Found {
    /// Its name (a runtime process's id).
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
    /// Its state by the last lifecycle event.
    pub state: ProcessState,
    /// The type of that event, e.g. `process.started`.
    pub last_event: String,
    /// The pid of its last run, if one was spawned.
    pub pid: Option<u32>,
    /// What this host does with it: `interrupted`, `restarting`, `kept`
    /// (interrupted, not restarted), or `lost`.
    pub action: &'static str,
}

impl Supervisor {
    /// Recovers what the journal says about processes up to sequence
    /// `up_to` (the last event before this host began): kills what
    /// survives of runs the last host never ended, ends those runs with
    /// `process.interrupted`, restores runtime processes under their ids,
    /// and reports what it did; see the module doc of `recovery`.
    ///
    /// Call once, after the config's processes are added and before
    /// anything starts; then publish the report (the runtime's
    /// `host.recovered`) and call [`Supervisor::start_recovered`].
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Recovery`] if the journal cannot be read.
    pub async fn recover(&self, up_to: u64) -> Result<Recovery, SupervisorError> {
        let trails =
            fold(&self.inner.bus, up_to).map_err(|source| SupervisorError::Recovery { source })?;
        let mut report = Recovery {
            up_to,
            ..Default::default()
        };
        let mut published: Vec<NewEvent> = Vec::new();
        // One look at /proc serves every run to check, and none is taken
        // when the last host ended cleanly.
        let procs = match trails.values().any(|t| !t.removed && t.was_active()) {
            true => Arc::new(offload(stop::scan).await),
            false => Arc::default(),
        };
        for (name, trail) in trails {
            if trail.removed {
                continue;
            }
            self.recover_one(&name, trail, &procs, &mut report, &mut published)
                .await;
        }
        // Restored finished runtime processes are held to the same
        // retention limit as in the last host.
        let pruned = prune_finished(&mut self.inner.table(), self.inner.config.retain_finished);
        for (name, state) in &pruned {
            report.restored.retain(|n| n != name);
            published.push(events::removed(name, *state, "retention"));
        }
        report.pruned = pruned.len();
        events::publish(&self.inner.bus, published);
        Ok(report)
    }

    async fn recover_one(
        &self,
        name: &str,
        trail: Trail,
        procs: &Arc<Procs>,
        report: &mut Recovery,
        published: &mut Vec<NewEvent>,
    ) {
        let active = trail.was_active();
        if active {
            let killed = kill_survivors(name, &trail, procs).await;
            if !killed.is_empty() {
                report.killed.insert(name.to_string(), killed.clone());
            }
            published.push(interrupted(name, &trail, &killed));
            report.interrupted.push(name.to_string());
        }
        let in_table = self.inner.table().contains_key(name);
        // Where the process lives now, and its spec there.
        let (spec, lost) = match (trail.origin, in_table, &trail.spec) {
            (Origin::Config, true, _) => {
                (self.inner.table().get(name).map(|r| r.spec.clone()), None)
            }
            (Origin::Config, false, _) => (None, Some("no longer in the config")),
            (Origin::Runtime, true, _) => (None, Some("its id is a process of the config")),
            (Origin::Runtime, false, None) => (
                None,
                Some("its process.created (with its spec) is no longer in the journal"),
            ),
            (Origin::Runtime, false, Some(spec)) => (Some(Arc::new(spec.clone())), None),
        };
        let state = if active {
            ProcessState::Interrupted
        } else {
            trail.state
        };
        let Some(spec) = spec else {
            if let Some(reason) = lost
                && (active || trail.origin == Origin::Runtime)
            {
                report.lost.insert(name.to_string(), reason.to_string());
                report.processes.push(found(name, &trail, "lost"));
            }
            return;
        };
        // Interrupted now, or by a recovery that did not live to restart it.
        let interrupted = active || trail.state == ProcessState::Interrupted;
        let restart = match (interrupted, trail.origin) {
            // A config process starts with the host if it says so, as it
            // would have after a clean stop.
            (true, Origin::Config) => {
                spec.autostart || (spec.restart != RestartMode::Never && !trail.stop_asked())
            }
            (true, Origin::Runtime) => {
                !trail.stop_asked() && should_restart(spec.restart, ProcessState::Interrupted)
            }
            (false, _) => trail.restart_pending(&spec),
        };
        if trail.origin == Origin::Runtime {
            let mut rec = Record::new(
                Arc::unwrap_or_clone(spec),
                Origin::Runtime,
                self.inner.config.ring_lines,
            );
            restore(&mut rec, &trail, state);
            self.inner.table().insert(name.to_string(), rec);
            report.restored.push(name.to_string());
        } else if interrupted && let Some(rec) = self.inner.table().get_mut(name) {
            restore(rec, &trail, state);
        }
        if restart {
            report.restarting.push(name.to_string());
        }
        if interrupted || restart {
            let action = match (restart, active) {
                (true, _) => "restarting",
                (false, true) => "interrupted",
                (false, false) => "kept",
            };
            report.processes.push(found(name, &trail, action));
        }
    }

    /// Starts what [`Supervisor::recover`] found should run again, once
    /// each, as an explicit start (a fresh restart count): the previous
    /// host's crash is not the process's crash loop.
    ///
    /// Failures are reported as events (and logged), not returned.
    pub async fn start_recovered(&self, recovery: &Recovery) {
        for name in &recovery.restarting {
            if let Err(e) = self.start(name).await {
                tracing::warn!(process = %name, error = %e, "could not restart after recovery");
            }
        }
    }
}

/// Copies what the journal knew of the last run into `rec`.
fn restore(rec: &mut Record, trail: &Trail, state: ProcessState) {
    rec.state = state;
    rec.pid = trail.pid;
    rec.pid_start_time = None; // that pid is not ours to signal any more
    rec.exit_code = trail.exit_code;
    rec.signal = trail.signal;
    rec.restarts = trail.restarts;
    rec.started_at = trail.started_at;
    if rec.origin == Origin::Runtime {
        rec.created_at = trail.created_at;
    }
    rec.completed_at = match state.is_terminal() {
        true => trail.completed_at.or(Some(Utc::now())),
        false => None,
    };
}

fn found(name: &str, trail: &Trail, action: &'static str) -> Found {
    Found {
        name: name.to_string(),
        origin: trail.origin,
        state: trail.state,
        last_event: trail.last_event.clone(),
        pid: trail.pid,
        action,
    }
}

/// `process.interrupted`: the run found under way ends here.
fn interrupted(name: &str, trail: &Trail, killed: &[i32]) -> NewEvent {
    let data: Value = json!({
        "pid": trail.pid,
        "last_event": trail.last_event,
        "stop_reason": trail.stop_reason,
        "killed": killed,
        "restarts": trail.restarts,
        "reason": "the host ended without ending this run",
    });
    events::transition(
        name,
        EventType::Interrupted,
        trail.state,
        ProcessState::Interrupted,
        data,
    )
}
