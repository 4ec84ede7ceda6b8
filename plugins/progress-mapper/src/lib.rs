//! `progress-mapper`: a status mapper that turns foreign statuses and
//! progress lines (`42%`, `[3/10]`, `progress: 0.5`, `STATUS: <word>`) into
//! process state, progress and a message, for the kinds no dedicated mapper
//! serves (`skip_kinds`: ai-coder, test_suite and build have their own).
//!
//! This file is the thin WIT glue; the matching lives in [`parse`] so it runs
//! under `cargo test` natively.

mod parse;

use exports::host::plugin::status_mapper::Guest;
use host::plugin::host::config;
use host::plugin::types::{ProcessInfo, ProcessState, StatusUpdate};
use parse::{Lifecycle, map_reported, parse_kinds, parse_line, parse_skip_kinds};

wit_bindgen::generate!({ world: "status-mapper-plugin", path: "../../wit" });

struct ProgressMapper;

impl Guest for ProgressMapper {
    fn kinds() -> Vec<String> {
        parse_kinds(config("kinds").as_deref())
    }

    fn map_status(p: ProcessInfo, reported: String) -> Option<StatusUpdate> {
        if skipped(&p) {
            return None;
        }
        let state = map_reported(&reported)?;
        Some(StatusUpdate {
            state: Some(to_wit(state)),
            progress: None,
            message: Some(format!("reported status: {}", reported.trim())),
        })
    }

    fn map_output(p: ProcessInfo, line: String) -> Option<StatusUpdate> {
        if skipped(&p) {
            return None;
        }
        let reading = parse_line(&line)?;
        Some(StatusUpdate {
            state: reading.state.map(to_wit),
            progress: reading.progress,
            message: Some(reading.message),
        })
    }
}

/// Whether `p` is of a kind left to another mapper (`skip_kinds`). The
/// host has no "every kind but these" in `kinds()`, so `*` is served and
/// the skipped kinds are answered with nothing here.
fn skipped(p: &ProcessInfo) -> bool {
    parse_skip_kinds(config("skip_kinds").as_deref()).contains(&p.kind)
}

fn to_wit(state: Lifecycle) -> ProcessState {
    match state {
        Lifecycle::Starting => ProcessState::Starting,
        Lifecycle::Running => ProcessState::Running,
        Lifecycle::Paused => ProcessState::Paused,
        Lifecycle::Completed => ProcessState::Completed,
        Lifecycle::Failed => ProcessState::Failed,
        Lifecycle::Cancelled => ProcessState::Cancelled,
    }
}

export!(ProgressMapper);
