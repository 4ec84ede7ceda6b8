//! `security`: an event handler (seed 002's security agent) that flags
//! secrets in the command lines, arguments and environment of supervised
//! processes, as `security.secret_found` {process, where, kind}: never the
//! value, nor any part of it.
//!
//! The command and environment are visible to a plugin only in
//! `process.created` (its `spec`): `process-info` carries neither. So this
//! is a handler on `process.created` rather than an agent polling the
//! table: it sees every process once, as it is defined (from the config or
//! the API), before it first runs.
//!
//! This file is the WIT glue; detection lives in [`detect`].

mod detect;

use exports::host::plugin::event_handler::Guest;
use host::plugin::host::{config, log};
use host::plugin::types::{Action, Event, Level, NewEvent};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../wit" });

const DEFAULT_MAX_FINDINGS: usize = 20;

struct Security;

impl Guest for Security {
    fn subscriptions() -> Vec<String> {
        vec!["process.created".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        if e.type_ != "process.created" {
            return Ok(Vec::new());
        }
        let process = e
            .subject
            .clone()
            .ok_or_else(|| format!("process.created event {} has no subject", e.id))?;
        let max_findings: usize = match config("max_findings").as_deref().map(str::trim) {
            None | Some("") => DEFAULT_MAX_FINDINGS,
            Some(text) => text
                .parse()
                .map_err(|_| format!("config `max_findings` = {text:?} is not a whole number"))?,
        };
        // Under the host's 256 actions per call, with the truncation note.
        let max_findings = max_findings.min(200);
        // The error names the event, never its text: the data holds the
        // very secrets this plugin must not repeat.
        let data: serde_json::Value = serde_json::from_str(&e.data)
            .map_err(|_| format!("process.created event {} has data that is not JSON", e.id))?;
        let found = detect::scan_spec(&data);
        if found.is_empty() {
            return Ok(Vec::new());
        }
        log(
            Level::Warn,
            &format!(
                "{process}: {} possible secrets in its command line or environment",
                found.len()
            ),
        );
        let mut actions: Vec<Action> = found
            .iter()
            .take(max_findings)
            .map(|f| {
                Action::Emit(NewEvent {
                    type_: "security.secret_found".to_string(),
                    subject: Some(process.clone()),
                    data: serde_json::json!({
                        "process": process,
                        "where": f.place,
                        "kind": f.kind.as_str(),
                    })
                    .to_string(),
                })
            })
            .collect();
        if found.len() > max_findings {
            actions.push(Action::Emit(NewEvent {
                type_: "security.findings_truncated".to_string(),
                subject: Some(process.clone()),
                data: serde_json::json!({
                    "process": process,
                    "found": found.len(),
                    "reported": max_findings,
                })
                .to_string(),
            }));
        }
        Ok(actions)
    }
}

export!(Security);
