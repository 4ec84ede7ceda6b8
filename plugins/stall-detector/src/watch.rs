//! The stall decision (seed 002's PM stall detection), free of any host call
//! so it can be unit-tested natively.
//!
//! A stall *episode* is identified by the process name plus the time of its
//! last sign of life. It is reported once; it ends when that time moves
//! (output resumed, or the process restarted) or the process stops running.

use std::collections::BTreeMap;

/// What the detector needs to know about one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub name: String,
    pub running: bool,
    /// Epoch ms of the last output line, else of the start; `None` when the
    /// host knows neither, in which case the process cannot be judged.
    pub last_sign_of_life_ms: Option<u64>,
}

/// Stalls already reported: process name → last sign of life when reported.
pub type Reported = BTreeMap<String, u64>;

/// A stall to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub process: String,
    pub silent_secs: u64,
}

/// The result of looking at every process once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Stalls seen for the first time in this episode.
    pub new_stalls: Vec<Stall>,
    /// Every current stall, to remember for the next tick.
    pub reported: Reported,
    /// Processes that were reported as stalled and no longer are.
    pub recovered: Vec<String>,
    pub running: usize,
}

impl Review {
    /// What the agent shows as its activity.
    pub fn activity(&self) -> String {
        let noun = if self.running == 1 {
            "process"
        } else {
            "processes"
        };
        format!(
            "watching {} running {noun}; {} stalled",
            self.running,
            self.reported.len()
        )
    }
}

/// Reviews `processes` at `now_ms` against what was `reported` before.
pub fn review(
    processes: &[Observed],
    reported: &Reported,
    now_ms: u64,
    stall_after_ms: u64,
) -> Review {
    let mut result = Review {
        new_stalls: Vec::new(),
        reported: Reported::new(),
        recovered: Vec::new(),
        running: 0,
    };
    for p in processes.iter().filter(|p| p.running) {
        result.running += 1;
        let Some(last) = p.last_sign_of_life_ms else {
            continue;
        };
        let silent_ms = now_ms.saturating_sub(last);
        if silent_ms < stall_after_ms {
            continue;
        }
        if reported.get(&p.name) != Some(&last) {
            result.new_stalls.push(Stall {
                process: p.name.clone(),
                silent_secs: silent_ms / 1000,
            });
        }
        result.reported.insert(p.name.clone(), last);
    }
    result.recovered = reported
        .keys()
        .filter(|name| !result.reported.contains_key(*name))
        .cloned()
        .collect();
    result
}

/// Reads the reported stalls kept in host state; unreadable state counts as
/// none, which at worst repeats one report.
pub fn decode_reported(bytes: &[u8]) -> Reported {
    serde_json::from_slice(bytes).unwrap_or_default()
}

/// Stores reported stalls as a JSON object, readable in host state dumps.
pub fn encode_reported(reported: &Reported) -> Vec<u8> {
    serde_json::to_vec(reported).unwrap_or_else(|_| b"{}".to_vec())
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

    const AFTER: u64 = 300_000;

    fn running(name: &str, last: u64) -> Observed {
        Observed {
            name: name.to_string(),
            running: true,
            last_sign_of_life_ms: Some(last),
        }
    }

    #[test]
    fn a_silent_running_process_is_reported_with_its_silence() {
        let review = review(&[running("db", 1_000)], &Reported::new(), 401_500, AFTER);
        assert_eq!(
            review.new_stalls,
            vec![Stall {
                process: "db".to_string(),
                silent_secs: 400
            }]
        );
        assert_eq!(review.activity(), "watching 1 running process; 1 stalled");
    }

    #[test]
    fn a_stall_is_reported_once_per_episode() {
        let first = review(&[running("db", 1_000)], &Reported::new(), 400_000, AFTER);
        let second = review(&[running("db", 1_000)], &first.reported, 500_000, AFTER);
        assert!(second.new_stalls.is_empty());
        assert_eq!(second.reported.len(), 1);
    }

    #[test]
    fn resumed_output_ends_the_episode_and_a_new_silence_is_reported_again() {
        let first = review(&[running("db", 1_000)], &Reported::new(), 400_000, AFTER);
        let resumed = review(&[running("db", 399_000)], &first.reported, 400_000, AFTER);
        assert!(resumed.reported.is_empty());
        assert_eq!(resumed.recovered, vec!["db".to_string()]);
        let again = review(&[running("db", 399_000)], &resumed.reported, 800_000, AFTER);
        assert_eq!(again.new_stalls.len(), 1);
    }

    #[test]
    fn output_that_moved_but_is_still_too_old_starts_a_new_episode() {
        let first = review(&[running("db", 1_000)], &Reported::new(), 400_000, AFTER);
        let later = review(&[running("db", 2_000)], &first.reported, 900_000, AFTER);
        assert_eq!(later.new_stalls.len(), 1);
    }

    #[test]
    fn a_process_that_stops_running_is_forgotten() {
        let first = review(&[running("db", 1_000)], &Reported::new(), 400_000, AFTER);
        let mut stopped = running("db", 1_000);
        stopped.running = false;
        let next = review(&[stopped], &first.reported, 500_000, AFTER);
        assert!(next.reported.is_empty());
        assert_eq!(next.running, 0);
        assert_eq!(next.activity(), "watching 0 running processes; 0 stalled");
    }

    #[test]
    fn recent_output_and_unknown_times_are_not_stalls() {
        let unknown = Observed {
            name: "x".to_string(),
            running: true,
            last_sign_of_life_ms: None,
        };
        let review = review(
            &[running("web", 350_000), unknown],
            &Reported::new(),
            400_000,
            AFTER,
        );
        assert!(review.new_stalls.is_empty());
        assert_eq!(review.running, 2);
    }

    #[test]
    fn reported_stalls_round_trip_and_garbage_reads_as_none() {
        let mut reported = Reported::new();
        reported.insert("db".to_string(), 7);
        assert_eq!(decode_reported(&encode_reported(&reported)), reported);
        assert!(decode_reported(b"[").is_empty());
    }

    #[test]
    fn settings_fall_back_to_defaults_and_reject_garbage() {
        assert_eq!(parse_setting("interval_ms", None, 5000), Ok(5000));
        assert_eq!(parse_setting("interval_ms", Some("250"), 5000), Ok(250));
        assert!(parse_setting("interval_ms", Some("-1"), 5000).is_err());
    }
}
