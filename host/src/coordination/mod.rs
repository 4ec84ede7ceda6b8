//! The coordination room: a registry of tasks and dependency detection
//! over dependency-rule plugins (seed 003).
//!
//! Detection asks each rule only about candidate pairs: tasks are indexed
//! by the words of their title, description and keywords, and a rule that
//! declares keywords sees only pairs where both tasks mention one of them
//! (a rule with no keywords sees every pair). Pairs in the same repository
//! are skipped unless configured otherwise, as in the seed. A 0.2 rule is
//! asked about all its candidates in one `check-batch` call, and a rule
//! that remembers tasks (`task-memory`) by their numbers only, each task's
//! text handed over once. The
//! registration's `task.registered` and its hits (`dependency.detected`,
//! one per rule with the rule's hits grouped by what they share, see
//! `detected.rs`) are published together, in one journal commit.

mod detected;
mod index;
mod sessions;
mod sessions_consumer;
mod sessions_model;
mod task;

use std::sync::Arc;

use parking_lot::Mutex;

use crate::bus::Bus;
use crate::plugins::{Kind, PluginHost};

pub(crate) use detected::registration_events;
use index::KeywordIndex;
pub use sessions::{SessionSummary, Sessions};
pub use sessions_consumer::{CONSUMER as SESSIONS_CONSUMER, start as start_sessions};
pub use sessions_model::{
    Message, MessageKind, Session, SessionConfig, SessionError, SessionKind, SessionStatus, Verdict,
};
pub(crate) use task::tidy_f32;
pub use task::{Dependency, NumberedTask, Task};

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
    /// What each registration found, as it returned it (shared, not
    /// copied: a dense registration finds thousands).
    dependencies: Vec<Arc<[Dependency]>>,
    /// The number the next registration gets ([`NumberedTask`]).
    next_number: u32,
}

impl Registry {
    /// Drops every dependency from or on the task `id`.
    fn forget_dependencies_of(&mut self, id: &str) {
        let involves = |d: &Dependency| *d.task == *id || *d.depends_on == *id;
        for found in &mut self.dependencies {
            if found.iter().any(involves) {
                *found = found.iter().filter(|d| !involves(d)).cloned().collect();
            }
        }
        self.dependencies.retain(|found| !found.is_empty());
    }

    /// A number no task had before ([`NumberedTask`]).
    fn take_number(&mut self) -> u32 {
        let number = self.next_number;
        self.next_number = number
            .checked_add(1)
            .expect("fewer than 4 billion registrations");
        number
    }
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
    /// tasks already known. Returns what was found (shared with the
    /// registry, which keeps it).
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
    ) -> Result<Arc<[Dependency]>, CoordinationError> {
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
        let number = {
            let mut reg = self.registry.lock();
            if let Some(old) = reg.index.remove(&task.id) {
                reg.forget_dependencies_of(&old.task.id);
            }
            reg.take_number()
        };
        let task = NumberedTask::new(number, task);
        // Each rule runs on its own worker, so the rules are asked at once;
        // results are kept in rule order.
        let rules = self.plugins.with_kind(Kind::DependencyRule);
        let keywords: Vec<Vec<String>> = rules.iter().map(rule_keywords).collect();
        let candidates = self.candidates(&task.task, &keywords);
        let mut asks = Vec::new();
        for (rule, candidates) in rules.iter().zip(&candidates) {
            if candidates.is_empty() {
                continue;
            }
            let task = &task;
            asks.push(async move { rule.check_numbered(task, candidates).await });
        }
        let mut found = Vec::new();
        for answer in futures::future::join_all(asks).await {
            match answer {
                Ok(deps) => found.extend(deps),
                // Already published as plugin.failed / plugin.error.
                Err(e) => tracing::warn!("dependency rule: {e}"),
            }
        }
        let found: Arc<[Dependency]> = found.into();
        {
            let mut reg = self.registry.lock();
            reg.index.insert(task.clone());
            if !found.is_empty() {
                reg.dependencies.push(found.clone());
            }
        }
        let task: &Task = &task.task;
        // One journal commit for the registration and everything it found
        // (a commit per event cost more than the rules did: 26 of the 65 ms
        // of 4,016 hits), with one list per rule rather than one event per hit.
        if let Err(e) = self
            .bus
            .commit_all_async(registration_events(
                task,
                by,
                &found,
                self.bus.max_event_bytes(),
            ))
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
                        other.task.id != task.id
                            && !(self.config.skip_same_repository
                                && other.task.repository == task.repository)
                    })
                    .collect();
                chosen.push((keywords, tasks.clone()));
                tasks
            })
            .collect()
    }

    /// `task` with a number of its own, not registered: how `host bench`
    /// asks rules about a task phase by phase as `register` would.
    pub(crate) fn numbered(&self, task: Task) -> NumberedTask {
        NumberedTask::new(self.registry.lock().take_number(), task)
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
        reg.dependencies
            .iter()
            .flat_map(|found| found.iter())
            .cloned()
            .collect()
    }
}

/// The tasks one rule is asked about, shared by rules with the same keywords.
pub(crate) type Candidates = Arc<[NumberedTask]>;

/// The keywords a rule declared (none: it sees every task).
pub(crate) fn rule_keywords(rule: &crate::plugins::PluginRef) -> Vec<String> {
    rule.description()
        .and_then(|d| d.rule)
        .map(|r| r.keywords)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::task::example_dependency as dependency;

    #[test]
    fn a_replaced_task_takes_its_dependencies_both_ways_with_it_and_only_those() {
        let mut reg = Registry::default();
        let from = |task: &str, on: usize| Dependency {
            task: task.into(),
            ..dependency("api", on, "shares orders")
        };
        reg.dependencies
            .push(vec![from("a", 1), from("a", 2)].into());
        reg.dependencies.push(vec![from("b", 1)].into());
        reg.dependencies
            .push(vec![from("c", 2), from("c", 3)].into());
        reg.forget_dependencies_of("t2");
        reg.forget_dependencies_of("a");
        let left: Vec<(String, String)> = reg
            .dependencies
            .iter()
            .flat_map(|found| found.iter())
            .map(|d| (d.task.to_string(), d.depends_on.to_string()))
            .collect();
        assert_eq!(left, [("b".into(), "t1".into()), ("c".into(), "t3".into())]);
        assert_eq!(reg.dependencies.len(), 2, "emptied lists are dropped");
        assert_eq!((reg.take_number(), reg.take_number()), (0, 1));
    }
}
