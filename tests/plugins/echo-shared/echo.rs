// Shared body of echo-v1 and echo-v2, included by each after it defines
// `VERSION`. Two crates rather than one with a feature flag, so both
// components exist side by side and a test can swap one file for the other.
// (Plain comments: `//!` is not allowed in an included file.)

use exports::host::plugin::event_handler::Guest;
use host::plugin::types::{Action, Event, NewEvent};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../../wit" });

struct Echo;

impl Guest for Echo {
    fn subscriptions() -> Vec<String> {
        vec!["test.ping".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
        if data.get("fail") == Some(&serde_json::Value::Bool(true)) {
            return Err("asked to fail".to_string());
        }
        // `handled_ms` tells a benchmark when this version handled the
        // ping, independent of how long the pong then queued.
        let mut pong = serde_json::json!({
            "version": VERSION,
            "ping_sequence": e.sequence,
            "handled_ms": host::plugin::host::now_ms(),
        });
        // Asked to count: pings so far in host state (key `pings`), so a
        // test can tell whose state-set reached the plugin's state.
        if data.get("count") == Some(&serde_json::Value::Bool(true)) {
            let n = host::plugin::host::state_get("pings")
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            host::plugin::host::state_set("pings", n.to_string().as_bytes());
            pong["count"] = n.into();
        }
        Ok(vec![Action::Emit(NewEvent {
            type_: "test.pong".to_string(),
            subject: None,
            data: pong.to_string(),
        })])
    }
}

export!(Echo);
