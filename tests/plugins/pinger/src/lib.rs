//! `pinger`: a background agent that emits one event of a configurable type
//! every `interval_ms` (config, default 100), with data {"n"} counting up
//! from 1 (kept in host state, key `n`). Config `type` names the event type
//! (default `test.ping`).
//!
//! Nothing outside a host can publish events yet, so end-to-end tests that
//! run the real binary install this agent as their event source: it feeds
//! `test.ping` to the echo fixtures and `test.spin` to spin-forever.

use exports::host::plugin::background_agent::Guest;
use host::plugin::host::{config, state_get, state_set};
use host::plugin::types::{Action, AgentInfo, NewEvent, TickOutcome};

wit_bindgen::generate!({ world: "background-agent-plugin", path: "../../../wit" });

const DEFAULT_INTERVAL_MS: u64 = 100;
const DEFAULT_TYPE: &str = "test.ping";

struct Pinger;

impl Guest for Pinger {
    fn describe() -> AgentInfo {
        let interval_ms = config("interval_ms")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_INTERVAL_MS);
        AgentInfo {
            name: "pinger".to_string(),
            description: "Emits one event of the configured type per tick".to_string(),
            interval_ms,
        }
    }

    fn tick() -> Result<TickOutcome, String> {
        let ty = config("type").unwrap_or_else(|| DEFAULT_TYPE.to_string());
        let n = state_get("n")
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        state_set("n", n.to_string().as_bytes());
        Ok(TickOutcome {
            activity: format!("sent {ty} #{n}"),
            actions: vec![Action::Emit(NewEvent {
                type_: ty,
                subject: None,
                data: serde_json::json!({ "n": n }).to_string(),
            })],
        })
    }
}

export!(Pinger);
