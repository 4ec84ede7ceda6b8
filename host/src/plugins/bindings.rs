//! Host bindings generated from `wit/` and the conversions between WIT
//! values and the host's own types.
//!
//! The generated code stays private to the plugin room (a guest-facing
//! shape must never leak into the host's public API); everything crossing
//! the boundary goes through the functions here, which is also where values
//! from guests are validated.
//!
//! Two package versions are bound: `host:plugin@0.2.0` (`wit/`) and, for
//! older guests, `host:plugin@0.1.0` (`wit/v0.1/`). 0.2 only added
//! functions and types, so the 0.1 bindings reuse the 0.2 `types` module
//! (`with:`): a value has one Rust type whichever version the guest speaks,
//! and `guest.rs` puts the two versions' exports behind one type per kind.

use crate::bus::Event;
use crate::coordination::{NumberedTask, Task};
use crate::supervisor::{ProcessInfo, ProcessState, StatusUpdate};

use super::action::Action;

mod generated {
    wasmtime::component::bindgen!({
        world: "host-bindings",
        path: "../wit",
        // Host functions may trap the guest (e.g. a state quota exceeded).
        imports: { default: trappable },
    });
}

/// `host:plugin@0.1.0`: its own exports and `host` import, the 0.2 types.
mod generated_v01 {
    wasmtime::component::bindgen!({
        world: "full-plugin",
        path: "../wit/v0.1",
        imports: { default: trappable },
        with: { "host:plugin/types": super::generated::host::plugin::types },
    });
}

pub(crate) use generated::HostBindings;
pub(crate) use generated::exports::host::plugin::{
    background_agent, dependency_rule, event_handler, grouped_memory, status_mapper, task_memory,
};
pub(crate) use generated::host::plugin::host as host_api;
pub(crate) use generated::host::plugin::types as wit;

/// The 0.1 exports and host import, for guests built against `wit/v0.1/`.
pub(crate) mod v01 {
    pub(crate) use super::generated_v01::exports::host::plugin::{
        background_agent, dependency_rule, event_handler, status_mapper,
    };
    pub(crate) use super::generated_v01::host::plugin::host as host_api;
}

/// The package versions the host loads, newest first, as they appear in
/// export names (`host:plugin/event-handler@0.2.0`).
pub(crate) const VERSIONS: [WitVersion; 2] = [WitVersion::V02, WitVersion::V01];

/// Which `host:plugin` package a guest was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WitVersion {
    /// `host:plugin@0.1.0`: no `check-batch`, `history` or `stats`.
    V01,
    /// `host:plugin@0.2.0`.
    V02,
}

impl WitVersion {
    /// The prefix of an export name's version for this package version.
    pub(crate) fn export_suffix(self) -> &'static str {
        match self {
            Self::V01 => "@0.1.",
            Self::V02 => "@0.2.",
        }
    }
}

/// Fully qualified export names, without the version, per kind.
pub(crate) const EVENT_HANDLER: &str = "host:plugin/event-handler";
pub(crate) const STATUS_MAPPER: &str = "host:plugin/status-mapper";
pub(crate) const DEPENDENCY_RULE: &str = "host:plugin/dependency-rule";
pub(crate) const BACKGROUND_AGENT: &str = "host:plugin/background-agent";
/// A dependency rule's optional memory of tasks (0.2 only; not a kind).
pub(crate) const TASK_MEMORY: &str = "host:plugin/task-memory";
/// A remembering rule's optional grouped answers (0.2 only; not a kind).
pub(crate) const GROUPED_MEMORY: &str = "host:plugin/grouped-memory";

/// Most bytes kept of an error string or a log line from a guest.
pub(crate) const MAX_TEXT: usize = 4096;
/// Most bytes kept of a status message or a name or description a plugin
/// gives itself.
pub(crate) const MAX_LABEL: usize = 1024;

/// Cut `text` to at most `max` bytes (at a character boundary), ending it
/// with a marker that says how much was cut.
pub(crate) fn truncate(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("… [{cut} more bytes cut]"));
    text
}

pub(crate) fn event_to_wit(e: &Event) -> wit::Event {
    wit::Event {
        id: e.id.clone(),
        source: e.source.clone(),
        type_: e.ty.clone(),
        subject: e.subject.clone(),
        time: e.time.to_rfc3339(),
        sequence: e.sequence,
        data: e.data.to_string(),
    }
}

