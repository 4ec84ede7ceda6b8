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

use super::{SOURCE, reserved};

/// Most queued requests taken in one round.
const BATCH: usize = 64;

/// An emit waiting to be published with the others of its round.
struct PendingEmit {
    plugin: String,
    cause: Option<u64>,
    event: NewEvent,
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
            // Take whatever else is already queued, so consecutive emits
            // become one journal commit instead of one each.
            let mut requests_now = vec![request];
            while requests_now.len() < BATCH {
                match requests.try_recv() {
                    Ok(more) => requests_now.push(more),
                    Err(_) => break,
                }
            }
            let mut emits = Vec::new();
            for request in requests_now {
                for action in request.actions {
                    let me = self.clone();
                    let plugin = request.plugin.clone();
                    let cause = request.cause;
                    match action {
                        Action::Emit { ty, subject, data } => match reserved(&ty) {
                            Some(why) => self.record(&plugin, "emit", Some(ty), cause, Err(why)),
                            None => {
                                let mut event = NewEvent::new(format!("plugin/{plugin}"), ty, data);
                                if let Some(s) = subject {
                                    event = event.with_subject(s);
                                }
                                emits.push(PendingEmit {
                                    plugin,
                                    cause,
                                    event,
                                });
                            }
                        },
                        // Slow ones run beside the loop; emits decided
                        // before them are published first.
                        Action::Stop { .. }
                        | Action::Restart { .. }
                        | Action::Start { .. }
                        | Action::RegisterTask { .. } => {
                            self.publish_emits(&mut emits);
                            in_flight
                                .spawn(async move { me.perform(&plugin, cause, action).await });
                        }
                        _ => {
                            self.publish_emits(&mut emits);
                            me.perform(&plugin, cause, action).await;
                        }
                    }
                }
            }
            self.publish_emits(&mut emits);
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
                    (Some(ty), Err(why))
                } else {
                    let mut event = NewEvent::new(format!("plugin/{plugin}"), ty, data);
                    if let Some(s) = subject {
                        event = event.with_subject(s);
                    }
                    let plugin = plugin.to_string();
                    self.publish_emits(&mut vec![PendingEmit {
                        plugin,
                        cause,
                        event,
                    }]);
                    return;
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
        self.record(plugin, verb, target, cause, result);
    }

    /// Publish emitted events in one journal commit. If the batch is
    /// refused (one bad event refuses them all), publish them one by one so
    /// only the bad ones fail, each recorded with its error.
    fn publish_emits(&self, emits: &mut Vec<PendingEmit>) {
        if emits.is_empty() {
            return;
        }
        let pending = std::mem::take(emits);
        if self
            .bus
            .publish_all(pending.iter().map(|p| p.event.clone()).collect())
            .is_ok()
        {
            return;
        }
        for p in pending {
            let ty = p.event.ty.clone();
            if let Err(e) = self.bus.publish(p.event) {
                self.record(&p.plugin, "emit", Some(ty), p.cause, Err(e.to_string()));
            }
        }
    }

    /// Record an action's outcome as `plugin.action`.
    fn record(
        &self,
        plugin: &str,
        verb: &str,
        target: Option<String>,
        cause: Option<u64>,
        result: Result<(), String>,
    ) {
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
    use std::sync::Arc;

    use serde_json::json;
    use tokio::sync::{mpsc, watch};

    use super::Executor;
    use crate::bus::{Bus, BusConfig, EventQuery, Pattern};
    use crate::coordination::{CoordinationConfig, Coordinator};
    use crate::plugins::{Action, ActionRequest, PluginHost, PluginHostConfig};
    use crate::runtime::reserved;
    use crate::supervisor::{Supervisor, SupervisorConfig};

    fn emit(ty: &str) -> Action {
        Action::Emit {
            ty: ty.into(),
            subject: None,
            data: json!({}),
        }
    }

    #[tokio::test]
    async fn a_bad_emit_fails_alone_and_the_others_of_its_batch_are_published() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let supervisor =
            Supervisor::new(bus.clone(), SupervisorConfig::new(dir.path().join("logs")));
        let (tx, rx) = mpsc::channel(16);
        let plugins = PluginHost::start(
            PluginHostConfig::new(dir.path()),
            bus.clone(),
            Arc::new(supervisor.clone()),
            tx.clone(),
        )
        .await
        .unwrap();
        let coordinator = Coordinator::new(bus.clone(), plugins, CoordinationConfig::default());
        let executor = Executor {
            bus: bus.clone(),
            supervisor,
            coordinator,
        };
        let actions = vec![
            emit("a.ok"),
            emit("not a type"),
            emit("process.failed"),
            emit("b.ok"),
        ];
        tx.send(ActionRequest {
            plugin: "p".into(),
            cause: Some(7),
            actions,
        })
        .await
        .unwrap();
        let (stop, stopped) = watch::channel(true);
        executor.run(rx, stopped).await;
        drop(stop);
        let all = |pattern: &str| {
            bus.query(&EventQuery {
                types: vec![Pattern::parse(pattern).unwrap()],
                after_sequence: Some(0),
                ..Default::default()
            })
            .unwrap()
        };
        assert_eq!(all("a.ok").len(), 1);
        assert_eq!(all("b.ok").len(), 1);
        let failures: Vec<_> = all("plugin.action").into_iter().map(|e| e.data).collect();
        assert_eq!(failures.len(), 2, "{failures:#?}");
        assert!(
            failures
                .iter()
                .all(|f| f["ok"] == false && f["cause_sequence"] == 7)
        );
        assert_eq!(
            failures[0]["target"], "process.failed",
            "reserved types are refused before publishing"
        );
        assert_eq!(failures[1]["target"], "not a type");
    }

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
