//! `pm`: seed 002's background PM as an agent. Each tick it reads the
//! process table and
//!
//! - finds stalled processes: running with no output (or, before the first
//!   line, no start) for `stall_after_secs`, or running with no pid;
//! - announces each stall episode once (`process.stalled`);
//! - heals it within limits: a `restart` action (which goes through the
//!   supervisor's restart accounting and backoff), at most `max_heals` per
//!   process within `heal_window_secs`, announced as `pm.healed` with the
//!   reason; past the limit, `pm.heal_skipped` and a blocker;
//! - every `checkin_every_secs` publishes `pm.checkin` with findings
//!   (progress, concerns, blockers) as the seed's check-ins do.
//!
//! This file is the thin WIT glue; the decisions live in [`review`]. What it
//! remembers (open episodes, heal times, the last check-in) lives in host
//! state, so a hot reload neither repeats announcements nor resets limits.

mod review;

use exports::host::plugin::background_agent::Guest;
use host::plugin::host::{config, log, now_ms, processes, state_get, state_set};
use host::plugin::types::{Action, AgentInfo, Level, NewEvent, ProcessState, TickOutcome};
use review::{Observed, Settings, decode_memory, encode_memory, parse_setting, review};

wit_bindgen::generate!({ world: "background-agent-plugin", path: "../../wit" });

const DEFAULT_INTERVAL_MS: u64 = 5_000;
const DEFAULT_STALL_AFTER_SECS: u64 = 300;
const DEFAULT_MAX_HEALS: u64 = 2;
const DEFAULT_HEAL_WINDOW_SECS: u64 = 3_600;
const DEFAULT_CHECKIN_EVERY_SECS: u64 = 900;
const STATE_KEY: &str = "memory";

struct Pm;

fn setting(key: &str, default: u64) -> Result<u64, String> {
    parse_setting(key, config(key).as_deref(), default)
}

fn settings() -> Result<Settings, String> {
    let heal = match config("heal").as_deref().map(str::trim) {
        None | Some("") | Some("true") => true,
        Some("false") => false,
        Some(other) => return Err(format!("config `heal` = {other:?} is not true or false")),
    };
    Ok(Settings {
        stall_after_ms: setting("stall_after_secs", DEFAULT_STALL_AFTER_SECS)?.saturating_mul(1000),
        heal,
        max_heals: setting("max_heals", DEFAULT_MAX_HEALS)? as usize,
        heal_window_ms: setting("heal_window_secs", DEFAULT_HEAL_WINDOW_SECS)?.saturating_mul(1000),
        checkin_every_ms: setting("checkin_every_secs", DEFAULT_CHECKIN_EVERY_SECS)?
            .saturating_mul(1000),
    })
}

fn state_name(s: ProcessState) -> &'static str {
    match s {
        ProcessState::Pending => "pending",
        ProcessState::Starting => "starting",
        ProcessState::Running => "running",
        ProcessState::Paused => "paused",
        ProcessState::Stopping => "stopping",
        ProcessState::Completed => "completed",
        ProcessState::Failed => "failed",
        ProcessState::Timeout => "timeout",
        ProcessState::Cancelled => "cancelled",
        ProcessState::Backoff => "backoff",
    }
}

fn emit(ty: &str, subject: Option<String>, data: serde_json::Value) -> Action {
    Action::Emit(NewEvent {
        type_: ty.to_string(),
        subject,
        data: data.to_string(),
    })
}

impl Guest for Pm {
    fn describe() -> AgentInfo {
        // `describe` cannot fail, so a malformed interval is logged and the
        // default used rather than leaving the agent unscheduled.
        let interval_ms = setting("interval_ms", DEFAULT_INTERVAL_MS).unwrap_or_else(|reason| {
            log(
                Level::Warn,
                &format!("{reason}; using {DEFAULT_INTERVAL_MS}"),
            );
            DEFAULT_INTERVAL_MS
        });
        AgentInfo {
            name: "pm".to_string(),
            description: "Finds stalled processes, restarts them within limits, and checks in"
                .to_string(),
            interval_ms,
        }
    }

    fn tick() -> Result<TickOutcome, String> {
        let settings = settings()?;
        let observed: Vec<Observed> = processes()
            .into_iter()
            .map(|p| Observed {
                state: state_name(p.state),
                has_pid: p.pid.is_some(),
                last_sign_of_life_ms: p.last_output_ms.or(p.started_at_ms),
                progress: p.progress,
                restarts: p.restarts,
                exit_code: p.exit_code,
                reported: p.reported_state.map(state_name),
                name: p.name,
            })
            .collect();
        let before = state_get(STATE_KEY)
            .map(|b| decode_memory(&b))
            .unwrap_or_default();
        let review = review(&observed, &before, now_ms(), &settings);
        if review.memory != before {
            state_set(STATE_KEY, &encode_memory(&review.memory));
        }
        let mut actions = Vec::new();
        for stall in &review.stalls {
            let reason = stall.why.reason();
            let silent_secs = match stall.why {
                review::Why::Silent { secs } => Some(secs),
                review::Why::NoPid => None,
            };
            actions.push(emit(
                "process.stalled",
                Some(stall.process.clone()),
                serde_json::json!({
                    "process": stall.process,
                    "silent_secs": silent_secs,
                    "reason": reason,
                }),
            ));
            match stall.heal {
                Some(attempt) => {
                    log(
                        Level::Info,
                        &format!("restarting {}: {reason}", stall.process),
                    );
                    actions.push(Action::Restart(stall.process.clone()));
                    actions.push(emit(
                        "pm.healed",
                        Some(stall.process.clone()),
                        serde_json::json!({
                            "process": stall.process,
                            "action": "restart",
                            "reason": reason,
                            "attempt": attempt,
                            "max_heals": settings.max_heals,
                            "window_secs": settings.heal_window_ms / 1000,
                        }),
                    ));
                }
                None if settings.heal => {
                    actions.push(emit(
                        "pm.heal_skipped",
                        Some(stall.process.clone()),
                        serde_json::json!({
                            "process": stall.process,
                            "reason": reason,
                            "why": "heal limit reached",
                            "max_heals": settings.max_heals,
                            "window_secs": settings.heal_window_ms / 1000,
                        }),
                    ));
                }
                None => {}
            }
        }
        if let Some(checkin) = review.checkin {
            actions.push(emit("pm.checkin", None, checkin));
        }
        Ok(TickOutcome {
            activity: review.activity,
            actions,
        })
    }
}

export!(Pm);
