//! Reading one run's output back from the host's log, for the event at
//! the end of the run.
//!
//! Shared by `test-suite-mapper` and `build-mapper` (the latter includes
//! this file with `#[path]`): both must see every line of a run when it
//! ends, and their mapper export may not have seen them yet (the host
//! feeds a component's mapper and handler from separate cursors).
//!
//! A run's lines are the `process.output` events of the process after the
//! previous boundary — its `process.created`, or the end of its previous
//! run — and before the end event being handled. The supervisor publishes
//! a run's last output before its end event, so nothing of the run is
//! missed, and nothing of another run is mixed in.

use crate::handler_wit::host::plugin::host::recent_events;
use crate::handler_wit::host::plugin::types::EventFilter;

/// Event types that end a run, which the handler subscribes to.
pub const END_EVENTS: [&str; 4] = [
    "process.completed",
    "process.failed",
    "process.timeout",
    "process.cancelled",
];

/// Events after which a run's output starts.
const BOUNDARIES: [&str; 5] = [
    "process.created",
    "process.completed",
    "process.failed",
    "process.timeout",
    "process.cancelled",
];

/// Most events one `recent-events` call returns (the host's cap).
const PAGE: u32 = 1000;

/// How a read went.
pub struct Read {
    /// Lines handed to the reader.
    pub lines: u64,
    /// False when the byte budget ran out before the end of the run.
    pub complete: bool,
}

/// Hands every output line of the run of `process` that ended with the
/// event at `end` to `each`, in order, reading at most `budget` bytes of
/// event data.
pub fn read_run(process: &str, end: u64, budget: u64, mut each: impl FnMut(&str)) -> Read {
    let mut after = run_start(process, end);
    let mut read = Read {
        lines: 0,
        complete: true,
    };
    let mut bytes = 0u64;
    loop {
        let page = recent_events(&EventFilter {
            types: vec!["process.output".to_string()],
            subject: Some(process.to_string()),
            after_sequence: Some(after),
            limit: PAGE,
        });
        let Some(last) = page.last().map(|e| e.sequence) else {
            return read;
        };
        for event in &page {
            if event.sequence >= end {
                return read;
            }
            bytes += event.data.len() as u64;
            if bytes > budget {
                read.complete = false;
                return read;
            }
            for line in output_lines(&event.data) {
                each(&line);
                read.lines += 1;
            }
        }
        after = last;
    }
}

/// The sequence after which the run ending at `end` wrote its output.
///
/// Asks for the newest few boundaries first: finding them costs a scan
/// back to the previous boundary only, where a large `limit` could scan
/// the whole log for a process with few runs. More are asked for only if
/// the process has already ended further runs since `end`.
fn run_start(process: &str, end: u64) -> u64 {
    let mut limit = 4;
    loop {
        let found: Vec<u64> = recent_events(&EventFilter {
            types: BOUNDARIES.iter().map(|t| t.to_string()).collect(),
            subject: Some(process.to_string()),
            after_sequence: None,
            limit,
        })
        .iter()
        .map(|e| e.sequence)
        .collect();
        if let Some(start) = start_before(&found, end) {
            return start;
        }
        if (found.len() as u32) < limit || limit >= PAGE {
            // The log holds no earlier boundary: read from its start.
            return 0;
        }
        limit = (limit * 8).min(PAGE);
    }
}

/// The newest boundary before `end` among `found`.
fn start_before(found: &[u64], end: u64) -> Option<u64> {
    found.iter().copied().filter(|&s| s < end).max()
}

/// The `lines` of a `process.output` event's data.
fn output_lines(data: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Output {
        #[serde(default)]
        lines: Vec<String>,
    }
    serde_json::from_str::<Output>(data)
        .map(|o| o.lines)
        .unwrap_or_default()
}

/// `text` without ANSI escape sequences: colours a user forced on (or a
/// tool printed regardless) must not hide what the parsers look for.
pub fn strip_ansi(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\u{1b}') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ parameters final-byte (0x40..=0x7e).
        if chars.clone().next() == Some('[') {
            chars.next();
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Splits the `kinds` config value (a comma list); unset or blank is
/// `default`.
pub fn parse_kinds(raw: Option<&str>, default: &str) -> Vec<String> {
    let kinds: Vec<String> = raw
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    if kinds.is_empty() {
        vec![default.to_string()]
    } else {
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_starts_after_the_newest_boundary_before_its_end() {
        assert_eq!(start_before(&[3, 10, 25, 40], 30), Some(25));
        assert_eq!(start_before(&[30, 40], 30), None);
        assert_eq!(start_before(&[], 30), None);
    }

    #[test]
    fn output_lines_come_from_the_event_data_and_anything_else_is_none() {
        assert_eq!(
            output_lines(r#"{"stream":"stdout","lines":["a","b"],"truncated":0}"#),
            ["a", "b"]
        );
        assert!(output_lines("not json").is_empty());
        assert!(output_lines(r#"{"lines":[1,2]}"#).is_empty());
    }

    #[test]
    fn colour_codes_are_stripped_and_plain_text_is_not_copied() {
        assert_eq!(
            strip_ansi("\u{1b}[96msrc/app.ts\u{1b}[0m:1"),
            "src/app.ts:1"
        );
        assert!(matches!(
            strip_ansi("plain"),
            std::borrow::Cow::Borrowed("plain")
        ));
        assert_eq!(strip_ansi("cut \u{1b}["), "cut ");
    }

    #[test]
    fn kinds_default_and_split() {
        assert_eq!(parse_kinds(None, "build"), ["build"]);
        assert_eq!(parse_kinds(Some(" a, b ,"), "build"), ["a", "b"]);
    }
}
