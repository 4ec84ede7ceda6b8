//! Counters over the journal: totals by type and source, and the recent rate.
//!
//! The counts are seeded once from the journal when the bus opens (a `GROUP BY`)
//! and then kept in memory as events are appended and pruned, so reading stats
//! never scans the log.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How many one-second buckets the rate window spans.
const WINDOW_SECS: usize = 60;

/// A snapshot of what the journal holds.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct BusStats {
    /// Events currently in the journal (after retention).
    pub total: u64,
    /// Journal events per type.
    pub by_type: BTreeMap<String, u64>,
    /// Journal events per source.
    pub by_source: BTreeMap<String, u64>,
    /// Events published in the last 60 seconds.
    pub events_per_minute: f64,
    /// The last assigned sequence (0 before the first event).
    pub head: u64,
    /// When the newest event was accepted.
    pub last_event_time: Option<DateTime<Utc>>,
}

/// The live counters behind [`BusStats`]; lives under the bus's read-mostly lock.
#[derive(Debug)]
pub(crate) struct StatsTracker {
    total: u64,
    by_type: BTreeMap<String, u64>,
    by_source: BTreeMap<String, u64>,
    last_event_time: Option<DateTime<Utc>>,
    /// `(unix second, events in that second)`, indexed by second modulo the window.
    buckets: [(i64, u64); WINDOW_SECS],
}

impl StatsTracker {
    /// Counters seeded from the journal's grouped counts.
    pub(crate) fn seeded(
        groups: Vec<(String, String, u64)>,
        recent_seconds: Vec<(i64, u64)>,
        last_event_time: Option<DateTime<Utc>>,
    ) -> Self {
        let mut stats = StatsTracker {
            total: 0,
            by_type: BTreeMap::new(),
            by_source: BTreeMap::new(),
            last_event_time,
            buckets: [(i64::MIN, 0); WINDOW_SECS],
        };
        for (ty, source, count) in groups {
            stats.total += count;
            *stats.by_type.entry(ty).or_default() += count;
            *stats.by_source.entry(source).or_default() += count;
        }
        for (second, count) in recent_seconds {
            stats.bump_second(second, count);
        }
        stats
    }

    /// Counts one appended event.
    pub(crate) fn record(&mut self, ty: &str, source: &str, time: DateTime<Utc>) {
        self.total += 1;
        bump(&mut self.by_type, ty);
        bump(&mut self.by_source, source);
        self.last_event_time = Some(time);
        self.bump_second(time.timestamp(), 1);
    }

    /// Forgets events that retention removed from the journal.
    pub(crate) fn forget(&mut self, pruned: &[(String, String, u64)]) {
        for (ty, source, count) in pruned {
            self.total = self.total.saturating_sub(*count);
            drop_count(&mut self.by_type, ty, *count);
            drop_count(&mut self.by_source, source, *count);
        }
    }

    /// A snapshot; the rate window ends at `now`.
    pub(crate) fn snapshot(&self, head: u64, now: DateTime<Utc>) -> BusStats {
        let oldest = now.timestamp() - WINDOW_SECS as i64;
        // Buckets ahead of `now` (the wall clock stepped back) still count as recent.
        let recent: u64 = self
            .buckets
            .iter()
            .filter(|(second, _)| *second > oldest)
            .map(|(_, count)| count)
            .sum();
        BusStats {
            total: self.total,
            by_type: self.by_type.clone(),
            by_source: self.by_source.clone(),
            events_per_minute: recent as f64,
            head,
            last_event_time: self.last_event_time,
        }
    }

    fn bump_second(&mut self, second: i64, count: u64) {
        let slot = &mut self.buckets[second.rem_euclid(WINDOW_SECS as i64) as usize];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += count;
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    // Look up by &str first so the common case allocates nothing.
    match map.get_mut(key) {
        Some(count) => *count += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

fn drop_count(map: &mut BTreeMap<String, u64>, key: &str, count: u64) {
    if let Some(current) = map.get_mut(key) {
        *current = current.saturating_sub(count);
        if *current == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Bus, BusConfig, NewEvent};
    use serde_json::json;

    #[test]
    fn stats_count_by_type_and_source() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        for (source, ty) in [("a", "x.one"), ("a", "x.two"), ("b", "x.one")] {
            bus.publish(NewEvent::new(source, ty, json!({}))).unwrap();
        }
        let stats = bus.stats();
        assert_eq!(stats.total, 3);
        assert_eq!(stats.head, 3);
        assert_eq!(stats.by_type["x.one"], 2);
        assert_eq!(stats.by_type["x.two"], 1);
        assert_eq!(stats.by_source["a"], 2);
        assert_eq!(stats.by_source["b"], 1);
        assert_eq!(stats.events_per_minute, 3.0);
        assert!(stats.last_event_time.is_some());
    }

    #[test]
    fn stats_of_an_empty_bus_are_zero() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let stats = bus.stats();
        assert_eq!(stats.total, 0);
        assert_eq!(stats.head, 0);
        assert!(stats.by_type.is_empty());
        assert_eq!(stats.events_per_minute, 0.0);
        assert_eq!(stats.last_event_time, None);
    }

    #[test]
    fn stats_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
            bus.publish(NewEvent::new("a", "x.one", json!(1))).unwrap();
            bus.publish(NewEvent::new("b", "x.two", json!(2))).unwrap();
        }
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        let stats = bus.stats();
        assert_eq!(stats.total, 2);
        assert_eq!(stats.by_type["x.two"], 1);
        assert_eq!(stats.by_source["a"], 1);
        // Both were published moments ago, so the seeded window still holds them.
        assert_eq!(stats.events_per_minute, 2.0);
    }

    #[test]
    fn the_rate_window_forgets_old_seconds() {
        let now = Utc::now();
        let mut stats = StatsTracker::seeded(Vec::new(), Vec::new(), None);
        stats.record("t", "s", now - chrono::Duration::seconds(120));
        stats.record("t", "s", now - chrono::Duration::seconds(30));
        stats.record("t", "s", now);
        let snap = stats.snapshot(3, now);
        assert_eq!(snap.total, 3);
        assert_eq!(snap.events_per_minute, 2.0);
    }

    #[test]
    fn forgetting_pruned_events_lowers_the_counts() {
        let groups = vec![("t".to_owned(), "s".to_owned(), 5)];
        let mut stats = StatsTracker::seeded(groups, Vec::new(), None);
        stats.forget(&[("t".to_owned(), "s".to_owned(), 5)]);
        let snap = stats.snapshot(5, Utc::now());
        assert_eq!(snap.total, 0);
        assert!(snap.by_type.is_empty());
        assert!(snap.by_source.is_empty());
    }
}
