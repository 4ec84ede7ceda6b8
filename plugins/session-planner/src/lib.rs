//! `session-planner`: an event handler that answers each `session.opened`
//! with `session.plan`, seed 003's five-point coordination plan (sequence,
//! what to share, coordination points, conflicts to watch, success
//! criteria). The host posts it to the session as a proposal from
//! `planner`. The seed asks a language model; this planner fills the plan
//! from the rule's relationship, the tasks and their repositories, and a
//! user can swap in another planner emitting the same event.
//!
//! This file is the WIT glue; the plan is in [`plan`].

mod plan;

use exports::host::plugin::event_handler::Guest;
use host::plugin::types::{Action, Event, NewEvent};
use plan::TaskRef;

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../wit" });

struct SessionPlanner;

impl Guest for SessionPlanner {
    fn subscriptions() -> Vec<String> {
        vec!["session.opened".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        if e.type_ != "session.opened" {
            return Ok(Vec::new());
        }
        let session: serde_json::Value = serde_json::from_str(&e.data)
            .map_err(|err| format!("session.opened {} is not JSON: {err}", e.id))?;
        let id = session["id"]
            .as_str()
            .ok_or_else(|| format!("session.opened {} has no `id`", e.id))?;
        let tasks: Vec<TaskRef> = session["tasks"]
            .as_array()
            .map(|ts| ts.iter().map(TaskRef::from_json).collect())
            .unwrap_or_default();
        let [first, second, ..] = tasks.as_slice() else {
            // A session over fewer than two tasks has nothing to sequence.
            return Ok(Vec::new());
        };
        let dep = &session["dependency"];
        let relationship = dep["relationship"]
            .as_str()
            .or_else(|| dep["rule"].as_str())
            .or_else(|| session["kind"].as_str())
            .unwrap_or("dependency");
        let reason = dep["reason"]
            .as_str()
            .unwrap_or("tasks that depend on each other");
        let (plan, text) = plan::plan(first, second, relationship, reason);
        let out = serde_json::json!({ "session": id, "plan": plan, "text": text });
        Ok(vec![Action::Emit(NewEvent {
            type_: "session.plan".to_string(),
            subject: Some(id.to_string()),
            data: out.to_string(),
        })])
    }
}

export!(SessionPlanner);
