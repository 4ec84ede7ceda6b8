//! Reading the journal: queries, catch-up pages, lookups, the ring's refill.
//!
//! Bounded by construction where it matters: the head and the first sequence
//! are single rowid lookups; a time becomes a sequence by binary search (times
//! never decrease along `seq`); a query examines at most its window (`scan`),
//! narrowed by type through `runs`; the refill reads a bounded tail.
//!
//! A row that cannot be decoded never stops a reader: queries skip it with a
//! warning and catch-up pages list it so the consumer can report it once.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use crate::bus::data::EventData;
use crate::bus::error::BusError;
use crate::bus::event::{Event, JsonContentType, SpecVersion, approx_size};
use crate::bus::query::{EventQuery, QueryPage};
use crate::bus::scan::{Scan, ScanPlan};
use crate::bus::sql::{clamp_seq, time_from_sql, time_to_sql, to_sql};

use super::Journal;

/// One page of the log read for a consumer.
pub(crate) struct JournalPage {
    /// The rows that passed the consumer's type filter.
    pub(crate) events: Vec<Event>,
    /// The first and last sequence examined, matching or not.
    pub(crate) first_seq: Option<u64>,
    pub(crate) last_seq: Option<u64>,
    /// Rows that could not be decoded, with the reason; passed over.
    pub(crate) corrupt: Vec<(u64, String)>,
}

impl Journal {
    /// Answers a query from the journal. See [`EventQuery`] for the semantics.
    ///
    /// Unreadable rows are skipped with a warning rather than failing the query.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if SQLite fails.
    pub fn query(&self, q: &EventQuery) -> Result<Vec<Event>, BusError> {
        self.query_page(q).map(|page| page.events)
    }

    /// Answers a query, within its `max_scan` and `max_bytes` bounds.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if SQLite fails.
    pub fn query_page(&self, q: &EventQuery) -> Result<QueryPage, BusError> {
        let err = |action| BusError::journal(&self.path, action);
        let head = self.head()?;
        let first = self.first()?.unwrap_or(head + 1);
        let mut lo = first.max(q.after_sequence.map_or(0, |a| a.saturating_add(1)));
        if let Some(since) = q.since {
            lo = lo.max(self.seq_at_time(since, first, head)?);
        }
        let mut hi = head;
        if let Some(until) = q.until {
            hi = hi.min(self.seq_at_time(until, first, head)?.saturating_sub(1));
        }
        let plan = ScanPlan::new(q, lo, hi);
        let mut scan = Scan::new(q, plan);
        if plan.is_empty() || scan.done() {
            return Ok(scan.finish());
        }
        // The whole plan, or only where the query's types occur (`runs`).
        let mut ranges = self
            .type_ranges(q, plan.lo, plan.hi)?
            .unwrap_or_else(|| vec![(plan.lo, plan.hi)]);
        if plan.backward {
            ranges.reverse();
        }
        for (lo, hi) in ranges {
            let part = ScanPlan { lo, hi, ..plan };
            let sql = to_sql(q, &part, self.columns);
            let mut stmt = self
                .conn
                .prepare_cached(&sql.sql)
                .map_err(err("prepare a query"))?;
            let mut rows = stmt
                .query(params_from_iter(sql.params.iter()))
                .map_err(err("run a query"))?;
            // Rows stream from SQLite, so stopping early reads no further.
            while let Some(row) = rows.next().map_err(err("read a query row"))? {
                match self.decode(row) {
                    Ok((event, size)) => {
                        if !scan.offer_owned(event, size) {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "query skipped an unreadable journal row");
                    }
                }
            }
            if scan.done() {
                break;
            }
        }
        Ok(scan.finish())
    }

