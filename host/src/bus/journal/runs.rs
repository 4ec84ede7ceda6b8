//! Where each type occurs: `type_runs(type, first_seq, last_seq)`, a sparse
//! index written once per type per group commit instead of once per event.
//!
//! An index on `events(type)` costs a B-tree insert per event, about a third of
//! the writer's time at full load (measured). A run says "events of this type
//! occur only between these two sequences within one commit"; under load a
//! commit carries thousands of events and a handful of types, so the index
//! costs almost nothing, and at light load (one event per commit) it costs what
//! the old index did, when there is time to spare.
//!
//! A query by type first expands its patterns into the types present (from
//! `counts`), then reads their runs inside its window, merges them, and scans
//! only those sequence ranges. When the matching types hold a large share of
//! the journal, a plain scan finds them as fast and the runs are not used.
//! Runs never span more than [`RUN_SPAN`] sequences, which is what lets the run
//! lookup bound `first_seq` from below.

use std::collections::HashMap;

use rusqlite::{Transaction, params};

use crate::bus::error::BusError;
use crate::bus::pattern::matches_any;
use crate::bus::query::EventQuery;
use crate::bus::sql::clamp_seq;

use super::Journal;

/// Longest run, in sequences.
pub(super) const RUN_SPAN: u64 = 32_768;
/// Ranges closer than this are scanned as one: a statement per range costs
/// more than reading a few rows that do not match.
const COALESCE_GAP: u64 = 64;
/// The runs are used when the matching types hold less than 1/SHARE of the journal.
const SHARE: u64 = 4;

/// Collects the runs of one group commit, `(type, first, last)` per type, as
/// its rows go by in sequence order.
#[derive(Default)]
pub(super) struct RunTracker<'a> {
    /// The run of the type of the latest row.
    current: Option<(&'a str, u64, u64)>,
    /// Runs parked while another type's rows come in.
    parked: HashMap<&'a str, (u64, u64)>,
    done: Vec<(&'a str, u64, u64)>,
}

impl<'a> RunTracker<'a> {
    pub(super) fn push(&mut self, seq: u64, ty: &'a str) {
        // Consecutive rows of one type are the rule: extend without hashing.
        if let Some((t, a, b)) = &mut self.current
            && *t == ty
            && seq - *a < RUN_SPAN
        {
            *b = seq;
            return;
        }
        if let Some((t, a, b)) = self.current.take() {
            self.parked.insert(t, (a, b));
        }
        let run = match self.parked.remove(ty) {
            Some((a, _)) if seq - a < RUN_SPAN => (a, seq),
            Some((a, b)) => {
                self.done.push((ty, a, b));
                (seq, seq)
            }
            None => (seq, seq),
        };
        self.current = Some((ty, run.0, run.1));
    }

    pub(super) fn finish(mut self) -> Vec<(&'a str, u64, u64)> {
        if let Some((t, a, b)) = self.current {
            self.parked.insert(t, (a, b));
        }
        let mut done = self.done;
        done.extend(self.parked.into_iter().map(|(ty, (a, b))| (ty, a, b)));
        done
    }
}

pub(super) fn insert_runs(tx: &Transaction<'_>, runs: &[(&str, u64, u64)]) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO type_runs (type, first_seq, last_seq) VALUES (?1, ?2, ?3)",
    )?;
    for (ty, first, last) in runs {
        insert.execute(params![ty, clamp_seq(*first), clamp_seq(*last)])?;
    }
    Ok(())
}

/// Deletes the runs of `types` that lie wholly at or before `through`.
pub(super) fn prune_runs<'t>(
    tx: &Transaction<'_>,
    types: impl IntoIterator<Item = &'t str>,
    through: u64,
) -> rusqlite::Result<()> {
    let mut delete = tx.prepare_cached(
        "DELETE FROM type_runs WHERE type = ?1 AND first_seq <= ?2 AND last_seq <= ?2",
    )?;
    for ty in types {
        delete.execute(params![ty, clamp_seq(through)])?;
    }
    Ok(())
}

