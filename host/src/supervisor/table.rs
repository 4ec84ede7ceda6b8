//! The process table: what the supervisor knows about each process, and the
//! shared state behind every [`Supervisor`](super::Supervisor) clone.
//!
//! Split from the verbs so the runner can update records through the same
//! small, locked helpers without seeing the public API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::reaper;
use super::resources;
use super::restart::RestartWindow;
use super::runner::Control;
use super::spawn::Spawner;
use super::spec::ProcessSpec;
use super::state::{ProcessInfo, ProcessState};
use super::store::{Ring, SharedRing};
use super::supervisor::SupervisorConfig;
use crate::bus::Bus;

/// State shared by every clone of a supervisor.
pub(super) struct Inner {
    pub(super) bus: Bus,
    pub(super) config: SupervisorConfig,
    table: Mutex<BTreeMap<String, Record>>,
    spawner: Mutex<Option<Arc<Spawner>>>,
    /// The orphan reaper and the resource sampler, once started.
    background: Mutex<Vec<JoinHandle<()>>>,
    pub(super) shutting_down: AtomicBool,
}

/// What the supervisor knows about one process.
pub(super) struct Record {
    pub(super) spec: Arc<ProcessSpec>,
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
    pub(super) window: RestartWindow,
    pub(super) run: Option<RunHandle>,
    pub(super) generation: u64,
}

/// The line to a live runner task.
pub(super) struct RunHandle {
    pub(super) control: mpsc::UnboundedSender<Control>,
    pub(super) done: watch::Receiver<bool>,
}

impl Record {
    pub(super) fn new(spec: ProcessSpec, ring_lines: usize) -> Record {
        Record {
            spec: Arc::new(spec),
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
            window: RestartWindow::default(),
            run: None,
            generation: 0,
        }
    }

    pub(super) fn info(&self, name: &str) -> ProcessInfo {
        ProcessInfo {
            name: name.to_string(),
            kind: self.spec.kind.clone(),
            state: self.state,
            reported_state: self.reported_state,
            pid: self.pid,
            exit_code: self.exit_code,
            signal: self.signal,
            restarts: self.restarts,
            progress: self.progress,
            message: self.message.clone(),
            started_at: self.started_at,
            last_output_at: self.ring.lock().last_output_at(),
            memory_bytes: self.memory_bytes,
            cpu_percent: self.cpu_percent,
            metadata: self.spec.metadata.clone(),
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

    /// Called by a runner as it ends.
    pub(super) fn run_finished(&self, name: &str, generation: u64) {
        self.with_run(name, generation, |rec, _| rec.run = None);
    }

    pub(super) fn spawner(&self) -> std::io::Result<Arc<Spawner>> {
        let mut slot = self.spawner.lock();
        if let Some(spawner) = slot.as_ref() {
            return Ok(spawner.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let spawner = Arc::new(Spawner::start(runtime)?);
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

impl Drop for Inner {
    fn drop(&mut self) {
        let tasks = self.background.get_mut();
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}
