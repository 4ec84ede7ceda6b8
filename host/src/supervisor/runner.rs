//! One task per started process: spawn, watch, stop, decide, back off, again.
//!
//! The runner is the only owner of the child handle, so every exit, timeout
//! and stop request is handled in one place and in order. It touches the
//! process table only through short locked updates and publishes after each.
//!
//! The leader is reaped only once its whole tree is dead. Until then its pid,
//! which is also the group id, cannot be handed out again, so every signal
//! to the group reaches this tree and nothing else (see `stop`), and members
//! it left behind after exiting are still found by their group.
//!
//! The runner is async, but every `/proc` walk, signal round and reap it
//! makes runs on the blocking pool (`offload`), awaited before the next
//! step, so the order of the steps is the one described here; its events
//! go to the bus without waiting for their commit (`events::publish`).

use std::os::unix::process::ExitStatusExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;
use tokio::sync::{oneshot, watch};

use super::child::ChildProcess;
use super::deps::{self, Waited};
use super::error::SupervisorError;
use super::events::{self, EventType};
use super::logfile::LogFile;
use super::offload::offload;
use super::output::OutputTasks;
use super::pidns::Init;
use super::probes;
use super::reaper;
use super::restart::{backoff_delay, should_restart};
use super::spec::{ProcessSpec, StopSignal};
use super::state::ProcessState;
use super::stop::{self, Tree};
use super::store::Ring;
use super::table::{Inner, Record};
use super::workspace::{self, Watch};
use crate::bus::NewEvent;

/// Requests from the [`Supervisor`](super::Supervisor) to a runner.
#[derive(Debug)]
pub(super) enum Control {
    /// Stop the tree; `force` skips the grace period.
    Stop { force: bool },
    /// Stop the tree (gracefully) and start it again through the restart
    /// accounting: the window and counter are kept, backoff applies, and a
    /// full window ends in `process.gave_up`. `reply` learns when the next
    /// run has spawned, or why none will.
    Restart {
        reply: oneshot::Sender<Result<(), SupervisorError>>,
    },
    /// The resource sampler saw a run over its `memory_limit`: stop it as a
    /// failure. Ignored if that run is already over.
    MemoryLimit(Box<OverMemory>),
    /// The liveness (or startup) probe of a run failed past its threshold:
    /// stop it as a failure. Ignored if that run is already over.
    Unhealthy(Box<Unhealthy>),
}

// A queued request is a node of the queue: the rare, large variants are
// boxed so that it stays small.
const _: () = assert!(std::mem::size_of::<Control>() <= 16);

/// A new runner's control queue.
///
/// futures' unbounded queue allocates per message; tokio's channel made a
/// block of 32 messages and a cache-padded channel up front, ~1 KiB for
/// each of a thousand processes, most of which never get a message.
pub(super) fn control_queue() -> (ControlSender, ControlReceiver) {
    let (tx, rx) = futures::channel::mpsc::unbounded();
    (ControlSender(tx), ControlReceiver(rx))
}

/// The sending end of a runner's control queue.
#[derive(Clone, Debug)]
pub(super) struct ControlSender(futures::channel::mpsc::UnboundedSender<Control>);

impl ControlSender {
    /// Queues `request`; gives it back if the runner has ended.
    pub(super) fn send(&self, request: Control) -> Result<(), Control> {
        self.0.unbounded_send(request).map_err(|e| e.into_inner())
    }
}

/// A runner's end of its control queue.
#[derive(Debug)]
pub(super) struct ControlReceiver(futures::channel::mpsc::UnboundedReceiver<Control>);

impl ControlReceiver {
    /// The next request; `None` once every sender is gone and nothing is
    /// queued. Cancel-safe: a request is taken only when returned.
    pub(super) async fn recv(&mut self) -> Option<Control> {
        futures::StreamExt::next(&mut self.0).await
    }

    /// The next request, if one is queued.
    pub(super) fn try_recv(&mut self) -> Option<Control> {
        self.0.try_recv().ok()
    }
}

/// What [`Control::MemoryLimit`] says.
#[derive(Debug)]
pub(super) struct OverMemory {
    /// The run: its leader's pid.
    pub(super) pid: u32,
    /// The tree's RSS at the sample.
    pub(super) memory_bytes: u64,
    /// The configured `memory_limit`.
    pub(super) limit_bytes: u64,
}

