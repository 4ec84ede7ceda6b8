//! The alerting decision, free of any host call so it can be unit-tested
//! natively: a sliding window of failure times per process, and the time of
//! the last alert, so one alert covers a whole window.
//!
//! The window is kept as plain data ([`History`]) that the plugin stores in
//! host state between calls, so a hot reload loses nothing.

use serde_json::{Value, json};

/// How many failures within how long raise an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures inside the window that trigger an alert (at least 1).
    pub threshold: usize,
    /// Length of the sliding window in milliseconds.
    pub window_ms: u64,
}

/// What the plugin remembers about one process between failures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Failure times (epoch ms) still inside the window, oldest first.
    pub times: Vec<u64>,
    /// When the last alert was raised; no other alert for this process
    /// until one window has passed since.
    pub alerted_at: Option<u64>,
    /// Failures recorded while an alert was holding back further alerts.
    pub suppressed: u64,
}

/// What recording one failure led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// History to store for the next call.
    pub remembered: History,
    /// Set when this failure raises an alert.
    pub alert: Option<Alert>,
}

/// An alert to raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    /// Failures inside the window, this one included.
    pub failures: usize,
    /// Failures that were held back since the previous alert (inside its
    /// window), so a flood is reported as a number, not as alerts.
    pub suppressed: u64,
}

impl Policy {
    /// Records a failure at `now_ms` on top of `earlier`.
    ///
    /// Times that fell out of the window are forgotten (and times from the
    /// future, which a clock step back would leave, are dropped). An alert
    /// is raised when the window holds `threshold` failures and no alert was
    /// raised within the last window; a failure inside that window only
    /// counts towards `suppressed`. So a process failing without pause
    /// alerts once per window, not once per failure.
    pub fn record(&self, earlier: &History, now_ms: u64) -> Outcome {
        let oldest_kept = now_ms.saturating_sub(self.window_ms);
        let mut times: Vec<u64> = earlier
            .times
            .iter()
            .copied()
            .filter(|&t| t > oldest_kept && t <= now_ms)
            .collect();
        times.push(now_ms);
        // At most `threshold` times matter; more would only grow state.
        if times.len() > self.threshold {
            times.drain(..times.len() - self.threshold);
        }
        let holding = earlier
            .alerted_at
            .is_some_and(|at| at <= now_ms && now_ms - at < self.window_ms);
        if holding {
            return Outcome {
                remembered: History {
                    times,
                    alerted_at: earlier.alerted_at,
                    suppressed: earlier.suppressed.saturating_add(1),
                },
                alert: None,
            };
        }
        if times.len() >= self.threshold {
            let alert = Alert {
                failures: times.len(),
                suppressed: earlier.suppressed,
            };
            return Outcome {
                remembered: History {
                    times,
                    alerted_at: Some(now_ms),
                    suppressed: 0,
                },
                alert: Some(alert),
            };
        }
        Outcome {
            remembered: History {
                times,
                alerted_at: earlier.alerted_at,
                suppressed: earlier.suppressed,
            },
            alert: None,
        }
    }
}

/// Reads a history stored by [`encode_history`]. The format of version
/// 0.1 (a bare array of times) still reads; anything unreadable counts as no
/// history rather than blocking alerts forever.
pub fn decode_history(bytes: &[u8]) -> History {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return History::default();
    };
    let times_of = |v: &Value| -> Vec<u64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    match &value {
        Value::Array(_) => History {
            times: times_of(&value),
            ..History::default()
        },
        Value::Object(map) => History {
            times: map.get("times").map(times_of).unwrap_or_default(),
            alerted_at: map.get("alerted_at").and_then(Value::as_u64),
            suppressed: map.get("suppressed").and_then(Value::as_u64).unwrap_or(0),
        },
        _ => History::default(),
    }
}

/// Stores a history as a JSON object, readable in host state dumps.
pub fn encode_history(history: &History) -> Vec<u8> {
    json!({
        "times": history.times,
        "alerted_at": history.alerted_at,
        "suppressed": history.suppressed,
    })
    .to_string()
    .into_bytes()
}

