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
//! one per rule with the rule's list) are published together, in one
//! journal commit.

mod index;
mod sessions;
mod sessions_consumer;
mod sessions_model;
mod task;

use std::sync::Arc;

use parking_lot::Mutex;

use serde::Serialize;
use serde_json::json;

use crate::bus::{Bus, EventData, NewEvent};
use crate::plugins::{Kind, PluginHost};

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
        let involves = |d: &Dependency| d.task == id || d.depends_on == id;
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
        let task = NumberedTask {
            number,
            task: Arc::new(task),
        };
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
        NumberedTask {
            number: self.registry.lock().take_number(),
            task: Arc::new(task),
        }
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

/// The events of one registration: `task.registered`, then, for each rule
/// that found something, `dependency.detected` with the rule's hits in a
/// `dependencies` list, all about the new task.
///
/// One event per rule rather than one per pair: a new task touching a
/// thousand others is four events, not four thousand (committing an event
/// costs ~6 µs, which was most of a dense registration). A list that would
/// pass half of `max_event_bytes` is split into `parts` events, numbered
/// by `part` from 1, so no hit is lost to the size limit.
pub(crate) fn registration_events(
    task: &Task,
    by: &str,
    found: &[Dependency],
    max_event_bytes: usize,
) -> Vec<NewEvent> {
    let mut events = vec![
        NewEvent::new(SOURCE, "task.registered", json!({ "task": task, "by": by }))
            .with_subject(&task.id),
    ];
    let budget = (max_event_bytes / 2).max(1);
    for by_rule in found.chunk_by(|a, b| a.rule == b.rule) {
        let parts = split_by_size(by_rule, budget);
        let count = parts.len();
        for (k, part) in parts.into_iter().enumerate() {
            // Written straight to text, with no `Value` tree on the way: half
            // the cost of a dense registration's commit was building maps of
            // every field, only for the journal to write them out as text.
            let detected = Detected {
                task: &task.id,
                rule: &by_rule[0].rule,
                dependencies: part.iter().map(Hit::of).collect(),
                part: k + 1,
                parts: count,
            };
            let data =
                EventData::serialized(&detected).expect("strings and numbers always serialize");
            events.push(NewEvent::new(SOURCE, "dependency.detected", data).with_subject(&task.id));
        }
    }
    events
}

/// The data of one `dependency.detected`: a rule's hits for a new task.
#[derive(Serialize)]
struct Detected<'a> {
    task: &'a str,
    rule: &'a str,
    dependencies: Vec<Hit<'a>>,
    part: usize,
    parts: usize,
}

/// One dependency in a `dependency.detected` list: what is not already
/// said once for the whole list (`task`, `rule`).
#[derive(Serialize)]
struct Hit<'a> {
    depends_on: &'a str,
    relationship: &'a str,
    reason: &'a str,
    confidence: f64,
}

impl<'a> Hit<'a> {
    fn of(d: &'a Dependency) -> Self {
        Hit {
            depends_on: &d.depends_on,
            relationship: &d.relationship,
            reason: &d.reason,
            confidence: task::tidy_f32(d.confidence),
        }
    }
}

/// `found` cut into runs whose JSON stays within about `budget` bytes
/// (each run holds at least one dependency).
fn split_by_size(found: &[Dependency], budget: usize) -> Vec<&[Dependency]> {
    // Field names, punctuation and the confidence: an over-estimate, so a
    // run never passes its budget.
    const OVERHEAD: usize = 128;
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, d) in found.iter().enumerate() {
        let size = OVERHEAD
            + [&d.depends_on, &d.relationship, &d.reason]
                .into_iter()
                .map(|text| escaped_len(text))
                .sum::<usize>();
        if i > start && bytes + size > budget {
            runs.push(&found[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < found.len() {
        runs.push(&found[start..]);
    }
    runs
}

/// Bytes `text` takes as a JSON string at most: a quote or backslash takes
/// two, a control character six (`\u0001`).
fn escaped_len(text: &str) -> usize {
    2 + text.len()
        + text
            .bytes()
            .map(|b| match b {
                b'"' | b'\\' => 1,
                0..0x20 => 5,
                _ => 0,
            })
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dependency(rule: &str, on: usize, reason: &str) -> Dependency {
        Dependency {
            rule: rule.into(),
            task: "new".into(),
            depends_on: format!("t{on}"),
            relationship: "api-contract".into(),
            reason: reason.into(),
            confidence: 0.5,
        }
    }

    fn task() -> Task {
        Task {
            id: "new".into(),
            repository: "r".into(),
            title: "New".into(),
            description: String::new(),
            keywords: vec![],
            agent: None,
        }
    }

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
            .map(|d| (d.task.clone(), d.depends_on.clone()))
            .collect();
        assert_eq!(left, [("b".into(), "t1".into()), ("c".into(), "t3".into())]);
        assert_eq!(reg.dependencies.len(), 2, "emptied lists are dropped");
        assert_eq!((reg.take_number(), reg.take_number()), (0, 1));
    }

    #[test]
    fn a_registration_is_its_task_then_one_list_per_rule() {
        let found: Vec<_> = (0..3)
            .map(|i| dependency("api", i, "shares orders"))
            .chain([dependency("db", 7, "shares tables")])
            .collect();
        let events = registration_events(&task(), "test", &found, 1 << 20);
        let types: Vec<&str> = events.iter().map(|e| e.ty.as_str()).collect();
        assert_eq!(
            types,
            [
                "task.registered",
                "dependency.detected",
                "dependency.detected"
            ]
        );
        assert_eq!(events[1].data["rule"], "api");
        assert_eq!(events[1].data["dependencies"].as_array().unwrap().len(), 3);
        assert_eq!(events[1].data["dependencies"][2]["depends_on"], "t2");
        assert_eq!(events[2].data["dependencies"][0]["depends_on"], "t7");
        assert!(events.iter().all(|e| e.subject.as_deref() == Some("new")));
        // Nothing found: the registration alone.
        assert_eq!(registration_events(&task(), "test", &[], 1 << 20).len(), 1);
    }

    #[test]
    fn a_list_past_half_the_event_limit_is_split_into_numbered_parts_losing_nothing() {
        // Quotes and control characters count at their escaped size.
        let reason = "\"quoted\"\u{1}".repeat(40);
        let found: Vec<_> = (0..500).map(|i| dependency("api", i, &reason)).collect();
        let limit = 64 * 1024;
        let events = registration_events(&task(), "test", &found, limit);
        let lists = &events[1..];
        assert!(lists.len() > 1, "split");
        let mut seen = Vec::new();
        for (k, e) in lists.iter().enumerate() {
            let bytes = serde_json::to_vec(&e.data).unwrap().len();
            assert!(bytes <= limit / 2, "part {k} is {bytes} bytes");
            assert_eq!(e.data["part"], k + 1);
            assert_eq!(e.data["parts"], lists.len());
            for d in e.data["dependencies"].as_array().unwrap() {
                seen.push(d["depends_on"].as_str().unwrap().to_string());
            }
        }
        let expected: Vec<String> = (0..500).map(|i| format!("t{i}")).collect();
        assert_eq!(seen, expected);
        // One dependency larger than the budget still goes, alone.
        let huge = dependency("api", 1, &"x".repeat(limit));
        assert_eq!(
            registration_events(&task(), "test", &[huge], limit).len(),
            2
        );
    }
}
