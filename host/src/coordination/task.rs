//! Tasks and dependencies: the vocabulary of coordination (seed 003's
//! TaskContext and Dependency).

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

/// A dependency a rule found between two tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Dependency {
    /// The rule plugin that found it.
    pub rule: String,
    /// The task registered earlier.
    pub task: String,
    /// The task it depends on / relates to.
    pub depends_on: String,
    /// Kind of relationship, e.g. `api-contract`.
    pub relationship: String,
    /// The rule's explanation.
    pub reason: String,
    /// 0.0 ..= 1.0.
    pub confidence: f32,
}
