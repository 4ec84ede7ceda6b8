//! Which events are warnings, and the de-duplication window, free of any
//! host call so they run under `cargo test` natively.
//!
//! A warning is identified by its type and source (a provider, a process).
//! The first of a kind in a window is published; the rest of that window are
//! only counted, and the count rides on the next warning of that key. The
//! table of keys is capped, so a flood of made-up sources cannot grow state.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Longest source kept (longer ones are cut, on a character boundary).
pub const MAX_SOURCE: usize = 128;
/// Longest message published.
pub const MAX_MESSAGE: usize = 512;

/// Thresholds for `process.resource` samples; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Memory of a process tree above which a sample is a warning.
    pub memory_bytes: u64,
    /// CPU percent (100 = one core) above which a sample is a warning.
    pub cpu_percent: f64,
}

/// A warning before de-duplication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `rate_limit`, `resource_limit` or `resource`.
    pub kind: &'static str,
    /// Who it is about: a provider or a process.
    pub source: String,
    /// What happened, for people.
    pub message: String,
}

/// The event as the classifier sees it.
pub struct Seen<'a> {
    /// Event type.
    pub ty: &'a str,
    /// Event subject (a process for supervisor events).
    pub subject: Option<&'a str>,
    /// The CloudEvent source (`api`, `plugin/NAME`, `host/supervisor`).
    pub event_source: &'a str,
    /// Event data as JSON text.
    pub data: &'a str,
}

/// Whether `event` is a warning, and which. Malformed data is not an error:
/// a rate limit with unreadable data is still a rate limit (its source falls
/// back to the subject, then the event's source), and a resource sample or
/// provider error that cannot be read is no warning.
pub fn classify(event: &Seen<'_>, limits: &Thresholds) -> Option<Finding> {
    let data: Value = serde_json::from_str(event.data).unwrap_or(Value::Null);
    let text = |k: &str| data.get(k).and_then(Value::as_str);
    let fallback = || {
        text("provider")
            .or(event.subject)
            .unwrap_or(event.event_source)
    };
    match event.ty {
        // Both spellings: the seed's "rate limit" events, and the name the
        // API's own examples use.
        "provider.rate_limit" | "provider.rate_limited" => {
            let source = fallback();
            let mut message = format!("provider {source} is rate limiting");
            if let Some(retry) = data.get("retry_after_ms").and_then(Value::as_u64) {
                message.push_str(&format!("; retry after {retry} ms"));
            } else if let Some(retry) = data.get("retry_after").and_then(Value::as_u64) {
                message.push_str(&format!("; retry after {retry} s"));
            }
            Some(finding("rate_limit", source, message))
        }
        "provider.error" if status_of(&data) == Some(429) => {
            let source = fallback();
            let detail = text("message").or(text("error")).unwrap_or("");
            let message = if detail.is_empty() {
                format!("provider {source} answered 429 Too Many Requests")
            } else {
                format!("provider {source} answered 429 Too Many Requests: {detail}")
            };
            Some(finding("rate_limit", source, message))
        }
        "process.resource_limit" => {
            let process = event.subject?;
            let used = data.get("memory_bytes").and_then(Value::as_u64);
            let limit = data.get("limit_bytes").and_then(Value::as_u64);
            let message = match (used, limit) {
                (Some(u), Some(l)) => format!(
                    "{process} used {} MiB, over its {} MiB memory limit; the supervisor stopped it",
                    u >> 20,
                    l >> 20
                ),
                _ => format!("{process} went over its memory limit; the supervisor stopped it"),
            };
            Some(finding("resource_limit", process, message))
        }
        "process.resource" => {
            let process = event.subject?;
            let memory = data.get("memory_bytes").and_then(Value::as_u64);
            let cpu = data.get("cpu_percent").and_then(Value::as_f64);
            let mut over = Vec::new();
            if let Some(m) = memory.filter(|&m| limits.memory_bytes > 0 && m > limits.memory_bytes)
            {
                over.push(format!(
                    "memory {} MiB > {} MiB",
                    m >> 20,
                    limits.memory_bytes >> 20
                ));
            }
            if let Some(c) = cpu.filter(|&c| limits.cpu_percent > 0.0 && c > limits.cpu_percent) {
                over.push(format!("CPU {c:.0}% > {:.0}%", limits.cpu_percent));
            }
            if over.is_empty() {
                return None;
            }
            let message = format!("{process} is above its warning level: {}", over.join(", "));
            Some(finding("resource", process, message))
        }
        _ => None,
    }
}

