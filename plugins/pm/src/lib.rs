//! `stall-detector`: a background agent (seed 002's PM stall detection) that
//! emits `process.stalled` once per episode for a running process whose last
//! output, or start, is older than `stall_after_secs`.
//!
//! This file is the thin WIT glue; the decision lives in [`watch`] so it runs
//! under `cargo test` natively. Reported episodes live in host state so a hot
//! reload does not announce them again.

mod watch;

use exports::host::plugin::background_agent::Guest;
use host::plugin::host::{config, log, now_ms, processes, state_get, state_set};
use host::plugin::types::{Action, AgentInfo, Level, NewEvent, ProcessState, TickOutcome};
use watch::{Observed, decode_reported, encode_reported, parse_setting, review};

wit_bindgen::generate!({ world: "background-agent-plugin", path: "../../wit" });

const DEFAULT_INTERVAL_MS: u64 = 5_000;
const DEFAULT_STALL_AFTER_SECS: u64 = 300;
const STATE_KEY: &str = "reported";

struct StallDetector;

impl Guest for StallDetector {
    fn describe() -> AgentInfo {
        // `describe` cannot fail, so a malformed interval is logged and the
        // default used rather than leaving the agent unscheduled.
        let interval_ms = parse_setting(
            "interval_ms",
            config("interval_ms").as_deref(),
            DEFAULT_INTERVAL_MS,
        )
        .unwrap_or_else(|reason| {
            log(
                Level::Warn,
                &format!("{reason}; using {DEFAULT_INTERVAL_MS}"),
            );
            DEFAULT_INTERVAL_MS
        });
        AgentInfo {
            name: "stall-detector".to_string(),
            description: "Reports running processes whose output went silent".to_string(),
            interval_ms,
        }
    }

    fn tick() -> Result<TickOutcome, String> {
        let stall_after_secs = parse_setting(
            "stall_after_secs",
            config("stall_after_secs").as_deref(),
            DEFAULT_STALL_AFTER_SECS,
        )?;
        let observed: Vec<Observed> = processes()
            .into_iter()
            .map(|p| Observed {
                running: p.state == ProcessState::Running,
                last_sign_of_life_ms: p.last_output_ms.or(p.started_at_ms),
                name: p.name,
            })
            .collect();
        let before = state_get(STATE_KEY)
            .map(|b| decode_reported(&b))
            .unwrap_or_default();
        let review = review(
            &observed,
            &before,
            now_ms(),
            stall_after_secs.saturating_mul(1000),
        );
        if review.reported != before {
            state_set(STATE_KEY, &encode_reported(&review.reported));
        }
        for name in &review.recovered {
            log(Level::Info, &format!("{name} is no longer stalled"));
        }
        let actions = review
            .new_stalls
            .iter()
            .map(|stall| {
                let data = serde_json::json!({
                    "process": stall.process,
                    "silent_secs": stall.silent_secs,
                });
                Action::Emit(NewEvent {
                    type_: "process.stalled".to_string(),
                    subject: Some(stall.process.clone()),
                    data: data.to_string(),
                })
            })
            .collect();
        Ok(TickOutcome {
            activity: review.activity(),
            actions,
        })
    }
}

export!(StallDetector);
