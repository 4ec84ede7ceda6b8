//! The metrics themselves, free of any host call so they run under
//! `cargo test` natively: reading a `process.exited` event, and the running
//! aggregate per kind (count, outcomes, min / max / mean, p50 / p95).
//!
//! Percentiles come from a fixed log-scale histogram, not from the samples:
//! each power of two is split into [`SUB_BUCKETS`] buckets, so a quantile is
//! off by at most 1/8 of its value and the state of a kind is at most
//! 64 × 8 counters however many runs it sees (in practice a few dozen: only
//! non-empty buckets are stored).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Buckets per power of two: the relative error of a quantile is below
/// `1 / SUB_BUCKETS`.
pub const SUB_BUCKETS: u64 = 8;

/// One finished run, as read from `process.exited`.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// How long the run took, from spawn to exit, as the supervisor timed it.
    pub duration_ms: u64,
    /// `None` when it died by a signal.
    pub exit_code: Option<i64>,
    /// The signal that ended it, if any.
    pub signal: Option<i64>,
    /// The run's outcome: `completed`, `failed`, `timeout` or `cancelled`.
    pub state: String,
}

/// Reads a `process.exited` event's data (`duration_ms`, `exit_code`,
/// `signal`, `to`). An error names what is missing; the glue returns it so
/// the host records a `plugin.error` instead of a wrong metric.
pub fn read_exited(data: &str) -> Result<Completion, String> {
    let value: Value = serde_json::from_str(data).map_err(|e| format!("data is not JSON ({e})"))?;
    let duration_ms = value
        .get("duration_ms")
        .and_then(Value::as_u64)
        .ok_or("data has no whole `duration_ms`")?;
    let state = value
        .get("to")
        .and_then(Value::as_str)
        .ok_or("data has no `to` state")?;
    if state.len() > 32 {
        return Err("`to` is longer than any process state".into());
    }
    Ok(Completion {
        duration_ms,
        exit_code: value.get("exit_code").and_then(Value::as_i64),
        signal: value.get("signal").and_then(Value::as_i64),
        state: state.to_string(),
    })
}

/// The running aggregate of one kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    /// Runs counted.
    pub count: u64,
    /// Runs per outcome state.
    pub by_state: BTreeMap<String, u64>,
    /// Sum of durations, for the mean.
    pub total_ms: u64,
    /// Shortest run.
    pub min_ms: u64,
    /// Longest run.
    pub max_ms: u64,
    /// Histogram bucket → runs; see [`bucket_of`].
    pub buckets: BTreeMap<u32, u64>,
}

/// The bucket a duration falls in: durations below [`SUB_BUCKETS`] ms have
/// one bucket each; above, each power of two has `SUB_BUCKETS` buckets.
pub fn bucket_of(ms: u64) -> u32 {
    if ms < SUB_BUCKETS {
        return ms as u32;
    }
    let power = 63 - ms.leading_zeros() as u64; // floor(log2 ms) >= 3
    let shift = power - 3; // SUB_BUCKETS = 2^3
    let sub = (ms >> shift) - SUB_BUCKETS; // 0..8
    (SUB_BUCKETS + (power - 3) * SUB_BUCKETS + sub) as u32
}

/// The largest duration in `bucket` (a quantile is reported as this bound,
/// so it never understates).
pub fn bucket_upper(bucket: u32) -> u64 {
    let b = u64::from(bucket);
    if b < SUB_BUCKETS {
        return b;
    }
    let power = (b - SUB_BUCKETS) / SUB_BUCKETS + 3;
    let sub = (b - SUB_BUCKETS) % SUB_BUCKETS;
    let shift = power - 3;
    let low = (SUB_BUCKETS + sub) << shift;
    low.saturating_add((1u64 << shift) - 1)
}

