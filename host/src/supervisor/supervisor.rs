//! The [`Supervisor`] handle: the process table and the public verbs.
//!
//! Each started process gets a runner task (see `runner.rs`) that owns the
//! child and its lifecycle; the verbs here only check state under the table
//! lock, send the runner a request, and wait outside the lock. Events are
//! always published after the lock is released, and never waited for.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt as _;
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::sync::{oneshot, watch};

use super::error::SupervisorError;
use super::events::{self, EventType};
use super::offload::{in_place, offload};
use super::reaper;
use super::runner::{self, Control, Launch};
use super::spec::ProcessSpec;
use super::state::{Origin, OutputLine, ProcessInfo, ProcessState, StatusUpdate};
use super::stop::Tree;
use super::store::OutputPage;
use super::store::SharedRing;
use super::table::{Inner, Record, RunHandle};
use crate::bus::{Bus, NewEvent};

/// Autostarts in flight at once (each waits for its fork and first
/// `/proc` read).
const AUTOSTART_IN_FLIGHT: usize = 128;

/// Where and how much output the supervisor keeps, and how often it
/// samples resources.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// Directory of the `<name>.log` files.
    pub log_dir: PathBuf,
    /// Output lines kept in memory per process (default 1000).
    pub ring_lines: usize,
    /// Size at which a log file is rotated to `.1` (default 10 MiB).
    pub log_max_bytes: u64,
    /// Rotated generations kept, `.1` (newest) to `.N` (default 3; 0
    /// keeps only the live file).
    pub log_generations: u32,
    /// Gzip rotated generations (`.N.gz`), on a thread of their own
    /// (default false).
    pub log_compress: bool,
    /// How often the memory, CPU and disk I/O of every running tree is
    /// sampled into `process.resource` events, and `memory_limit`s checked
    /// (default 10 s); `None` disables sampling and limits. Intervals under
    /// 200 ms make the CPU figure unreliable.
    pub resource_interval: Option<Duration>,
    /// Finished processes created at runtime that stay queryable (default
    /// 1,000); beyond that the oldest are removed (`process.removed` with
    /// reason `retention`), so the table never grows without bound.
    pub retain_finished: usize,
    /// Run each process in a PID namespace of its own, with an init of
    /// ours as its PID 1, so its whole tree dies with it and with the host,
    /// even after `kill -9` of the host (default true). Falls back to
    /// process groups and the child subreaper when false, or when the host
    /// may not make namespaces (see [`Supervisor::pid_namespaces`]).
    pub pid_namespaces: bool,
}

impl SupervisorConfig {
    /// How the log files rotate.
    pub(crate) fn log_policy(&self) -> super::logfile::LogPolicy {
        super::logfile::LogPolicy {
            max_bytes: self.log_max_bytes,
            generations: self.log_generations,
            compress: self.log_compress,
        }
    }

    /// Defaults with logs in `log_dir`.
    pub fn new(log_dir: impl Into<PathBuf>) -> SupervisorConfig {
        SupervisorConfig {
            log_dir: log_dir.into(),
            ring_lines: 1000,
            log_max_bytes: 10 * 1024 * 1024,
            log_generations: 3,
            log_compress: false,
            resource_interval: Some(Duration::from_secs(10)),
            retain_finished: 1000,
            pid_namespaces: true,
        }
    }
}

/// Supervises child processes and publishes their lifecycle to the bus.
///
/// Cheap to clone; all clones share one process table. Must be used inside
/// a tokio runtime with I/O, time and signal drivers enabled.
///
/// Events are handed to the bus in the order they happen, without waiting
/// for their commit ([`Bus::submit`]); a verb may return before its events
/// are in the journal, and [`Bus::flush`] waits for them.
///
/// # Examples
///
/// ```
/// use host::bus::{Bus, BusConfig};
/// use host::supervisor::{ProcessSpec, ProcessState, Supervisor, SupervisorConfig};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let bus = Bus::open_in_memory(BusConfig::default())?;
/// let supervisor = Supervisor::new(bus, SupervisorConfig::new(dir.path()));
/// supervisor.add(ProcessSpec::new("nap", "sleep 30"))?;
/// supervisor.start("nap").await?;
/// assert_eq!(supervisor.get("nap").unwrap().state, ProcessState::Running);
/// supervisor.stop("nap", false).await?;
/// assert_eq!(supervisor.get("nap").unwrap().state, ProcessState::Cancelled);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Supervisor {
    pub(super) inner: Arc<Inner>,
}

