//! `session-judge`: an event handler that reads each `session.message` of a
//! coordination session and answers `session.judged` with a verdict
//! (agreement / disagreement / neutral). The host counts judged agreements
//! toward consensus, so what counts as agreement is this plugin's decision,
//! and a user can swap in another judge (one asking a model, say).
//!
//! This file is the WIT glue; the judging is in [`verdict`].

mod verdict;

use exports::host::plugin::event_handler::Guest;
use host::plugin::host::config;
use host::plugin::types::{Action, Event, NewEvent};
use verdict::{DEFAULT_AGREE, DEFAULT_OBJECT, Judge};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../wit" });

/// The author the host posts plans under; plans are not judged.
const PLANNER: &str = "planner";

struct SessionJudge;

impl Guest for SessionJudge {
    fn subscriptions() -> Vec<String> {
        vec!["session.message".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        if e.type_ != "session.message" {
            return Ok(Vec::new());
        }
        let data: serde_json::Value = serde_json::from_str(&e.data)
            .map_err(|err| format!("session.message {} is not JSON: {err}", e.id))?;
        let session = data["session"]
            .as_str()
            .ok_or_else(|| format!("session.message {} has no `session`", e.id))?;
        let message = &data["message"];
        let id = message["id"]
            .as_u64()
            .ok_or_else(|| format!("session.message {} has no `message.id`", e.id))?;
        if message["author"].as_str() == Some(PLANNER) {
            return Ok(Vec::new());
        }
        let judge = Judge::new(
            config("agree_phrases").as_deref().unwrap_or(DEFAULT_AGREE),
            config("object_phrases")
                .as_deref()
                .unwrap_or(DEFAULT_OBJECT),
        );
        let verdict = judge.judge(
            message["kind"].as_str().unwrap_or("proposal"),
            message["text"].as_str().unwrap_or_default(),
        );
        let out = serde_json::json!({
            "session": session,
            "message": id,
            "verdict": verdict.as_str(),
        });
        Ok(vec![Action::Emit(NewEvent {
            type_: "session.judged".to_string(),
            subject: Some(session.to_string()),
            data: out.to_string(),
        })])
    }
}

export!(SessionJudge);
