//! The runtime room: wires the other rooms into one running host.
//!
//! ```text
//!  supervisor ──publishes──▶ bus ◀──publishes── plugins, agents, coordination
//!                              │
//!                   consumers with cursors
//!                              ▼
//!        plugins (handlers, mappers) ──ActionRequest──▶ executor
//!        agents (ticks)             ──ActionRequest──▶ executor
//!                                                        │
//!                             supervisor / coordination / bus ◀─┘
//! ```
//!
//! Start order: processes do not wait for plugins to compile (a cold
//! compile of a large guest takes seconds). The plugin host exists first,
//! empty; processes start; plugins load in the background, and each one
//! loaded by that first pass reads the log from where this run began, so
//! no event of the run is missed, only seen later. Tasks from the config
//! are registered once the dependency rules are there, and
//! `host.plugins_loaded` says when that is. Stop order matters too: plugins
//! and agents stop first, so nothing asks to restart a process while the
//! supervisor is stopping them all.

mod executor;
mod lock;

pub use executor::RateLimits;
pub use lock::LOCK_FILE;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio::sync::mpsc;

use crate::agents::Scheduler;
use crate::bus::{Bus, NewEvent};
use crate::config::HostConfig;
use crate::coordination::{Coordinator, Sessions};
use crate::plugins::{PluginHost, PluginHostConfig, ProcessView, system_clock};
use crate::supervisor::{ProcessInfo, Supervisor, SupervisorConfig};

use executor::Executor;

/// Source of the runtime's own events.
const SOURCE: &str = "host/runtime";

/// How many decided-but-not-yet-performed action batches may queue before
/// plugins wait.
const ACTION_QUEUE: usize = 1024;

/// Where things are, after flags and config are combined.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The plugins folder.
    pub plugins_dir: PathBuf,
    /// Journal, logs, cache and plugin state.
    pub state_dir: PathBuf,
    /// Reload plugins when their files change.
    pub watch: bool,
    /// Build plugins whose component is missing.
    pub build_missing: bool,
    /// Rebuild a plugin when its `[build] watch` sources change
    /// (`host run --watch`; only while watching).
    pub rebuild: bool,
}

impl ProcessView for Supervisor {
    fn list(&self) -> Vec<ProcessInfo> {
        Supervisor::list(self)
    }
    fn get(&self, name: &str) -> Option<ProcessInfo> {
        Supervisor::get(self, name)
    }
}

/// Event type prefixes only the host itself may publish.
/// `workspace.` is the supervisor's file watch (`watch_workspace`).
const RESERVED_PREFIXES: [&str; 7] = [
    "host.",
    "plugin.",
    "agent.",
    "task.",
    "dependency.",
    "bus.",
    "workspace.",
];

/// The session steps only the host publishes. The rest of `session.*` stays
/// open: judges answer with `session.judged` and planners with
/// `session.plan`.
const HOST_SESSION_TYPES: [&str; 6] = [
    "session.opened",
    "session.limit_reached",
    "session.message",
    "session.resolved",
    "session.escalated",
    "session.closed",
];

/// Why a plugin or an API client may not publish an event of type `ty`,
/// if it may not.
///
/// The host's own families are reserved, and so is every type the
/// supervisor publishes ([`EventType::ALL`](crate::supervisor::EventType)):
/// plugins act on those (the failure alert counts `process.failed`), so
/// nobody else may forge them. Other `process.*` types stay open:
/// `process.reported` feeds status mappers and plugins emit
/// `process.stalled`.
pub fn reserved(ty: &str) -> Option<String> {
    if HOST_SESSION_TYPES.contains(&ty) {
        return Some(format!(
            "`{ty}` is published by the host's coordination sessions only"
        ));
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| ty.starts_with(*p)) {
        return Some(format!(
            "event types starting with `{prefix}` are reserved for the host"
        ));
    }
    crate::supervisor::EventType::ALL
        .iter()
        .any(|t| t.as_str() == ty)
        .then(|| format!("`{ty}` is published by the supervisor only"))
}

/// The first load of the plugins folder, then the config's tasks (their
/// dependencies are found by the rules just loaded), then
/// `host.plugins_loaded`.
async fn first_load(
    plugins: PluginHost,
    coordinator: Coordinator,
    bus: Bus,
    tasks: Vec<crate::coordination::Task>,
    loaded: tokio::sync::watch::Sender<bool>,
) {
    let started = std::time::Instant::now();
    if let Err(e) = plugins.reconcile().await {
        tracing::error!("cannot load the plugins folder: {e}");
    }
    for task in tasks {
        let id = task.id.clone();
        if let Err(e) = coordinator.register(task, "config").await {
            tracing::error!("task `{id}` from the config: {e}");
        }
    }
    let failed: Vec<String> = plugins
        .failures()
        .into_iter()
        .map(|(path, _)| path.display().to_string())
        .collect();
    let event = NewEvent::new(
        SOURCE,
        "host.plugins_loaded",
        json!({
            "plugins": plugins.list().len(),
            "failed": failed,
            "load_ms": started.elapsed().as_secs_f64() * 1000.0,
        }),
    );
    if let Err(e) = bus.publish(event) {
        tracing::error!("could not publish host.plugins_loaded: {e}");
    }
    loaded.send_replace(true);
    return_freed_memory();
}

