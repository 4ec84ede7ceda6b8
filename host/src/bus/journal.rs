//! The durable journal: every event, in sequence order, in one SQLite file.
//!
//! Why SQLite rather than an embedded key-value store such as redb:
//! - history is read by *attributes* (type, subject, source, time), and SQLite
//!   answers those from secondary indexes without us maintaining any by hand;
//! - in WAL mode the journal is a single file another process can read while the
//!   host appends to it, which is exactly what `host events` does;
//! - its crash safety is decades old and well understood; with
//!   `synchronous=NORMAL` a commit survives a process crash and at worst loses the
//!   last few commits on power loss, a fair trade for a log of host events.
//!
//! Layout: one table `events(seq INTEGER PRIMARY KEY, id, source, type, subject,
//! time, data)`; `seq` is the rowid, so "after sequence N" is a range scan. `time`
//! is RFC 3339 text with nine fraction digits and `Z`, which sorts as time and stays
//! readable in the `sqlite3` shell; `data` is JSON text.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::{Connection, OpenFlags, Row, params, params_from_iter};

use crate::bus::error::BusError;
use crate::bus::event::{CONTENT_TYPE, Event, SPEC_VERSION};
use crate::bus::query::EventQuery;
use crate::bus::sql::{clamp_seq, time_from_sql, time_to_sql, to_sql};

/// The schema version this build writes and reads (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY,
    id      TEXT NOT NULL,
    source  TEXT NOT NULL,
    type    TEXT NOT NULL,
    subject TEXT,
    time    TEXT NOT NULL,
    data    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_type ON events(type);
CREATE INDEX IF NOT EXISTS events_subject ON events(subject);
CREATE INDEX IF NOT EXISTS events_source ON events(source);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
";

const COLUMNS: &str = "seq, id, source, type, subject, time, data";

/// Where a bus keeps its journal inside a state directory.
pub fn journal_path(state_dir: &Path) -> PathBuf {
    state_dir.join("events.sqlite")
}

/// A connection to an event journal.
///
/// The bus owns a writable one; [`Journal::open_read_only`] gives another process
/// (the `host events` command) a reader that works while the host is appending.
pub struct Journal {
    conn: Connection,
    /// For error messages; `:memory:` for an in-memory journal.
    path: PathBuf,
}

/// One page of the log read for a consumer.
pub(crate) struct JournalPage {
    /// The rows that passed the consumer's type filter.
    pub(crate) events: Vec<Event>,
    /// The first and last sequence examined, matching or not.
    pub(crate) first_seq: Option<u64>,
    pub(crate) last_seq: Option<u64>,
}

/// What the bus needs to know about a journal when it opens.
pub(crate) struct JournalSummary {
    /// Highest sequence ever stored (0 for an empty journal).
    pub(crate) head: u64,
    /// Oldest sequence still stored (`head + 1` for an empty journal).
    pub(crate) first: u64,
    /// Event counts per `(type, source)`.
    pub(crate) groups: Vec<(String, String, u64)>,
    /// Event counts per unix second for the last minute.
    pub(crate) recent_seconds: Vec<(i64, u64)>,
    /// Time of the newest event, which the next event's time may not precede.
    pub(crate) last_time: Option<DateTime<Utc>>,
}

