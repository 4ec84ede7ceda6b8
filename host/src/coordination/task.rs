//! Tasks and dependencies: the vocabulary of coordination (seed 003's
//! TaskContext and Dependency).

use std::borrow::Borrow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A unit of work that dependency rules reason about. `[[task]]` entries of
/// `host.toml` deserialize straight into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Unique id. Example: `id = "auth-api"`
    pub id: String,
    /// Repository the work happens in. Example: `repository = "backend"`
    #[serde(default)]
    pub repository: String,
    /// Short title. Example: `title = "Add /login endpoint"`
    pub title: String,
    /// Longer description.
    #[serde(default)]
    pub description: String,
    /// Keywords rules index on. Example: `keywords = ["api", "auth"]`
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Who works on it, if anyone.
    #[serde(default)]
    pub agent: Option<String>,
}

/// A registered task and the number the coordinator gave it, which is how
/// rules that remember tasks (WIT `task-memory`) are asked about it: a
/// number always means the same text, and a task registered again gets a
/// new one, so a rule's memory of a number can never be stale.
#[derive(Debug, Clone)]
pub struct NumberedTask {
    /// Unique for the life of the coordinator; never reused.
    pub number: u32,
    /// The task's id, shared: every dependency found on it names it.
    pub id: Arc<str>,
    /// The task as registered.
    pub task: Arc<Task>,
}

impl NumberedTask {
    /// `task` under `number`.
    pub fn new(number: u32, task: Task) -> Self {
        Self {
            number,
            id: task.id.as_str().into(),
            task: Arc::new(task),
        }
    }
}

impl Borrow<Task> for NumberedTask {
    fn borrow(&self) -> &Task {
        &self.task
    }
}

/// A dependency a rule found between two tasks.
///
/// The text is shared (`Arc<str>`): a dense registration finds thousands
/// of dependencies that name the same rule and task, and a rule's grouped
/// answer gives many the same relationship and reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Dependency {
    /// The rule plugin that found it.
    pub rule: Arc<str>,
    /// The task being registered when the rule found the dependency.
    pub task: Arc<str>,
    /// The task registered earlier that it depends on / relates to.
    pub depends_on: Arc<str>,
    /// Kind of relationship, e.g. `api-contract`.
    pub relationship: Arc<str>,
    /// The rule's explanation.
    pub reason: Arc<str>,
    /// 0.0 ..= 1.0.
    #[serde(serialize_with = "tidy")]
    pub confidence: f32,
}

/// Writes an `f32` as the decimal it was meant to be (`0.95`, not
/// `0.949999988079071`, which is what widening it to JSON's f64 gives).
fn tidy<S: serde::Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(tidy_f32(*x))
}

/// `x` as the decimal it was meant to be, to six places: `0.4`, not
/// `0.4000000059604645` (confidences, progress and CPU shares need no more).
pub(crate) fn tidy_f32(x: f32) -> f64 {
    (f64::from(x) * 1e6).round() / 1e6
}

/// A dependency of task `new` on task `t<on>` found by `rule`, for tests.
#[cfg(test)]
pub(crate) fn example_dependency(rule: &str, on: usize, reason: &str) -> Dependency {
    Dependency {
        rule: rule.into(),
        task: "new".into(),
        depends_on: format!("t{on}").into(),
        relationship: "api-contract".into(),
        reason: reason.into(),
        confidence: 0.5,
    }
}
