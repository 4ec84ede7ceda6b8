//! `failure-alert`: an event handler that raises `alert.process_failures` when
//! one process fails `threshold` times within `window_secs` (seed 001's
//! "3 failures in 10 minutes" alert), at most once per window per process.
//!
//! This file is the thin WIT glue: read config, load and store the window in
//! host state, turn the decision into an `emit` action. The decision itself
//! lives in [`policy`] so it runs under `cargo test` natively.

mod policy;

use exports::host::plugin::event_handler::Guest;
use host::plugin::host::{config, log, now_ms, state_get, state_set};
use host::plugin::types::{Action, Event, Level, NewEvent};
use policy::{Policy, decode_history, encode_history, parse_setting};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../wit" });

const DEFAULT_THRESHOLD: usize = 3;
const DEFAULT_WINDOW_SECS: u64 = 600;

struct FailureAlert;

impl Guest for FailureAlert {
    fn subscriptions() -> Vec<String> {
        vec!["process.failed".to_string()]
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        if e.type_ != "process.failed" {
            return Ok(Vec::new());
        }
        let process = e
            .subject
            .clone()
            .ok_or_else(|| format!("process.failed event {} has no subject", e.id))?;
        let policy = read_policy()?;

        // Keyed per process so unrelated processes never share a window.
        let key = format!("failures/{process}");
        let earlier = state_get(&key)
            .map(|b| decode_history(&b))
            .unwrap_or_default();
        let outcome = policy.record(&earlier, now_ms());
        state_set(&key, &encode_history(&outcome.remembered));

        let Some(alert) = outcome.alert else {
            return Ok(Vec::new());
        };
        let failures = alert.failures;
        log(
            Level::Warn,
            &format!(
                "{process} failed {failures} times within {}s",
                policy.window_ms / 1000
            ),
        );
        let data = serde_json::json!({
            "process": process,
            "failures": failures,
            "window_secs": policy.window_ms / 1000,
            "last_exit_code": last_exit_code(&e.data),
            "suppressed": alert.suppressed,
        });
        Ok(vec![Action::Emit(NewEvent {
            type_: "alert.process_failures".to_string(),
            subject: Some(process),
            data: data.to_string(),
        })])
    }
}

/// Reads `threshold` and `window_secs`; a malformed value is an error so the
/// host records it as `plugin.error` instead of the plugin guessing.
fn read_policy() -> Result<Policy, String> {
    let threshold = parse_setting(
        "threshold",
        config("threshold").as_deref(),
        DEFAULT_THRESHOLD,
    )?;
    if threshold == 0 {
        return Err("config `threshold` must be at least 1".to_string());
    }
    let window_secs = parse_setting(
        "window_secs",
        config("window_secs").as_deref(),
        DEFAULT_WINDOW_SECS,
    )?;
    Ok(Policy {
        threshold,
        window_ms: window_secs.saturating_mul(1000),
    })
}

/// The failed run's exit code, `null` when it died by signal or the data
/// carries none.
fn last_exit_code(data: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("exit_code").cloned())
        .unwrap_or(serde_json::Value::Null)
}

export!(FailureAlert);
