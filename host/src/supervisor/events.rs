//! The events this room publishes, built in one place so their shape stays
//! uniform: source `host/supervisor`, subject = process name, and `from`/`to`
//! on every state transition.

use serde_json::{Value, json};

use super::state::ProcessState;
use crate::bus::{Bus, NewEvent};

/// The `source` of every supervisor event.
pub(crate) const SOURCE: &str = "host/supervisor";

/// An event about process `name`.
pub(crate) fn new(name: &str, ty: &str, data: Value) -> NewEvent {
    NewEvent::new(SOURCE.to_string(), ty.to_string(), data).with_subject(name.to_string())
}

/// A transition event: `data` plus `from` and `to`.
pub(crate) fn transition(
    name: &str,
    ty: &str,
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

/// `process.removed`: the process left the table (`reason`: `requested` or
/// `retention`), in its last state.
pub(crate) fn removed(name: &str, state: ProcessState, reason: &str) -> NewEvent {
    new(
        name,
        "process.removed",
        json!({ "state": state, "reason": reason }),
    )
}

/// Publishes state events; called only with no lock held.
///
/// A bus failure cannot be reported on the bus, so it goes to the log.
pub(crate) fn publish(bus: &Bus, events: Vec<NewEvent>) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = bus.publish_all(events) {
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
            "process.started",
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
