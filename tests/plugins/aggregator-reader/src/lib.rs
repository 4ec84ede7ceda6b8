//! `aggregator-reader`: a `host:plugin@0.2.0` event handler that calls the
//! aggregator imports from inside wasm. On `test.history` {"source",
//! "types", "subject", "since_ms", "until_ms", "after", "limit"} it calls
//! `history` and emits `test.history-result` {"sequences", "types"}; on
//! `test.stats` {"since_ms", "until_ms"} it calls `stats` and emits
//! `test.stats-result` {"total", "by_type", "by_source", "minutes",
//! "complete"}. Proves the imports are bound for real guests, not only
//! callable from the host's side.

use exports::host::plugin::event_handler::Guest;
use host::plugin::host::{history, stats};
use host::plugin::types::{Action, Event, HistoryQuery, NewEvent};
use serde_json::{Value, json};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../../wit" });

struct Reader;

fn emit(ty: &str, data: Value) -> Action {
    Action::Emit(NewEvent {
        type_: ty.to_string(),
        subject: None,
        data: data.to_string(),
    })
}

impl Guest for Reader {
    fn subscriptions() -> Vec<String> {
        vec!["test.history".to_string(), "test.stats".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        let ask: Value = serde_json::from_str(&e.data).map_err(|err| err.to_string())?;
        let text = |key: &str| ask.get(key).and_then(Value::as_str).map(str::to_string);
        let number = |key: &str| ask.get(key).and_then(Value::as_u64);
        if e.type_ == "test.stats" {
            let counted = stats(number("since_ms"), number("until_ms"));
            let pairs = |list: &[(String, u64)]| {
                list.iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect::<serde_json::Map<_, _>>()
            };
            return Ok(vec![emit(
                "test.stats-result",
                json!({
                    "total": counted.total,
                    "by_type": pairs(&counted.by_type),
                    "by_source": pairs(&counted.by_source),
                    "minutes": counted.per_minute.len(),
                    "complete": counted.complete,
                }),
            )]);
        }
        let types = ask
            .get("types")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let found = history(&HistoryQuery {
            types,
            source: text("source"),
            subject: text("subject"),
            since_ms: number("since_ms"),
            until_ms: number("until_ms"),
            after_sequence: number("after"),
            limit: number("limit").unwrap_or(100) as u32,
        });
        Ok(vec![emit(
            "test.history-result",
            json!({
                "sequences": found.iter().map(|e| e.sequence).collect::<Vec<_>>(),
                "types": found.iter().map(|e| e.type_.clone()).collect::<Vec<_>>(),
            }),
        )])
    }
}

export!(Reader);