/// Hands the memory freed since start back to the system. Start-up is the
/// host's one burst of allocation (compiling or loading every plugin on
/// worker threads, a thousand spawns), and glibc keeps what each thread's
/// arena freed: at 1,000 processes and the 16 shipped plugins, 21 MiB of
/// a 112 MiB RSS were freed memory held this way (`malloc_trim` by hand,
/// measured from `/proc/PID/smaps_rollup`).
fn return_freed_memory() {
    // SAFETY: malloc_trim only releases free memory of the allocator's
    // own arenas; it has no preconditions and touches nothing in use.
    let _ = unsafe { nix::libc::malloc_trim(0) };
}

/// A running host: every room, started and wired.
pub struct Runtime {
    /// The event log.
    pub bus: Bus,
    /// Process supervision.
    pub supervisor: Supervisor,
    /// Loaded plugins.
    pub plugins: PluginHost,
    /// Background agents.
    pub agents: Scheduler,
    /// Tasks and dependencies.
    pub coordinator: Coordinator,
    /// Coordination sessions.
    pub sessions: Sessions,
    /// Where the journal, logs, cache and plugin state live.
    pub state_dir: PathBuf,
    /// Turns true once the first load of the plugins folder is over (each
    /// plugin loaded or reported) and the config's tasks are registered.
    pub plugins_loaded: tokio::sync::watch::Receiver<bool>,
    executor: tokio::task::JoinHandle<()>,
    /// The sessions' consumer and timer; aborted at stop.
    sessions_task: tokio::task::JoinHandle<()>,
    stop_executor: tokio::sync::watch::Sender<bool>,
    /// Held while the host runs: one host per state folder.
    _lock: lock::StateLock,
}

