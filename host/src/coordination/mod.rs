//! The coordination room: a registry of tasks and dependency detection
//! over dependency-rule plugins (seed 003).
//!
//! Detection asks each rule only about candidate pairs: tasks are indexed
//! by the words of their title, description and keywords, and a rule that
//! declares keywords sees only pairs where both tasks mention one of them
//! (a rule with no keywords sees every pair). Pairs in the same repository
//! are skipped unless configured otherwise, as in the seed. A 0.2 rule is
//! asked about all its candidates in one `check-batch` call. The
//! registration's `task.registered` and its hits (`dependency.detected`)
//! are published together, in one journal commit.

mod index;
mod sessions;
mod sessions_consumer;
mod sessions_model;
mod task;

use std::sync::Arc;

use parking_lot::Mutex;

use serde_json::json;

use crate::bus::{Bus, NewEvent};
use crate::plugins::{Kind, PluginHost};

use index::KeywordIndex;
pub use sessions::{SessionSummary, Sessions};
pub use sessions_consumer::{CONSUMER as SESSIONS_CONSUMER, start as start_sessions};
pub use sessions_model::{
    Message, MessageKind, Session, SessionConfig, SessionError, SessionKind, SessionStatus, Verdict,
};
pub use task::{Dependency, Task};

/// Source of coordination events.
const SOURCE: &str = "host/coordination";

/// Settings of the coordinator (`[coordination]` in host.toml).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoordinationConfig {
    /// Skip pairs of tasks in the same repository (seed semantics).
    /// Example: `skip_same_repository = false`
    pub skip_same_repository: bool,
    /// `[coordination.sessions]`: thresholds of coordination sessions.
    pub sessions: SessionConfig,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        Self {
            skip_same_repository: true,
            sessions: SessionConfig::default(),
        }
    }
}

/// Why a task could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    /// The task is malformed.
    #[error("task `{id}`: `{field}` {reason}")]
    InvalidTask {
        /// The task id.
        id: String,
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Default)]
struct Registry {
    /// The tasks, filed by their words.
    index: KeywordIndex,
    dependencies: Vec<Dependency>,
}

/// Tasks, and the dependencies rules found between them.
#[derive(Clone)]
pub struct Coordinator {
    registry: Arc<Mutex<Registry>>,
    bus: Bus,
    plugins: PluginHost,
    config: CoordinationConfig,
}

impl Coordinator {
    /// A coordinator with no tasks, asking the rule plugins of `plugins`.
    pub fn new(bus: Bus, plugins: PluginHost, config: CoordinationConfig) -> Self {
        Self {
            registry: Arc::default(),
            bus,
            plugins,
            config,
        }
    }

    /// Register (or replace) a task and detect its dependencies on the
    /// tasks already known. Returns what was found.
    ///
    /// `by` names who registered it (`config`, `plugin/NAME`, ...).
    ///
    /// # Errors
    ///
    /// [`CoordinationError::InvalidTask`] when the id or title is empty.
    pub async fn register(
        &self,
        task: Task,
        by: &str,
    ) -> Result<Vec<Dependency>, CoordinationError> {
        if task.id.trim().is_empty() {
            return Err(CoordinationError::InvalidTask {
                id: task.id,
                field: "id",
                reason: "must not be empty".into(),
            });
        }
        if task.title.trim().is_empty() {
            return Err(CoordinationError::InvalidTask {
                id: task.id,
                field: "title",
                reason: "must not be empty".into(),
            });
        }
        {
            let mut reg = self.registry.lock();
            if let Some(old) = reg.index.remove(&task.id) {
                reg.dependencies
                    .retain(|d| d.task != old.id && d.depends_on != old.id);
            }
        }
        // Each rule runs on its own worker, so the rules are asked at once;
        // results are kept in rule order.
        let rules = self.plugins.with_kind(Kind::DependencyRule);
        let keywords: Vec<Vec<String>> = rules.iter().map(rule_keywords).collect();
        let candidates = self.candidates(&task, &keywords);
        let mut asks = Vec::new();
        for (rule, candidates) in rules.iter().zip(&candidates) {
            if candidates.is_empty() {
                continue;
            }
            let task = &task;
            asks.push(async move { rule.check_many(task, candidates).await });
        }
        let mut found = Vec::new();
        for answer in futures::future::join_all(asks).await {
            match answer {
                Ok(deps) => found.extend(deps),
                // Already published as plugin.failed / plugin.error.
                Err(e) => tracing::warn!("dependency rule: {e}"),
            }
        }
        {
            let mut reg = self.registry.lock();
            reg.index.insert(Arc::new(task.clone()));
            reg.dependencies.extend(found.iter().cloned());
        }
        // One journal commit for the registration and everything it found:
        // a commit per event cost more than the rules did (66 ms for ~400 hits).
        if let Err(e) = self
            .bus
            .commit_all_async(registration_events(&task, by, &found))
            .await
        {
            tracing::error!(
                "could not publish the registration of task `{}`: {e}",
                task.id
            );
        }
        Ok(found)
    }

    /// The tasks each rule should see paired with `task`, for rules with
    /// these `keywords` (one list per rule). Rules declaring the same
    /// keywords share one selection.
    pub(crate) fn candidates(&self, task: &Task, keywords: &[Vec<String>]) -> Vec<Candidates> {
        let own = index::words(task);
        let reg = self.registry.lock();
        let mut chosen: Vec<(&[String], Candidates)> = Vec::new();
        keywords
            .iter()
            .map(|keywords| {
                if let Some((_, same)) = chosen.iter().find(|(k, _)| *k == keywords.as_slice()) {
                    return same.clone();
                }
                let tasks: Candidates = reg
                    .index
                    .candidates(&own, keywords)
                    .into_iter()
                    .filter(|other| {
                        other.id != task.id
                            && !(self.config.skip_same_repository
                                && other.repository == task.repository)
                    })
                    .collect();
                chosen.push((keywords, tasks.clone()));
                tasks
            })
            .collect()
    }

    /// One registered task, by id.
    pub fn task(&self, id: &str) -> Option<Task> {
        self.registry.lock().index.get(id).map(|t| Task::clone(t))
    }

    /// Every registered task, in id order.
    pub fn tasks(&self) -> Vec<Task> {
        let reg = self.registry.lock();
        reg.index.tasks().map(|t| Task::clone(t)).collect()
    }

    /// Every dependency found so far.
    pub fn dependencies(&self) -> Vec<Dependency> {
        let reg = self.registry.lock();
        reg.dependencies.clone()
    }
}

/// The tasks one rule is asked about, shared by rules with the same keywords.
pub(crate) type Candidates = Arc<[Arc<Task>]>;

/// The keywords a rule declared (none: it sees every task).
pub(crate) fn rule_keywords(rule: &crate::plugins::PluginRef) -> Vec<String> {
    rule.description()
        .and_then(|d| d.rule)
        .map(|r| r.keywords)
        .unwrap_or_default()
}

/// The events of one registration: `task.registered`, then one
/// `dependency.detected` per hit, all about the new task.
pub(crate) fn registration_events(task: &Task, by: &str, found: &[Dependency]) -> Vec<NewEvent> {
    let mut events = Vec::with_capacity(1 + found.len());
    events.push(
        NewEvent::new(SOURCE, "task.registered", json!({ "task": task, "by": by }))
            .with_subject(&task.id),
    );
    events.extend(found.iter().map(|dep| {
        NewEvent::new(
            SOURCE,
            "dependency.detected",
            serde_json::to_value(dep).unwrap_or_default(),
        )
        .with_subject(&task.id)
    }));
    events
}