impl Aggregate {
    /// Counts one run.
    pub fn add(&mut self, c: &Completion) {
        if self.count == 0 {
            self.min_ms = c.duration_ms;
            self.max_ms = c.duration_ms;
        }
        self.count = self.count.saturating_add(1);
        *self.by_state.entry(c.state.clone()).or_default() += 1;
        self.total_ms = self.total_ms.saturating_add(c.duration_ms);
        self.min_ms = self.min_ms.min(c.duration_ms);
        self.max_ms = self.max_ms.max(c.duration_ms);
        *self.buckets.entry(bucket_of(c.duration_ms)).or_default() += 1;
    }

    /// The duration at quantile `q` (0..=1), clamped to the observed
    /// range; `None` before the first run.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.buckets.values().sum();
        if total == 0 {
            return None;
        }
        // The rank of the quantile, 1-based: the smallest bucket whose
        // cumulative count reaches it.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (&bucket, &n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(bucket_upper(bucket).clamp(self.min_ms, self.max_ms));
            }
        }
        Some(self.max_ms)
    }

    /// The `metrics.summary` data for `kind`.
    pub fn summary(&self, kind: &str) -> Value {
        json!({
            "kind": kind,
            "count": self.count,
            "by_state": self.by_state,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "mean_ms": self.total_ms.checked_div(self.count),
            "p50_ms": self.quantile(0.5),
            "p95_ms": self.quantile(0.95),
        })
    }

    /// The form kept in host state.
    pub fn encode(&self) -> Vec<u8> {
        let buckets: Map<String, Value> = self
            .buckets
            .iter()
            .map(|(b, n)| (b.to_string(), json!(n)))
            .collect();
        json!({
            "count": self.count,
            "by_state": self.by_state,
            "total_ms": self.total_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "buckets": buckets,
        })
        .to_string()
        .into_bytes()
    }

    /// Reads [`Aggregate::encode`]'s form; unreadable state starts afresh
    /// (a wrong number is worse than a reset count).
    pub fn decode(bytes: &[u8]) -> Self {
        let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(bytes) else {
            return Self::default();
        };
        let num = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        let counts = |k: &str| -> Vec<(String, u64)> {
            v.get(k)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            count: num("count"),
            by_state: counts("by_state").into_iter().collect(),
            total_ms: num("total_ms"),
            min_ms: num("min_ms"),
            max_ms: num("max_ms"),
            buckets: counts("buckets")
                .into_iter()
                .filter_map(|(b, n)| Some((b.parse().ok()?, n)))
                .collect(),
        }
    }
}

/// The kinds seen so far, capped: a kind past `max_kinds` is counted under
/// [`OTHER_KIND`], so a flood of made-up kinds cannot grow state forever.
pub const OTHER_KIND: &str = "_other";