pub(crate) fn state_to_wit(s: ProcessState) -> wit::ProcessState {
    use wit::ProcessState as W;
    match s {
        ProcessState::Pending => W::Pending,
        ProcessState::Starting => W::Starting,
        ProcessState::Running => W::Running,
        ProcessState::Paused => W::Paused,
        ProcessState::Stopping => W::Stopping,
        ProcessState::Completed => W::Completed,
        ProcessState::Failed => W::Failed,
        ProcessState::Timeout => W::Timeout,
        ProcessState::Cancelled => W::Cancelled,
        ProcessState::Backoff => W::Backoff,
        // The WIT enum predates `interrupted`, and a new case there is a new
        // WIT version; `cancelled` is the nearest: ended by something other
        // than the process, and terminal.
        ProcessState::Interrupted => W::Cancelled,
    }
}

pub(crate) fn state_from_wit(s: wit::ProcessState) -> ProcessState {
    use wit::ProcessState as W;
    match s {
        W::Pending => ProcessState::Pending,
        W::Starting => ProcessState::Starting,
        W::Running => ProcessState::Running,
        W::Paused => ProcessState::Paused,
        W::Stopping => ProcessState::Stopping,
        W::Completed => ProcessState::Completed,
        W::Failed => ProcessState::Failed,
        W::Timeout => ProcessState::Timeout,
        W::Cancelled => ProcessState::Cancelled,
        W::Backoff => ProcessState::Backoff,
    }
}

pub(crate) fn process_to_wit(p: &ProcessInfo) -> wit::ProcessInfo {
    wit::ProcessInfo {
        name: p.name.clone(),
        kind: p.kind.clone(),
        state: state_to_wit(p.state),
        reported_state: p.reported_state.map(state_to_wit),
        pid: p.pid,
        exit_code: p.exit_code,
        restarts: p.restarts,
        progress: p.progress,
        message: p.message.clone(),
        started_at_ms: p.started_at.map(|t| t.timestamp_millis().max(0) as u64),
        last_output_ms: p.last_output_at.map(|t| t.timestamp_millis().max(0) as u64),
        // WIT metadata is text: strings as they are, other values as JSON.
        metadata: p
            .metadata
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
    }
}

/// Validate a guest's status update: progress must be a number in 0..=1;
/// a message longer than [`MAX_LABEL`] is cut.
pub(crate) fn update_from_wit(u: wit::StatusUpdate) -> Result<StatusUpdate, String> {
    if let Some(p) = u.progress
        && !(0.0..=1.0).contains(&p)
    {
        return Err(format!("progress {p} is outside 0.0..=1.0"));
    }
    Ok(StatusUpdate {
        state: u.state.map(state_from_wit),
        progress: u.progress,
        message: u.message.map(|m| truncate(m, MAX_LABEL)),
    })
}

pub(crate) fn task_to_wit(t: &Task) -> wit::Task {
    wit::Task {
        id: t.id.clone(),
        repository: t.repository.clone(),
        title: t.title.clone(),
        description: t.description.clone(),
        keywords: t.keywords.clone(),
        agent: t.agent.clone(),
    }
}

pub(crate) fn numbered_to_wit(t: &NumberedTask) -> task_memory::NumberedTask {
    task_memory::NumberedTask {
        number: t.number,
        task: task_to_wit(&t.task),
    }
}

fn task_from_wit(t: wit::Task) -> Result<Task, String> {
    if t.id.trim().is_empty() {
        return Err("register-task: task id must not be empty".into());
    }
    Ok(Task {
        id: t.id,
        repository: t.repository,
        title: t.title,
        description: t.description,
        keywords: t.keywords,
        agent: t.agent,
    })
}

/// Convert and validate one action a guest returned.
pub(crate) fn action_from_wit(a: wit::Action) -> Result<Action, String> {
    use wit::Action as W;
    Ok(match a {
        W::Emit(e) => {
            let data = if e.data.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&e.data)
                    .map_err(|err| format!("emit `{}`: data is not valid JSON: {err}", e.type_))?
            };
            Action::Emit {
                ty: e.type_,
                subject: e.subject,
                data,
            }
        }
        W::Start(name) => Action::Start { name },
        W::Stop(s) => Action::Stop {
            name: s.name,
            force: s.force,
        },
        W::Restart(name) => Action::Restart { name },
        W::Pause(name) => Action::Pause { name },
        W::Resume(name) => Action::Resume { name },
        W::SetStatus(s) => Action::SetStatus {
            name: s.name,
            update: update_from_wit(s.update)?,
        },
        W::RegisterTask(t) => Action::RegisterTask {
            task: task_from_wit(t)?,
        },
    })
}