/// What [`Control::Unhealthy`] says.
#[derive(Debug)]
pub(super) struct Unhealthy {
    /// The run: its leader's pid.
    pub(super) pid: u32,
    /// Which probe: `liveness` or `startup`.
    pub(super) probe: &'static str,
    /// Why, for the log and the run's end.
    pub(super) reason: String,
}

/// How a runner begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Launch {
    /// An explicit start: spawn at once (the counter and window were reset).
    Fresh,
    /// A restart of a finished process: through the accounting first.
    Restart,
}

/// How long output readers may outlive the tree before they are detached.
const OUTPUT_DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long to wait for `SIGKILL`ed members (stuck in the kernel) to vanish.
const KILL_WAIT_LIMIT: Duration = Duration::from_secs(30);

struct Runner {
    inner: Arc<Inner>,
    name: String,
    generation: u64,
    control: ControlReceiver,
    /// A stop was asked for: never restart after this run.
    stop_requested: bool,
    /// A restart was asked for: restart after this run whatever the policy.
    restart_requested: bool,
    /// Whoever waits for the next run to spawn (the starter, restart callers).
    waiting: Vec<oneshot::Sender<Result<(), SupervisorError>>>,
    /// A starter that wants its answer as soon as the first spawn begins
    /// to wait for dependencies ([`Supervisor::start_promptly`]).
    ///
    /// [`Supervisor::start_promptly`]: crate::supervisor::Supervisor::start_promptly
    accepted: Option<oneshot::Sender<()>>,
    /// Why the runner ended without another run, for those still waiting.
    end_reason: &'static str,
    /// How long the last run was up, on the restart clock (`None` after a
    /// failed spawn): with `stable_after`, whether it resets the backoff.
    uptime: Option<Duration>,
    /// When the current run was announced `running`, on the restart clock:
    /// read before the announcement, so nobody who saw it can move the
    /// clock before the uptime begins.
    up_since: Option<Instant>,
}

/// A spawned child with its output tasks.
struct Spawned {
    child: ChildProcess,
    pid: u32,
    /// The leader's start time in `/proc`: with `pid`, names it and no later
    /// process that reuses the number.
    start_time: u64,
    output: OutputTasks,
    /// The run's workspace watch, if its spec asks for one.
    workspace: Option<Watch>,
    /// The init of the run's PID namespace, unless namespaces are off.
    init: Option<Init>,
}

/// Why the wait for a run ended.
enum Ending {
    Exited,
    TimedOut,
    Stopped {
        force: bool,
    },
    Restart,
    OverMemory,
    /// A liveness or startup probe failed; the reason.
    Unhealthy(String),
}

/// The `reason` of `process.failed` after a memory limit stop.
const MEMORY_LIMIT_REASON: &str = "memory limit exceeded";

/// Who started a runner, and how they want their answer.
pub(super) struct Starter {
    /// Told when the first run spawns, or why none will.
    pub(super) reply: oneshot::Sender<Result<(), SupervisorError>>,
    /// Told as soon as the first spawn waits for dependencies, for a
    /// start that answers then ([`Supervisor::start_promptly`]).
    ///
    /// [`Supervisor::start_promptly`]: crate::supervisor::Supervisor::start_promptly
    pub(super) accepted: Option<oneshot::Sender<()>>,
}

/// Runs process `name` until it ends for good; see the module doc.
pub(super) async fn run(
    inner: Arc<Inner>,
    name: String,
    generation: u64,
    launch: Launch,
    control: ControlReceiver,
    starter: Starter,
    done: watch::Sender<bool>,
) {
    let mut runner = Runner {
        inner,
        name,
        generation,
        control,
        stop_requested: false,
        restart_requested: false,
        waiting: vec![starter.reply],
        accepted: starter.accepted,
        end_reason: "it was stopped",
        uptime: None,
        up_since: None,
    };
    runner.life(launch).await;
    runner.inner.run_finished(&runner.name, runner.generation);
    // Anyone still waiting for a spawn learns that none is coming.
    let state = runner
        .inner
        .table()
        .get(&runner.name)
        .map_or(ProcessState::Cancelled, |r| r.state);
    for waiter in runner.waiting.drain(..) {
        let _ = waiter.send(Err(SupervisorError::NotRestarted {
            name: runner.name.clone(),
            state,
            reason: runner.end_reason.to_string(),
        }));
    }
    let _ = done.send(true);
}

