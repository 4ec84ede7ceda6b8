//! Dependencies between processes: the `depends_on` table, the graph
//! checks made at config time, the start order, and the wait a runner
//! makes before each spawn until its dependencies are satisfied.
//!
//! Conditions use process-compose's vocabulary: `started` (a run has
//! spawned), `healthy` (its readiness probe passes), `log_ready` (its `log`
//! readiness probe matched) and `completed_successfully` (it exited 0 and
//! is done). A dependant waits through a dependency's backoff and restart;
//! it fails, with the reason, only once the dependency has ended for good
//! in a state that can never satisfy the condition, so nothing is left
//! pending forever. Once a dependant runs, its dependencies' readiness no
//! longer concerns it: a brief readiness loss neither stops nor restarts it.
//!
//! Layout: this file holds the vocabulary ([`Condition`], [`DependsOn`]);
//! `graph` the checks at config time and the start order; `wait` the
//! judgement of a table against a `depends_on`, the runner's wait, and
//! the dependants-first order of a graceful shutdown.

mod graph;
mod wait;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub(crate) use graph::check_graph;
pub(super) use graph::start_order;
pub(super) use wait::{Waited, running_dependants, start_in_background, stop_after, wait};

/// What a dependant waits for in a dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// A run of it has spawned (the default of a plain list).
    #[serde(alias = "process_started")]
    Started,
    /// Its readiness probe passes (it needs a `readiness_probe`).
    #[serde(alias = "process_healthy")]
    Healthy,
    /// Its `log` readiness probe matched a line of the current run.
    #[serde(alias = "process_log_ready")]
    LogReady,
    /// It exited 0 and will not run again.
    #[serde(alias = "process_completed_successfully")]
    CompletedSuccessfully,
}

impl Condition {
    /// The name as written in `host.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::LogReady => "log_ready",
            Condition::CompletedSuccessfully => "completed_successfully",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `depends_on` of a process: dependency name → condition.
///
/// In `host.toml` either a table (`depends_on = { db = "healthy", migrate =
/// "completed_successfully" }`) or a list meaning `started` for each
/// (`depends_on = ["db"]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DependsOn(pub BTreeMap<String, Condition>);

impl DependsOn {
    /// True when the process depends on nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for DependsOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            List(Vec<String>),
            Table(BTreeMap<String, Condition>),
        }
        let shape = Shape::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a list of names or a table of name = \"started\" | \"healthy\" | \"log_ready\" | \"completed_successfully\"",
            )
        })?;
        Ok(DependsOn(match shape {
            Shape::List(names) => names.into_iter().map(|n| (n, Condition::Started)).collect(),
            Shape::Table(table) => table,
        }))
    }
}
