//! The events this room publishes, built in one place so their shape stays
//! uniform: source `host/supervisor`, subject = process name, and `from`/`to`
//! on every state transition.

use serde_json::{Value, json};

use super::state::ProcessState;
use crate::bus::{Bus, EventData, NewEvent};

/// The `source` of every supervisor event.
pub(crate) const SOURCE: &str = "host/supervisor";

/// Every event type this room publishes. Publishing goes through
/// [`new`] and [`transition`], which take this enum, so [`EventType::ALL`]
/// is the complete list by construction (others, e.g. the runtime's list of
/// types plugins may not forge, derive from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `process.created`.
    Created,
    /// `process.starting`.
    Starting,
    /// `process.started`.
    Started,
    /// `process.exited`.
    Exited,
    /// `process.completed`.
    Completed,
    /// `process.failed`.
    Failed,
    /// `process.timeout`.
    Timeout,
    /// `process.cancelled`.
    Cancelled,
    /// `process.backoff`.
    Backoff,
    /// `process.gave_up`.
    GaveUp,
    /// `process.stopping`.
    Stopping,
    /// `process.paused`.
    Paused,
    /// `process.resumed`.
    Resumed,
    /// `process.status`.
    Status,
    /// `process.output`.
    Output,
    /// `process.output_dropped`.
    OutputDropped,
    /// `process.resource`.
    Resource,
    /// `process.resource_limit`.
    ResourceLimit,
    /// `process.removed`.
    Removed,
    /// `process.interrupted`: a run the host ended without ending it
    /// (found in the journal after a crash of the host).
    Interrupted,
    /// `process.ready`: the readiness probe of the current run passes.
    Ready,
    /// `process.unready`: the readiness probe stopped passing, or the
    /// ready run ended.
    Unready,
}

impl EventType {
    /// Every type, in lifecycle order.
    pub const ALL: [EventType; 22] = [
        EventType::Created,
        EventType::Starting,
        EventType::Started,
        EventType::Exited,
        EventType::Completed,
        EventType::Failed,
        EventType::Timeout,
        EventType::Cancelled,
        EventType::Backoff,
        EventType::GaveUp,
        EventType::Stopping,
        EventType::Paused,
        EventType::Resumed,
        EventType::Status,
        EventType::Output,
        EventType::OutputDropped,
        EventType::Resource,
        EventType::ResourceLimit,
        EventType::Removed,
        EventType::Interrupted,
        EventType::Ready,
        EventType::Unready,
    ];

    /// The dotted name, e.g. `process.gave_up`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "process.created",
            EventType::Starting => "process.starting",
            EventType::Started => "process.started",
            EventType::Exited => "process.exited",
            EventType::Completed => "process.completed",
            EventType::Failed => "process.failed",
            EventType::Timeout => "process.timeout",
            EventType::Cancelled => "process.cancelled",
            EventType::Backoff => "process.backoff",
            EventType::GaveUp => "process.gave_up",
            EventType::Stopping => "process.stopping",
            EventType::Paused => "process.paused",
            EventType::Resumed => "process.resumed",
            EventType::Status => "process.status",
            EventType::Output => "process.output",
            EventType::OutputDropped => "process.output_dropped",
            EventType::Resource => "process.resource",
            EventType::ResourceLimit => "process.resource_limit",
            EventType::Removed => "process.removed",
            EventType::Interrupted => "process.interrupted",
            EventType::Ready => "process.ready",
            EventType::Unready => "process.unready",
        }
    }

    /// The event announcing that a run ended in `state`, a terminal state.
    pub(crate) fn ended(state: ProcessState) -> EventType {
        match state {
            ProcessState::Completed => EventType::Completed,
            ProcessState::Timeout => EventType::Timeout,
            ProcessState::Cancelled => EventType::Cancelled,
            ProcessState::Interrupted => EventType::Interrupted,
            _ => EventType::Failed,
        }
    }
}

/// An event about process `name`.
pub(crate) fn new(name: &str, ty: EventType, data: impl Into<EventData>) -> NewEvent {
    NewEvent::new(SOURCE, ty.as_str(), data).with_subject(name)
}

/// A transition event: `data` plus `from` and `to`.
pub(crate) fn transition(
    name: &str,
    ty: EventType,
    from: ProcessState,
    to: ProcessState,
    mut data: Value,
) -> NewEvent {
    if let Value::Object(map) = &mut data {
        map.insert("from".into(), json!(from));
        map.insert("to".into(), json!(to));
    }
    new(name, ty, data)
}

/// `process.gave_up`: the restart limit (`max_restarts` within `window`)
/// is reached, so the process stays in `state` until an explicit start.
pub(crate) fn gave_up(
    name: &str,
    restarts: u32,
    max_restarts: u32,
    window: std::time::Duration,
    state: ProcessState,
) -> NewEvent {
    new(
        name,
        EventType::GaveUp,
        json!({
            "restarts": restarts,
            "max_restarts": max_restarts,
            "window_ms": window.as_millis() as u64,
            "state": state,
        }),
    )
}

/// `process.removed`: the process left the table (`reason`: `requested` or
/// `retention`), in its last state.
pub(crate) fn removed(name: &str, state: ProcessState, reason: &str) -> NewEvent {
    new(
        name,
        EventType::Removed,
        json!({ "state": state, "reason": reason }),
    )
}

/// Publishes state events; called only with no lock held.
///
/// The events are handed to the bus's writer without waiting for their
/// commit ([`Bus::submit`]), so this is fine on an async worker (it waits
/// only while the writer's queue is full: back-pressure). The writer keeps
/// one queue, so events are committed in the order they were handed over,
/// and every caller hands over a process's events in the order they
/// happened. Readers that need them in the journal at once (tests) call
/// [`Bus::flush`] first.
///
/// A bus failure cannot be reported on the bus, so it goes to the log (a
/// failed commit is logged by the writer).
pub(crate) fn publish(bus: &Bus, events: Vec<NewEvent>) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = bus.submit(events) {
        tracing::error!(error = %e, "could not publish supervisor events");
    }
}

/// Describes how a run ended, for `process.failed`'s `reason`.
pub(crate) fn exit_reason(exit_code: Option<i32>, signal: Option<i32>) -> String {
    match (exit_code, signal) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("signal {sig}"));
            format!("killed by {name}")
        }
        (None, None) => "ended for an unknown reason".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_carry_from_and_to() {
        let e = transition(
            "web",
            EventType::Started,
            ProcessState::Starting,
            ProcessState::Running,
            json!({"pid": 7}),
        );
        assert_eq!(e.subject.as_deref(), Some("web"));
        assert_eq!(e.data["from"], "starting");
        assert_eq!(e.data["to"], "running");
        assert_eq!(e.data["pid"], 7);
    }

    #[test]
    fn exit_reasons_name_the_code_or_signal() {
        assert_eq!(exit_reason(Some(3), None), "exited with code 3");
        assert_eq!(exit_reason(None, Some(9)), "killed by SIGKILL");
    }
}
