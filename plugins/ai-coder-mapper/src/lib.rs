//! `ai-coder-mapper`: a status mapper for AI-coder sessions (seed 000).
//!
//! A session reports its status either as JSON lines on stdout
//! (`{"status":"paused","progress":0.4,"message":"..."}`) or through the
//! host's API (`POST /v1/processes/{id}/status`, which the host turns into a
//! `process.reported` event and a `map-status` call). Both map the seed's
//! statuses to process states and carry progress and message.
//!
//! This file is the WIT glue; the reading lives in [`status`] so it runs
//! under `cargo test` natively.

mod status;

use exports::host::plugin::status_mapper::Guest;
use host::plugin::host::{config, recent_events};
use host::plugin::types::{EventFilter, ProcessInfo, ProcessState, StatusUpdate};
use status::{Lifecycle, Reading, parse_kinds, parse_line, reported};

wit_bindgen::generate!({ world: "status-mapper-plugin", path: "../../wit" });

struct AiCoderMapper;

impl Guest for AiCoderMapper {
    fn kinds() -> Vec<String> {
        parse_kinds(config("kinds").as_deref())
    }

    fn map_status(p: ProcessInfo, word: String) -> Option<StatusUpdate> {
        // `map-status` gets the status word only; the report's progress
        // and message are in the event's data, so read it back: the newest
        // report for this process, taken only if it is of this status.
        let report = recent_events(&EventFilter {
            types: vec!["process.reported".to_string()],
            subject: Some(p.name),
            after_sequence: None,
            limit: 1,
        })
        .pop()
        .and_then(|e| serde_json::from_str(&e.data).ok());
        reported(&word, report.as_ref()).map(to_update)
    }

    fn map_output(_p: ProcessInfo, line: String) -> Option<StatusUpdate> {
        parse_line(&line).map(to_update)
    }
}

fn to_update(r: Reading) -> StatusUpdate {
    StatusUpdate {
        state: r.state.map(to_wit),
        progress: r.progress,
        message: r.message,
    }
}

fn to_wit(state: Lifecycle) -> ProcessState {
    match state {
        Lifecycle::Pending => ProcessState::Pending,
        Lifecycle::Running => ProcessState::Running,
        Lifecycle::Paused => ProcessState::Paused,
        Lifecycle::Completed => ProcessState::Completed,
        Lifecycle::Failed => ProcessState::Failed,
        Lifecycle::Cancelled => ProcessState::Cancelled,
    }
}

export!(AiCoderMapper);
