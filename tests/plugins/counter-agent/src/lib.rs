//! `counter-agent`: a background agent that ticks every `interval_ms` (config,
//! default 100) and emits `test.tick` {"n"}, with `n` counted in host state
//! (key `n`, decimal text) so reload tests can see the count carry over.

use exports::host::plugin::background_agent::Guest;
use host::plugin::host::{config, state_get, state_set};
use host::plugin::types::{Action, AgentInfo, NewEvent, TickOutcome};

wit_bindgen::generate!({ world: "background-agent-plugin", path: "../../../wit" });

const DEFAULT_INTERVAL_MS: u64 = 100;

struct CounterAgent;

impl Guest for CounterAgent {
    fn describe() -> AgentInfo {
        let interval_ms = config("interval_ms")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_INTERVAL_MS);
        AgentInfo {
            name: "counter-agent".to_string(),
            description: "Emits test.tick with a counter kept in host state".to_string(),
            interval_ms,
        }
    }

    fn tick() -> Result<TickOutcome, String> {
        let n = state_get("n")
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        state_set("n", n.to_string().as_bytes());
        Ok(TickOutcome {
            activity: format!("counted to {n}"),
            actions: vec![Action::Emit(NewEvent {
                type_: "test.tick".to_string(),
                subject: None,
                data: serde_json::json!({ "n": n }).to_string(),
            })],
        })
    }
}

export!(CounterAgent);
