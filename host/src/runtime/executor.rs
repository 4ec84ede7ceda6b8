//! The action executor: where plugin decisions become host actions.
//!
//! Principle: the host acts, plugins decide. Every action is validated
//! here and performed by the room that owns it (supervisor, coordination,
//! bus). Lifecycle actions are recorded as `plugin.action` events with
//! their outcome; an `emit` is recorded by the emitted event itself (its
//! source is `plugin/NAME`) and a `set-status` by the supervisor's
//! `process.status`. Any action that fails is recorded with its error.
//!
//! Stop and restart can take seconds (a grace period): they run in their
//! own tasks so one slow stop never holds up other plugins' decisions.

use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::bus::{Bus, NewEvent};
use crate::coordination::Coordinator;
use crate::plugins::{Action, ActionRequest};
use crate::supervisor::Supervisor;

/// Source of the executor's events.
const SOURCE: &str = "host/runtime";

/// Event type prefixes only the host may publish.
const RESERVED_PREFIXES: [&str; 6] = ["host.", "plugin.", "agent.", "task.", "dependency.", "bus."];

/// The supervisor's lifecycle vocabulary. Plugins act on these (the
/// failure alert counts `process.failed`), so a plugin must not be able to
/// forge them; other `process.*` types (`process.reported`,
/// `process.stalled`) are open to plugins.
const RESERVED_TYPES: [&str; 17] = [
    "process.starting",
    "process.started",
    "process.exited",
    "process.completed",
    "process.failed",
    "process.timeout",
    "process.cancelled",
    "process.backoff",
    "process.gave_up",
    "process.stopping",
    "process.paused",
    "process.resumed",
    "process.status",
    "process.output",
    "process.output_dropped",
    "process.resource",
    "process.resource_limit",
];

/// Why a plugin may not emit `ty`, if it may not.
fn reserved(ty: &str) -> Option<String> {
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| ty.starts_with(*p)) {
        return Some(format!(
            "event types starting with `{prefix}` are reserved for the host"
        ));
    }
    RESERVED_TYPES
        .contains(&ty)
        .then(|| format!("`{ty}` is published by the supervisor only"))
}

/// What an action needs to be carried out.
#[derive(Clone)]
pub(crate) struct Executor {
    pub(crate) bus: Bus,
    pub(crate) supervisor: Supervisor,
    pub(crate) coordinator: Coordinator,
}

impl Executor {
    /// Perform requests until `stop` turns true, then perform what was
    /// already queued and wait for actions still in flight. (The channel
    /// cannot be relied on to close by itself: the coordinator this
    /// executor holds also reaches the plugin host, which holds a sender.)
    pub(crate) async fn run(
        self,
        mut requests: mpsc::Receiver<ActionRequest>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut in_flight = JoinSet::new();
        loop {
            let request = tokio::select! {
                r = requests.recv() => r,
                _ = crate::shutdown::requested(&mut stop) => {
                    requests.close();
                    requests.recv().await
                }
            };
            let Some(request) = request else { break };
            for action in request.actions {
                let me = self.clone();
                let plugin = request.plugin.clone();
                let cause = request.cause;
                match action {
                    // Slow ones run beside the loop.
                    Action::Stop { .. }
                    | Action::Restart { .. }
                    | Action::Start { .. }
                    | Action::RegisterTask { .. } => {
                        in_flight.spawn(async move { me.perform(&plugin, cause, action).await });
                    }
                    _ => me.perform(&plugin, cause, action).await,
                }
            }
            // Reap finished tasks without waiting.
            while in_flight.try_join_next().is_some() {}
        }
        while in_flight.join_next().await.is_some() {}
    }

    async fn perform(&self, plugin: &str, cause: Option<u64>, action: Action) {
        let verb = action.verb();
        let (target, result): (Option<String>, Result<(), String>) = match action {
            Action::Emit { ty, subject, data } => {
                if let Some(why) = reserved(&ty) {
                    (Some(ty.clone()), Err(why))
                } else {
                    let mut event = NewEvent::new(format!("plugin/{plugin}"), ty.clone(), data);
                    if let Some(s) = subject {
                        event = event.with_subject(s);
                    }
                    match self.bus.publish(event) {
                        Ok(_) => return,
                        Err(e) => (Some(ty), Err(e.to_string())),
                    }
                }
            }
            Action::Start { name } => {
                let r = self
                    .supervisor
                    .start(&name)
                    .await
                    .map_err(|e| e.to_string());
                (Some(name), r)
            }
            Action::Stop { name, force } => {
                let r = self
                    .supervisor
                    .stop(&name, force)
                    .await
                    .map_err(|e| e.to_string());
                (Some(name), r)
            }
            Action::Restart { name } => {
                let r = self
                    .supervisor
                    .restart(&name)
                    .await
                    .map_err(|e| e.to_string());
                (Some(name), r)
            }
            Action::Pause { name } => {
                let r = self.supervisor.pause(&name).map_err(|e| e.to_string());
                (Some(name), r)
            }
            Action::Resume { name } => {
                let r = self.supervisor.resume(&name).map_err(|e| e.to_string());
                (Some(name), r)
            }
            Action::SetStatus { name, update } => match self.supervisor.set_status(&name, update) {
                Ok(()) => return,
                Err(e) => (Some(name), Err(e.to_string())),
            },
            Action::RegisterTask { task } => {
                let id = task.id.clone();
                let r = self
                    .coordinator
                    .register(task, &format!("plugin/{plugin}"))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                (Some(id), r)
            }
        };
        if let Err(e) = &result {
            tracing::warn!(plugin, action = verb, target = ?target, "plugin action failed: {e}");
        }
        let data = json!({
            "plugin": plugin,
            "action": verb,
            "target": target,
            "cause_sequence": cause,
            "ok": result.is_ok(),
            "error": result.err(),
        });
        let mut event = NewEvent::new(SOURCE, "plugin.action", data);
        if let Some(t) = target {
            event = event.with_subject(t);
        }
        if let Err(e) = self.bus.publish(event) {
            tracing::error!("could not record a plugin action: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reserved;

    #[test]
    fn plugins_cannot_forge_host_or_lifecycle_events_but_may_report_statuses() {
        for ty in [
            "host.started",
            "plugin.loaded",
            "process.failed",
            "process.output",
            "task.registered",
        ] {
            assert!(reserved(ty).is_some(), "{ty}");
        }
        for ty in [
            "process.reported",
            "process.stalled",
            "alert.process_failures",
            "heal.restarted",
        ] {
            assert!(reserved(ty).is_none(), "{ty}");
        }
    }
}