    /// The event with this sequence, `None` if it was never stored or was pruned.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if SQLite fails, [`BusError::CorruptEvent`] if the
    /// row cannot be decoded.
    pub fn get(&self, sequence: u64) -> Result<Option<Event>, BusError> {
        let err = |action| BusError::journal(&self.path, action);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {} FROM events WHERE seq = ?1",
                self.columns
            ))
            .map_err(err("prepare a lookup"))?;
        let mut rows = stmt
            .query([clamp_seq(sequence)])
            .map_err(err("look up an event"))?;
        match rows.next().map_err(err("read a looked-up row"))? {
            Some(row) => self.decode(row).map(|(event, _)| Some(event)),
            None => Ok(None),
        }
    }

    /// The highest sequence stored, 0 if none. A reader can poll this to follow the log.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if SQLite fails.
    pub fn head(&self) -> Result<u64, BusError> {
        // One aggregate per statement: SQLite answers a lone MAX(rowid) from the
        // B-tree's edge, but MIN and MAX together scan the whole table.
        self.edge("SELECT MAX(seq) FROM events")
            .map(|h| h.unwrap_or(0))
    }

    /// The oldest sequence stored, if any.
    pub(crate) fn first(&self) -> Result<Option<u64>, BusError> {
        self.edge("SELECT MIN(seq) FROM events")
    }

    fn edge(&self, sql: &str) -> Result<Option<u64>, BusError> {
        let value: Option<i64> = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(BusError::journal(&self.path, "read the sequence range"))?;
        Ok(value.map(|v| v.max(0) as u64))
    }

    /// The first stored sequence in `lo..=hi` whose time is at or after `t`, or
    /// `hi + 1` if none: a binary search over the rowid, O(log² n) page reads.
    pub(crate) fn seq_at_time(&self, t: DateTime<Utc>, lo: u64, hi: u64) -> Result<u64, BusError> {
        let t = time_to_sql(t);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, time FROM events WHERE seq >= ?1 AND seq < ?2 ORDER BY seq LIMIT 1",
            )
            .map_err(BusError::journal(&self.path, "prepare a time search"))?;
        // The answer is in lo..=end; `end` means "none in range".
        let (mut lo, mut end) = (lo, hi.saturating_add(1));
        while lo < end {
            let mid = lo + (end - lo) / 2;
            let probe: Option<(i64, String)> = stmt
                .query_row(params![clamp_seq(mid), clamp_seq(end)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(BusError::journal(&self.path, "search by time"))?;
            match probe {
                // No row in mid..end: the answer is before mid, or none.
                None => end = mid,
                Some((seq, time)) if time.as_str() >= t.as_str() => end = seq.max(0) as u64,
                Some((seq, _)) => lo = seq.max(0) as u64 + 1,
            }
        }
        Ok(lo)
    }

    /// Up to `limit` rows after `after`, keeping those whose type passes `keep`.
    /// Rows that fail `keep` are not decoded: a consumer far behind with a narrow
    /// filter should not pay for JSON it will skip.
    pub(crate) fn read_after(
        &self,
        after: u64,
        limit: usize,
        keep: impl Fn(&str) -> bool,
    ) -> Result<JournalPage, BusError> {
        let err = |action| BusError::journal(&self.path, action);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                self.columns
            ))
            .map_err(err("prepare a catch-up read"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt
            .query(params![clamp_seq(after), limit])
            .map_err(err("run a catch-up read"))?;
        let mut page = JournalPage {
            events: Vec::new(),
            first_seq: None,
            last_seq: None,
            corrupt: Vec::new(),
        };
        while let Some(row) = rows.next().map_err(err("read a catch-up row"))? {
            let seq = row.get::<_, i64>(0).map_err(err("read a sequence"))?.max(0) as u64;
            page.first_seq.get_or_insert(seq);
            page.last_seq = Some(seq);
            let ty = row.get_ref(3).map_err(err("read an event type"))?;
            // A non-text type is kept so that decoding reports the bad row.
            if ty.as_str().map_or(true, &keep) {
                match self.decode(row) {
                    Ok((event, _)) => page.events.push(event),
                    Err(error) => page.corrupt.push((seq, error.to_string())),
                }
            }
        }
        Ok(page)
    }

    /// The newest events, oldest first, with their sizes: at most `n` of them and
    /// at most `max_bytes` in all. The bus refills its ring from these; since
    /// the ring must be gapless, it keeps only what follows a gap or an
    /// unreadable row.
    ///
    /// Rows are read forwards, from a start estimated with the journal's mean
    /// event size: reading a B-tree backwards defeats the kernel's read-ahead,
    /// and on a cold cache that made opening a 1 GiB journal take half a second.
    pub(crate) fn tail(&self, n: usize, max_bytes: usize) -> Result<Vec<(Event, usize)>, BusError> {
        let err = |action| BusError::journal(&self.path, action);
        let head = self.head()?;
        let Some(first) = self.first()? else {
            return Ok(Vec::new());
        };
        if n == 0 || max_bytes == 0 {
            return Ok(Vec::new());
        }
        let mean = self.mean_size().map_err(err("read the mean event size"))?;
        let fit = (max_bytes as u64 / mean.max(1)).saturating_add(1);
        let start = head
            .saturating_sub(fit.min(n as u64).saturating_sub(1))
            .max(first);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {} FROM events WHERE seq >= ?1 ORDER BY seq",
                self.columns
            ))
            .map_err(err("prepare the ring refill"))?;
        let mut rows = stmt
            .query([clamp_seq(start)])
            .map_err(err("read the newest events"))?;
        let mut events: std::collections::VecDeque<(Event, usize)> = Default::default();
        let mut bytes = 0usize;
        while let Some(row) = rows.next().map_err(err("read a newest event"))? {
            let Ok((event, size)) = self.decode(row) else {
                events.clear();
                bytes = 0;
                continue;
            };
            if events
                .back()
                .is_some_and(|(older, _)| older.sequence + 1 != event.sequence)
            {
                events.clear();
                bytes = 0;
            }
            bytes += size;
            events.push_back((event, size));
            while bytes > max_bytes || events.len() > n {
                match events.pop_front() {
                    Some((_, dropped)) => bytes -= dropped,
                    None => break,
                }
            }
        }
        Ok(events.into())
    }

    /// The mean size of a stored event, from `counts` (1 if unknown).
    fn mean_size(&self) -> rusqlite::Result<u64> {
        if !self.has_counts {
            return Ok(1);
        }
        let (events, bytes): (Option<i64>, Option<i64>) = self
            .conn
            .prepare_cached("SELECT SUM(events), SUM(bytes) FROM counts")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        match (events, bytes) {
            (Some(e), Some(b)) if e > 0 => Ok((b / e).max(1) as u64),
            _ => Ok(1),
        }
    }

    /// An event and its size from a row of `self.columns`; any undecodable
    /// value makes the row corrupt.
    fn decode(&self, row: &Row<'_>) -> Result<(Event, usize), BusError> {
        let seq = row.get::<_, i64>(0).unwrap_or(0).max(0) as u64;
        let corrupt = |reason: String| BusError::CorruptEvent {
            path: self.path.clone(),
            sequence: seq,
            reason,
        };
        let text = |i: usize, what: &str| -> Result<&str, BusError> {
            row.get_ref(i)
                .ok()
                .and_then(|v| v.as_str().ok())
                .ok_or_else(|| corrupt(format!("{what} is not text")))
        };
        let (id, source, ty) = (text(1, "id")?, text(2, "source")?, text(3, "type")?);
        let subject: Option<String> = row.get(4).map_err(|e| corrupt(format!("subject: {e}")))?;
        let time = text(5, "time")?;
        let data = text(6, "data")?;
        let cause: Option<i64> = row.get(7).map_err(|e| corrupt(format!("cause: {e}")))?;
        let depth: i64 = row.get(8).map_err(|e| corrupt(format!("depth: {e}")))?;
        let size = approx_size(id, source, ty, subject.as_deref(), data.len());
        let event = Event {
            specversion: SpecVersion,
            id: id.to_owned(),
            source: source.to_owned(),
            ty: ty.to_owned(),
            subject,
            time: time_from_sql(time)
                .map_err(|e| corrupt(format!("time {time:?} is not RFC 3339: {e}")))?,
            sequence: seq,
            cause: cause.map(|c| c.max(0) as u64),
            depth: u32::try_from(depth)
                .map_err(|_| corrupt(format!("depth {depth} is out of range")))?,
            datacontenttype: JsonContentType,
            data: EventData::from_json(data)
                .map_err(|e| corrupt(format!("data is not JSON: {e}")))?,
        };
        Ok((event, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::pattern::Pattern;
    use crate::bus::{Bus, BusConfig, NewEvent};
    use serde_json::json;

    fn plan_of(journal: &Journal, q: &EventQuery, lo: u64, hi: u64) -> Vec<String> {
        let sql = to_sql(q, &ScanPlan::new(q, lo, hi), journal.columns);
        let mut stmt = journal
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.sql))
            .unwrap();
        stmt.query_map(params_from_iter(sql.params.iter()), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_leading_wildcard_with_max_scan_reads_a_rowid_range_not_the_journal() {
        let bus = Bus::open_in_memory(BusConfig {
            ring_capacity: 0,
            ..BusConfig::default()
        })
        .unwrap();
        bus.publish_all(
            (0..2000)
                .map(|n| NewEvent::new("s", "noise.made", json!(n)))
                .collect(),
        )
        .unwrap();
        let journal = bus.core().journal.lock();
        let q = EventQuery {
            types: vec![Pattern::parse("*.loaded").unwrap()],
            max_scan: Some(300),
            ..EventQuery::default()
        };
        let plan = plan_of(&journal, &q, 1, 2000);
        assert!(
            plan.iter().any(|step| step.contains("INTEGER PRIMARY KEY")),
            "{plan:?}"
        );
        let page = journal.query_page(&q).unwrap();
        assert!(page.events.is_empty());
        assert!(!page.complete, "300 of 2000 sequences were examined");
        assert_eq!(page.next_after, Some(2000));
    }

    #[test]
    fn time_bounds_become_sequence_bounds_by_binary_search() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let mut times = Vec::new();
        for n in 0..20 {
            times.push(
                bus.publish(NewEvent::new("s", "a.b", json!(n)))
                    .unwrap()
                    .time,
            );
            if n % 5 == 4 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        let journal = bus.core().journal.lock();
        for (i, t) in times.iter().enumerate() {
            let first_at = times.iter().position(|x| x >= t).unwrap() as u64 + 1;
            assert_eq!(
                journal.seq_at_time(*t, 1, 20).unwrap(),
                first_at,
                "event {}",
                i + 1
            );
        }
        let later = times[19] + chrono::Duration::seconds(1);
        assert_eq!(journal.seq_at_time(later, 1, 20).unwrap(), 21);
        let earlier = times[0] - chrono::Duration::seconds(1);
        assert_eq!(journal.seq_at_time(earlier, 1, 20).unwrap(), 1);
        assert_eq!(
            journal.seq_at_time(later, 5, 4).unwrap(),
            5,
            "an empty range"
        );
    }
}