impl Runner {
    async fn life(&mut self, launch: Launch) {
        // The first spawn of an explicit start that fails ends the runner
        // with the error; later spawn failures count as failed runs.
        let mut fresh = launch == Launch::Fresh;
        let mut relaunch = launch == Launch::Restart;
        loop {
            let Some(spec) = self
                .inner
                .with_run(&self.name, self.generation, |r, _| r.spec.clone())
            else {
                return;
            };
            if relaunch && !self.back_off(&spec).await {
                return;
            }
            relaunch = true;
            self.uptime = None;
            if !self.wait_for_dependencies(&spec).await {
                return;
            }
            let outcome = match self.spawn(&spec).await {
                Err(err) => {
                    self.spawn_failed(&err);
                    if std::mem::take(&mut fresh) {
                        // The starter gets the error itself; anyone else
                        // learns at the end that no run is coming.
                        if !self.waiting.is_empty() {
                            let _ = self.waiting.remove(0).send(Err(err));
                        }
                        return;
                    }
                    ProcessState::Failed
                }
                Ok(spawned) => {
                    fresh = false;
                    self.up_since = Some(self.inner.clock.now());
                    self.running(spawned.pid, spawned.start_time);
                    for waiter in self.waiting.drain(..) {
                        let _ = waiter.send(Ok(()));
                    }
                    self.supervise(spawned, &spec).await
                }
            };
            while let Some(request) = self.control.try_recv() {
                match request {
                    Control::Stop { .. } => self.stop_requested = true,
                    Control::Restart { reply } => {
                        self.restart_requested = true;
                        self.waiting.push(reply);
                    }
                    // A late limit or probe notice is about the run that just ended.
                    Control::MemoryLimit(_) | Control::Unhealthy(_) => {}
                }
            }
            let asked = std::mem::take(&mut self.restart_requested);
            if self.stop_requested || !(asked || should_restart(spec.restart, outcome)) {
                return;
            }
        }
    }

