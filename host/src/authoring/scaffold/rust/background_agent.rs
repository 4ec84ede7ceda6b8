//! {{name}}: a background agent. The host calls `tick` every
//! `interval_ms` (from `describe`), shows the activity it returns in status
//! listings, and performs its actions (within the grants of plugin.toml's
//! `[permissions]`).
//!
//! The glue below stays thin; the decision lives in `decide`, which calls no
//! host function, so `cargo test` checks it natively.

use exports::host::plugin::background_agent::Guest;
use host::plugin::types::{AgentInfo, ProcessInfo, TickOutcome};

wit_bindgen::generate!({ world: "background-agent-plugin", path: "wit" });

struct Plugin;

impl Guest for Plugin {
    fn describe() -> AgentInfo {
        AgentInfo {
            name: "{{name}}".to_string(),
            description: "What this agent watches (say it in a line)".to_string(),
            // Once a minute; the host enforces a floor of 10 ms.
            interval_ms: 60_000,
        }
    }

    fn tick() -> Result<TickOutcome, String> {
        // An `Err(text)` is recorded as a `plugin.error` event.
        Ok(decide(&host::plugin::host::processes()))
    }
}

/// One tick over a snapshot of the processes: nothing to do yet. A stall
/// detector might emit an event (granted `emit = ["my.>"]`) for each
/// running process whose `last_output_ms` is older than
/// `host::plugin::host::now_ms()` minus a limit.
fn decide(processes: &[ProcessInfo]) -> TickOutcome {
    TickOutcome {
        activity: format!("watching {} processes", processes.len()),
        actions: Vec::new(),
    }
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_ticks_once_a_minute() {
        assert_eq!(Plugin::describe().interval_ms, 60_000);
    }

    #[test]
    fn a_tick_says_what_it_watches_and_asks_for_nothing_yet() {
        let outcome = decide(&[]);
        assert_eq!(outcome.activity, "watching 0 processes");
        assert!(outcome.actions.is_empty());
    }
}
