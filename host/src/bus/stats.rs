//! Counters over the journal: totals by type and source, and the recent rate;
//! and the same breakdown over a window of time ([`Bus::stats_by`]).
//!
//! The totals are seeded once from the journal's `counts` table when the bus
//! opens and then kept in memory as events are appended and pruned (by group
//! commit, not per event), so reading stats never scans the log. A windowed
//! breakdown cannot come from those counters: it is one grouped SQL pass over
//! the window's rows, bounded by `max_scan` like a query, so a plugin or an API
//! client asking about "the last hour" never makes the host read the journal.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::bus::error::BusError;
use crate::bus::journal::{GroupCount, Journal};
use crate::bus::log::Bus;
use crate::bus::sql::{clamp_seq, time_from_sql};

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
    /// Events published per type since this bus was opened; only ever grows,
    /// so it suits Prometheus counters.
    pub published_by_type: BTreeMap<String, u64>,
    /// Size of the journal's files (database plus WAL); 0 for a journal in memory.
    pub journal_bytes: u64,
}

/// The live counters behind [`BusStats`]; lives under the bus's read-mostly lock.
#[derive(Debug)]
pub(crate) struct StatsTracker {
    total: u64,
    by_type: BTreeMap<String, u64>,
    by_source: BTreeMap<String, u64>,
    /// Approximate bytes of the events in the journal, as retention counts them.
    bytes: u64,
    published_by_type: BTreeMap<String, u64>,
    last_event_time: Option<DateTime<Utc>>,
    /// `(unix second, events in that second)`, indexed by second modulo the window.
    buckets: [(i64, u64); WINDOW_SECS],
}

impl StatsTracker {
    /// Counters seeded from the journal's counts.
    pub(crate) fn seeded(
        groups: &[GroupCount],
        recent_seconds: Vec<(i64, u64)>,
        last_event_time: Option<DateTime<Utc>>,
    ) -> Self {
        let mut stats = StatsTracker {
            total: 0,
            by_type: BTreeMap::new(),
            by_source: BTreeMap::new(),
            bytes: 0,
            published_by_type: BTreeMap::new(),
            last_event_time,
            buckets: [(i64::MIN, 0); WINDOW_SECS],
        };
        for g in groups {
            stats.total += g.events;
            stats.bytes += g.bytes;
            bump(&mut stats.by_type, &g.ty, g.events);
            bump(&mut stats.by_source, &g.source, g.events);
        }
        for (second, count) in recent_seconds {
            stats.bump_second(second, count);
        }
        stats
    }

    /// Counts one group commit: `(type, source, events, bytes)` per pair, all
    /// stamped `time`.
    pub(crate) fn record<'a>(
        &mut self,
        groups: impl IntoIterator<Item = (&'a str, &'a str, u64, u64)>,
        time: DateTime<Utc>,
    ) {
        let mut events = 0;
        for (ty, source, n, bytes) in groups {
            events += n;
            self.bytes += bytes;
            bump(&mut self.by_type, ty, n);
            bump(&mut self.by_source, source, n);
            bump(&mut self.published_by_type, ty, n);
        }
        self.total += events;
        self.last_event_time = Some(time);
        self.bump_second(time.timestamp(), events);
    }

    /// Forgets events that retention removed from the journal.
    pub(crate) fn forget(&mut self, pruned: &[GroupCount]) {
        for g in pruned {
            self.total = self.total.saturating_sub(g.events);
            self.bytes = self.bytes.saturating_sub(g.bytes);
            drop_count(&mut self.by_type, &g.ty, g.events);
            drop_count(&mut self.by_source, &g.source, g.events);
        }
    }

    /// Events in the journal.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Approximate bytes of the events in the journal.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
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
            published_by_type: self.published_by_type.clone(),
            journal_bytes: 0,
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

fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    // Look up by &str first so the common case allocates nothing.
    match map.get_mut(key) {
        Some(count) => *count += n,
        None => {
            map.insert(key.to_owned(), n);
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

/// Rows a windowed breakdown examines when the caller gives no `max_scan`.
pub const DEFAULT_BREAKDOWN_SCAN: usize = 100_000;

/// Counts of the events in a window of time: what seed 001's aggregator
/// reports (by type, by source, per minute). See [`Bus::stats_by`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct StatsBreakdown {
    /// Events counted.
    pub total: u64,
    /// Counted events per type.
    pub by_type: BTreeMap<String, u64>,
    /// Counted events per source.
    pub by_source: BTreeMap<String, u64>,
    /// Counted events per minute (UTC, truncated to the minute), oldest first;
    /// minutes without events are absent.
    pub per_minute: Vec<MinuteCount>,
    /// The oldest and newest sequence examined (absent for an empty window).
    pub first_sequence: Option<u64>,
    /// See `first_sequence`.
    pub last_sequence: Option<u64>,
    /// `false` when `max_scan` cut the window: only its newest events were counted.
    pub complete: bool,
}

/// Events in one minute of a [`StatsBreakdown`].
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct MinuteCount {
    /// The minute's start.
    pub minute: DateTime<Utc>,
    /// Events stamped within it.
    pub events: u64,
}

impl Bus {
    /// Counts the events with `since <= time < until` by type, by source and
    /// per minute; either bound may be open. At most `max_scan` events are
    /// examined (default [`DEFAULT_BREAKDOWN_SCAN`]): the newest of the window,
    /// and the answer says whether that cut it (`complete`).
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if the journal read fails.
    pub fn stats_by(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        max_scan: Option<usize>,
    ) -> Result<StatsBreakdown, BusError> {
        let max_scan = max_scan.unwrap_or(DEFAULT_BREAKDOWN_SCAN);
        // Every committed event is in the journal; the reader connection (when
        // the journal is a file) keeps this off the writer's lock.
        match &self.core().reader {
            Some(reader) => breakdown(&reader.lock(), since, until, max_scan),
            None => breakdown(&self.core().journal.lock(), since, until, max_scan),
        }
    }
}

impl Journal {
    /// [`Bus::stats_by`] over a journal opened on its own (`host events
    /// --stats` reads it while a host runs, or after it stopped).
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if the journal read fails.
    pub fn stats_by(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        max_scan: Option<usize>,
    ) -> Result<StatsBreakdown, BusError> {
        breakdown(
            self,
            since,
            until,
            max_scan.unwrap_or(DEFAULT_BREAKDOWN_SCAN),
        )
    }
}

/// The breakdown of `journal` for a window; see [`Bus::stats_by`].
fn breakdown(
    journal: &Journal,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    max_scan: usize,
) -> Result<StatsBreakdown, BusError> {
    let head = journal.head()?;
    let first = journal.first()?.unwrap_or(head + 1);
    // Times never decrease along the log, so the time bounds are sequence bounds.
    let mut lo = first;
    if let Some(since) = since {
        lo = journal.seq_at_time(since, first, head)?;
    }
    let mut hi = head;
    if let Some(until) = until {
        hi = journal.seq_at_time(until, first, head)?.saturating_sub(1);
    }
    let mut out = StatsBreakdown {
        complete: true,
        ..StatsBreakdown::default()
    };
    if lo > hi || max_scan == 0 {
        out.complete = lo > hi;
        return Ok(out);
    }
    if hi - lo >= max_scan as u64 {
        lo = hi + 1 - max_scan as u64;
        out.complete = false;
    }
    let err = |action| BusError::journal(journal.path(), action);
    // Stored times are fixed-width RFC 3339, so the first 16 characters are the minute.
    let mut stmt = journal
        .connection()
        .prepare_cached(
            "SELECT type, source, substr(time, 1, 16), count(*), min(seq), max(seq) \
             FROM events WHERE seq >= ?1 AND seq <= ?2 GROUP BY 1, 2, 3",
        )
        .map_err(err("prepare a stats breakdown"))?;
    let mut rows = stmt
        .query([clamp_seq(lo), clamp_seq(hi)])
        .map_err(err("count events by type, source and minute"))?;
    let mut minutes: BTreeMap<DateTime<Utc>, u64> = BTreeMap::new();
    while let Some(row) = rows.next().map_err(err("read a stats breakdown row"))? {
        let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<_> {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?.max(0) as u64,
                row.get::<_, i64>(4)?.max(0) as u64,
                row.get::<_, i64>(5)?.max(0) as u64,
            ))
        };
        let (ty, source, minute, n, min_seq, max_seq) =
            read(row).map_err(err("decode a stats breakdown row"))?;
        out.total += n;
        bump(&mut out.by_type, &ty, n);
        bump(&mut out.by_source, &source, n);
        out.first_sequence = Some(out.first_sequence.map_or(min_seq, |f| f.min(min_seq)));
        out.last_sequence = Some(out.last_sequence.map_or(max_seq, |l| l.max(max_seq)));
        // A row whose time does not parse is still counted by type and source.
        if let Ok(minute) = time_from_sql(&format!("{minute}:00Z")) {
            *minutes.entry(minute).or_default() += n;
        }
    }
    out.per_minute = minutes
        .into_iter()
        .map(|(minute, events)| MinuteCount { minute, events })
        .collect();
    Ok(out)
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
        assert_eq!(stats.published_by_type["x.one"], 2);
        assert_eq!(stats.journal_bytes, 0, "an in-memory journal has no files");
    }

    #[test]
    fn published_counts_only_grow_while_journal_counts_follow_retention() {
        let bus = Bus::open_in_memory(BusConfig {
            max_journal_events: 5,
            ..BusConfig::default()
        })
        .unwrap();
        for n in 0..20 {
            bus.publish(NewEvent::new("a", "x.one", json!(n))).unwrap();
        }
        let stats = bus.stats();
        assert_eq!(stats.published_by_type["x.one"], 20);
        assert_eq!(stats.by_type["x.one"], stats.total);
        assert!(stats.total <= 10, "retention kept {}", stats.total);
    }

    #[test]
    fn journal_bytes_measure_the_files_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        bus.publish(NewEvent::new("a", "x.one", json!("x".repeat(10_000))))
            .unwrap();
        assert!(bus.stats().journal_bytes >= 10_000);
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
        assert!(
            stats.published_by_type.is_empty(),
            "nothing published since open"
        );
        assert_eq!(stats.total, 2);
        assert_eq!(stats.by_type["x.two"], 1);
        assert_eq!(stats.by_source["a"], 1);
        // Both were published moments ago, so the seeded window still holds them.
        assert_eq!(stats.events_per_minute, 2.0);
    }

    #[test]
    fn the_rate_window_forgets_old_seconds() {
        let now = Utc::now();
        let mut stats = StatsTracker::seeded(&[], Vec::new(), None);
        for ago in [120, 30, 0] {
            stats.record([("t", "s", 1, 10)], now - chrono::Duration::seconds(ago));
        }
        let snap = stats.snapshot(3, now);
        assert_eq!(snap.total, 3);
        assert_eq!(snap.events_per_minute, 2.0);
    }

    #[test]
    fn a_breakdown_counts_only_the_window_by_type_source_and_minute() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let early = bus.publish(NewEvent::new("a", "x.one", json!(1))).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let mid = bus.publish(NewEvent::new("b", "x.one", json!(2))).unwrap();
        bus.publish(NewEvent::new("b", "x.two", json!(3))).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let late = bus
            .publish(NewEvent::new("c", "x.three", json!(4)))
            .unwrap();

        let all = bus.stats_by(None, None, None).unwrap();
        assert_eq!(all.total, 4);
        assert!(all.complete);
        assert_eq!((all.first_sequence, all.last_sequence), (Some(1), Some(4)));
        assert_eq!(all.per_minute.iter().map(|m| m.events).sum::<u64>(), 4);
        let minute = |e: &crate::bus::Event| e.time.timestamp() / 60 * 60;
        assert_eq!(all.per_minute[0].minute.timestamp(), minute(&early));

        let window = bus.stats_by(Some(mid.time), Some(late.time), None).unwrap();
        assert_eq!(window.total, 2);
        assert_eq!(window.by_type["x.one"], 1);
        assert_eq!(window.by_type["x.two"], 1);
        assert_eq!(window.by_source["b"], 2);
        assert!(!window.by_source.contains_key("a"), "before `since`");
        assert!(
            !window.by_type.contains_key("x.three"),
            "`until` is exclusive"
        );
    }

    #[test]
    fn a_breakdown_past_its_scan_bound_counts_the_newest_and_says_so() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        for n in 0..10 {
            let ty = if n < 7 { "old" } else { "new" };
            bus.publish(NewEvent::new("a", ty, json!(n))).unwrap();
        }
        let cut = bus.stats_by(None, None, Some(3)).unwrap();
        assert!(!cut.complete);
        assert_eq!(cut.total, 3);
        assert_eq!(cut.by_type["new"], 3);
        assert_eq!((cut.first_sequence, cut.last_sequence), (Some(8), Some(10)));
        let empty = bus
            .stats_by(Some(Utc::now() + chrono::Duration::hours(1)), None, None)
            .unwrap();
        assert_eq!((empty.total, empty.complete), (0, true));
    }

    #[test]
    fn forgetting_pruned_events_lowers_the_counts() {
        let groups = vec![GroupCount {
            ty: "t".to_owned(),
            source: "s".to_owned(),
            events: 5,
            bytes: 500,
        }];
        let mut stats = StatsTracker::seeded(&groups, Vec::new(), None);
        assert_eq!((stats.total(), stats.bytes()), (5, 500));
        stats.forget(&groups);
        assert_eq!((stats.total(), stats.bytes()), (0, 0));
        let snap = stats.snapshot(5, Utc::now());
        assert_eq!(snap.total, 0);
        assert!(snap.by_type.is_empty());
        assert!(snap.by_source.is_empty());
    }
}
