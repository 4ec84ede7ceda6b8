//! The process table: what the supervisor knows about each process, and the
//! shared state behind every [`Supervisor`](super::Supervisor) clone.
//!
//! Split from the verbs so the runner can update records through the same
//! small, locked helpers without seeing the public API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::events;
use super::reaper;
use super::resources;
use super::restart::{RestartClock, RestartWindow, SystemClock};
use super::runner::ControlSender;
use super::spawn::Spawner;
use super::spec::ProcessSpec;
use super::state::{Origin, ProcessInfo, ProcessState};
use super::store::{Ring, SharedRing};
use super::supervisor::SupervisorConfig;
use crate::bus::{Bus, NewEvent};

/// State shared by every clone of a supervisor.
pub(super) struct Inner {
    pub(super) bus: Bus,
    pub(super) config: SupervisorConfig,
    table: Mutex<BTreeMap<String, Record>>,
    spawner: Mutex<Option<Arc<Spawner>>>,
    /// The orphan reaper and the resource sampler, once started.
    background: Mutex<Vec<JoinHandle<()>>>,
    pub(super) shutting_down: AtomicBool,
    /// Output lines that never reached the bus, over every process (they
    /// are in the rings and log files): for metrics.
    pub(super) output_dropped: Arc<std::sync::atomic::AtomicU64>,
    /// The time of the restart accounting (window, uptimes, backoff waits,
    /// jitter): real time, or a virtual clock in tests.
    pub(super) clock: Arc<dyn RestartClock>,
}

/// What the supervisor knows about one process.
pub(super) struct Record {
    pub(super) spec: Arc<ProcessSpec>,
    pub(super) origin: Origin,
    pub(super) created_at: DateTime<Utc>,
    /// Set when a run ends for good (no restart follows); cleared by a start.
    pub(super) completed_at: Option<DateTime<Utc>>,
    pub(super) state: ProcessState,
    pub(super) reported_state: Option<ProcessState>,
    pub(super) pid: Option<u32>,
    /// `pid`'s start time in `/proc`, so a reused pid is never taken for it.
    pub(super) pid_start_time: Option<u64>,
    pub(super) exit_code: Option<i32>,
    pub(super) signal: Option<i32>,
    pub(super) restarts: u32,
    pub(super) progress: Option<f32>,
    pub(super) message: Option<String>,
    pub(super) started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub(super) memory_bytes: Option<u64>,
    pub(super) cpu_percent: Option<f32>,
    pub(super) ring: SharedRing,
    /// Offset of the current (or last) run's first output line.
    pub(super) run_output_offset: u64,
    pub(super) window: RestartWindow,
    pub(super) run: Option<RunHandle>,
    pub(super) generation: u64,
    /// The current run's readiness (see `probes`): `None` without a
    /// readiness probe, `Some(false)` until it passes and after the run.
    pub(super) ready: Option<bool>,
    /// The dependencies whose condition the runner is waiting for before
    /// its spawn; empty otherwise.
    pub(super) waiting_for: Vec<String>,
}

/// The line to a live runner task.
pub(super) struct RunHandle {
    pub(super) control: ControlSender,
    pub(super) done: watch::Receiver<bool>,
}

impl Record {
    pub(super) fn new(spec: ProcessSpec, origin: Origin, ring_lines: usize) -> Record {
        Record {
            spec: Arc::new(spec),
            origin,
            created_at: Utc::now(),
            completed_at: None,
            state: ProcessState::Pending,
            reported_state: None,
            pid: None,
            pid_start_time: None,
            exit_code: None,
            signal: None,
            restarts: 0,
            progress: None,
            message: None,
            started_at: None,
            memory_bytes: None,
            cpu_percent: None,
            ring: Ring::shared(ring_lines),
            run_output_offset: 0,
            window: RestartWindow::default(),
            run: None,
            generation: 0,
            ready: None,
            waiting_for: Vec::new(),
        }
    }

    pub(super) fn info(&self, name: &str) -> ProcessInfo {
        let duration_ms = self.started_at.map(|start| {
            let end = self.completed_at.unwrap_or_else(Utc::now);
            u64::try_from((end - start).num_milliseconds()).unwrap_or(0)
        });
        ProcessInfo {
            name: name.to_string(),
            label: self.spec.label.clone(),
            kind: self.spec.kind.clone(),
            origin: self.origin,
            command: self.spec.command.clone(),
            state: self.state,
            reported_state: self.reported_state,
            pid: self.pid,
            exit_code: self.exit_code,
            signal: self.signal,
            restarts: self.restarts,
            progress: self.progress,
            message: self.message.clone(),
            created_at: self.created_at,
            started_at: self.started_at,
            completed_at: self.completed_at,
            duration_ms,
            timeout_ms: self.spec.timeout.map(|t| t.as_millis() as u64),
            last_output_at: self.ring.lock().last_output_at(),
            run_output_offset: self.run_output_offset,
            memory_bytes: self.memory_bytes,
            cpu_percent: self.cpu_percent,
            metadata: self.spec.metadata.clone(),
            ready: self.ready,
            waiting_for: self.waiting_for.clone(),
        }
    }
}

