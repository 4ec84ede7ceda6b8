//! `file-reader`: on `test.read-file` {"path"} tries to read that file and
//! emits `test.file-result` {"ok": true, "len"} or {"ok": false, "error"}, so
//! sandbox tests can check that only granted directories are visible.

use exports::host::plugin::event_handler::Guest;
use host::plugin::types::{Action, Event, NewEvent};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../../wit" });

struct FileReader;

impl Guest for FileReader {
    fn subscriptions() -> Vec<String> {
        vec!["test.read-file".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        if e.type_ != "test.read-file" {
            return Ok(Vec::new());
        }
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
        let result = match data.get("path").and_then(|p| p.as_str()) {
            None => serde_json::json!({ "ok": false, "error": "no \"path\" in the event data" }),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => serde_json::json!({ "ok": true, "len": text.len() }),
                Err(err) => serde_json::json!({ "ok": false, "error": err.to_string() }),
            },
        };
        Ok(vec![Action::Emit(NewEvent {
            type_: "test.file-result".to_string(),
            subject: None,
            data: result.to_string(),
        })])
    }
}

export!(FileReader);
