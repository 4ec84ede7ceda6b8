//! What a journal holds, read without scanning it: the figures the bus seeds
//! its sequence, retention and statistics from when it opens, and the
//! statistics a reader in another process asks for.
//!
//! Head, first sequence and newest time are single rowid lookups; counts come
//! from the `counts` table; the recent publish rate from 61 binary searches.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use crate::bus::error::BusError;
use crate::bus::sql::time_from_sql;
use crate::bus::stats::{BusStats, StatsTracker};

use super::schema::SIZE_SQL;
use super::{GroupCount, Journal};

/// What the bus needs to know about a journal when it opens.
pub(crate) struct JournalSummary {
    /// Highest sequence ever stored (0 for an empty journal).
    pub(crate) head: u64,
    /// Oldest sequence still stored (`head + 1` for an empty journal).
    pub(crate) first: u64,
    /// Events and bytes per `(type, source)`.
    pub(crate) groups: Vec<GroupCount>,
    /// Event counts per unix second for the last minute.
    pub(crate) recent_seconds: Vec<(i64, u64)>,
    /// Time of the newest event, which the next event's time may not precede.
    pub(crate) last_time: Option<DateTime<Utc>>,
}

impl Journal {
    /// Statistics of the whole journal, as [`Bus::stats`](crate::bus::Bus::stats)
    /// gives for a running bus; for readers in another process.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] when the journal cannot be read.
    pub fn stats(&self) -> Result<BusStats, BusError> {
        let now = Utc::now();
        let summary = self.summary(now)?;
        let tracker =
            StatsTracker::seeded(&summary.groups, summary.recent_seconds, summary.last_time);
        let mut stats = tracker.snapshot(summary.head, now);
        let size = |suffix: &str| {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            std::fs::metadata(path).map_or(0, |m| m.len())
        };
        stats.journal_bytes = size("") + size("-wal");
        Ok(stats)
    }

    /// Counts the bus seeds its sequence, retention and stats from.
    pub(crate) fn summary(&self, now: DateTime<Utc>) -> Result<JournalSummary, BusError> {
        let err = |action| BusError::journal(&self.path, action);
        let head = self.head()?;
        let first = self.first()?.unwrap_or(head + 1);
        let groups = self.groups().map_err(err("read the event counts"))?;
        let last_time = match head {
            0 => None,
            _ => self
                .conn
                .prepare_cached("SELECT time FROM events ORDER BY seq DESC LIMIT 1")
                .and_then(|mut s| s.query_row([], |r| r.get::<_, String>(0)))
                .optional()
                .map_err(err("read the newest time"))?
                .and_then(|t| time_from_sql(&t).ok()),
        };
        // Per-second counts for the last minute, from sequence boundaries found by
        // binary search: bounded work however many events that minute holds.
        let mut recent_seconds = Vec::new();
        if head >= first {
            let now_second = now.timestamp();
            let at = |second: i64| -> Result<u64, BusError> {
                let t = DateTime::from_timestamp(second, 0).unwrap_or(now);
                self.seq_at_time(t, first, head)
            };
            let mut from = at(now_second - 59)?;
            for second in (now_second - 59)..=now_second {
                let to = at(second + 1)?;
                if to > from {
                    recent_seconds.push((second, to - from));
                }
                from = to;
            }
        }
        Ok(JournalSummary {
            head,
            first,
            groups,
            recent_seconds,
            last_time,
        })
    }

    /// Events and bytes per `(type, source)`: the `counts` table, or for a
    /// version 1 journal read without migrating it, one grouping scan.
    fn groups(&self) -> rusqlite::Result<Vec<GroupCount>> {
        let sql = if self.has_counts {
            "SELECT type, source, events, bytes FROM counts".to_owned()
        } else {
            format!(
                "SELECT type, source, COUNT(*), SUM({SIZE_SQL}) FROM events GROUP BY type, source"
            )
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], |r| {
            Ok(GroupCount {
                ty: r.get(0)?,
                source: r.get(1)?,
                events: r.get::<_, i64>(2)?.max(0) as u64,
                bytes: r.get::<_, i64>(3)?.max(0) as u64,
            })
        })?;
        rows.collect()
    }

    /// Every durable cursor.
    pub(crate) fn cursors(&self) -> Result<Vec<(String, u64)>, BusError> {
        let err = |action| BusError::journal(&self.path, action);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, seq FROM cursors")
            .map_err(err("prepare reading the cursors"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))
            .map_err(err("read the cursors"))?;
        rows.collect::<Result<_, _>>().map_err(err("read a cursor"))
    }
}