/// `status` as a number or a numeric string.
fn status_of(data: &Value) -> Option<u64> {
    let status = data.get("status")?;
    status
        .as_u64()
        .or_else(|| status.as_str().and_then(|s| s.trim().parse().ok()))
}

fn finding(kind: &'static str, source: &str, message: String) -> Finding {
    Finding {
        kind,
        source: cut(source, MAX_SOURCE),
        message: cut(&message, MAX_MESSAGE),
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// One key's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When the warning that opened the window was published.
    pub opened_ms: u64,
    /// Findings held back since.
    pub suppressed: u64,
}

/// Every open window, by `type/source`.
pub type Windows = BTreeMap<String, Window>;

/// Decides whether `finding` is published at `now_ms`; returns the number
/// of findings of its key held back since the previous warning when it is.
///
/// With more than `max_keys` keys, the oldest window is dropped (losing at
/// most its count), so the table stays bounded.
pub fn admit(
    windows: &mut Windows,
    finding: &Finding,
    now_ms: u64,
    window_ms: u64,
    max_keys: usize,
) -> Option<u64> {
    let key = format!("{}/{}", finding.kind, finding.source);
    if let Some(w) = windows.get_mut(&key) {
        let open = w.opened_ms <= now_ms && now_ms - w.opened_ms < window_ms;
        if open {
            w.suppressed = w.suppressed.saturating_add(1);
            return None;
        }
        let held = w.suppressed;
        *w = Window {
            opened_ms: now_ms,
            suppressed: 0,
        };
        return Some(held);
    }
    windows.insert(
        key,
        Window {
            opened_ms: now_ms,
            suppressed: 0,
        },
    );
    while windows.len() > max_keys.max(1) {
        let oldest = windows
            .iter()
            .min_by_key(|(_, w)| w.opened_ms)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => windows.remove(&k),
            None => break,
        };
    }
    Some(0)
}

/// Reads the windows kept in host state; unreadable state starts afresh
/// (at worst one more warning).
pub fn decode_windows(bytes: &[u8]) -> Windows {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) else {
        return Windows::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            Some((
                k,
                Window {
                    opened_ms: v.get(0)?.as_u64()?,
                    suppressed: v.get(1)?.as_u64()?,
                },
            ))
        })
        .collect()
}

/// Stores windows as `{"type/source": [opened_ms, suppressed]}`.
pub fn encode_windows(windows: &Windows) -> Vec<u8> {
    let map: serde_json::Map<String, Value> = windows
        .iter()
        .map(|(k, w)| (k.clone(), json!([w.opened_ms, w.suppressed])))
        .collect();
    Value::Object(map).to_string().into_bytes()
}