impl Inner {
    pub(super) fn new(bus: Bus, config: SupervisorConfig) -> Inner {
        Inner {
            bus,
            config,
            table: Mutex::new(BTreeMap::new()),
            spawner: Mutex::new(None),
            background: Mutex::new(Vec::new()),
            shutting_down: AtomicBool::new(false),
            output_dropped: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Stops the background reaper and resource sampler.
    pub(super) fn stop_background(&self) {
        let tasks = std::mem::take(&mut *self.background.lock());
        for task in tasks {
            task.abort();
        }
    }

    pub(super) fn table(&self) -> MutexGuard<'_, BTreeMap<String, Record>> {
        self.table.lock()
    }

    /// Runs `f` on the record of runner `generation`, if it is still current.
    pub(super) fn with_run<R>(
        &self,
        name: &str,
        generation: u64,
        f: impl FnOnce(&mut Record, bool) -> R,
    ) -> Option<R> {
        let mut table = self.table();
        let shutting_down = self.shutting_down.load(Ordering::SeqCst);
        let rec = table.get_mut(name).filter(|r| r.generation == generation)?;
        Some(f(rec, shutting_down))
    }

    /// [`Inner::with_run`], handing the events `f` returns to the bus before
    /// the table's lock is released.
    ///
    /// Why under the lock: the log's order is then the table's. Handed
    /// over after it, a runner preempted between the two let another
    /// runner act on its change first (a dependant started on a `ready`
    /// flag whose `process.ready` came after the dependant's
    /// `process.started`), and a reader who saw the new state could miss
    /// its event after a flush. The hand-off is a queue push; the bus's
    /// writer never takes this lock, so waiting for room in its queue
    /// cannot deadlock.
    pub(super) fn with_run_logged(
        &self,
        name: &str,
        generation: u64,
        f: impl FnOnce(&mut Record, bool) -> Vec<NewEvent>,
    ) {
        self.with_run(name, generation, |rec, shutting_down| {
            events::publish(&self.bus, f(rec, shutting_down));
        });
    }

    /// Called by a runner as it ends: the run is over for good. Records when,
    /// and applies the retention limit to finished runtime processes.
    pub(super) fn run_finished(&self, name: &str, generation: u64) {
        let mut table = self.table();
        let Some(rec) = table.get_mut(name).filter(|r| r.generation == generation) else {
            return;
        };
        rec.run = None;
        if rec.state.is_terminal() {
            rec.completed_at = Some(Utc::now());
        }
        if rec.origin == Origin::Runtime {
            let removed = prune_finished(&mut table, self.config.retain_finished);
            // Under the lock, as `with_run_logged`.
            let events = removed
                .iter()
                .map(|(name, state)| events::removed(name, *state, "retention"))
                .collect();
            events::publish(&self.bus, events);
        }
    }

    pub(super) fn spawner(&self) -> std::io::Result<Arc<Spawner>> {
        let mut slot = self.spawner.lock();
        if let Some(spawner) = slot.as_ref() {
            return Ok(spawner.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let spawner = Arc::new(Spawner::start(runtime, self.config.pid_namespaces)?);
        *slot = Some(spawner.clone());
        Ok(spawner)
    }

    /// Starts the periodic orphan reaper (idle unless subreaper) and, unless
    /// disabled, the resource sampler.
    pub(super) fn ensure_background(self: &Arc<Self>) {
        let mut tasks = self.background.lock();
        if !tasks.is_empty() {
            return;
        }
        tasks.push(tokio::spawn(reaper::reap_periodically()));
        if let Some(every) = self.config.resource_interval {
            // Weak: the task must not keep the supervisor alive, or `Drop`
            // below would never run to stop it.
            tasks.push(tokio::spawn(resources::sample_periodically(
                Arc::downgrade(self),
                every,
            )));
        }
    }
}

/// Removes the oldest finished runtime processes beyond `keep`; returns
/// their names and last states.
pub(super) fn prune_finished(
    table: &mut BTreeMap<String, Record>,
    keep: usize,
) -> Vec<(String, ProcessState)> {
    let mut finished: Vec<(DateTime<Utc>, String)> = table
        .iter()
        .filter(|(_, r)| r.origin == Origin::Runtime && r.run.is_none() && r.state.is_terminal())
        .map(|(name, r)| (r.completed_at.unwrap_or(r.created_at), name.clone()))
        .collect();
    if finished.len() <= keep {
        return Vec::new();
    }
    finished.sort();
    let excess = finished.len() - keep;
    finished
        .into_iter()
        .take(excess)
        .filter_map(|(_, name)| {
            let rec = table.remove(&name)?;
            Some((name, rec.state))
        })
        .collect()
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tasks = self.background.get_mut();
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}