impl Runtime {
    /// Open the journal, load plugins, register tasks, start processes.
    ///
    /// # Errors
    ///
    /// When the state folder, journal or plugins folder cannot be opened,
    /// or a process in the config is invalid. A plugin that fails to load
    /// is not an error: it is reported and the host runs without it.
    pub async fn start(mut config: HostConfig, options: RunOptions) -> anyhow::Result<Self> {
        let plugins_dir = std::fs::canonicalize(&options.plugins_dir)
            .with_context(|| format!("plugins folder {}", options.plugins_dir.display()))?;
        // Plugins load after start returns; a folder that cannot be read
        // is still an error here, where the user sees it.
        std::fs::read_dir(&plugins_dir)
            .with_context(|| format!("cannot read the plugins folder {}", plugins_dir.display()))?;
        std::fs::create_dir_all(&options.state_dir).with_context(|| {
            format!("cannot create state folder {}", options.state_dir.display())
        })?;
        let lock = lock::StateLock::acquire(&options.state_dir)?;
        let bus = Bus::open(&options.state_dir, config.bus.bus_config()).with_context(|| {
            format!(
                "cannot open the event journal in {}",
                options.state_dir.display()
            )
        })?;
        let run_began_after = bus.head();
        bus.publish(NewEvent::new(
            SOURCE,
            "host.starting",
            json!({ "pid": std::process::id(), "plugins": plugins_dir, "state_dir": options.state_dir }),
        ))?;

        let supervisor = Supervisor::new(
            bus.clone(),
            SupervisorConfig {
                log_dir: options.state_dir.join("logs"),
                ring_lines: config.supervisor.ring_lines,
                log_max_bytes: config.supervisor.log_max_bytes,
                log_generations: config.supervisor.log_generations,
                log_compress: config.supervisor.log_compress,
                resource_interval: Some(config.supervisor.resource_interval)
                    .filter(|d| !d.is_zero()),
                retain_finished: config.supervisor.retain_finished,
                pid_namespaces: config.host.pid_namespaces,
            },
        );
        for (name, spec) in std::mem::take(&mut config.process) {
            supervisor
                .add(spec)
                .with_context(|| format!("process `{name}`"))?;
        }
        // Crash-only: whatever the last host left unfinished is ended in the
        // journal and its survivors killed before anything starts, so
        // nothing runs twice (see `supervisor::recovery`).
        let recovery = supervisor
            .recover(run_began_after)
            .await
            .context("cannot recover the processes of the last host from the journal")?;
        if !recovery.is_empty() {
            tracing::info!(
                interrupted = recovery.interrupted.len(),
                restarting = recovery.restarting.len(),
                restored = recovery.restored.len(),
                "recovered what the last host left in the journal"
            );
            bus.publish(NewEvent::new(
                SOURCE,
                "host.recovered",
                serde_json::to_value(&recovery)?,
            ))?;
        }

        let (actions, requests) = mpsc::channel(ACTION_QUEUE);
        let plugin_config = PluginHostConfig {
            plugins_dir,
            state_dir: Some(options.state_dir.clone()),
            limits: config.plugins.limit_defaults(),
            max_failures: config.plugins.max_failures,
            debounce: Duration::from_millis(config.plugins.debounce_ms),
            build_missing: options.build_missing,
            build_timeout: config.plugins.build_timeout,
            rebuild_on_change: options.rebuild,
            max_chain_depth: config.plugins.max_chain_depth,
            ceilings: config.plugins.ceilings(),
            accept_new_grants: config.plugins.accept_new_grants,
            first_load_after: Some(run_began_after),
            cache_max_bytes: config.plugins.cache_max_size,
            shadow_events: config
                .plugins
                .shadow
                .then_some(config.plugins.shadow_events),
        };
        let view: Arc<dyn ProcessView> = Arc::new(supervisor.clone());
        let plugins = PluginHost::new(
            plugin_config,
            bus.clone(),
            view,
            actions.clone(),
            system_clock(),
        )
        .context("cannot start the plugin host")?;
        if options.watch {
            plugins.watch().context("cannot watch the plugins folder")?;
        }
        let coordinator =
            Coordinator::new(bus.clone(), plugins.clone(), config.coordination.clone());
        // Before the first load registers the config's tasks: the sessions'
        // consumer starts at the head, so it sees their dependencies.
        let sessions = Sessions::new(
            bus.clone(),
            config.coordination.sessions.clone(),
            system_clock(),
        );
        let sessions_task =
            crate::coordination::start_sessions(sessions.clone(), coordinator.clone());
        let agents = Scheduler::start(plugins.clone(), bus.clone(), actions);
        let executor = Executor {
            bus: bus.clone(),
            supervisor: supervisor.clone(),
            coordinator: coordinator.clone(),
            grants: executor::grants_of(plugins.clone()),
            rates: config.plugins.rates(),
            rate_overrides: config.plugins.rate_overrides(),
        };
        let (stop_executor, stop) = tokio::sync::watch::channel(false);
        let executor = tokio::spawn(executor.run(requests, stop));

        supervisor.start_recovered(&recovery).await;
        supervisor.start_autostart().await;
        let pid_namespaces = supervisor.pid_namespaces().unwrap_or(false);
        if !pid_namespaces {
            tracing::warn!(
                "processes run without PID namespaces: a kill -9 of the host can leave their descendants running"
            );
        }
        bus.publish(NewEvent::new(
            SOURCE,
            "host.started",
            json!({ "processes": supervisor.list().len(), "pid_namespaces": pid_namespaces }),
        ))?;
        let (loaded, plugins_loaded) = tokio::sync::watch::channel(false);
        tokio::spawn(first_load(
            plugins.clone(),
            coordinator.clone(),
            bus.clone(),
            config.tasks.clone(),
            loaded,
        ));
        Ok(Self {
            bus,
            supervisor,
            plugins,
            agents,
            coordinator,
            sessions,
            sessions_task,
            state_dir: options.state_dir,
            plugins_loaded,
            executor,
            stop_executor,
            _lock: lock,
        })
    }

    /// Stops the host, bounded: nothing new starts from the first moment;
    /// agents and plugins stop deciding while, at the same time, every
    /// process tree is stopped gracefully. Past `limit`, or as soon as
    /// `force` resolves (a second Ctrl-C), whatever is left is killed with
    /// SIGKILL. A plugin stuck in a call never holds the trees up.
    ///
    /// # Errors
    ///
    /// Only if the final events cannot be written.
    pub async fn stop(
        mut self,
        limit: Duration,
        force: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tracing::info!("shutting down");
        self.bus.publish(NewEvent::new(
            SOURCE,
            "host.stopping",
            json!({ "timeout_ms": limit.as_millis() as u64 }),
        ))?;
        let forced = {
            let deciders = async {
                self.agents.shutdown().await;
                self.plugins.shutdown().await;
                self.sessions_task.abort();
                // Nothing decides any more: the executor finishes what was
                // already decided (the supervisor refuses new starts).
                self.stop_executor.send_replace(true);
                let _ = (&mut self.executor).await;
            };
            let graceful = async { tokio::join!(deciders, self.supervisor.shutdown(false)) };
            tokio::select! {
                _ = graceful => None,
                _ = tokio::time::sleep(limit) => Some("timeout"),
                _ = force => Some("signal"),
            }
        };
        if let Some(why) = forced {
            tracing::warn!(
                "{}: killing every process tree that is left",
                if why == "timeout" {
                    format!(
                        "still stopping after {}",
                        crate::supervisor::duration::format(limit)
                    )
                } else {
                    "second signal".to_string()
                }
            );
            self.supervisor.shutdown(true).await;
            self.executor.abort();
        }
        self.bus.publish(NewEvent::new(
            SOURCE,
            "host.stopped",
            json!({ "forced": forced }),
        ))?;
        Ok(())
    }
}
