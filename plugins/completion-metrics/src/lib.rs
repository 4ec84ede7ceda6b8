//! `completion-metrics`: an event handler (seed 001's metrics) that turns
//! every finished run into `metrics.completion` (process, kind, duration,
//! exit code, outcome) and keeps a running aggregate per kind (count,
//! outcomes, min / max / mean, p50 / p95), published as `metrics.summary`.
//!
//! It reads `process.exited`, the one event of a run's end that carries the
//! supervisor's own timing (`duration_ms`, from spawn to exit) and the
//! outcome (`to`); `process.completed` / `failed` / `timeout` carry neither.
//! This file is the WIT glue; the aggregate lives in [`metrics`].

mod metrics;

use exports::host::plugin::event_handler::Guest;
use host::plugin::host::{config, processes, state_get, state_set};
use host::plugin::types::{Action, Event, NewEvent};
use metrics::{Aggregate, admit_kind, parse_setting, read_exited};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../wit" });

const DEFAULT_SUMMARY_EVERY: u64 = 1;
const DEFAULT_MAX_KINDS: u64 = 64;
const KINDS_KEY: &str = "kinds";

struct CompletionMetrics;

impl Guest for CompletionMetrics {
    fn subscriptions() -> Vec<String> {
        vec!["process.exited".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        if e.type_ != "process.exited" {
            return Ok(Vec::new());
        }
        let process = e
            .subject
            .clone()
            .ok_or_else(|| format!("process.exited event {} has no subject", e.id))?;
        let run = read_exited(&e.data)
            .map_err(|reason| format!("process.exited event {}: {reason}", e.id))?;
        let summary_every = parse_setting(
            "summary_every",
            config("summary_every").as_deref(),
            DEFAULT_SUMMARY_EVERY,
        )?;
        let max_kinds = parse_setting(
            "max_kinds",
            config("max_kinds").as_deref(),
            DEFAULT_MAX_KINDS,
        )?;
        let include_cancelled = match config("include_cancelled").as_deref().map(str::trim) {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(format!(
                    "config `include_cancelled` = {other:?} is not true or false"
                ));
            }
        };
        if run.state == "cancelled" && !include_cancelled {
            return Ok(Vec::new());
        }
        // The kind is not in the event: the process table has it (a removed
        // process is gone from it, and is counted as `unknown`).
        let kind = processes()
            .into_iter()
            .find(|p| p.name == process)
            .map_or_else(|| "unknown".to_string(), |p| p.kind);

        let mut kinds: Vec<String> = state_get(KINDS_KEY)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let before = kinds.len();
        let bucket = admit_kind(&mut kinds, &kind, max_kinds as usize);
        if kinds.len() != before {
            state_set(
                KINDS_KEY,
                &serde_json::to_vec(&kinds).map_err(|e| e.to_string())?,
            );
        }
        let key = format!("kind/{bucket}");
        let mut aggregate = state_get(&key)
            .map(|b| Aggregate::decode(&b))
            .unwrap_or_default();
        aggregate.add(&run);
        state_set(&key, &aggregate.encode());

        let mut actions = vec![Action::Emit(NewEvent {
            type_: "metrics.completion".to_string(),
            subject: Some(process.clone()),
            data: serde_json::json!({
                "process": process,
                "kind": kind,
                "duration_ms": run.duration_ms,
                "exit_code": run.exit_code,
                "signal": run.signal,
                "state": run.state,
            })
            .to_string(),
        })];
        if summary_every > 0 && aggregate.count.is_multiple_of(summary_every) {
            actions.push(Action::Emit(NewEvent {
                type_: "metrics.summary".to_string(),
                subject: Some(bucket.clone()),
                data: aggregate.summary(&bucket).to_string(),
            }));
        }
        Ok(actions)
    }
}

export!(CompletionMetrics);