impl Supervisor {
    /// A supervisor publishing to `bus`, keeping logs as `config` says.
    pub fn new(bus: Bus, config: SupervisorConfig) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner::new(bus, config)),
        }
    }

    /// A supervisor whose restart accounting (window, uptimes, backoff
    /// waits, jitter) runs on `clock`: for tests on virtual time.
    #[cfg(test)]
    pub(crate) fn with_clock(
        bus: Bus,
        config: SupervisorConfig,
        clock: Arc<dyn super::restart::RestartClock>,
    ) -> Supervisor {
        let mut inner = Inner::new(bus, config);
        inner.clock = clock;
        Supervisor {
            inner: Arc::new(inner),
        }
    }

    /// Makes the host a child subreaper (`PR_SET_CHILD_SUBREAPER`).
    ///
    /// Orphans of supervised trees are then re-parented to the host rather
    /// than init, so no process escapes a stop, and the supervisor reaps them
    /// (within a second of a `SIGCHLD`, and after each stop). Call once, early
    /// in `main`.
    ///
    /// # Errors
    ///
    /// The OS error if `prctl` fails.
    pub fn become_subreaper() -> std::io::Result<()> {
        reaper::become_subreaper()
    }

    /// Whether processes run in PID namespaces of their own: asked for in
    /// [`SupervisorConfig::pid_namespaces`] and possible here (the host
    /// needs `CAP_SYS_ADMIN` in its user namespace). Otherwise trees are
    /// kept by process groups, the child subreaper and `/proc` walks, and a
    /// `kill -9` of the host can leave descendants of a process running.
    ///
    /// # Errors
    ///
    /// The OS error if the spawner thread cannot be started (it makes the
    /// check, once).
    pub fn pid_namespaces(&self) -> std::io::Result<bool> {
        Ok(self.inner.spawner()?.namespaced())
    }

    /// Adds a process from configuration in state `pending`; it does not
    /// start it. Publishes `process.created` with its spec.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidSpec`] if the spec fails
    /// [`ProcessSpec::validate`], [`SupervisorError::AlreadyExists`] for a
    /// duplicate name.
    pub fn add(&self, spec: ProcessSpec) -> Result<(), SupervisorError> {
        spec.validate()?;
        let event = {
            let mut table = self.inner.table();
            if table.contains_key(&spec.name) {
                return Err(SupervisorError::AlreadyExists { name: spec.name });
            }
            self.insert(&mut table, spec, Origin::Config)
        };
        events::publish(&self.inner.bus, vec![event]);
        Ok(())
    }

    /// Creates a process at runtime (seed 004's `start_background_process`)
    /// under a fresh id `<kind>_<6 hex digits>` and returns the id; it does
    /// not start it. `spec.name` is ignored. Publishes `process.created`.
    ///
    /// Once finished, the process stays queryable until removed or until
    /// [`SupervisorConfig::retain_finished`] newer finished ones push it out.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidSpec`] if the spec fails
    /// [`ProcessSpec::validate`], [`SupervisorError::ShuttingDown`].
    pub fn create(&self, mut spec: ProcessSpec) -> Result<String, SupervisorError> {
        // Validate with a placeholder of the final shape so a bad kind is
        // reported as the kind, not as the name built from it.
        spec.name = format!("{}_000000", spec.kind);
        spec.validate()?;
        let (id, event) = {
            let mut table = self.inner.table();
            if self.inner.shutting_down.load(Ordering::SeqCst) {
                return Err(SupervisorError::ShuttingDown {
                    name: spec.kind.clone(),
                    action: "create",
                });
            }
            // 16.7 million ids per kind: a collision is rare, and retried.
            let id = std::iter::repeat_with(|| {
                format!("{}_{:06x}", spec.kind, fastrand::u32(..1 << 24))
            })
            .find(|id| !table.contains_key(id))
            .unwrap_or_else(|| unreachable!("repeat_with never ends"));
            spec.name = id.clone();
            (id, self.insert(&mut table, spec, Origin::Runtime))
        };
        events::publish(&self.inner.bus, vec![event]);
        Ok(id)
    }

    /// Puts a checked spec in the table; returns its `process.created`.
    fn insert(
        &self,
        table: &mut std::collections::BTreeMap<String, Record>,
        spec: ProcessSpec,
        origin: Origin,
    ) -> NewEvent {
        let name = spec.name.clone();
        let event = events::new(
            &name,
            EventType::Created,
            json!({ "origin": origin, "spec": spec, "label": spec.label, "kind": spec.kind }),
        );
        let ring_lines = self.inner.config.ring_lines;
        table.insert(name, Record::new(spec, origin, ring_lines));
        event
    }

    /// Removes a process that is not running, returning its spec; publishes
    /// `process.removed` (reason `requested`).
    ///
    /// # Errors
    ///
    /// [`SupervisorError::UnknownProcess`], or [`SupervisorError::InvalidState`]
    /// while it is active (stop it first).
    pub fn remove(&self, name: &str) -> Result<ProcessSpec, SupervisorError> {
        let rec = {
            let mut table = self.inner.table();
            let rec = table.get(name).ok_or_else(|| unknown(name))?;
            if rec.run.is_some() || rec.state.is_active() {
                return Err(invalid(name, rec.state, "remove"));
            }
            table.remove(name).ok_or_else(|| unknown(name))?
        };
        events::publish(
            &self.inner.bus,
            vec![events::removed(name, rec.state, "requested")],
        );
        Ok(Arc::unwrap_or_clone(rec.spec))
    }

    /// Starts a pending or finished process; returns once it is spawned.
    ///
    /// An explicit start begins afresh: it resets the restart counter and
    /// window. On a spawn failure the process is `failed`, a
    /// `process.failed` event says why, and no automatic restart follows.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::UnknownProcess`], [`SupervisorError::InvalidState`]
    /// if it is already active, [`SupervisorError::ShuttingDown`],
    /// [`SupervisorError::Spawn`] or [`SupervisorError::Log`].
    pub async fn start(&self, name: &str) -> Result<(), SupervisorError> {
        self.launch(name, Launch::Fresh, false).await
    }

    /// As [`Supervisor::start`], but answers as soon as the process begins
    /// to wait for its dependencies, if it must: it stays `starting`, its
    /// `waiting_for` names them, and what happens next (the spawn, or a
    /// dependency that can never be ready failing it) is in its events and
    /// state. What the API and MCP start with: a call should not hang for
    /// as long as a database takes to get ready, or forever behind one
    /// that runs but never does.
    ///
    /// # Errors
    ///
    /// As [`Supervisor::start`], when they come before the wait.
    pub async fn start_promptly(&self, name: &str) -> Result<(), SupervisorError> {
        self.launch(name, Launch::Fresh, true).await
    }

    /// Starts a runner for `name`; see [`Supervisor::start`] and
    /// [`Supervisor::restart`]. With `promptly`, answers once the first
    /// spawn waits for dependencies too.
    async fn launch(
        &self,
        name: &str,
        launch: Launch,
        promptly: bool,
    ) -> Result<(), SupervisorError> {
        let (tx, control) = runner::control_queue();
        let (accepted, mut waits) = if promptly {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (done_tx, done) = watch::channel(false);
        let (reply, answer) = oneshot::channel();
        let generation = {
            let mut table = self.inner.table();
            let rec = table.get_mut(name).ok_or_else(|| unknown(name))?;
            if self.inner.shutting_down.load(Ordering::SeqCst) {
                return Err(SupervisorError::ShuttingDown {
                    name: name.into(),
                    action: "start",
                });
            }
            if rec.run.is_some() || !(rec.state == ProcessState::Pending || rec.state.is_terminal())
            {
                return Err(invalid(name, rec.state, "start"));
            }
            rec.generation += 1;
            rec.run = Some(RunHandle { control: tx, done });
            let event = match launch {
                Launch::Fresh => {
                    let from = rec.state;
                    rec.state = ProcessState::Starting;
                    rec.restarts = 0;
                    rec.window.clear();
                    rec.completed_at = None;
                    Some(events::transition(
                        name,
                        EventType::Starting,
                        from,
                        rec.state,
                        json!({ "restarts": 0 }),
                    ))
                }
                // The runner records the restart and announces the start
                // once its backoff is over.
                Launch::Restart => None,
            };
            // Under the lock, as `Inner::with_run_logged`.
            events::publish(&self.inner.bus, event.into_iter().collect());
            rec.generation
        };
        self.inner.ensure_background();
        tokio::spawn(runner::run(
            self.inner.clone(),
            name.to_string(),
            generation,
            launch,
            control,
            runner::Starter { reply, accepted },
            done_tx,
        ));
        let no_spawn = || {
            Err(SupervisorError::Spawn {
                name: name.into(),
                source: std::io::Error::other("the process runner ended before spawning"),
            })
        };
        if let Some(waits) = waits.as_mut() {
            tokio::select! {
                biased;
                answer = answer => return answer.unwrap_or_else(|_| no_spawn()),
                // Dropped unsent (spawned or ended without waiting): the
                // branch is disabled and the answer decides.
                Ok(()) = waits => return Ok(()),
            }
        }
        answer.await.unwrap_or_else(|_| no_spawn())
    }

    /// Stops a process and its whole tree; returns once every member is gone.
    ///
    /// Sends the spec's `stop_signal` to the group and to descendants that
    /// left it, waits up to `stop_timeout`, then `SIGKILL`s what is left;
    /// `force` skips the grace. The process ends `cancelled` and is not
    /// restarted. A process waiting to restart is simply cancelled.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::UnknownProcess`], or [`SupervisorError::InvalidState`]
    /// if it is not active.
    pub async fn stop(&self, name: &str, force: bool) -> Result<(), SupervisorError> {
        let mut done = {
            let table = self.inner.table();
            let rec = table.get(name).ok_or_else(|| unknown(name))?;
            match (&rec.run, rec.state.is_active()) {
                (Some(run), true) => {
                    // The runner holds the receiver until it ends, after which
                    // `done` is already true; a failed send changes nothing.
                    let _ = run.control.send(Control::Stop { force });
                    run.done.clone()
                }
                _ => return Err(invalid(name, rec.state, "stop")),
            }
        };
        // An error means the runner is gone, which is what we wait for.
        let _ = done.wait_for(|finished| *finished).await;
        offload(reaper::reap_orphans).await;
        Ok(())
    }

    /// Restarts a process through its restart accounting, as the
    /// supervisor's own restarts go: an active process is stopped
    /// gracefully (its run ends `cancelled`, reason `restart`), then the
    /// restart is recorded in the window (`max_restarts` within
    /// `restart_window`), the backoff is waited out and it starts again;
    /// a full window ends in `process.gave_up` instead. The counter and
    /// window are not reset, so restarts asked in a loop (by a plugin or a
    /// person) are slowed down and finally refused like a crash loop; a
    /// restart the limit would refuse is refused before anything is
    /// stopped, and the process carries on as it was. A pending process is
    /// simply started. Returns once the new run has spawned.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::UnknownProcess`], [`SupervisorError::NotRestarted`]
    /// when the restart limit is reached (or a stop or shutdown came first),
    /// and the errors of [`Supervisor::start`].
    pub async fn restart(&self, name: &str) -> Result<(), SupervisorError> {
        self.restart_unless(name, false).await
    }

    /// Starts a process on a plugin's decision: a pending one afresh, a
    /// finished one through the restart accounting as [`Supervisor::restart`]
    /// does (counter, window, backoff, `process.gave_up`). Unlike a
    /// person's `start`, it never resets the counter, so a plugin cannot
    /// sidestep the restart limit by starting instead of restarting.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidState`] when it is running, and the errors
    /// of [`Supervisor::restart`].
    pub async fn start_counted(&self, name: &str) -> Result<(), SupervisorError> {
        self.restart_unless(name, true).await
    }

    /// [`Supervisor::restart`]; with `running_refused`, a running process
    /// is an error instead of being restarted (checked under the same lock
    /// as the restart, so a start racing a start cannot kill the new run).
    async fn restart_unless(
        &self,
        name: &str,
        running_refused: bool,
    ) -> Result<(), SupervisorError> {
        let answer = {
            let mut table = self.inner.table();
            let rec = table.get_mut(name).ok_or_else(|| unknown(name))?;
            if running_refused && rec.run.is_some() {
                return Err(invalid(name, rec.state, "start"));
            }
            // Refused before anything is stopped: a restart the limit would
            // not allow leaves the process as it is.
            let spec = rec.spec.clone();
            if rec.state != ProcessState::Pending
                && !rec.window.would_allow(
                    self.inner.clock.now(),
                    spec.restart_window,
                    spec.max_restarts,
                )
            {
                // A finished process stays finished: the supervisor gives
                // up on it, as it does at the end of a crash loop. (A
                // running one carries on running; nothing is given up.)
                // Its runner may still be winding down just after the
                // exit: it is finished all the same, unless the runner is
                // about to try a restart of its own, which reports its own
                // `gave_up`.
                let finished = rec.run.is_none()
                    || (rec.state.is_terminal()
                        && !super::restart::should_restart(spec.restart, rec.state));
                let gave_up = finished.then(|| {
                    events::gave_up(
                        name,
                        rec.restarts,
                        spec.max_restarts,
                        spec.restart_window,
                        rec.state,
                    )
                });
                let refused = SupervisorError::NotRestarted {
                    name: name.into(),
                    state: rec.state,
                    reason: format!(
                        "it reached its restart limit ({} restarts within {}); `start` begins afresh",
                        spec.max_restarts,
                        super::duration::format(spec.restart_window)
                    ),
                };
                events::publish(&self.inner.bus, gave_up.into_iter().collect());
                return Err(refused);
            }
            match &rec.run {
                Some(run) => {
                    let (reply, answer) = oneshot::channel();
                    if run.control.send(Control::Restart { reply }).is_err() {
                        return Err(invalid(name, rec.state, "restart"));
                    }
                    Some(answer)
                }
                None => None,
            }
        };
        match answer {
            Some(answer) => answer.await.unwrap_or_else(|_| {
                Err(SupervisorError::NotRestarted {
                    name: name.into(),
                    state: self.get(name).map_or(ProcessState::Cancelled, |p| p.state),
                    reason: "its runner ended".into(),
                })
            }),
            None if self
                .get(name)
                .is_some_and(|p| p.state == ProcessState::Pending) =>
            {
                self.start(name).await
            }
            None => self.launch(name, Launch::Restart, false).await,
        }
    }

    /// Pauses a running process: `SIGSTOP` to its group and descendants.
    ///
    /// A member caught inside `vfork` (shells run commands that way) shows
    /// as blocked (`D`) rather than stopped (`T`) until the resume: its
    /// child was stopped before its exec, so the tree is frozen all the same.
    ///
    /// Walks `/proc` before it returns; called on a worker of a
    /// multi-threaded tokio runtime, it first hands that worker's other
    /// tasks to another (`block_in_place`), so they do not wait for it.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidState`] unless it is `running`;
    /// [`SupervisorError::Signal`] if the signal cannot be sent.
    pub fn pause(&self, name: &str) -> Result<(), SupervisorError> {
        self.signal_state(
            name,
            "pause",
            ProcessState::Running,
            ProcessState::Paused,
            Signal::SIGSTOP,
            EventType::Paused,
        )
    }

    /// Resumes a paused process: `SIGCONT` to its group and descendants.
    ///
    /// Walks `/proc` as [`Supervisor::pause`] does.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidState`] unless it is `paused`;
    /// [`SupervisorError::Signal`] if the signal cannot be sent.
    pub fn resume(&self, name: &str) -> Result<(), SupervisorError> {
        self.signal_state(
            name,
            "resume",
            ProcessState::Paused,
            ProcessState::Running,
            Signal::SIGCONT,
            EventType::Resumed,
        )
    }

    fn signal_state(
        &self,
        name: &str,
        action: &'static str,
        from: ProcessState,
        to: ProcessState,
        signal: Signal,
        ty: EventType,
    ) -> Result<(), SupervisorError> {
        let (pid, start) = {
            let table = self.inner.table();
            let rec = table.get(name).ok_or_else(|| unknown(name))?;
            match (rec.state == from, rec.pid, rec.pid_start_time) {
                (true, Some(pid), Some(start)) => (pid, start),
                _ => return Err(invalid(name, rec.state, action)),
            }
        };
        // Signalled outside the lock: the /proc walk is not instant, so it
        // also runs with this worker's other tasks handed to another worker.
        // The runner may have reaped the leader meanwhile; the tree then
        // finds nothing it can prove is ours and signals nothing.
        in_place(|| {
            let tree = Tree::collect(pid as i32, start);
            reaper::note_escapees(&tree.escapees());
            tree.signal(signal)
        })
        .map_err(|e| SupervisorError::Signal {
            name: name.into(),
            signal: signal.as_str().into(),
            source: e.into(),
        })?;
        let mut table = self.inner.table();
        match table.get_mut(name) {
            // Only if nothing else (an exit, a stop) moved it meanwhile.
            Some(rec) if rec.state == from && rec.pid == Some(pid) => {
                rec.state = to;
                // Under the lock, as `Inner::with_run_logged`.
                events::publish(
                    &self.inner.bus,
                    vec![events::transition(
                        name,
                        ty,
                        from,
                        to,
                        json!({ "pid": pid }),
                    )],
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// Records a status report and publishes `process.status`.
    ///
    /// `update.state` is kept as `reported_state`; the lifecycle state stays
    /// the supervisor's. Fields left `None` keep their previous value.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::UnknownProcess`], or [`SupervisorError::InvalidStatus`]
    /// for a progress that is not a finite number.
    ///
    /// `cause` is the event (sequence, depth) whose handling decided the
    /// update, if any: `process.status` is recorded one level deeper, so a
    /// loop through statuses is cut like any other chain of decisions.
    pub fn set_status(
        &self,
        name: &str,
        update: StatusUpdate,
        cause: Option<(u64, u32)>,
    ) -> Result<(), SupervisorError> {
        if update.progress.is_some_and(|p| !p.is_finite()) {
            return Err(SupervisorError::InvalidStatus {
                name: name.into(),
                reason: "progress must be a finite number".into(),
            });
        }
        let event: NewEvent = {
            let mut table = self.inner.table();
            let rec = table.get_mut(name).ok_or_else(|| unknown(name))?;
            if update.state.is_some() {
                rec.reported_state = update.state;
            }
            if update.progress.is_some() {
                rec.progress = update.progress;
            }
            if update.message.is_some() {
                rec.message = update.message.clone();
            }
            events::new(
                name,
                EventType::Status,
                json!({
                    "state": update.state,
                    // f32 → JSON would print 0.10000000149011612.
                    "progress": update.progress.map(|p| (f64::from(p) * 1e6).round() / 1e6),
                    "message": update.message,
                    "lifecycle": rec.state,
                }),
            )
        };
        let event = match cause {
            Some((sequence, depth)) => event.with_cause(sequence, depth.saturating_add(1)),
            None => event,
        };
        events::publish(&self.inner.bus, vec![event]);
        Ok(())
    }

    /// Output lines, over all processes since the supervisor was created,
    /// that could not be published on the bus (they are in the rings and
    /// log files; `process.output_dropped` events said so).
    pub fn output_lines_dropped(&self) -> u64 {
        self.inner.output_dropped.load(Ordering::Relaxed)
    }

    /// Snapshots of every process, by name.
    pub fn list(&self) -> Vec<ProcessInfo> {
        self.inner
            .table()
            .iter()
            .map(|(name, rec)| rec.info(name))
            .collect()
    }

    /// A snapshot of one process.
    pub fn get(&self, name: &str) -> Option<ProcessInfo> {
        self.inner.table().get(name).map(|rec| rec.info(name))
    }

    /// The last `last` output lines of a process (both streams, oldest first).
    ///
    /// # Errors
    ///
    /// [`SupervisorError::UnknownProcess`].
    pub fn output(&self, name: &str, last: usize) -> Result<Vec<OutputLine>, SupervisorError> {
        let ring = self.ring(name)?;
        Ok(ring.lock().last(last))
    }

    /// The output ring of `name`, held apart from the table's lock.
    fn ring(&self, name: &str) -> Result<SharedRing, SupervisorError> {
        self.inner
            .table()
            .get(name)
            .map(|r| r.ring.clone())
            .ok_or_else(|| unknown(name))
    }

    /// Up to `max` output lines with an offset of at least `offset` (both
    /// streams, oldest first); see [`OutputPage`] for resuming.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::UnknownProcess`].
    pub fn output_after(
        &self,
        name: &str,
        offset: u64,
        max: usize,
    ) -> Result<OutputPage, SupervisorError> {
        let ring = self.ring(name)?;
        Ok(ring.lock().after(offset, max))
    }

    /// The process's log files that exist, oldest first: the rotated
    /// generations (`.N` … `.1`, or `.N.gz` when compressed; read them with
    /// [`read_log`](super::read_log)) and then the current `<name>.log`.
    /// Every output line of every run is in them, up to rotation.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::UnknownProcess`].
    pub fn log_files(&self, name: &str) -> Result<Vec<PathBuf>, SupervisorError> {
        if !self.inner.table().contains_key(name) {
            return Err(unknown(name));
        }
        Ok(super::store::log_generations(
            &self.inner.config.log_dir.join(format!("{name}.log")),
        ))
    }

    /// Starts every pending process whose spec says `autostart`.
    ///
    /// Failures are reported as events (and logged), not returned.
    pub async fn start_autostart(&self) {
        let names: Vec<String> = self
            .inner
            .table()
            .iter()
            .filter(|(_, r)| r.spec.autostart && r.state == ProcessState::Pending)
            .map(|(name, _)| name.clone())
            .collect();
        // Dependencies first. A process that waits for dependencies is
        // left to wait in the background: its start ends when they are
        // ready, which must not hold up the host's own start.
        let order = super::deps::start_order(&names, |name| {
            self.inner
                .table()
                .get(name)
                .map(|r| r.spec.depends_on.0.keys().cloned().collect())
                .unwrap_or_default()
        });
        let (waiting, free): (Vec<String>, Vec<String>) = order.into_iter().partition(|name| {
            self.inner
                .table()
                .get(name)
                .is_some_and(|r| !r.spec.depends_on.is_empty())
        });
        // The processes that wait for nothing start side by side: one
        // start is a round trip through the spawner thread and back, and
        // taking them one after the other made 1,000 starts take seconds
        // of waiting. The spawner still forks one at a time; this keeps it
        // busy. They are started before any dependant begins to wait.
        futures::stream::iter(free)
            .for_each_concurrent(AUTOSTART_IN_FLIGHT, |name| async move {
                if let Err(e) = self.start(&name).await {
                    tracing::warn!(process = %name, error = %e, "autostart failed");
                }
            })
            .await;
        for name in waiting {
            tokio::spawn(super::deps::start_in_background(self.inner.clone(), name));
        }
    }

    /// Stops everything in parallel and waits for every tree: gracefully,
    /// dependants before their dependencies (`depends_on`), or with
    /// `force` by SIGKILL at once, all together. A forced call while a graceful
    /// one still waits turns the remaining stops into kills.
    ///
    /// From the first call on, starts and restarts are refused; afterwards
    /// the background reaper and resource sampler have stopped.
    pub async fn shutdown(&self, force: bool) {
        let waits: Vec<_> = {
            let table = self.inner.table();
            // Set under the table lock: a runner deciding whether to restart
            // either sees the flag or is already in a state stopped below.
            self.inner.shutting_down.store(true, Ordering::SeqCst);
            // Dependants first: a graceful stop of a dependency waits
            // until the runners that depend on it are over.
            let dependants = match force {
                true => Default::default(),
                false => super::deps::running_dependants(&table),
            };
            table
                .iter()
                .filter_map(|(name, rec)| {
                    let run = rec.run.as_ref()?;
                    let after = dependants.get(name.as_str()).cloned().unwrap_or_default();
                    if rec.state.is_active() && after.is_empty() {
                        let _ = run.control.send(Control::Stop { force });
                    } else if rec.state.is_active() {
                        tokio::spawn(super::deps::stop_after(run.control.clone(), after));
                    }
                    Some((name.clone(), run.done.clone()))
                })
                .collect()
        };
        let tasks: Vec<_> = waits
            .into_iter()
            .map(|(_, mut done)| {
                tokio::spawn(async move {
                    let _ = done.wait_for(|d| *d).await;
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        offload(reaper::reap_orphans).await;
        self.inner.stop_background();
    }
}

fn unknown(name: &str) -> SupervisorError {
    SupervisorError::UnknownProcess { name: name.into() }
}

fn invalid(name: &str, state: ProcessState, action: &'static str) -> SupervisorError {
    SupervisorError::InvalidState {
        name: name.into(),
        state,
        action,
    }
}
