//! Operations on the other rooms: plugins, agents, tasks and dependencies,
//! the log's statistics, and the host's health.

use std::collections::BTreeMap;

use crate::agents::AgentState;
use crate::bus::BusStats;
use crate::coordination::{Dependency, Task};
use crate::plugins::PluginSummary;

use super::control::Control;
use super::error::ApiError;
use super::model::{AgentStatusView, PluginStatus, Readiness, Registered};

impl Control {
    /// Every loaded plugin with its health and how far behind the log it is.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        let head = self.bus.head();
        self.plugins
            .list()
            .into_iter()
            .map(|summary| {
                let lag = self
                    .plugins
                    .get(&summary.name)
                    .map(|p| p.cursors())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(kind, cursor)| (kind.to_string(), head.saturating_sub(cursor)))
                    .collect();
                plugin_status(summary, lag)
            })
            .collect()
    }

    /// One plugin.
    ///
    /// # Errors
    ///
    /// 404 naming the loaded plugins.
    pub fn plugin(&self, name: &str) -> Result<PluginStatus, ApiError> {
        self.plugins()
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| self.unknown_plugin(name))
    }

    /// Reloads a plugin from disk even if unchanged (lifts a quarantine).
    ///
    /// # Errors
    ///
    /// 404 naming the loaded plugins; 500 with the load error (the old
    /// version keeps serving).
    pub async fn reload_plugin(&self, name: &str) -> Result<PluginStatus, ApiError> {
        if self.plugins.get(name).is_none() {
            return Err(self.unknown_plugin(name));
        }
        self.plugins.reload(name).await?;
        self.plugin(name)
    }

    /// Approves the new grants a refused version of a plugin asked for
    /// (`plugin.reload_refused`) and swaps that version in.
    ///
    /// # Errors
    ///
    /// 404 naming the loaded plugins; 409 when nothing awaits approval, or
    /// when the files now ask for more than was refused (that is refused in
    /// turn and awaits its own approval); 500 with a load error.
    pub async fn approve_plugin(&self, name: &str) -> Result<PluginStatus, ApiError> {
        if self.plugins.get(name).is_none() {
            return Err(self.unknown_plugin(name));
        }
        self.plugins.approve(name).await?;
        self.plugin(name)
    }

    fn unknown_plugin(&self, name: &str) -> ApiError {
        ApiError::unknown(
            "plugin",
            name,
            self.plugins.list().into_iter().map(|p| p.name),
        )
    }

    /// Every background agent.
    pub fn agents(&self) -> Vec<AgentStatusView> {
        self.agents.list().into_iter().map(agent_view).collect()
    }

    /// Skips an agent's ticks until resumed.
    ///
    /// # Errors
    ///
    /// 404 naming the agents.
    pub fn pause_agent(&self, name: &str) -> Result<AgentStatusView, ApiError> {
        self.agents
            .pause(name)
            .map_err(|_| self.unknown_agent(name))?;
        self.agent(name)
    }

    /// Resumes an agent's ticks.
    ///
    /// # Errors
    ///
    /// 404 naming the agents.
    pub fn resume_agent(&self, name: &str) -> Result<AgentStatusView, ApiError> {
        self.agents
            .resume(name)
            .map_err(|_| self.unknown_agent(name))?;
        self.agent(name)
    }

    fn agent(&self, name: &str) -> Result<AgentStatusView, ApiError> {
        self.agents()
            .into_iter()
            .find(|a| a.plugin == name)
            .ok_or_else(|| self.unknown_agent(name))
    }

    fn unknown_agent(&self, name: &str) -> ApiError {
        ApiError::unknown(
            "agent",
            name,
            self.agents.list().into_iter().map(|a| a.plugin),
        )
    }

    /// Every registered task.
    pub fn tasks(&self) -> Vec<Task> {
        self.coordinator.tasks()
    }

    /// Registers (or replaces) a task; the rules are asked about it.
    ///
    /// # Errors
    ///
    /// 400 for an empty id or title.
    pub async fn register_task(&self, task: Task) -> Result<Registered, ApiError> {
        let dependencies = self.coordinator.register(task.clone(), "api").await?;
        Ok(Registered {
            task,
            dependencies: dependencies.to_vec(),
        })
    }

    /// Every dependency found so far.
    pub fn dependencies(&self) -> Vec<Dependency> {
        self.coordinator.dependencies()
    }

    /// Counts over the log: by type, by source, events in the last minute.
    pub fn stats(&self) -> BusStats {
        self.bus.stats()
    }

    /// Whether the host can do its job: the journal takes writes, the
    /// plugins folder has loaded, and no plugin is quarantined.
    pub fn readiness(&self) -> Readiness {
        let mut checks = BTreeMap::new();
        let mut reasons = Vec::new();
        // Checked without writing: a probe every few seconds must not fill
        // the log it looks after.
        let journal = crate::bus::journal_path(&self.state_dir);
        let writable = nix::unistd::access(&journal, nix::unistd::AccessFlags::W_OK)
            .map_err(|e| format!("the journal {} is not writable: {e}", journal.display()))
            .and_then(|()| {
                let fs = nix::sys::statvfs::statvfs(&self.state_dir)
                    .map_err(|e| format!("cannot check the state folder's disk: {e}"))?;
                if fs.blocks_available() == 0 {
                    return Err(format!("no space left on {}", self.state_dir.display()));
                }
                Ok(())
            });
        if let Err(reason) = &writable {
            reasons.push(reason.clone());
        }
        checks.insert("journal_writable".to_string(), writable.is_ok());
        let quarantined: Vec<String> = self
            .plugins
            .list()
            .into_iter()
            .filter(|p| p.health.quarantined)
            .map(|p| p.name)
            .collect();
        if !quarantined.is_empty() {
            reasons.push(format!("quarantined plugins: {}", quarantined.join(", ")));
        }
        checks.insert("plugins_serving".to_string(), quarantined.is_empty());
        let loaded = *self.plugins_loaded.borrow();
        if !loaded {
            reasons.push("plugins are still loading".to_string());
        }
        checks.insert("plugins_loaded".to_string(), loaded);
        Readiness {
            ready: reasons.is_empty(),
            checks,
            reasons,
        }
    }
}

fn plugin_status(p: PluginSummary, lag: BTreeMap<String, u64>) -> PluginStatus {
    PluginStatus {
        state: if p.health.quarantined {
            "quarantined".into()
        } else {
            "serving".into()
        },
        name: p.name,
        version: p.version,
        kinds: p.kinds.iter().map(|k| k.to_string()).collect(),
        calls: p.health.calls,
        failures: p.health.failures,
        errors: p.health.errors,
        consecutive_failures: p.health.consecutive_failures,
        quarantined: p.health.quarantined,
        skipped: p.health.skipped_while_quarantined,
        last_error: p.health.last_error,
        lag,
        loaded_at: p.health.loaded_at,
        digest: p.digest,
        awaiting_approval: p.awaiting_approval,
    }
}

fn agent_view(a: AgentState) -> AgentStatusView {
    AgentStatusView {
        status: serde_json::to_value(a.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        plugin: a.plugin,
        name: a.name,
        description: a.description,
        interval_ms: a.interval_ms,
        activity: a.activity,
        last_active: a.last_active,
        cycles: a.cycles,
        last_error: a.last_error,
    }
}
