//! Reading progress and lifecycle hints out of text, free of any host call so
//! it can be unit-tested natively.
//!
//! Output lines are matched by hand rather than with a regex crate: four small
//! patterns do not justify tripling the component's size.

/// The lifecycle states a foreign status or an output line can map to; a
/// subset of the WIT `process-state` (the host owns the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Starting,
    Running,
    Paused,
    Completed,
    Failed,
    Cancelled,
}

/// What one output line says about its process.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub state: Option<Lifecycle>,
    /// 0.0 ..= 1.0.
    pub progress: Option<f32>,
    /// The line itself (trimmed, shortened), shown as the status message.
    pub message: String,
}

/// Longest status message taken from a line, in characters; progress bars
/// can print very long lines and the message is only a hint.
const MESSAGE_CHARS: usize = 160;

/// Maps a status reported by an AI-coder style system (seed 000) to a
/// lifecycle state, ignoring case and surrounding blanks.
pub fn map_reported(reported: &str) -> Option<Lifecycle> {
    match reported.trim().to_ascii_lowercase().as_str() {
        "creating" => Some(Lifecycle::Starting),
        "running" => Some(Lifecycle::Running),
        "paused" => Some(Lifecycle::Paused),
        "completed" | "done" => Some(Lifecycle::Completed),
        "failed" | "error" => Some(Lifecycle::Failed),
        "stopped" => Some(Lifecycle::Cancelled),
        _ => None,
    }
}

/// Reads one output line; `None` when it carries neither progress nor status.
///
/// Tried in order, first match wins: `STATUS: <word>`, `progress: 0.5` (or
/// `progress: 50%`), `[3/10]`, and the last `42%` on the line.
pub fn parse_line(line: &str) -> Option<Reading> {
    let line = line.trim();
    // ASCII lowercasing keeps byte offsets, so indices found in `lower` are
    // valid in `line` too.
    let lower = line.to_ascii_lowercase();
    let (state, progress) =
        if let Some(state) = word_after(&lower, "status:").and_then(map_reported) {
            (Some(state), None)
        } else if let Some(p) = labelled_progress(&lower) {
            (None, Some(p))
        } else if let Some(p) = step_count(&lower) {
            (None, Some(p))
        } else {
            (None, Some(last_percent(&lower)?))
        };
    Some(Reading {
        state,
        progress,
        message: line.chars().take(MESSAGE_CHARS).collect(),
    })
}

/// Splits the `kinds` config value (a comma list); unset or blank serves
/// every kind.
pub fn parse_kinds(raw: Option<&str>) -> Vec<String> {
    let kinds: Vec<String> = raw
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    if kinds.is_empty() {
        vec!["*".to_string()]
    } else {
        kinds
    }
}