/// Which aggregate a run of `kind` goes to, given the `known` kinds (which
/// it extends when there is room); returns the aggregate's kind.
pub fn admit_kind(known: &mut Vec<String>, kind: &str, max_kinds: usize) -> String {
    if known.iter().any(|k| k == kind) {
        return kind.to_string();
    }
    if known.len() < max_kinds {
        known.push(kind.to_string());
        return kind.to_string();
    }
    OTHER_KIND.to_string()
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

    fn run(ms: u64, state: &str) -> Completion {
        Completion {
            duration_ms: ms,
            exit_code: Some(0),
            signal: None,
            state: state.into(),
        }
    }

    #[test]
    fn the_exited_event_is_read_and_malformed_data_is_an_error_naming_the_field() {
        let c = read_exited(
            r#"{"exit_code":3,"signal":null,"duration_ms":1500,"restarts":0,"from":"running","to":"failed"}"#,
        )
        .unwrap();
        assert_eq!(
            (c.duration_ms, c.exit_code, c.state.as_str()),
            (1500, Some(3), "failed")
        );
        assert!(read_exited("{").unwrap_err().contains("not JSON"));
        assert!(
            read_exited(r#"{"to":"failed"}"#)
                .unwrap_err()
                .contains("duration_ms")
        );
        assert!(read_exited(r#"{"duration_ms":-1,"to":"x"}"#).is_err());
        assert!(
            read_exited(r#"{"duration_ms":1}"#)
                .unwrap_err()
                .contains("to")
        );
        assert!(read_exited("[1,2]").is_err());
        let long = format!(r#"{{"duration_ms":1,"to":"{}"}}"#, "x".repeat(10_000));
        assert!(read_exited(&long).is_err());
    }

    #[test]
    fn every_duration_falls_in_a_bucket_whose_bounds_hold_it_within_an_eighth() {
        let mut ms = 0u64;
        while ms < u64::MAX / 2 {
            let b = bucket_of(ms);
            let upper = bucket_upper(b);
            assert!(upper >= ms, "{ms} in bucket {b} with upper {upper}");
            assert!(
                upper - ms <= ms / SUB_BUCKETS,
                "{ms}: upper {upper} too far"
            );
            assert!(b < 64 * SUB_BUCKETS as u32);
            ms = ms + ms / 4 + 1;
        }
        assert!(bucket_of(u64::MAX) < 64 * SUB_BUCKETS as u32);
    }

    #[test]
    fn quantiles_of_a_known_spread_are_within_an_eighth() {
        let mut agg = Aggregate::default();
        for ms in 1..=1000 {
            agg.add(&run(ms, "completed"));
        }
        let p50 = agg.quantile(0.5).unwrap();
        let p95 = agg.quantile(0.95).unwrap();
        assert!((500..=500 + 500 / 8).contains(&p50), "p50 {p50}");
        assert!((950..=1000).contains(&p95), "p95 {p95}");
        assert_eq!((agg.min_ms, agg.max_ms, agg.count), (1, 1000, 1000));
        let s = agg.summary("build");
        assert_eq!(s["mean_ms"], 500);
        assert_eq!(s["by_state"]["completed"], 1000);
    }

    #[test]
    fn a_million_runs_keep_the_state_small() {
        let mut agg = Aggregate::default();
        let mut ms = 1u64;
        for _ in 0..1_000_000 {
            ms = ms.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1) % 86_400_000;
            agg.add(&run(ms, "completed"));
        }
        assert!(agg.buckets.len() <= 27 * SUB_BUCKETS as usize);
        assert!(agg.encode().len() < 8_192, "{}", agg.encode().len());
    }

    #[test]
    fn one_run_is_its_own_p50_and_p95_and_an_empty_aggregate_has_none() {
        let mut agg = Aggregate::default();
        assert_eq!(agg.quantile(0.5), None);
        assert_eq!(agg.summary("x")["mean_ms"], Value::Null);
        agg.add(&run(1234, "failed"));
        assert_eq!(agg.quantile(0.5), Some(1234));
        assert_eq!(agg.quantile(0.95), Some(1234));
    }

    #[test]
    fn aggregates_round_trip_through_state_and_garbage_starts_afresh() {
        let mut agg = Aggregate::default();
        for ms in [3, 70, 70, 9_000] {
            agg.add(&run(ms, "completed"));
        }
        agg.add(&run(5, "timeout"));
        assert_eq!(Aggregate::decode(&agg.encode()), agg);
        assert_eq!(Aggregate::decode(b"\xff"), Aggregate::default());
        assert_eq!(Aggregate::decode(b"[]"), Aggregate::default());
    }

    #[test]
    fn kinds_past_the_cap_are_counted_together() {
        let mut known = Vec::new();
        assert_eq!(admit_kind(&mut known, "a", 2), "a");
        assert_eq!(admit_kind(&mut known, "b", 2), "b");
        assert_eq!(admit_kind(&mut known, "c", 2), OTHER_KIND);
        assert_eq!(admit_kind(&mut known, "a", 2), "a");
        assert_eq!(known, vec!["a", "b"]);
    }
}
