//! Seed 000's AI-coder statuses and the JSON status lines an AI coder
//! prints, read without any host call so the tests run natively.
//!
//! A status line is one JSON object on one line of stdout:
//! `{"status":"paused","progress":0.4,"message":"waiting for review"}`.
//! Every field is optional, but a line must carry at least one of them.
//! Whatever is wrong in a line (not JSON, a status not in the list, a
//! progress outside 0..=1) is left out rather than passed on: the host
//! rejects a whole update whose progress is out of range, and a coder that
//! prints one bad field should not lose the good ones.

use serde_json::Value;

/// The process states seed 000's statuses map to; a subset of the WIT
/// `process-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Pending,
    Running,
    Paused,
    Completed,
    Failed,
    Cancelled,
}

/// What one status line or one reported status says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub state: Option<Lifecycle>,
    /// 0.0 ..= 1.0.
    pub progress: Option<f32>,
    pub message: Option<String>,
}

/// Longest message kept, in characters; the host cuts at 1 KiB anyway,
/// and a status message is a line in a listing.
pub const MESSAGE_CHARS: usize = 300;

/// Longest line parsed as JSON, in bytes. A status line is a few hundred
/// bytes; a longer "line" is a coder dumping data, not reporting status,
/// and parsing megabytes of it on every line would be the mapper's cost.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Seed 000's `mapAICoderStatus`, ignoring case and blanks: creating →
/// pending, running, paused, completed, failed, stopped → cancelled.
/// Anything else maps to nothing (the seed's default of `pending` would
/// report a state nobody asked for).
pub fn map_status(word: &str) -> Option<Lifecycle> {
    match word.trim().to_ascii_lowercase().as_str() {
        "creating" => Some(Lifecycle::Pending),
        "running" => Some(Lifecycle::Running),
        "paused" => Some(Lifecycle::Paused),
        "completed" => Some(Lifecycle::Completed),
        "failed" => Some(Lifecycle::Failed),
        "stopped" => Some(Lifecycle::Cancelled),
        _ => None,
    }
}

/// Reads one output line; `None` unless it is a JSON object carrying a
/// known status, a valid progress or a message.
pub fn parse_line(line: &str) -> Option<Reading> {
    let line = line.trim();
    if !line.starts_with('{') || line.len() > MAX_LINE_BYTES {
        return None;
    }
    let value: Value = serde_json::from_str(line).ok()?;
    let reading = read_fields(
        value.get("status").and_then(Value::as_str),
        value.get("progress"),
        value.get("message").and_then(Value::as_str),
    );
    (reading != Reading::default()).then_some(reading)
}

/// A status reported through the API (`POST /v1/processes/{id}/status`),
/// with the `progress` and `message` of that report when the host's log
/// still has them (`report` is the event's data).
pub fn reported(word: &str, report: Option<&Value>) -> Option<Reading> {
    let state = map_status(word)?;
    let report = report.filter(|r| r.get("status").and_then(Value::as_str) == Some(word));
    let mut reading = read_fields(
        Some(word),
        report.and_then(|r| r.get("progress")),
        report
            .and_then(|r| r.get("message"))
            .and_then(Value::as_str),
    );
    reading.state = Some(state);
    Some(reading)
}

/// The three fields, each validated on its own.
fn read_fields(status: Option<&str>, progress: Option<&Value>, message: Option<&str>) -> Reading {
    let state = status.and_then(map_status);
    let progress = progress
        .and_then(Value::as_f64)
        .filter(|p| (0.0..=1.0).contains(p))
        .map(|p| p as f32)
        // A finished session is all done even if the coder did not say so.
        .or((state == Some(Lifecycle::Completed)).then_some(1.0));
    let message = message
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| m.chars().take(MESSAGE_CHARS).collect());
    Reading {
        state,
        progress,
        message,
    }
}