/// Splits the `skip_kinds` config value (a comma list); unset is
/// [`SKIP_KINDS`], the kinds other shipped mappers serve, so two mappers
/// never set one process's status from the same lines. Blank skips none.
pub fn parse_skip_kinds(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or(SKIP_KINDS)
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// Kinds left to their dedicated mappers by default: `ai-coder-mapper`,
/// `test-suite-mapper` and `build-mapper`.
pub const SKIP_KINDS: &str = "ai-coder, test_suite, build";

/// The word after `label` when the label starts a token, e.g. `status:` in
/// `[agent] STATUS: paused` but not in `mystatus: x`.
fn word_after<'a>(lower: &'a str, label: &str) -> Option<&'a str> {
    let at = token_start(lower, label)?;
    let rest = lower[at + label.len()..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// `progress: 0.5`, `progress: 50` or `progress: 50%`; a bare value above 1
/// is read as a percentage.
fn labelled_progress(lower: &str) -> Option<f32> {
    let at = token_start(lower, "progress:")?;
    let rest = lower[at + "progress:".len()..].trim_start();
    let (value, len) = leading_number(rest)?;
    let percent = rest[len..].trim_start().starts_with('%') || value > 1.0;
    fraction(if percent { value / 100.0 } else { value })
}

/// The first `[n/m]` with `n <= m` and `m > 0`, blanks inside allowed.
fn step_count(lower: &str) -> Option<f32> {
    let mut from = 0;
    while let Some(open) = lower[from..].find('[') {
        let start = from + open + 1;
        from = start;
        let Some(close) = lower[start..].find(']') else {
            break;
        };
        let inner = &lower[start..start + close];
        if let Some((done, total)) = inner.split_once('/')
            && let (Ok(done), Ok(total)) = (done.trim().parse::<u64>(), total.trim().parse::<u64>())
            && total > 0
            && done <= total
        {
            return Some(done as f32 / total as f32);
        }
    }
    None
}

/// The last number directly followed by `%` on the line, within 0..=100.
fn last_percent(lower: &str) -> Option<f32> {
    lower
        .match_indices('%')
        .filter_map(|(at, _)| {
            let head = &lower[..at];
            let start = head
                .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
                .map_or(0, |i| i + 1);
            head[start..].parse::<f32>().ok()
        })
        .next_back()
        .and_then(|value| fraction(value / 100.0))
}

/// Where `needle` occurs first at the start of a token.
fn token_start(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .match_indices(needle)
        .map(|(at, _)| at)
        .find(|&at| {
            haystack[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_ascii_alphanumeric())
        })
}

/// A leading decimal number and how many bytes it spans.
fn leading_number(text: &str) -> Option<(f32, usize)> {
    let len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    text[..len].parse().ok().map(|v| (v, len))
}

/// Accepts only values that make sense as a fraction of work done.
fn fraction(value: f32) -> Option<f32> {
    (0.0..=1.0).contains(&value).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress_of(line: &str) -> Option<f32> {
        parse_line(line).and_then(|r| r.progress)
    }

    #[test]
    fn a_percentage_becomes_a_fraction() {
        assert_eq!(progress_of("downloading 42%"), Some(0.42));
    }

    #[test]
    fn the_last_percentage_on_a_line_wins() {
        assert_eq!(progress_of("10% ... 20% ... 35%"), Some(0.35));
    }

    #[test]
    fn a_step_count_in_brackets_becomes_a_fraction() {
        assert_eq!(progress_of("[3/10] compiling serde"), Some(0.3));
        assert_eq!(progress_of("[ 5 / 5 ] done"), Some(1.0));
    }

    #[test]
    fn impossible_step_counts_are_ignored() {
        assert_eq!(progress_of("[11/10] what"), None);
        assert_eq!(progress_of("[0/0]"), None);
    }

    #[test]
    fn a_labelled_progress_may_be_a_fraction_or_a_percentage() {
        assert_eq!(progress_of("progress: 0.5"), Some(0.5));
        assert_eq!(progress_of("Progress: 75%"), Some(0.75));
        assert_eq!(progress_of("progress: 60"), Some(0.6));
    }

    #[test]
    fn a_labelled_progress_beats_other_numbers_on_the_line() {
        assert_eq!(progress_of("[1/4] progress: 0.9 (90%)"), Some(0.9));
    }

    #[test]
    fn a_status_line_maps_to_a_state_and_keeps_the_line_as_message() {
        let reading = parse_line("  STATUS: Paused waiting for input ").unwrap();
        assert_eq!(reading.state, Some(Lifecycle::Paused));
        assert_eq!(reading.progress, None);
        assert_eq!(reading.message, "STATUS: Paused waiting for input");
    }

    #[test]
    fn a_status_line_with_an_unknown_word_maps_to_nothing() {
        assert_eq!(parse_line("STATUS: pondering"), None);
    }

    #[test]
    fn status_must_start_a_token() {
        assert_eq!(parse_line("mystatus: done"), None);
        assert_eq!(
            parse_line("[agent] status: done").and_then(|r| r.state),
            Some(Lifecycle::Completed)
        );
    }

    #[test]
    fn ordinary_lines_say_nothing() {
        assert_eq!(parse_line("compiling foo v1.0"), None);
        assert_eq!(parse_line("100.5%"), None);
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn long_lines_are_shortened_in_the_message() {
        let line = format!("{} 50%", "x".repeat(500));
        assert_eq!(
            parse_line(&line).unwrap().message.chars().count(),
            MESSAGE_CHARS
        );
    }

    #[test]
    fn reported_statuses_map_regardless_of_case() {
        assert_eq!(map_reported("Creating"), Some(Lifecycle::Starting));
        assert_eq!(map_reported("RUNNING"), Some(Lifecycle::Running));
        assert_eq!(map_reported("paused"), Some(Lifecycle::Paused));
        assert_eq!(map_reported("done"), Some(Lifecycle::Completed));
        assert_eq!(map_reported("completed"), Some(Lifecycle::Completed));
        assert_eq!(map_reported(" error "), Some(Lifecycle::Failed));
        assert_eq!(map_reported("failed"), Some(Lifecycle::Failed));
        assert_eq!(map_reported("stopped"), Some(Lifecycle::Cancelled));
        assert_eq!(map_reported("sleeping"), None);
    }

    #[test]
    fn kinds_of_dedicated_mappers_are_skipped_unless_configured_otherwise() {
        assert_eq!(
            parse_skip_kinds(None),
            vec!["ai-coder", "test_suite", "build"]
        );
        assert_eq!(parse_skip_kinds(Some("")), Vec::<String>::new());
        assert_eq!(parse_skip_kinds(Some("x, y")), vec!["x", "y"]);
    }

    #[test]
    fn kinds_default_to_every_kind() {
        assert_eq!(parse_kinds(None), vec!["*"]);
        assert_eq!(parse_kinds(Some(" , ")), vec!["*"]);
        assert_eq!(
            parse_kinds(Some("ai-coder, build")),
            vec!["ai-coder", "build"]
        );
    }
}
