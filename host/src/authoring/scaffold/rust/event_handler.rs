//! {{name}}: an event handler. The host asks `subscriptions` once when it
//! loads the plugin, then calls `handle` for every event whose type matches
//! one of them, and performs the actions it returns (within the grants of
//! plugin.toml's `[permissions]`).
//!
//! The glue below stays thin; the decision lives in `decide`, which calls no
//! host function, so `cargo test` checks it natively.

use exports::host::plugin::event_handler::Guest;
use host::plugin::types::{Action, Event};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "wit" });

struct Plugin;

impl Guest for Plugin {
    fn subscriptions() -> Vec<String> {
        // Type patterns: `*` matches one dotted token, `>` the rest
        // (`process.>` is every process event). Change to what you react to.
        vec!["process.failed".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        // An `Err(text)` is recorded as a `plugin.error` event.
        Ok(decide(&e))
    }
}

/// What to do about one event: nothing yet. To announce each failure,
/// return for example (and grant `emit = ["my.>"]` in plugin.toml):
///
/// ```text
/// vec![Action::Emit(NewEvent {
///     type_: "my.failure_seen".into(),
///     subject: e.subject.clone(),
///     data: e.data.clone(), // JSON text
/// })]
/// ```
///
/// Host functions (log, config, processes, state) are in
/// `host::plugin::host`.
fn decide(e: &Event) -> Vec<Action> {
    let _ = e;
    Vec::new()
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(type_: &str) -> Event {
        Event {
            id: "0191a7e4-0000-7000-8000-000000000001".into(),
            source: "host/supervisor".into(),
            type_: type_.into(),
            subject: Some("web".into()),
            time: "2026-01-01T00:00:00Z".into(),
            sequence: 1,
            data: r#"{"exit_code":1}"#.into(),
        }
    }

    #[test]
    fn it_subscribes_to_failed_processes() {
        assert_eq!(Plugin::subscriptions(), ["process.failed"]);
    }

    #[test]
    fn a_failed_process_asks_for_nothing_yet() {
        assert!(decide(&event("process.failed")).is_empty());
    }
}
