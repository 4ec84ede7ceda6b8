//! The agents room: ticks background-agent plugins on their intervals
//! (seed 002's always-running agents).
//!
//! Each agent plugin gets a loop: tick at once, then every interval (as
//! the current version describes it, so a reload can change it). Status
//! follows the seed: Idle between ticks, Running during one, Paused when
//! asked, Error after a failed tick (the next tick still runs), Stopped
//! once the plugin is unloaded. Actions from ticks go to the executor.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::bus::{Bus, NewEvent};
use crate::plugins::{ActionRequest, Kind, PluginHost, PluginRef};

/// Source of agent events.
const SOURCE: &str = "host/agents";

/// Where an agent is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// Waiting for its next tick.
    Idle,
    /// In a tick.
    Running,
    /// Paused by request; ticks are skipped.
    Paused,
    /// The last tick failed.
    Error,
    /// The plugin was unloaded.
    Stopped,
}

/// What `host agents` shows for one agent.
#[derive(Debug, Clone, Serialize)]
pub struct AgentState {
    /// The plugin's name (agents are addressed by it).
    pub plugin: String,
    /// The agent's own name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Time between ticks, in milliseconds.
    pub interval_ms: u64,
    /// Where it is in its cycle.
    pub status: AgentStatus,
    /// What it last said it was doing.
    pub activity: String,
    /// When its last tick ended.
    pub last_active: Option<DateTime<Utc>>,
    /// Completed ticks.
    pub cycles: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// Why an agent request failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No agent plugin has that name.
    #[error("no background agent named `{0}`")]
    Unknown(String),
}

struct Shared {
    states: Mutex<BTreeMap<String, AgentState>>,
    bus: Bus,
    actions: mpsc::Sender<ActionRequest>,
    shutdown: watch::Sender<bool>,
}