/// Parses a whole-number config value, naming the key when it is malformed.
pub fn parse_setting<T: std::str::FromStr>(
    key: &str,
    raw: Option<&str>,
    default: T,
) -> Result<T, String> {
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

    const POLICY: Policy = Policy {
        threshold: 3,
        window_ms: 600_000,
    };

    /// Records failures at `times` from an empty history; the alerts raised.
    fn run(policy: Policy, times: &[u64]) -> (Vec<(u64, Alert)>, History) {
        let mut history = History::default();
        let mut alerts = Vec::new();
        for &t in times {
            let outcome = policy.record(&history, t);
            if let Some(alert) = outcome.alert {
                alerts.push((t, alert));
            }
            history = outcome.remembered;
        }
        (alerts, history)
    }

    #[test]
    fn third_failure_within_the_window_raises_an_alert() {
        let (alerts, _) = run(POLICY, &[1_000, 2_000, 3_000]);
        assert_eq!(
            alerts,
            vec![(
                3_000,
                Alert {
                    failures: 3,
                    suppressed: 0
                }
            )]
        );
    }

    #[test]
    fn a_flood_of_failures_inside_one_window_raises_one_alert_and_counts_the_rest() {
        // 1,000 failures one second apart: 1,000 s is under two windows.
        let times: Vec<u64> = (1..=1_000).map(|s| s * 1_000).collect();
        let (alerts, history) = run(POLICY, &times);
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_eq!(alerts[0].0, 3_000);
        // The second alert comes one window after the first and says how
        // many were held back in between.
        assert_eq!(alerts[1].0, 603_000);
        assert_eq!(alerts[1].1.suppressed, 599);
        assert!(
            history.times.len() <= POLICY.threshold,
            "state stays bounded"
        );
    }

    #[test]
    fn after_a_quiet_window_a_new_crossing_alerts_again() {
        let (alerts, _) = run(
            POLICY,
            &[1_000, 2_000, 3_000, 4_000, 900_000, 901_000, 902_000],
        );
        let at: Vec<u64> = alerts.iter().map(|(t, _)| *t).collect();
        assert_eq!(at, vec![3_000, 902_000]);
        assert_eq!(
            alerts[1].1.suppressed, 1,
            "the failure at 4 s was held back"
        );
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let (alerts, history) = run(POLICY, &[1_000, 2_000, 700_000]);
        assert!(alerts.is_empty());
        assert_eq!(history.times, vec![700_000]);
    }

    #[test]
    fn a_failure_exactly_one_window_old_no_longer_counts() {
        let (_, history) = run(POLICY, &[100_000, 650_000, 700_000]);
        assert_eq!(history.times, vec![650_000, 700_000]);
    }

    #[test]
    fn a_clock_stepping_back_neither_panics_nor_holds_alerts_forever() {
        let (alerts, _) = run(
            POLICY,
            &[10_000_000, 10_000_001, 10_000_002, 5_000, 6_000, 7_000],
        );
        assert_eq!(alerts.len(), 2, "{alerts:?}");
    }

    #[test]
    fn a_threshold_of_one_alerts_once_per_window() {
        let policy = Policy {
            threshold: 1,
            window_ms: 10,
        };
        let (alerts, _) = run(policy, &[5, 6, 7, 15, 16]);
        let at: Vec<u64> = alerts.iter().map(|(t, _)| *t).collect();
        assert_eq!(at, vec![5, 15]);
    }

    #[test]
    fn histories_round_trip_and_old_or_garbage_state_reads_sensibly() {
        let history = History {
            times: vec![1, 2],
            alerted_at: Some(2),
            suppressed: 4,
        };
        assert_eq!(decode_history(&encode_history(&history)), history);
        assert_eq!(decode_history(b"[1,2,3]").times, vec![1, 2, 3]);
        assert_eq!(decode_history(b"not json"), History::default());
        assert_eq!(decode_history(b"{\"times\": \"x\"}"), History::default());
    }

    #[test]
    fn settings_fall_back_to_defaults_and_reject_garbage() {
        assert_eq!(parse_setting("threshold", None, 3u32), Ok(3));
        assert_eq!(parse_setting("threshold", Some(" 5 "), 3u32), Ok(5));
        let err = parse_setting("threshold", Some("many"), 3u32).unwrap_err();
        assert!(err.contains("threshold"), "{err}");
    }
}
