//! What plugins ask the host to do, in the host's own vocabulary.
//!
//! Plugins decide; the host acts. A guest returns WIT `action`s, the plugin
//! room converts them into [`Action`]s (rejecting malformed ones, e.g. an
//! `emit` whose data is not JSON) and hands them, with where they came from,
//! to whoever executes them (the `runtime` room).

use serde::Serialize;

use crate::bus::{Event, NewEvent};
use crate::coordination::Task;
use crate::supervisor::StatusUpdate;

use super::instance::Kind;

/// One decision of a plugin, validated and ready to execute.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Publish an event with source `plugin/<name>`.
    Emit {
        /// Event type.
        #[serde(rename = "type")]
        ty: String,
        /// Event subject.
        subject: Option<String>,
        /// Event payload.
        data: serde_json::Value,
    },
    /// Start a process.
    Start {
        /// Process name.
        name: String,
    },
    /// Stop a process (and its whole tree).
    Stop {
        /// Process name.
        name: String,
        /// Skip the grace period.
        force: bool,
    },
    /// Restart a process.
    Restart {
        /// Process name.
        name: String,
    },
    /// Pause (SIGSTOP) a process group.
    Pause {
        /// Process name.
        name: String,
    },
    /// Resume (SIGCONT) a process group.
    Resume {
        /// Process name.
        name: String,
    },
    /// Update progress, message or reported state of a process.
    SetStatus {
        /// Process name.
        name: String,
        /// The update.
        update: StatusUpdate,
    },
    /// Register a task with the coordinator.
    RegisterTask {
        /// The task.
        task: Task,
    },
}

impl Action {
    /// The action's name as used in events (`restart`, `set-status` ...).
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Emit { .. } => "emit",
            Self::Start { .. } => "start",
            Self::Stop { .. } => "stop",
            Self::Restart { .. } => "restart",
            Self::Pause { .. } => "pause",
            Self::Resume { .. } => "resume",
            Self::SetStatus { .. } => "set-status",
            Self::RegisterTask { .. } => "register-task",
        }
    }
}

/// The event whose handling led to a decision: its sequence, and its
/// depth in a chain of causes (0 for an event nothing caused). What the
/// decision produces is one deeper, which is how a loop between plugins is
/// seen and cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause {
    /// The causing event's sequence.
    pub sequence: u64,
    /// The causing event's depth.
    pub depth: u32,
}

impl Cause {
    /// The cause that handling `event` is.
    pub fn of(event: &Event) -> Cause {
        Cause {
            sequence: event.sequence,
            depth: event.depth,
        }
    }

    /// Marks `event` as produced by handling this cause (one level deeper).
    pub fn stamp(self, event: NewEvent) -> NewEvent {
        event.with_cause(self.sequence, self.depth.saturating_add(1))
    }
}

/// A batch of actions and where they came from, sent to the executor.
#[derive(Debug, Clone)]
pub struct ActionRequest {
    /// Name of the plugin that decided.
    pub plugin: String,
    /// The kind of call that decided (a status mapper's `set-status` for
    /// the process it was fed needs no grant; anyone else's does).
    pub kind: Kind,
    /// The event that triggered the decision, if any (agents' ticks have
    /// none).
    pub cause: Option<Cause>,
    /// The actions, in the order the plugin returned them.
    pub actions: Vec<Action>,
}