impl Journal {
    /// The sequence ranges in `lo..=hi` that can hold events of `q`'s types,
    /// ascending and merged; `None` when the runs would not narrow the scan
    /// (no type filter, no runs in this journal, or common types).
    pub(super) fn type_ranges(
        &self,
        q: &EventQuery,
        lo: u64,
        hi: u64,
    ) -> Result<Option<Vec<(u64, u64)>>, BusError> {
        if q.types.is_empty() || !self.has_type_runs || !self.has_counts {
            return Ok(None);
        }
        let err = |action| BusError::journal(&self.path, action);
        let mut present = self
            .conn
            .prepare_cached("SELECT type, SUM(events) FROM counts GROUP BY type")
            .map_err(err("prepare reading the types"))?;
        let types = present
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(err("read the types"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err("read a type"))?;
        let total: i64 = types.iter().map(|(_, n)| n).sum();
        let matching: Vec<&(String, i64)> = types
            .iter()
            .filter(|(ty, _)| matches_any(&q.types, ty))
            .collect();
        let share: i64 = matching.iter().map(|(_, n)| n).sum();
        if share.max(0) as u64 * SHARE > total.max(0) as u64 {
            return Ok(None);
        }
        let mut runs = self
            .conn
            .prepare_cached(
                "SELECT first_seq, last_seq FROM type_runs \
                 WHERE type = ?1 AND first_seq >= ?2 AND first_seq <= ?3",
            )
            .map_err(err("prepare reading type runs"))?;
        let mut ranges = Vec::new();
        for (ty, _) in matching {
            let found = runs
                .query_map(
                    params![
                        ty,
                        clamp_seq(lo.saturating_sub(RUN_SPAN - 1)),
                        clamp_seq(hi)
                    ],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?.max(0) as u64,
                            r.get::<_, i64>(1)?.max(0) as u64,
                        ))
                    },
                )
                .map_err(err("read type runs"))?;
            for run in found {
                let (first, last) = run.map_err(err("read a type run"))?;
                if last >= lo {
                    ranges.push((first.max(lo), last.min(hi)));
                }
            }
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            match merged.last_mut() {
                Some(prev) if first <= prev.1.saturating_add(COALESCE_GAP) => {
                    prev.1 = prev.1.max(last);
                }
                _ => merged.push((first, last)),
            }
        }
        Ok(Some(merged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs_of<'a>(types: &[&'a str], first: u64) -> Vec<(&'a str, u64, u64)> {
        let mut tracker = RunTracker::default();
        for (seq, ty) in (first..).zip(types) {
            tracker.push(seq, ty);
        }
        let mut runs = tracker.finish();
        runs.sort_unstable();
        runs
    }

    #[test]
    fn a_group_has_one_run_per_type() {
        let runs = runs_of(&["a", "a", "b", "a", "c", "c"], 10);
        assert_eq!(runs, [("a", 10, 13), ("b", 12, 12), ("c", 14, 15)]);
    }

    #[test]
    fn no_run_spans_more_than_the_limit() {
        let n = RUN_SPAN as usize + 10;
        let runs = runs_of(&vec!["a"; n], 1);
        assert_eq!(runs, [("a", 1, RUN_SPAN), ("a", RUN_SPAN + 1, n as u64)]);
    }
}

#[cfg(test)]
mod journal_tests {
    use crate::bus::pattern::Pattern;
    use crate::bus::{Bus, BusConfig, EventQuery, NewEvent, journal_path};
    use serde_json::json;

    fn seqs(bus: &Bus, q: &EventQuery) -> Vec<u64> {
        bus.query(q).unwrap().iter().map(|e| e.sequence).collect()
    }

    /// Rare types found through their runs give what a filter over every event gives.
    #[test]
    fn queries_by_rare_types_through_runs_match_a_full_filter() {
        let dir = tempfile::tempdir().unwrap();
        let config = BusConfig {
            ring_capacity: 0,
            max_journal_events: 3000,
            ..BusConfig::default()
        };
        let bus = Bus::open(dir.path(), config.clone()).unwrap();
        let mut expected = Vec::new();
        for round in 0..40u64 {
            let mut batch: Vec<NewEvent> = (0..99)
                .map(|n| NewEvent::new("s", "noise.made", json!(n)))
                .collect();
            let ty = if round % 2 == 0 {
                "rare.even"
            } else {
                "rare.odd"
            };
            batch.insert(
                (round as usize * 7) % 99,
                NewEvent::new("s", ty, json!(round)),
            );
            for e in bus.publish_all(batch).unwrap() {
                if e.ty.starts_with("rare.") {
                    expected.push((e.sequence, e.ty));
                }
            }
        }
        // Retention (3000 of 4000) pruned the first ten rounds and their runs.
        expected.retain(|(seq, _)| *seq > 1000);
        let conn = rusqlite::Connection::open(journal_path(dir.path())).unwrap();
        let oldest_run: i64 = conn
            .query_row("SELECT MIN(last_seq) FROM type_runs", [], |r| r.get(0))
            .unwrap();
        assert!(oldest_run > 1000, "runs of pruned events are gone");
        let pats = |p: &[&str]| p.iter().map(|p| Pattern::parse(p).unwrap()).collect();
        let all_rare: Vec<u64> = expected.iter().map(|(s, _)| *s).collect();
        let even: Vec<u64> = expected
            .iter()
            .filter(|(_, t)| t == "rare.even")
            .map(|(s, _)| *s)
            .collect();
        for bus in [bus, Bus::open(dir.path(), config).unwrap()] {
            let q = EventQuery {
                types: pats(&["rare.*"]),
                ..Default::default()
            };
            assert_eq!(seqs(&bus, &q), all_rare);
            let q = EventQuery {
                types: pats(&["*.even"]),
                limit: Some(3),
                ..Default::default()
            };
            assert_eq!(seqs(&bus, &q), even[even.len() - 3..]);
            let q = EventQuery {
                types: pats(&["rare.even", "rare.odd"]),
                after_sequence: Some(all_rare[4]),
                limit: Some(2),
                ..Default::default()
            };
            assert_eq!(seqs(&bus, &q), all_rare[5..7]);
            // A bounded page still says where it stopped, runs or not.
            let q = EventQuery {
                types: pats(&["rare.*"]),
                after_sequence: Some(1000),
                max_scan: Some(250),
                ..Default::default()
            };
            let page = bus.query_page(&q).unwrap();
            let within: Vec<u64> = all_rare.iter().copied().filter(|s| *s <= 1250).collect();
            let got: Vec<u64> = page.events.iter().map(|e| e.sequence).collect();
            assert_eq!(
                (got, page.complete, page.next_after),
                (within, false, Some(1250))
            );
        }
    }
}
