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
//! Start order matters: plugins load and their consumers exist *before*
//! any process starts, so no early event is missed. Stop order matters
//! too: plugins and agents stop first, so nothing asks to restart a
//! process while the supervisor is stopping them all.

mod executor;
mod lock;

pub use lock::LOCK_FILE;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio::sync::mpsc;

use crate::agents::Scheduler;
use crate::bus::{Bus, BusConfig, NewEvent};
use crate::config::HostConfig;
use crate::coordination::Coordinator;
use crate::plugins::{LimitDefaults, PluginHost, PluginHostConfig, ProcessView};
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
const RESERVED_PREFIXES: [&str; 6] = ["host.", "plugin.", "agent.", "task.", "dependency.", "bus."];

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
    /// Where the journal, logs, cache and plugin state live.
    pub state_dir: PathBuf,
    executor: tokio::task::JoinHandle<()>,
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
    pub async fn start(config: HostConfig, options: RunOptions) -> anyhow::Result<Self> {
        let plugins_dir = std::fs::canonicalize(&options.plugins_dir)
            .with_context(|| format!("plugins folder {}", options.plugins_dir.display()))?;
        std::fs::create_dir_all(&options.state_dir).with_context(|| {
            format!("cannot create state folder {}", options.state_dir.display())
        })?;
        let lock = lock::StateLock::acquire(&options.state_dir)?;
        let bus = Bus::open(
            &options.state_dir,
            BusConfig {
                ring_capacity: config.bus.ring_capacity,
                max_journal_events: config.bus.max_journal_events,
                ..BusConfig::default()
            },
        )
        .with_context(|| {
            format!(
                "cannot open the event journal in {}",
                options.state_dir.display()
            )
        })?;
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
                resource_interval: Some(config.supervisor.resource_interval)
                    .filter(|d| !d.is_zero()),
                retain_finished: config.supervisor.retain_finished,
            },
        );
        for spec in config.process.values() {
            supervisor
                .add(spec.clone())
                .with_context(|| format!("process `{}`", spec.name))?;
        }

        let (actions, requests) = mpsc::channel(ACTION_QUEUE);
        let plugin_config = PluginHostConfig {
            plugins_dir,
            state_dir: Some(options.state_dir.clone()),
            limits: LimitDefaults {
                deadline: Duration::from_millis(config.plugins.deadline_ms.max(1)),
                memory_bytes: config.plugins.memory_mib.max(1) << 20,
            },
            max_failures: config.plugins.max_failures,
            debounce: Duration::from_millis(config.plugins.debounce_ms),
            build_missing: options.build_missing,
            build_timeout: config.plugins.build_timeout,
        };
        let view: Arc<dyn ProcessView> = Arc::new(supervisor.clone());
        let plugins = PluginHost::start(plugin_config, bus.clone(), view, actions.clone())
            .await
            .context("cannot start the plugin host")?;
        if options.watch {
            plugins.watch().context("cannot watch the plugins folder")?;
        }
        let coordinator =
            Coordinator::new(bus.clone(), plugins.clone(), config.coordination.clone());
        let agents = Scheduler::start(plugins.clone(), bus.clone(), actions);
        let executor = Executor {
            bus: bus.clone(),
            supervisor: supervisor.clone(),
            coordinator: coordinator.clone(),
        };
        let (stop_executor, stop) = tokio::sync::watch::channel(false);
        let executor = tokio::spawn(executor.run(requests, stop));

        for task in &config.tasks {
            coordinator
                .register(task.clone(), "config")
                .await
                .with_context(|| format!("task `{}`", task.id))?;
        }
        supervisor.start_autostart().await;
        bus.publish(NewEvent::new(
            SOURCE,
            "host.started",
            json!({ "plugins": plugins.list().len(), "processes": supervisor.list().len() }),
        ))?;
        Ok(Self {
            bus,
            supervisor,
            plugins,
            agents,
            coordinator,
            state_dir: options.state_dir,
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
