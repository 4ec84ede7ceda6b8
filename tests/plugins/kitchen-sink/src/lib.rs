//! `kitchen-sink`: one component that is all four plugin kinds at once (world
//! `full-plugin`), each with trivial, predictable behaviour, so the host's
//! tests can check it binds every export a component has.
//!
//! - event handler: `test.sink` → emits `test.sink-seen` {"sequence"} with the
//!   event's subject;
//! - status mapper: kinds `["sink"]`; the output line `done` → `completed`;
//! - dependency rule `same-title`: tasks with equal titles depend;
//! - background agent: every 50 ms, no actions, activity `tick <n>` with `n`
//!   counted in host state (key `ticks`), so it keeps counting across reloads.

use exports::host::plugin::background_agent::Guest as BackgroundAgent;
use exports::host::plugin::dependency_rule::Guest as DependencyRule;
use exports::host::plugin::event_handler::Guest as EventHandler;
use exports::host::plugin::status_mapper::Guest as StatusMapper;
use host::plugin::host::{state_get, state_set};
use host::plugin::types::{
    Action, AgentInfo, Dependency, Event, NewEvent, ProcessInfo, ProcessState, RuleInfo,
    StatusUpdate, Task, TickOutcome,
};

// Built against 0.1: a guest of every kind that the host must keep loading.
wit_bindgen::generate!({ world: "full-plugin", path: "../../../wit/v0.1" });

struct KitchenSink;

impl EventHandler for KitchenSink {
    fn subscriptions() -> Vec<String> {
        vec!["test.sink".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        if e.type_ != "test.sink" {
            return Ok(Vec::new());
        }
        Ok(vec![Action::Emit(NewEvent {
            type_: "test.sink-seen".to_string(),
            subject: e.subject,
            data: serde_json::json!({ "sequence": e.sequence }).to_string(),
        })])
    }
}

impl StatusMapper for KitchenSink {
    fn kinds() -> Vec<String> {
        vec!["sink".to_string()]
    }

    fn map_status(_p: ProcessInfo, _reported: String) -> Option<StatusUpdate> {
        None
    }

    fn map_output(_p: ProcessInfo, line: String) -> Option<StatusUpdate> {
        (line.trim() == "done").then(|| StatusUpdate {
            state: Some(ProcessState::Completed),
            progress: Some(1.0),
            message: Some("done".to_string()),
        })
    }
}

impl DependencyRule for KitchenSink {
    fn describe() -> RuleInfo {
        RuleInfo {
            name: "same-title".to_string(),
            description: "Tasks with the same title depend on each other".to_string(),
            keywords: Vec::new(),
        }
    }

    fn check(a: Task, b: Task) -> Option<Dependency> {
        (a.title == b.title).then(|| Dependency {
            relationship: "same-title".to_string(),
            reason: format!("both tasks are titled {:?}", a.title),
            confidence: 1.0,
        })
    }
}

impl BackgroundAgent for KitchenSink {
    fn describe() -> AgentInfo {
        AgentInfo {
            name: "kitchen-sink".to_string(),
            description: "Counts its ticks".to_string(),
            interval_ms: 50,
        }
    }

    fn tick() -> Result<TickOutcome, String> {
        let n = read_count("ticks") + 1;
        state_set("ticks", n.to_string().as_bytes());
        Ok(TickOutcome {
            activity: format!("tick {n}"),
            actions: Vec::new(),
        })
    }
}

/// A counter stored as decimal text (readable in state dumps); missing or
/// unreadable counts as 0.
fn read_count(key: &str) -> u64 {
    state_get(key)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

export!(KitchenSink);