    /// Records a restart in the window, waits out the backoff and announces
    /// the start; false when the runner must end instead (gave up, stopped
    /// meanwhile, or the supervisor is shutting down).
    async fn back_off(&mut self, spec: &ProcessSpec) -> bool {
        let Some(delay) = self.schedule_restart(spec) else {
            return false;
        };
        let mut sleep = self.inner.clock.sleep(delay);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                request = self.control.recv() => match request {
                    Some(Control::MemoryLimit(_) | Control::Unhealthy(_)) => continue,
                    // Backoff applies to an asked restart too: it waits with us.
                    Some(Control::Restart { reply }) => self.waiting.push(reply),
                    Some(Control::Stop { .. }) | None => {
                        self.transition(ProcessState::Cancelled, EventType::Cancelled, json!({}));
                        return false;
                    }
                }
            }
        }
        let name = &self.name;
        self.update_and_publish(|rec, _| {
            let from = rec.state;
            rec.state = ProcessState::Starting;
            rec.restarts += 1;
            rec.completed_at = None;
            let data = json!({ "restarts": rec.restarts });
            vec![events::transition(
                name,
                EventType::Starting,
                from,
                rec.state,
                data,
            )]
        });
        true
    }

    async fn spawn(&self, spec: &ProcessSpec) -> Result<Spawned, SupervisorError> {
        let spawn_error = |source| SupervisorError::Spawn {
            name: self.name.clone(),
            source,
        };
        let spawner = self.inner.spawner().map_err(spawn_error)?;
        let path = self.inner.config.log_dir.join(format!("{}.log", self.name));
        let log =
            LogFile::open(path.clone(), self.inner.config.log_policy()).map_err(|source| {
                SupervisorError::Log {
                    name: self.name.clone(),
                    path,
                    source,
                }
            })?;
        // Watched before the child runs, so its first write is seen; a
        // failed spawn drops the watch, which then ends by itself.
        let workspace = match spec.watch_workspace {
            true => Some(self.watch_workspace(spec).await),
            false => None,
        };
        let (mut child, init) = spawner.spawn(spec).await.map_err(spawn_error)?;
        let pid = child.id().ok_or_else(|| {
            spawn_error(std::io::Error::other(
                "the child exited before its pid was read",
            ))
        })?;
        // Read before anything can reap the child, so it is surely the child's:
        // we hold the child, and the orphan reaper leaves tracked children alone.
        let stat = offload(move || stop::read_child_stat(pid as i32)).await;
        let Some(start_time) = stat.map(|s| s.start_time) else {
            // Unreaped, the child still pins its group id: this reaches only it.
            let _ =
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
            return Err(spawn_error(std::io::Error::other(
                "could not read the child's start time from /proc",
            )));
        };
        // Lines from here on are this run's: readers start below.
        let ring = self.inner.with_run(&self.name, self.generation, |r, _| {
            r.run_output_offset = r.ring.lock().next_offset();
            r.ring.clone()
        });
        let ring = ring.unwrap_or_else(|| Ring::shared(0));
        let output = OutputTasks::start(
            self.inner.bus.clone(),
            self.name.clone(),
            child.stdout.take(),
            child.stderr.take(),
            ring,
            log,
            self.inner.output_dropped.clone(),
        );
        Ok(Spawned {
            child,
            pid,
            start_time,
            output,
            workspace,
            init,
        })
    }

    /// Starts watching the run's cwd (the host's own when the spec has
    /// none), on the blocking pool: the first walk reads the whole tree.
    async fn watch_workspace(&self, spec: &ProcessSpec) -> Watch {
        let root = spec
            .cwd
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| ".".into());
        let target = workspace::Target {
            process: self.name.clone(),
            root,
            ignore: spec.workspace_ignore.clone(),
            exclude: vec![self.inner.config.log_dir.clone()],
        };
        let bus = self.inner.bus.clone();
        offload(move || Watch::start(bus, target, workspace::Limits::default())).await
    }

    /// Waits for the run to end, stops the tree if asked or timed out, and
    /// publishes `process.exited` plus the outcome; returns the outcome.
    async fn supervise(&mut self, mut spawned: Spawned, spec: &ProcessSpec) -> ProcessState {
        let started = Instant::now();
        let pgid = spawned.pid as i32;
        let timeout = spec.timeout.map(|t| tokio::time::Instant::now() + t);
        let probes = probes::start(
            self.inner.clone(),
            &self.name,
            self.generation,
            spawned.pid,
            spec,
        );
        let ending = loop {
            tokio::select! {
                _ = spawned.child.exited() => break Ending::Exited,
                _ = tokio::time::sleep_until(timeout.unwrap_or_else(tokio::time::Instant::now)), if timeout.is_some() => break Ending::TimedOut,
                request = self.control.recv() => match request {
                    Some(Control::MemoryLimit(over)) => {
                        let OverMemory { pid, memory_bytes, limit_bytes } = *over;
                        if pid != spawned.pid {
                            continue; // about an earlier run
                        }
                        self.update_and_publish(|_, _| {
                            vec![events::new(
                                &self.name,
                                EventType::ResourceLimit,
                                json!({ "memory_bytes": memory_bytes, "limit_bytes": limit_bytes }),
                            )]
                        });
                        break Ending::OverMemory;
                    }
                    Some(Control::Unhealthy(unhealthy)) => {
                        let Unhealthy { pid, probe, reason } = *unhealthy;
                        if pid != spawned.pid {
                            continue; // about an earlier run
                        }
                        tracing::info!(process = %self.name, probe, %reason, "stopping the run");
                        break Ending::Unhealthy(reason);
                    }
                    Some(Control::Stop { force }) => break Ending::Stopped { force },
                    Some(Control::Restart { reply }) => {
                        self.waiting.push(reply);
                        break Ending::Restart;
                    }
                    None => break Ending::Stopped { force: false },
                }
            }
        };
        // No probe looks at a tree being stopped.
        drop(probes);
        let (force, reason) = match &ending {
            Ending::Exited => (false, None),
            Ending::Unhealthy(_) => (false, Some("liveness")),
            Ending::TimedOut => (false, Some("timeout")),
            Ending::OverMemory => (false, Some("memory_limit")),
            Ending::Stopped { force } => {
                self.stop_requested = true;
                (*force, Some("requested"))
            }
            Ending::Restart => {
                self.restart_requested = true;
                (false, Some("restart"))
            }
        };
        if let Some(reason) = reason {
            let signal = if force {
                StopSignal::Kill
            } else {
                spec.stop_signal
            };
            self.transition(
                ProcessState::Stopping,
                EventType::Stopping,
                json!({ "signal": signal.to_string(), "force": force, "reason": reason }),
            );
        }
        // Up until the exit or the stop request, not the end of the cleanup.
        self.uptime = self
            .up_since
            .map(|since| self.inner.clock.now().saturating_duration_since(since));
        // On a natural exit this cleans up whatever the leader left behind.
        // The steps of the end are boxed: inline they made every runner's
        // future (held by each of a thousand idle processes) half as large
        // again as its wait for the exit needs.
        let grace = (!force).then_some(spec.stop_timeout);
        let status = match spawned.init.take() {
            Some(init) => {
                // The command's exit ends its namespace at once: what it
                // left running dies with it (see `pidns`).
                let grace = grace.filter(|_| !matches!(ending, Ending::Exited));
                let force = wait_for_force(
                    &mut self.control,
                    &mut self.stop_requested,
                    &mut self.restart_requested,
                    &mut self.waiting,
                );
                let signal = spec.stop_signal.signal();
                Box::pin(stop::end_namespace(
                    &mut spawned.child,
                    init,
                    signal,
                    grace,
                    force,
                ))
                .await
            }
            None => {
                let start_time = spawned.start_time;
                let tree = offload(move || Tree::collect(pgid, start_time)).await;
                let signal = spec.stop_signal.signal();
                Box::pin(self.terminate(&mut spawned.child, tree, signal, grace)).await
            }
        };
        if !Box::pin(spawned.output.finish(OUTPUT_DRAIN_LIMIT)).await {
            tracing::warn!(process = %self.name, "output pipes still open after the process tree exited; their readers carry on detached");
        }
        // The tree is gone: its last changes are published, and its
        // inotify watches removed, before the run's exit events.
        if let Some(watch) = spawned.workspace.take() {
            offload(move || watch.stop()).await;
        }
        let (exit_code, signal) = match &status {
            Some(status) => (status.code(), status.signal()),
            None => (None, None),
        };
        let outcome = match ending {
            Ending::Stopped { .. } | Ending::Restart => ProcessState::Cancelled,
            Ending::TimedOut => ProcessState::Timeout,
            Ending::OverMemory | Ending::Unhealthy(_) => ProcessState::Failed,
            Ending::Exited if exit_code == Some(0) => ProcessState::Completed,
            Ending::Exited => ProcessState::Failed,
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let timeout_ms = spec.timeout.map(|t| t.as_millis() as u64);
        let name = &self.name;
        self.update_and_publish(|rec, _| {
            let from = rec.state;
            rec.state = outcome;
            rec.exit_code = exit_code;
            rec.signal = signal;
            // The samples were of a tree that is gone.
            rec.memory_bytes = None;
            rec.cpu_percent = None;
            // A run that ended serves nothing: its dependants hear so first.
            let unready = (rec.ready == Some(true)).then(|| {
                rec.ready = Some(false);
                events::new(name, EventType::Unready, json!({ "reason": "exited" }))
            });
            let exited = events::transition(
                name,
                EventType::Exited,
                from,
                outcome,
                json!({ "exit_code": exit_code, "signal": signal, "duration_ms": duration_ms, "restarts": rec.restarts }),
            );
            let data = match outcome {
                ProcessState::Failed if matches!(ending, Ending::OverMemory) => json!({ "exit_code": exit_code, "signal": signal, "reason": MEMORY_LIMIT_REASON }),
                ProcessState::Failed if let Ending::Unhealthy(reason) = &ending => json!({ "exit_code": exit_code, "signal": signal, "reason": reason }),
                ProcessState::Failed => json!({ "exit_code": exit_code, "signal": signal, "reason": events::exit_reason(exit_code, signal) }),
                ProcessState::Timeout => json!({ "exit_code": exit_code, "signal": signal, "timeout_ms": timeout_ms }),
                _ => json!({ "exit_code": exit_code, "signal": signal }),
            };
            let ty = EventType::ended(outcome);
            unready
                .into_iter()
                .chain([exited, events::transition(name, ty, from, outcome, data)])
                .collect()
        });
        outcome
    }

    /// Asks the tree to stop (if `grace`), then kills whatever is left,
    /// waits for every member to be gone and only then reaps the leader;
    /// finally forgets the leader as a tracked child.
    ///
    /// Each blocking step (a `/proc` walk, a signal round, the reaper's
    /// registry, whose lock is held across a scan) is offloaded and awaited
    /// in turn, so they happen in the order written here.
    async fn terminate(
        &mut self,
        child: &mut ChildProcess,
        tree: Tree,
        signal: Signal,
        grace: Option<Duration>,
    ) -> Option<std::process::ExitStatus> {
        let pgid = tree.pgid();
        let (mut tree, alive) = offload(move || {
            reaper::note_escapees(&tree.escapees());
            // The leader is a member, so "none" also means it has exited.
            let alive = !tree.alive().is_empty();
            if !alive {
                // The usual natural exit: nothing left behind. Forgotten
                // before the leader is reaped, which frees the group id.
                reaper::forget_group(pgid);
            }
            (tree, alive)
        })
        .await;
        if !alive {
            let status = child.wait().await.ok();
            offload(move || reaper::untrack_child(pgid)).await;
            return status;
        }
        if let Some(grace) = grace.filter(|_| signal != Signal::SIGKILL) {
            tree = offload(move || {
                let _ = tree.signal(signal);
                // A paused tree must run to act on the signal.
                let _ = tree.signal(Signal::SIGCONT);
                tree
            })
            .await;
            tokio::select! {
                _ = tokio::time::timeout(grace, tree.wait_gone(None)) => {}
                _ = wait_for_force(&mut self.control, &mut self.stop_requested, &mut self.restart_requested, &mut self.waiting) => {}
            }
        }
        let tree = offload(move || {
            tree.extend();
            reaper::note_escapees(&tree.escapees());
            tree.kill_all();
            tree
        })
        .await;
        let gone = tree.wait_gone(Some(KILL_WAIT_LIMIT)).await;
        let status = child.wait().await.ok();
        let survivors = offload(move || {
            reaper::reap_orphans();
            let survivors = if gone {
                reaper::forget_group(pgid);
                Vec::new()
            } else {
                tree.alive()
            };
            reaper::untrack_child(pgid);
            survivors
        })
        .await;
        if !gone {
            tracing::warn!(process = %self.name, pids = ?survivors, "processes survive SIGKILL (stuck in the kernel?)");
        }
        status
    }

    fn running(&self, pid: u32, start_time: u64) {
        let name = &self.name;
        self.update_and_publish(|rec, _| {
            let from = rec.state;
            rec.state = ProcessState::Running;
            rec.pid = Some(pid);
            rec.pid_start_time = Some(start_time);
            rec.exit_code = None;
            rec.signal = None;
            rec.started_at = Some(chrono::Utc::now());
            rec.memory_bytes = None;
            rec.cpu_percent = None;
            // Not ready until this run's readiness probe passes.
            rec.ready = rec.spec.readiness_probe.as_ref().map(|_| false);
            vec![events::transition(
                name,
                EventType::Started,
                from,
                rec.state,
                // The start time (clock ticks after boot, from /proc) names
                // this process for good: recovery after a crash of the host
                // kills what survives of it only if both match.
                json!({ "pid": pid, "start_time": start_time }),
            )]
        });
    }

    /// Waits for the spec's dependencies before a spawn; false when the
    /// runner must end instead (stopped meanwhile, or a dependency can
    /// never be ready: then the process fails with the reason).
    async fn wait_for_dependencies(&mut self, spec: &ProcessSpec) -> bool {
        let waited = deps::wait(
            &self.inner,
            spec,
            &mut self.control,
            &mut self.waiting,
            &mut self.accepted,
        )
        .await;
        match waited {
            Waited::Ready => true,
            Waited::Stopped => {
                self.stop_requested = true;
                self.end_reason = "it was stopped while waiting for its dependencies";
                self.transition(ProcessState::Cancelled, EventType::Cancelled, json!({}));
                false
            }
            Waited::Failed { dependency, reason } => {
                self.transition(
                    ProcessState::Failed,
                    EventType::Failed,
                    json!({ "exit_code": null, "signal": null, "reason": reason, "dependency": dependency }),
                );
                for waiter in self.waiting.drain(..) {
                    let _ = waiter.send(Err(SupervisorError::NotRestarted {
                        name: self.name.clone(),
                        state: ProcessState::Failed,
                        reason: reason.clone(),
                    }));
                }
                false
            }
        }
    }

    fn spawn_failed(&self, err: &SupervisorError) {
        let reason = err.to_string();
        self.transition(
            ProcessState::Failed,
            EventType::Failed,
            json!({ "exit_code": null, "signal": null, "reason": reason }),
        );
    }

    /// Enters backoff and returns the delay; `None` when giving up or
    /// shutting down.
    fn schedule_restart(&mut self, spec: &ProcessSpec) -> Option<Duration> {
        let mut delay = None;
        let mut reason = "the supervisor is shutting down";
        let name = &self.name;
        let clock = self.inner.clock.clone();
        let uptime = self.uptime;
        self.update_and_publish(|rec, shutting_down| {
            if shutting_down {
                // Decided under the lock the shutdown sets its flag under, so
                // either it saw this process active or we see the flag here.
                return Vec::new();
            }
            let window = spec.restart_window;
            let now = clock.now();
            if let (Some(stable), Some(up)) = (spec.stable_after, uptime)
                && up >= stable
            {
                rec.window.mark_stable(now);
            }
            match rec.window.try_record(now, window, spec.max_restarts) {
                None => {
                    reason = "it reached its restart limit (process.gave_up)";
                    vec![events::gave_up(
                        name,
                        rec.restarts,
                        spec.max_restarts,
                        window,
                        rec.state,
                    )]
                }
                Some(attempt) => {
                    let d = backoff_delay(spec.backoff, spec.backoff_max, attempt, clock.jitter());
                    delay = Some(d);
                    let from = rec.state;
                    rec.state = ProcessState::Backoff;
                    let data = json!({ "delay_ms": d.as_millis() as u64, "attempt": attempt });
                    vec![events::transition(
                        name,
                        EventType::Backoff,
                        from,
                        rec.state,
                        data,
                    )]
                }
            }
        });
        if delay.is_none() {
            self.end_reason = reason;
        }
        delay
    }

    /// Moves to `to` and publishes a transition event `ty` with `data`.
    fn transition(&self, to: ProcessState, ty: EventType, data: serde_json::Value) {
        let name = &self.name;
        self.update_and_publish(|rec, _| {
            let from = rec.state;
            rec.state = to;
            vec![events::transition(name, ty, from, to, data)]
        });
    }

    /// Applies `f` under the table lock and publishes what it returned
    /// before the lock is released (see `Inner::with_run_logged`).
    ///
    /// `f` also learns whether the supervisor is shutting down.
    fn update_and_publish(&self, f: impl FnOnce(&mut Record, bool) -> Vec<NewEvent>) {
        self.inner.with_run_logged(&self.name, self.generation, f);
    }
}

/// Resolves when a forced stop is requested; notes graceful requests
/// (stops, and restarts to perform once this stop is over).
async fn wait_for_force(
    control: &mut ControlReceiver,
    stop_requested: &mut bool,
    restart_requested: &mut bool,
    waiting: &mut Vec<oneshot::Sender<Result<(), SupervisorError>>>,
) {
    loop {
        match control.recv().await {
            Some(Control::Stop { force }) => {
                *stop_requested = true;
                if force {
                    return;
                }
            }
            Some(Control::Restart { reply }) => {
                *restart_requested = true;
                waiting.push(reply);
            }
            // Already stopping; a limit or probe notice adds nothing.
            Some(Control::MemoryLimit(_) | Control::Unhealthy(_)) => {}
            None => std::future::pending::<()>().await,
        }
    }
}