/// Splits the `kinds` config value (a comma list); unset or blank is
/// `ai-coder`.
pub fn parse_kinds(raw: Option<&str>) -> Vec<String> {
    let kinds: Vec<String> = raw
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    if kinds.is_empty() {
        vec!["ai-coder".to_string()]
    } else {
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_line_of_a_megabyte_is_not_parsed() {
        let line = format!(
            "{{\"status\":\"running\",\"message\":\"{}\"}}",
            "x".repeat(1 << 20)
        );
        assert_eq!(parse_line(&line), None);
    }

    #[test]
    fn invalid_json_says_nothing() {
        assert_eq!(parse_line("{\"status\": \"running\""), None);
        assert_eq!(parse_line("{not json}"), None);
        assert_eq!(parse_line("[\"running\"]"), None);
        assert_eq!(parse_line("status: running"), None);
    }

    #[test]
    fn a_status_not_in_the_seed_maps_to_no_state_but_keeps_the_rest() {
        assert_eq!(parse_line(r#"{"status":"pondering"}"#), None);
        let r = parse_line(r#"{"status":"pondering","progress":0.3,"message":"hm"}"#).unwrap();
        assert_eq!(r.state, None);
        assert_eq!(r.progress, Some(0.3));
        assert_eq!(r.message.as_deref(), Some("hm"));
    }

    #[test]
    fn a_progress_outside_zero_to_one_is_dropped_and_the_status_kept() {
        for bad in [
            json!(7.0),
            json!(-0.1),
            json!("0.5"),
            json!(null),
            json!("NaN"),
        ] {
            let line = json!({"status": "paused", "progress": bad}).to_string();
            let r = parse_line(&line).unwrap();
            assert_eq!(
                (r.state, r.progress),
                (Some(Lifecycle::Paused), None),
                "{line}"
            );
        }
        // JSON has no NaN or infinity: such a line is not JSON at all.
        assert_eq!(parse_line(r#"{"status":"paused","progress":NaN}"#), None);
        assert_eq!(parse_line(r#"{"progress":1e999}"#), None);
    }

    #[test]
    fn a_full_status_line_maps_state_progress_and_message() {
        let r =
            parse_line(r#"  {"status":"Paused","progress":0.4,"message":" waiting for review "}"#)
                .unwrap();
        assert_eq!(
            r,
            Reading {
                state: Some(Lifecycle::Paused),
                progress: Some(0.4),
                message: Some("waiting for review".into()),
            }
        );
    }

    #[test]
    fn completed_means_all_done_unless_the_coder_says_otherwise() {
        let r = parse_line(r#"{"status":"completed"}"#).unwrap();
        assert_eq!(r.progress, Some(1.0));
        let r = parse_line(r#"{"status":"completed","progress":0.9}"#).unwrap();
        assert_eq!(r.progress, Some(0.9));
    }

    #[test]
    fn seed_statuses_map_as_the_seed_does() {
        assert_eq!(map_status("creating"), Some(Lifecycle::Pending));
        assert_eq!(map_status("RUNNING"), Some(Lifecycle::Running));
        assert_eq!(map_status("paused"), Some(Lifecycle::Paused));
        assert_eq!(map_status("completed"), Some(Lifecycle::Completed));
        assert_eq!(map_status(" failed "), Some(Lifecycle::Failed));
        assert_eq!(map_status("stopped"), Some(Lifecycle::Cancelled));
        assert_eq!(map_status("done"), None);
        assert_eq!(map_status(""), None);
    }

    #[test]
    fn long_messages_are_shortened() {
        let line = json!({"message": "é".repeat(5000)}).to_string();
        let m = parse_line(&line).unwrap().message.unwrap();
        assert_eq!(m.chars().count(), MESSAGE_CHARS);
    }

    #[test]
    fn a_reported_status_takes_progress_and_message_from_its_own_report() {
        let report = json!({"status": "paused", "progress": 0.5, "message": "lunch"});
        let r = reported("paused", Some(&report)).unwrap();
        assert_eq!(
            (r.state, r.progress, r.message.as_deref()),
            (Some(Lifecycle::Paused), Some(0.5), Some("lunch"))
        );
        // A report of another status is not this one's.
        let r = reported("running", Some(&report)).unwrap();
        assert_eq!((r.progress, r.message), (None, None));
        assert_eq!(reported("sleeping", Some(&report)), None);
    }

    #[test]
    fn kinds_default_to_ai_coder() {
        assert_eq!(parse_kinds(None), vec!["ai-coder"]);
        assert_eq!(
            parse_kinds(Some("ai-coder, agent")),
            vec!["ai-coder", "agent"]
        );
    }
}