/// Parses a whole-number config value, naming the key when it is malformed.
pub fn parse_setting(key: &str, raw: Option<&str>, default: u64) -> Result<u64, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("config `{key}` = {text:?} is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Thresholds = Thresholds {
        memory_bytes: 1 << 30,
        cpu_percent: 0.0,
    };

    fn seen<'a>(ty: &'a str, subject: Option<&'a str>, data: &'a str) -> Seen<'a> {
        Seen {
            ty,
            subject,
            event_source: "api",
            data,
        }
    }

    #[test]
    fn rate_limits_and_429s_are_warnings_about_their_provider() {
        let f = classify(
            &seen(
                "provider.rate_limit",
                None,
                r#"{"provider":"anthropic","retry_after_ms":2000}"#,
            ),
            &LIMITS,
        )
        .unwrap();
        assert_eq!((f.kind, f.source.as_str()), ("rate_limit", "anthropic"));
        assert!(f.message.contains("retry after 2000 ms"), "{}", f.message);
        let f = classify(
            &seen(
                "provider.rate_limited",
                Some("claude"),
                r#"{"retry_after":30}"#,
            ),
            &LIMITS,
        )
        .unwrap();
        assert_eq!((f.kind, f.source.as_str()), ("rate_limit", "claude"));
        assert!(f.message.ends_with("retry after 30 s"), "{}", f.message);
        let e = classify(
            &seen(
                "provider.error",
                Some("coder-1"),
                r#"{"provider":"openai","status":"429","message":"slow down"}"#,
            ),
            &LIMITS,
        )
        .unwrap();
        assert_eq!((e.kind, e.source.as_str()), ("rate_limit", "openai"));
        assert!(e.message.ends_with("slow down"));
        assert_eq!(
            classify(
                &seen(
                    "provider.error",
                    None,
                    r#"{"provider":"openai","status":500}"#
                ),
                &LIMITS
            ),
            None
        );
    }

    #[test]
    fn a_rate_limit_with_malformed_data_still_warns_and_names_what_it_can() {
        let f = classify(
            &seen("provider.rate_limit", Some("coder"), "{not json"),
            &LIMITS,
        )
        .unwrap();
        assert_eq!(f.source, "coder");
        let f = classify(&seen("provider.rate_limit", None, ""), &LIMITS).unwrap();
        assert_eq!(f.source, "api", "the event's own source is the last resort");
        assert_eq!(classify(&seen("provider.error", None, "]["), &LIMITS), None);
    }

    #[test]
    fn memory_limit_stops_are_warnings_and_samples_only_above_the_threshold() {
        let f = classify(
            &seen(
                "process.resource_limit",
                Some("hog"),
                r#"{"memory_bytes":209715200,"limit_bytes":104857600}"#,
            ),
            &LIMITS,
        )
        .unwrap();
        assert_eq!((f.kind, f.source.as_str()), ("resource_limit", "hog"));
        assert!(f.message.contains("200 MiB"), "{}", f.message);
        let low = r#"{"memory_bytes":1000,"cpu_percent":350.0}"#;
        assert_eq!(
            classify(&seen("process.resource", Some("p"), low), &LIMITS),
            None
        );
        let hot = Thresholds {
            memory_bytes: 0,
            cpu_percent: 300.0,
        };
        let f = classify(&seen("process.resource", Some("p"), low), &hot).unwrap();
        assert!(f.message.contains("CPU 350% > 300%"), "{}", f.message);
        let big = r#"{"memory_bytes":2147483648,"cpu_percent":null}"#;
        assert_eq!(
            classify(&seen("process.resource", Some("p"), big), &LIMITS)
                .unwrap()
                .kind,
            "resource"
        );
    }

    #[test]
    fn huge_sources_and_messages_are_cut_on_a_character_boundary() {
        let provider = "é".repeat(100_000);
        let data = json!({ "provider": provider, "status": 429, "message": "x".repeat(1 << 20) })
            .to_string();
        let f = classify(&seen("provider.error", None, &data), &LIMITS).unwrap();
        assert!(f.source.len() <= MAX_SOURCE && f.message.len() <= MAX_MESSAGE);
    }

    #[test]
    fn a_flood_from_one_source_is_one_warning_per_window_with_the_rest_counted() {
        let f = classify(
            &seen("provider.rate_limit", None, r#"{"provider":"a"}"#),
            &LIMITS,
        )
        .unwrap();
        let mut windows = Windows::new();
        let mut published = Vec::new();
        for ms in 0..10_000u64 {
            if let Some(held) = admit(&mut windows, &f, ms, 60_000, 256) {
                published.push((ms, held));
            }
        }
        assert_eq!(published, vec![(0, 0)]);
        assert_eq!(admit(&mut windows, &f, 60_000, 60_000, 256), Some(9_999));
        // Another source has a window of its own.
        let other = Finding {
            source: "b".into(),
            ..f.clone()
        };
        assert_eq!(admit(&mut windows, &other, 60_001, 60_000, 256), Some(0));
    }

    #[test]
    fn a_flood_of_distinct_sources_keeps_the_table_bounded() {
        let mut windows = Windows::new();
        for i in 0..10_000u64 {
            let f = Finding {
                kind: "rate_limit",
                source: format!("p{i}"),
                message: String::new(),
            };
            assert_eq!(admit(&mut windows, &f, i, 60_000, 256), Some(0));
        }
        assert_eq!(windows.len(), 256);
        assert!(windows.contains_key("rate_limit/p9999"));
    }

    #[test]
    fn windows_round_trip_and_garbage_starts_afresh() {
        let mut windows = Windows::new();
        windows.insert(
            "rate_limit/a".into(),
            Window {
                opened_ms: 5,
                suppressed: 7,
            },
        );
        assert_eq!(decode_windows(&encode_windows(&windows)), windows);
        assert!(decode_windows(b"nope").is_empty());
    }
}
