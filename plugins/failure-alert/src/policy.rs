//! The alerting decision, free of any host call so it can be unit-tested
//! natively: a sliding window of failure times per process.
//!
//! The window is kept as plain data (`Vec<u64>` of epoch milliseconds) that the
//! plugin stores in host state between calls, so a hot reload loses nothing.

/// How many failures within how long raise an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures inside the window that trigger an alert (at least 1).
    pub threshold: usize,
    /// Length of the sliding window in milliseconds.
    pub window_ms: u64,
}

/// What recording one failure led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Failure times to store for the next call.
    pub remembered: Vec<u64>,
    /// `Some(failures)` when this failure crossed the threshold.
    pub alert: Option<usize>,
}

impl Policy {
    /// Records a failure at `now_ms` on top of the `earlier` failure times.
    ///
    /// Times that fell out of the window are forgotten. When the threshold is
    /// reached the window is emptied, so the next alert needs a fresh run of
    /// `threshold` failures: one alert per crossing, not one per failure.
    pub fn record(&self, earlier: &[u64], now_ms: u64) -> Outcome {
        let oldest_kept = now_ms.saturating_sub(self.window_ms);
        let mut remembered: Vec<u64> = earlier
            .iter()
            .copied()
            .filter(|&t| t > oldest_kept && t <= now_ms)
            .collect();
        remembered.push(now_ms);
        if remembered.len() >= self.threshold {
            let failures = remembered.len();
            Outcome {
                remembered: Vec::new(),
                alert: Some(failures),
            }
        } else {
            Outcome {
                remembered,
                alert: None,
            }
        }
    }
}

/// Reads failure times stored by [`encode_times`]; anything unreadable counts
/// as no history rather than blocking alerts forever.
pub fn decode_times(bytes: &[u8]) -> Vec<u64> {
    serde_json::from_slice(bytes).unwrap_or_default()
}

/// Stores failure times as a JSON array, readable in host state dumps.
pub fn encode_times(times: &[u64]) -> Vec<u8> {
    serde_json::to_vec(times).unwrap_or_else(|_| b"[]".to_vec())
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

    #[test]
    fn third_failure_within_the_window_raises_an_alert() {
        let first = POLICY.record(&[], 1_000);
        let second = POLICY.record(&first.remembered, 2_000);
        let third = POLICY.record(&second.remembered, 3_000);
        assert_eq!(first.alert, None);
        assert_eq!(second.alert, None);
        assert_eq!(third.alert, Some(3));
    }

    #[test]
    fn the_window_is_emptied_after_an_alert_so_it_fires_once_per_crossing() {
        let crossed = POLICY.record(&[1_000, 2_000], 3_000);
        assert!(crossed.remembered.is_empty());
        let next = POLICY.record(&crossed.remembered, 4_000);
        assert_eq!(next.alert, None);
        assert_eq!(next.remembered, vec![4_000]);
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let outcome = POLICY.record(&[1_000, 2_000], 700_000);
        assert_eq!(outcome.alert, None);
        assert_eq!(outcome.remembered, vec![700_000]);
    }

    #[test]
    fn a_failure_exactly_one_window_old_no_longer_counts() {
        let outcome = POLICY.record(&[100_000, 650_000], 700_000);
        assert_eq!(outcome.remembered, vec![650_000, 700_000]);
    }

    #[test]
    fn a_threshold_of_one_alerts_on_every_failure() {
        let policy = Policy {
            threshold: 1,
            window_ms: 10,
        };
        assert_eq!(policy.record(&[], 5).alert, Some(1));
    }

    #[test]
    fn stored_times_round_trip_and_garbage_reads_as_empty() {
        assert_eq!(decode_times(&encode_times(&[1, 2, 3])), vec![1, 2, 3]);
        assert!(decode_times(b"not json").is_empty());
    }

    #[test]
    fn settings_fall_back_to_defaults_and_reject_garbage() {
        assert_eq!(parse_setting("threshold", None, 3u32), Ok(3));
        assert_eq!(parse_setting("threshold", Some(" 5 "), 3u32), Ok(5));
        let err = parse_setting("threshold", Some("many"), 3u32).unwrap_err();
        assert!(err.contains("threshold"), "{err}");
    }
}