/// Runs every background-agent plugin of a [`PluginHost`].
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Scheduler {
    /// Start ticking the agents of `plugins`, following loads and unloads.
    pub fn start(plugins: PluginHost, bus: Bus, actions: mpsc::Sender<ActionRequest>) -> Self {
        let shared = Arc::new(Shared {
            states: Mutex::new(BTreeMap::new()),
            bus,
            actions,
            shutdown: watch::Sender::new(false),
        });
        let scheduler = Self {
            shared,
            tasks: Arc::default(),
        };
        let me = scheduler.clone();
        scheduler.spawn(async move { me.follow_plugins(plugins).await });
        scheduler
    }

    async fn follow_plugins(&self, plugins: PluginHost) {
        let mut changes = plugins.changes();
        let mut shutdown = self.shared.shutdown.subscribe();
        loop {
            for agent in plugins.with_kind(Kind::BackgroundAgent) {
                let is_new = {
                    let states = self.shared.states.lock();
                    states
                        .get(agent.name())
                        .is_none_or(|s| s.status == AgentStatus::Stopped)
                };
                if is_new {
                    // Claim the name now, so a second change notice before
                    // the loop starts does not start a second loop.
                    self.update(agent.name(), |s| s.status = AgentStatus::Idle);
                    let me = self.clone();
                    self.spawn(async move { me.run_agent(agent).await });
                }
            }
            tokio::select! {
                _ = crate::shutdown::requested(&mut shutdown) => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
        }
    }

    async fn run_agent(&self, agent: PluginRef) {
        let name = agent.name().to_string();
        let Some(info) = agent.description().and_then(|d| d.agent) else {
            return;
        };
        self.update(&name, |s| {
            *s = AgentState {
                plugin: name.clone(),
                name: info.name.clone(),
                description: info.description.clone(),
                interval_ms: info.interval.as_millis() as u64,
                status: AgentStatus::Idle,
                activity: "starting".into(),
                last_active: None,
                cycles: 0,
                last_error: None,
            }
        });
        self.publish(
            "agent.started",
            &name,
            json!({ "agent": name, "name": info.name, "interval_ms": info.interval.as_millis() as u64 }),
        );
        let mut shutdown = self.shared.shutdown.subscribe();
        loop {
            if !agent.is_loaded() || !agent.has_kind(Kind::BackgroundAgent) {
                break;
            }
            let interval = agent
                .description()
                .and_then(|d| d.agent)
                .map_or(Duration::from_secs(1), |a| a.interval);
            let paused = self.status(&name) == Some(AgentStatus::Paused);
            if !paused {
                self.tick(&agent, &name, interval).await;
            }
            tokio::select! {
                _ = crate::shutdown::requested(&mut shutdown) => {
                    // The seed's "Shutdown requested": listings taken while
                    // the host winds down show the agent as stopped.
                    self.update(&name, |s| {
                        s.status = AgentStatus::Stopped;
                        s.activity = "shutdown requested".into();
                    });
                    return;
                }
                _ = tokio::time::sleep(interval) => {}
            }
        }
        self.update(&name, |s| s.status = AgentStatus::Stopped);
        self.publish("agent.stopped", &name, json!({ "agent": name }));
    }

    async fn tick(&self, agent: &PluginRef, name: &str, interval: Duration) {
        self.update(name, |s| {
            s.status = AgentStatus::Running;
            s.interval_ms = interval.as_millis() as u64;
        });
        match agent.tick().await {
            Ok(outcome) => {
                let mut changed = false;
                self.update(name, |s| {
                    changed = s.activity != outcome.activity;
                    // Keep a pause that arrived during the tick.
                    if s.status == AgentStatus::Running {
                        s.status = AgentStatus::Idle;
                    }
                    s.activity = outcome.activity.clone();
                    s.last_active = Some(Utc::now());
                    s.cycles += 1;
                    s.last_error = None;
                });
                if changed {
                    self.publish(
                        "agent.activity",
                        name,
                        json!({ "agent": name, "activity": outcome.activity }),
                    );
                }
                if !outcome.actions.is_empty() {
                    let request = ActionRequest {
                        plugin: name.to_string(),
                        kind: Kind::BackgroundAgent,
                        cause: None,
                        actions: outcome.actions,
                    };
                    let _ = self.shared.actions.send(request).await;
                }
            }
            Err(e) => {
                let text = e.to_string();
                let mut first = false;
                self.update(name, |s| {
                    first =
                        s.status != AgentStatus::Error || s.last_error.as_deref() != Some(&text);
                    if s.status == AgentStatus::Running {
                        s.status = AgentStatus::Error;
                    }
                    s.last_active = Some(Utc::now());
                    s.last_error = Some(text.clone());
                });
                // The plugin room published the failure itself; this
                // event is about the agent's status, once per new error.
                if first {
                    self.publish("agent.error", name, json!({ "agent": name, "error": text }));
                }
            }
        }
    }

    /// Every agent's state, by plugin name.
    pub fn list(&self) -> Vec<AgentState> {
        self.shared.states.lock().values().cloned().collect()
    }

    /// Skip ticks until resumed.
    ///
    /// # Errors
    ///
    /// [`AgentError::Unknown`] when no agent has that name.
    pub fn pause(&self, name: &str) -> Result<(), AgentError> {
        self.set_paused(name, true)
    }

    /// Resume ticking.
    ///
    /// # Errors
    ///
    /// [`AgentError::Unknown`] when no agent has that name.
    pub fn resume(&self, name: &str) -> Result<(), AgentError> {
        self.set_paused(name, false)
    }

    fn set_paused(&self, name: &str, pause: bool) -> Result<(), AgentError> {
        {
            let mut states = self.shared.states.lock();
            let state = states
                .get_mut(name)
                .ok_or_else(|| AgentError::Unknown(name.to_string()))?;
            state.status = if pause {
                AgentStatus::Paused
            } else {
                AgentStatus::Idle
            };
        }
        self.publish(
            if pause {
                "agent.paused"
            } else {
                "agent.resumed"
            },
            name,
            json!({ "agent": name }),
        );
        Ok(())
    }

    /// Stop every agent loop and wait for them.
    pub async fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        let mut tasks = std::mem::take(&mut *self.tasks.lock());
        while tasks.join_next().await.is_some() {}
    }

    fn status(&self, name: &str) -> Option<AgentStatus> {
        self.shared.states.lock().get(name).map(|s| s.status)
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut AgentState)) {
        let mut states = self.shared.states.lock();
        let state = states
            .entry(name.to_string())
            .or_insert_with(|| AgentState {
                plugin: name.to_string(),
                name: name.to_string(),
                description: String::new(),
                interval_ms: 0,
                status: AgentStatus::Idle,
                activity: String::new(),
                last_active: None,
                cycles: 0,
                last_error: None,
            });
        f(state);
    }

    fn publish(&self, ty: &str, name: &str, data: serde_json::Value) {
        if let Err(e) = self
            .shared
            .bus
            .publish(NewEvent::new(SOURCE, ty, data).with_subject(name))
        {
            tracing::error!("could not publish an agent event: {e}");
        }
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.lock().spawn(task);
    }
}
