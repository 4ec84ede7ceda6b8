//! The events of the stream applied to a [`Model`]: each patches only
//! what it carries (a state, a progress and message, a resource sample, a
//! quarantine, an agent's activity); an event about something the last
//! snapshot did not have, or one whose effect only a snapshot can tell (a
//! plugin loaded, a session step), asks for a fresh snapshot instead.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::bus::Event;
use crate::supervisor::ProcessState;

use super::model::Model;

impl Model {
    /// Patches the lists with one event of the stream.
    pub fn apply_event(&mut self, event: &Event) {
        self.cursor = Some(event.sequence);
        let subject = event.subject.as_deref().unwrap_or_default();
        let data = &event.data;
        let family = event.ty.split('.').next().unwrap_or_default();
        match family {
            "process" => self.process_event(&event.ty, subject, data),
            "plugin" => self.plugin_event(&event.ty, subject, data),
            "agent" => self.agent_event(&event.ty, subject, data, event.time),
            "session" | "host" => self.wants_snapshot = true,
            _ => {}
        }
    }

    fn process_event(&mut self, ty: &str, id: &str, data: &Value) {
        if matches!(ty, "process.created" | "process.removed") {
            self.wants_snapshot = true;
            return;
        }
        let Some(p) = self.processes.iter_mut().find(|p| p.process_id == id) else {
            // A process the last snapshot did not have.
            self.wants_snapshot = true;
            return;
        };
        if let Some(to) = data
            .get("to")
            .and_then(|v| serde_json::from_value::<ProcessState>(v.clone()).ok())
        {
            p.state = to;
        }
        match ty {
            "process.starting" => {
                if let Some(n) = data.get("restarts").and_then(Value::as_u64) {
                    p.restarts = n as u32;
                }
            }
            "process.started" => p.pid = data.get("pid").and_then(Value::as_u64).map(|n| n as u32),
            "process.exited" => {
                p.exit_code = data
                    .get("exit_code")
                    .and_then(Value::as_i64)
                    .map(|n| n as i32)
            }
            "process.status" => {
                if let Some(x) = data.get("progress").and_then(Value::as_f64) {
                    p.progress = Some(x);
                }
                if let Some(m) = data.get("message").and_then(Value::as_str) {
                    p.message = Some(m.to_string());
                }
                if let Some(s) = data
                    .get("state")
                    .and_then(|v| serde_json::from_value::<ProcessState>(v.clone()).ok())
                {
                    p.reported_state = Some(s);
                }
            }
            "process.resource" => {
                p.memory_bytes = data.get("memory_bytes").and_then(Value::as_u64);
                p.cpu_percent = data.get("cpu_percent").and_then(Value::as_f64);
            }
            "process.output" if id == self.output.id => self.wants_output = true,
            _ => {}
        }
    }

    fn plugin_event(&mut self, ty: &str, name: &str, data: &Value) {
        let Some(p) = self.plugins.iter_mut().find(|p| p.name == name) else {
            self.wants_snapshot = true;
            return;
        };
        let error = data.get("error").and_then(Value::as_str).map(str::to_owned);
        match ty {
            "plugin.quarantined" => {
                p.quarantined = true;
                p.state = "quarantined".into();
            }
            "plugin.failed" => {
                p.failures += 1;
                p.last_error = error.or(p.last_error.take());
            }
            "plugin.error" => {
                p.errors += 1;
                p.last_error = error.or(p.last_error.take());
            }
            // Loaded, reloaded, unloaded, refused: the snapshot says what
            // is serving now.
            _ => self.wants_snapshot = true,
        }
    }

    fn agent_event(&mut self, ty: &str, plugin: &str, data: &Value, time: DateTime<Utc>) {
        let Some(a) = self.agents.iter_mut().find(|a| a.plugin == plugin) else {
            self.wants_snapshot = true;
            return;
        };
        match ty {
            "agent.activity" => {
                if let Some(text) = data.get("activity").and_then(Value::as_str) {
                    a.activity = text.to_string();
                }
                a.last_active = Some(time);
            }
            "agent.error" => {
                a.status = "error".into();
                a.last_error = data.get("error").and_then(Value::as_str).map(str::to_owned);
            }
            "agent.paused" => a.status = "paused".into(),
            "agent.resumed" => a.status = "idle".into(),
            "agent.stopped" => a.status = "stopped".into(),
            _ => self.wants_snapshot = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::top::model::tests::{event, model};

    #[test]
    fn events_patch_state_progress_and_samples_without_a_snapshot() {
        let mut m = model();
        m.apply_event(&event(
            5,
            "process.status",
            "coder",
            serde_json::json!({"state": "running", "progress": 0.4, "message": "writing tests"}),
        ));
        m.apply_event(&event(
            6,
            "process.resource",
            "web",
            serde_json::json!({"memory_bytes": 2048, "cpu_percent": 12.5}),
        ));
        m.apply_event(&event(
            7,
            "process.cancelled",
            "web",
            serde_json::json!({"from": "stopping", "to": "cancelled"}),
        ));
        assert_eq!(m.processes[0].progress, Some(0.4));
        assert_eq!(m.processes[0].message.as_deref(), Some("writing tests"));
        assert_eq!(m.processes[1].cpu_percent, Some(12.5));
        assert_eq!(m.processes[1].state, ProcessState::Cancelled);
        assert_eq!(m.cursor, Some(7));
        assert!(!m.wants_snapshot);
    }

    #[test]
    fn an_event_about_an_unknown_process_asks_for_a_snapshot() {
        let mut m = model();
        m.apply_event(&event(
            9,
            "process.started",
            "new_1",
            serde_json::json!({"pid": 5, "to": "running"}),
        ));
        assert!(m.wants_snapshot);
    }

    #[test]
    fn a_quarantine_and_an_agent_activity_show_at_once() {
        let mut m = model();
        let mut e = event(
            3,
            "plugin.quarantined",
            "failure-alert",
            serde_json::json!({}),
        );
        m.apply_event(&e);
        e = event(
            4,
            "agent.activity",
            "stall-detector",
            serde_json::json!({"activity": "2 stalled"}),
        );
        m.apply_event(&e);
        assert!(m.plugins[0].quarantined);
        assert_eq!(m.agents[0].activity, "2 stalled");
        assert!(m.agents[0].last_active.is_some());
    }
}
