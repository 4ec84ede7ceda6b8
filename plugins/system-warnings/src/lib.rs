//! `system-warnings`: an event handler (seed 001's system warnings) that
//! turns provider rate limits (`provider.rate_limit`, `provider.error` with
//! status 429) and resource limits (`process.resource_limit`, and
//! `process.resource` samples above configured levels) into
//! `system.warning` {type, source, message}, at most one per type and source
//! within `window_secs`, the rest counted.
//!
//! This file is the WIT glue; the decisions live in [`warnings`].

mod warnings;

use exports::host::plugin::event_handler::Guest;
use host::plugin::host::{config, now_ms, state_get, state_set};
use host::plugin::types::{Action, Event, NewEvent};
use warnings::{Seen, Thresholds, admit, classify, decode_windows, encode_windows, parse_setting};

wit_bindgen::generate!({ world: "event-handler-plugin", path: "../../wit" });

const DEFAULT_WINDOW_SECS: u64 = 60;
const DEFAULT_MEMORY_WARN_MIB: u64 = 1024;
const DEFAULT_CPU_WARN_PERCENT: u64 = 0;
const DEFAULT_MAX_SOURCES: u64 = 256;
const WINDOWS_KEY: &str = "windows";

struct SystemWarnings;

impl Guest for SystemWarnings {
    fn subscriptions() -> Vec<String> {
        [
            "provider.rate_limit",
            "provider.rate_limited",
            "provider.error",
            "process.resource_limit",
            "process.resource",
        ]
        .map(String::from)
        .to_vec()
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        let setting = |key: &str, default: u64| parse_setting(key, config(key).as_deref(), default);
        let limits = Thresholds {
            memory_bytes: setting("memory_warn_mib", DEFAULT_MEMORY_WARN_MIB)?
                .saturating_mul(1 << 20),
            cpu_percent: setting("cpu_warn_percent", DEFAULT_CPU_WARN_PERCENT)? as f64,
        };
        let seen = Seen {
            ty: &e.type_,
            subject: e.subject.as_deref(),
            event_source: &e.source,
            data: &e.data,
        };
        let Some(finding) = classify(&seen, &limits) else {
            return Ok(Vec::new());
        };
        let window_ms = setting("window_secs", DEFAULT_WINDOW_SECS)?.saturating_mul(1000);
        let max_sources = setting("max_sources", DEFAULT_MAX_SOURCES)? as usize;
        let mut windows = state_get(WINDOWS_KEY)
            .map(|b| decode_windows(&b))
            .unwrap_or_default();
        let admitted = admit(&mut windows, &finding, now_ms(), window_ms, max_sources);
        state_set(WINDOWS_KEY, &encode_windows(&windows));
        let Some(suppressed) = admitted else {
            return Ok(Vec::new());
        };
        let data = serde_json::json!({
            "type": finding.kind,
            "source": finding.source,
            "message": finding.message,
            "suppressed": suppressed,
            "window_secs": window_ms / 1000,
            "cause_type": e.type_,
        });
        Ok(vec![Action::Emit(NewEvent {
            type_: "system.warning".to_string(),
            subject: Some(finding.source),
            data: data.to_string(),
        })])
    }
}

export!(SystemWarnings);