impl Journal {
    /// Opens an existing journal for reading, alongside a running bus.
    ///
    /// - `path`: the journal file, usually [`journal_path`] of the state directory.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if the file does not exist or is not an event journal;
    /// [`BusError::UnsupportedSchema`] if a newer host wrote it.
    pub fn open_read_only(path: &Path) -> Result<Journal, BusError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(BusError::journal(path, "open read-only"))?;
        let journal = Journal {
            conn,
            path: path.to_path_buf(),
        };
        journal.configure()?;
        journal.check_version()?;
        journal
            .conn
            .prepare_cached("SELECT seq FROM events LIMIT 0")
            .map_err(BusError::journal(path, "find the events table"))?;
        Ok(journal)
    }

    /// Opens (creating if needed) a writable journal; `None` keeps it in memory.
    pub(crate) fn open_writable(path: Option<&Path>) -> Result<Journal, BusError> {
        let label = path.map_or_else(|| PathBuf::from(":memory:"), Path::to_path_buf);
        let conn = match path {
            Some(p) => Connection::open(p),
            None => Connection::open_in_memory(),
        }
        .map_err(BusError::journal(&label, "open"))?;
        let journal = Journal { conn, path: label };
        journal.configure()?;
        journal.check_version()?;
        let err = |action| BusError::journal(&journal.path, action);
        // WAL lets a reader (another connection or process) run beside the writer;
        // an in-memory database answers "memory" and that is fine.
        journal
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
            .map_err(err("switch to WAL mode"))?;
        journal
            .conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(err("set synchronous=NORMAL"))?;
        journal
            .conn
            .execute_batch(SCHEMA)
            .map_err(err("create the schema"))?;
        journal
            .conn
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(err("record the schema version"))?;
        Ok(journal)
    }

    /// Leaves checkpoints to a [`Checkpointer`](crate::bus::checkpoint::Checkpointer)
    /// instead of whichever commit crosses SQLite's threshold.
    pub(crate) fn disable_auto_checkpoint(&self) -> Result<(), BusError> {
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(BusError::journal(
                &self.path,
                "turn off automatic checkpoints",
            ))
    }

    fn configure(&self) -> Result<(), BusError> {
        // A reader may meet a checkpoint in progress; wait rather than fail.
        self.conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(BusError::journal(&self.path, "set the busy timeout"))?;
        // Queries build a handful of SQL shapes; keep them all prepared.
        self.conn.set_prepared_statement_cache_capacity(64);
        Ok(())
    }

    fn check_version(&self) -> Result<(), BusError> {
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(BusError::journal(&self.path, "read the schema version"))?;
        if found > SCHEMA_VERSION {
            return Err(BusError::UnsupportedSchema {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    /// Answers a query from the journal. See [`EventQuery`] for the semantics.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if SQLite fails, [`BusError::CorruptEvent`] if a row
    /// cannot be decoded.
    pub fn query(&self, q: &EventQuery) -> Result<Vec<Event>, BusError> {
        let limit = q.limit.unwrap_or(usize::MAX);
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let sql = to_sql(q);
        let err = |action| BusError::journal(&self.path, action);
        let mut stmt = self
            .conn
            .prepare_cached(&sql.sql)
            .map_err(err("prepare a query"))?;
        let mut rows = stmt
            .query(params_from_iter(sql.params.iter()))
            .map_err(err("run a query"))?;
        // Rows stream from SQLite, so stopping at `limit` reads no further.
        while let Some(row) = rows.next().map_err(err("read a query row"))? {
            let event = self.decode(row)?;
            if q.matches(&event) {
                found.push(event);
                if found.len() == limit {
                    break;
                }
            }
        }
        if sql.descending {
            found.reverse();
        }
        Ok(found)
    }

    /// The highest sequence stored, 0 if none. A reader can poll this to follow the log.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if SQLite fails.
    pub fn head(&self) -> Result<u64, BusError> {
        let head: Option<i64> = self
            .conn
            .prepare_cached("SELECT MAX(seq) FROM events")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(BusError::journal(&self.path, "read the head"))?;
        Ok(head.map_or(0, |h| h.max(0) as u64))
    }

    /// Appends events (already sequenced) with their serialized data, atomically.
    pub(crate) fn append(&mut self, batch: &[(Event, String)]) -> Result<(), BusError> {
        let path = self.path.clone();
        let err = |action| BusError::journal(&path, action);
        let tx = self.conn.transaction().map_err(err("begin an append"))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (seq, id, source, type, subject, time, data) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err("prepare the append"))?;
            for (e, data) in batch {
                insert
                    .execute(params![
                        clamp_seq(e.sequence),
                        e.id,
                        e.source,
                        e.ty,
                        e.subject,
                        time_to_sql(e.time),
                        data,
                    ])
                    .map_err(err("append events"))?;
            }
        }
        tx.commit().map_err(err("commit an append"))
    }

    /// Deletes every event up to and including `seq`; returns what it removed per
    /// `(type, source)` so the counters can follow.
    pub(crate) fn prune_through(
        &mut self,
        seq: u64,
    ) -> Result<Vec<(String, String, u64)>, BusError> {
        let path = self.path.clone();
        let err = |action| BusError::journal(&path, action);
        let tx = self.conn.transaction().map_err(err("begin pruning"))?;
        let groups = group_counts(&tx, Some(seq)).map_err(err("count events to prune"))?;
        tx.prepare_cached("DELETE FROM events WHERE seq <= ?1")
            .and_then(|mut s| s.execute([clamp_seq(seq)]))
            .map_err(err("prune old events"))?;
        tx.commit().map_err(err("commit pruning"))?;
        Ok(groups)
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
                "SELECT {COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
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
        };
        while let Some(row) = rows.next().map_err(err("read a catch-up row"))? {
            let seq = row.get::<_, i64>(0).map_err(err("read a sequence"))?.max(0) as u64;
            page.first_seq.get_or_insert(seq);
            page.last_seq = Some(seq);
            let ty = row.get_ref(3).map_err(err("read an event type"))?;
            // A non-text type is kept so that decoding reports the bad row.
            if ty.as_str().map_or(true, &keep) {
                page.events.push(self.decode(row)?);
            }
        }
        Ok(page)
    }

    /// The newest `n` events, oldest first: the bus refills its ring from these.
    pub(crate) fn tail(&self, n: usize) -> Result<Vec<Event>, BusError> {
        let mut events = self.query(&EventQuery {
            limit: Some(n),
            ..EventQuery::default()
        })?;
        events.shrink_to_fit();
        Ok(events)
    }

    /// Statistics of the whole journal, as [`Bus::stats`](crate::bus::Bus::stats)
    /// gives for a running bus; for readers in another process.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] when the journal cannot be read.
    pub fn stats(&self) -> Result<super::BusStats, BusError> {
        let now = Utc::now();
        let summary = self.summary(now)?;
        let tracker = super::stats::StatsTracker::seeded(
            summary.groups,
            summary.recent_seconds,
            summary.last_time,
        );
        Ok(tracker.snapshot(summary.head, now))
    }

    /// Counts the bus seeds its sequence, retention and stats from.
    pub(crate) fn summary(&self, now: DateTime<Utc>) -> Result<JournalSummary, BusError> {
        let err = |action| BusError::journal(&self.path, action);
        let (max, min): (Option<i64>, Option<i64>) = self
            .conn
            .query_row("SELECT MAX(seq), MIN(seq) FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(err("read the sequence range"))?;
        let head = max.map_or(0, |m| m.max(0) as u64);
        let first = min.map_or(head + 1, |m| m.max(0) as u64);
        let groups = group_counts(&self.conn, None).map_err(err("count events"))?;
        let window_start = time_to_sql(now - chrono::Duration::seconds(60));
        let mut stmt = self
            .conn
            .prepare("SELECT substr(time, 1, 19), COUNT(*) FROM events WHERE time >= ?1 GROUP BY 1")
            .map_err(err("prepare the recent-rate count"))?;
        let seconds = stmt
            .query_map([window_start], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(err("count recent events"))?;
        let recent_seconds = seconds
            .into_iter()
            .filter_map(|(second, count)| {
                let t = NaiveDateTime::parse_from_str(&second, "%Y-%m-%dT%H:%M:%S").ok()?;
                Some((t.and_utc().timestamp(), count.max(0) as u64))
            })
            .collect();
        let last_time = self.tail(1)?.pop().map(|e| e.time);
        Ok(JournalSummary {
            head,
            first,
            groups,
            recent_seconds,
            last_time,
        })
    }

    fn decode(&self, row: &Row<'_>) -> Result<Event, BusError> {
        let err = |action| BusError::journal(&self.path, action);
        let seq = row.get::<_, i64>(0).map_err(err("read a sequence"))?.max(0) as u64;
        let corrupt = |reason: String| BusError::CorruptEvent {
            path: self.path.clone(),
            sequence: seq,
            reason,
        };
        let time: String = row.get(5).map_err(err("read an event time"))?;
        let data: String = row.get(6).map_err(err("read event data"))?;
        Ok(Event {
            specversion: SPEC_VERSION.to_owned(),
            id: row.get(1).map_err(err("read an event id"))?,
            source: row.get(2).map_err(err("read an event source"))?,
            ty: row.get(3).map_err(err("read an event type"))?,
            subject: row.get(4).map_err(err("read an event subject"))?,
            time: time_from_sql(&time)
                .map_err(|e| corrupt(format!("time {time:?} is not RFC 3339: {e}")))?,
            sequence: seq,
            datacontenttype: CONTENT_TYPE.to_owned(),
            data: serde_json::from_str(&data)
                .map_err(|e| corrupt(format!("data is not JSON: {e}")))?,
        })
    }
}

fn group_counts(
    conn: &Connection,
    through: Option<u64>,
) -> rusqlite::Result<Vec<(String, String, u64)>> {
    let through = clamp_seq(through.unwrap_or(u64::MAX));
    let mut stmt = conn.prepare_cached(
        "SELECT type, source, COUNT(*) FROM events WHERE seq <= ?1 GROUP BY type, source",
    )?;
    let rows = stmt.query_map([through], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Bus, BusConfig, NewEvent};
    use serde_json::json;

    fn publish_three(bus: &Bus) -> Vec<Event> {
        (0..3)
            .map(|n| {
                bus.publish(NewEvent::new("host/test", "a.b", json!({ "n": n })))
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn a_read_only_journal_reports_the_same_statistics_as_the_bus() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        publish_three(&bus);
        bus.publish(NewEvent::new("host/other", "x.y", json!(null)))
            .unwrap();
        let reader = Journal::open_read_only(&journal_path(dir.path())).unwrap();
        let (live, read) = (bus.stats(), reader.stats().unwrap());
        assert_eq!(read.total, 4);
        assert_eq!((read.total, read.head), (live.total, live.head));
        assert_eq!(read.by_type, live.by_type);
        assert_eq!(read.by_source, live.by_source);
        assert_eq!(read.by_type["a.b"], 3);
        assert_eq!(read.events_per_minute, 4.0);
    }

    #[test]
    fn a_read_only_journal_reads_while_the_bus_has_it_open() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        let published = publish_three(&bus);
        let reader = Journal::open_read_only(&journal_path(dir.path())).unwrap();
        assert_eq!(reader.query(&EventQuery::default()).unwrap(), published);
        assert_eq!(reader.head().unwrap(), 3);
        // Appends made after the reader opened are visible to its next read.
        let later = bus
            .publish(NewEvent::new("host/test", "a.c", json!(null)))
            .unwrap();
        let tail = reader
            .query(&EventQuery {
                after_sequence: Some(3),
                ..EventQuery::default()
            })
            .unwrap();
        assert_eq!(tail, vec![later]);
    }

    #[test]
    fn a_read_only_journal_reads_after_the_bus_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let published = publish_three(&Bus::open(dir.path(), BusConfig::default()).unwrap());
        let reader = Journal::open_read_only(&journal_path(dir.path())).unwrap();
        assert_eq!(reader.query(&EventQuery::default()).unwrap(), published);
    }

    #[test]
    fn opening_a_missing_journal_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path());
        let Err(e) = Journal::open_read_only(&path) else {
            panic!("a missing journal must not open");
        };
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert!(!path.exists(), "a read-only open must not create the file");
    }

    #[test]
    fn a_journal_from_a_newer_host_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            Journal::open_writable(Some(&path)),
            Err(BusError::UnsupportedSchema { found: 99, .. })
        ));
    }

    #[test]
    fn an_unreadable_row_is_reported_with_its_sequence() {
        let dir = tempfile::tempdir().unwrap();
        publish_three(&Bus::open(dir.path(), BusConfig::default()).unwrap());
        let path = journal_path(dir.path());
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE events SET data = 'not json' WHERE seq = 2", [])
            .unwrap();
        let reader = Journal::open_read_only(&path).unwrap();
        match reader.query(&EventQuery::default()) {
            Err(BusError::CorruptEvent { sequence: 2, .. }) => {}
            other => panic!("expected a corrupt event #2, got {other:?}"),
        }
    }
}
