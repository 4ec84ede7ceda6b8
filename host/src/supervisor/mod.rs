//! Process supervision: spawn, watch, restart and stop child process trees.
//!
//! Every supervised process runs in a PID namespace of its own whose PID 1
//! is an init of ours, so its whole tree (`setsid`'d and double-forked
//! descendants too) ends when it is stopped, when it exits, and when the
//! host dies, even by `kill -9`. Where namespaces cannot be made (or with
//! `pid_namespaces = false`), each child leads its own process group and
//! carries a parent-death signal, and the host can make itself a child
//! subreaper so that nothing a child abandons escapes while it lives.
//! Stopping means the whole tree. Every
//! state change is published on the [`bus`](crate::bus) (source
//! `host/supervisor`, subject = process name). Output is read as fast as
//! the child writes it: the bytes go to the log file as read (rotated by
//! size into `log_generations`, optionally gzipped), and lines are cut only
//! for the ring and the bus; lines the bus could not take are counted in
//! `process.output_dropped`, so published + dropped = lines written. The
//! memory, CPU and disk I/O of every running tree are sampled at an
//! interval, and a
//! `memory_limit` stops a tree that goes over it. This room knows nothing
//! of plugins.
//!
//! Events (source `host/supervisor`, subject = process name; transitions
//! also carry `from` and `to`):
//! - `process.starting` {restarts} → `process.started` {pid, start_time};
//! - `process.exited` {exit_code, signal, duration_ms, restarts} after every
//!   run, then one of `process.completed`, `process.failed` {exit_code,
//!   signal, reason} (also alone when a spawn fails), `process.timeout`
//!   {timeout_ms}, `process.cancelled`;
//! - `process.backoff` {delay_ms, attempt}, `process.gave_up` {restarts,
//!   max_restarts, window_ms, state}: restarts (automatic, or asked by a
//!   person or a plugin: one accounting) back off exponentially with
//!   jitter, from `backoff` again after a run that stayed up
//!   `stable_after`, and stop after `max_restarts` within `restart_window`;
//! - `process.interrupted` {pid, last_event, stop_reason, killed,
//!   restarts}: published by the next host for a run the last one never
//!   ended (killed, crashed); `interrupted` is a terminal state, not
//!   `failed`. [`Supervisor::recover`] reads the journal for it and
//!   returns the [`Recovery`] the runtime publishes as `host.recovered`;
//! - `process.ready` {probe} and `process.unready` {probe, reason,
//!   failures} as a run's readiness probe passes and fails (`unready`
//!   {reason: "exited"} also when a ready run ends);
//! - `process.stopping` {signal, force, reason}, `process.paused`,
//!   `process.resumed`, `process.status` {state, progress, message, lifecycle};
//! - `process.output` {stream, lines, split} (a line over 8 KiB comes as
//!   pieces; `split` counts those continued by the next line) and
//!   `process.output_dropped` {stream, dropped};
//! - `process.resource` {pids, memory_bytes, cpu_percent, disk_read_bytes,
//!   disk_written_bytes} per running process every `resource_interval`
//!   (`cpu_percent` is over the tree's life at a run's first sample and
//!   counts children reaped in between; disk bytes count since the
//!   previous sample), and `process.resource_limit` {memory_bytes,
//!   limit_bytes} when a tree goes over its `memory_limit`, followed by
//!   `process.stopping` {reason: "memory_limit"} and `process.failed`
//!   {reason: "memory limit exceeded"}.
//!
//! Layout:
//! - `spec`: [`ProcessSpec`], what to run (the `[process.NAME]` table);
//! - `state`: the public vocabulary ([`ProcessState`], [`ProcessInfo`], ...);
//! - `supervisor`: [`Supervisor`] and its verbs; `table`: the records behind it;
//! - `runner`: one task per started process: spawn, wait, stop, restart;
//! - `spawn`: the thread that forks, with or without a namespace;
//!   `child`: the fork itself (a clone that copies no descriptor table),
//!   the child's steps up to its exec, and waiting for it by pidfd;
//!   `rawsys`: the raw system calls of code that shares the host's memory;
//! - `pidns`: the PID namespace of each run and its init (`pidns_init`:
//!   the code that runs as PID 1, raw system calls only);
//! - `stop`: process trees from `/proc`, signalling them, waiting for them;
//! - `restart`: the restart decision, window and backoff (pure functions),
//!   and the clock they run on (`RestartClock`: real time in the host, a
//!   virtual one in tests);
//! - `recovery`: crash-only recovery from the journal: the fold of every
//!   process's lifecycle events (`trail`), killing what survives of an
//!   interrupted run (`survivors`), ending it, restoring runtime processes;
//! - `output`: pipe readers and batching; `lines`: cutting lines (and
//!   over-long ones into pieces); `publish`: batches to the bus; `store`:
//!   the ring; `logfile`: the log file, its rotation and compression, and
//!   reading every generation back ([`read_log`]);
//! - `reaper`: the child subreaper and orphan reaping;
//! - `offload`: running `/proc` walks, signal rounds and reaps on the
//!   blocking pool, never on an async worker;
//! - `resources`: the one sampler task (from the `/proc` scan) and the memory limit check;
//! - `deps`: `depends_on` ([`DependsOn`], [`Condition`]): the graph checks
//!   at config time, start order, and the wait before each spawn until the
//!   dependencies are satisfied (or can never be: the dependant fails with
//!   the reason); a graceful shutdown stops dependants first;
//! - `probes`: readiness, liveness and startup [`Probe`]s (exec, HTTP GET,
//!   TCP, log regex) and the task per run that checks them, keeps `ready`
//!   and asks the runner to stop a run whose liveness failed;
//! - `workspace`: the watch of a process's cwd (`watch_workspace = true`),
//!   debounced and capped into `workspace.*` events (source `host/workspace`);
//! - `events`, `duration`, `size`, `error`: event shapes, `"10s"` and
//!   `"512MiB"` parsing, [`SupervisorError`].

mod child;
mod deps;
pub(crate) mod duration;
mod error;
mod events;
mod lines;
mod logfile;
mod offload;
mod output;
mod pidns;
mod pidns_init;
mod probes;
mod publish;
mod rawsys;
mod reaper;
mod recovery;
mod resources;
mod restart;
mod runner;
pub(crate) mod size;
mod spawn;
mod spec;
mod state;
mod stop;
mod store;
#[allow(clippy::module_inception)]
mod supervisor;
mod table;
mod workspace;

#[cfg(test)]
mod tests;

pub use child::reserve_spawn_slots;
pub(crate) use deps::check_graph as check_dependencies;
pub use deps::{Condition, DependsOn};
pub use error::SupervisorError;
pub use events::EventType;
pub use logfile::read_log;
pub use probes::{Probe, ProbeCheck};
pub use recovery::{Found, Recovery};
pub use spec::{
    DEFAULT_WORKSPACE_IGNORE, MAX_LABEL_CHARS, MAX_METADATA_BYTES, ProcessSpec, RestartMode,
    StopSignal,
};
pub use state::{Origin, OutputLine, ProcessInfo, ProcessState, StatusUpdate, Stream};
pub use store::OutputPage;
pub use supervisor::{Supervisor, SupervisorConfig};
pub use workspace::WORKSPACE_EVENT_TYPES;
