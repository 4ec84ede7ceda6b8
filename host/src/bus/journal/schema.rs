//! The journal's schema, and the in-place migration from older versions.
//!
//! Version 1 had `events` with four secondary indexes (type, subject, source,
//! time). Version 2:
//! - adds `cause` and `depth` (causation) with `ALTER TABLE ... ADD COLUMN`,
//!   which rewrites nothing: old rows read as "no cause, depth 0";
//! - keeps no per-event secondary index. Each index is a B-tree insert per
//!   event, and measured on the bench machine the four cost about four times
//!   the row itself (raw SQLite: ~250k rows/s without, ~70k/s with them).
//!   `time` never decreases along `seq`, so a time bound becomes a sequence
//!   bound by binary search on the rowid (`read`). Type, the filter consumers,
//!   plugins and `host events` use most, gets a sparse index instead: `type_runs`
//!   (`runs`), one row per type per commit. Subject and source queries read
//!   their window newest-first (or from `after_sequence`) and stop at `limit`;
//!   callers that must bound the work set `max_scan`;
//! - adds `counts`, events and bytes per `(type, source)`, kept in the same
//!   transactions as appends and prunes so that opening and `stats` read a few
//!   rows instead of grouping the whole log;
//! - adds `cursors`, durable consumer cursors.
//!
//! The migration runs in one transaction, so a crash leaves a version 1 journal
//! that migrates again on the next open.

use std::path::Path;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension};

use crate::bus::error::BusError;

/// The schema version this build writes and reads (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// The columns of an event row, in the order `read` decodes them.
pub(super) const COLUMNS: &str = "seq, id, source, type, subject, time, data, cause, depth";
/// The same for a version 1 journal read without migrating it.
pub(super) const COLUMNS_V1: &str = "seq, id, source, type, subject, time, data, NULL, 0";

/// An event row's size as the bus counts it (`event::approx_size`): data and
/// every string attribute, in bytes. `octet_length` reads a text's length
/// without loading it, so summing sizes never pulls in large payloads.
pub(super) const SIZE_SQL: &str = "octet_length(id) + octet_length(source) + octet_length(type) \
     + ifnull(octet_length(subject), 0) + octet_length(time) + octet_length(data)";

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY,
    id      TEXT NOT NULL,
    source  TEXT NOT NULL,
    type    TEXT NOT NULL,
    subject TEXT,
    time    TEXT NOT NULL,
    data    TEXT NOT NULL,
    cause   INTEGER,
    depth   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
) WITHOUT ROWID;
";

const CREATE_RUNS: &str = "
CREATE TABLE type_runs (
    type      TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    PRIMARY KEY (type, first_seq)
) WITHOUT ROWID;
";

const CREATE_COUNTS: &str = "
CREATE TABLE counts (
    type   TEXT NOT NULL,
    source TEXT NOT NULL,
    events INTEGER NOT NULL,
    bytes  INTEGER NOT NULL,
    PRIMARY KEY (type, source)
) WITHOUT ROWID;
";

/// Refuses a journal written by a newer host.
pub(super) fn check_version(conn: &Connection, path: &Path) -> Result<i64, BusError> {
    let found = user_version(conn).map_err(BusError::journal(path, "read the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(BusError::UnsupportedSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

/// Creates the schema in a new journal, or migrates an older one in place.
/// A current journal costs two cheap reads.
pub(super) fn ensure(conn: &Connection, path: &Path) -> Result<(), BusError> {
    let err = |action| BusError::journal(path, action);
    let version = check_version(conn, path)?;
    let complete = has_table(conn, "counts").map_err(err("look for counts"))?
        && has_table(conn, "type_runs").map_err(err("look for type runs"))?;
    if version == SCHEMA_VERSION && complete {
        return Ok(());
    }
    // IMMEDIATE: take the write lock now, so a second host opening the same
    // journal waits instead of migrating it at the same time.
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(err("begin the schema update"))?;
    let result = migrate(conn, path, version);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn
        .execute_batch(end)
        .map_err(err("commit the schema update"));
    result.and(ended)
}

fn migrate(conn: &Connection, path: &Path, version: i64) -> Result<(), BusError> {
    let err = |action| BusError::journal(path, action);
    conn.execute_batch(CREATE)
        .map_err(err("create the schema"))?;
    if !has_column(conn, "events", "cause").map_err(err("read the events columns"))? {
        conn.execute_batch(
            "ALTER TABLE events ADD COLUMN cause INTEGER;
             ALTER TABLE events ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;",
        )
        .map_err(err("add the causation columns"))?;
    }
    conn.execute_batch(
        "DROP INDEX IF EXISTS events_time;
         DROP INDEX IF EXISTS events_subject;
         DROP INDEX IF EXISTS events_source;
         DROP INDEX IF EXISTS events_type;",
    )
    .map_err(err("drop the indexes version 2 does without"))?;
    if !has_table(conn, "type_runs").map_err(err("look for type runs"))? {
        conn.execute_batch(CREATE_RUNS)
            .map_err(err("create the type runs"))?;
        // Runs of at most 4096 sequences (well under RUN_SPAN) per type.
        conn.execute(
            "INSERT INTO type_runs (type, first_seq, last_seq) \
             SELECT type, MIN(seq), MAX(seq) FROM events GROUP BY type, seq / 4096",
            [],
        )
        .map_err(err("index the existing events by type"))?;
    }
    if !has_table(conn, "counts").map_err(err("look for counts"))? {
        let started = Instant::now();
        conn.execute_batch(CREATE_COUNTS)
            .map_err(err("create the counts table"))?;
        let events = conn
            .execute(
                &format!(
                    "INSERT INTO counts (type, source, events, bytes) \
                     SELECT type, source, COUNT(*), SUM({SIZE_SQL}) FROM events GROUP BY type, source"
                ),
                [],
            )
            .map_err(err("count the existing events"))?;
        if version > 0 {
            tracing::info!(
                journal = %path.display(),
                from_version = version,
                groups = events,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "built the journal's counts table once (one scan of the whole journal); later opens read it directly"
            );
        }
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(err("record the schema version"))
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

pub(super) fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .query_row([table], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

pub(super) fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .query_row([table, column], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Bus, BusConfig, EventQuery, NewEvent, journal_path};
    use serde_json::json;

    /// The version 1 schema, exactly as the previous build created it.
    const V1: &str = "
        CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL,
            type TEXT NOT NULL, subject TEXT, time TEXT NOT NULL, data TEXT NOT NULL);
        CREATE INDEX events_type ON events(type);
        CREATE INDEX events_subject ON events(subject);
        CREATE INDEX events_source ON events(source);
        CREATE INDEX events_time ON events(time);
        PRAGMA user_version = 1;
        INSERT INTO events VALUES (1, 'id-1', 'host/old', 'old.one', 'web',
            '2026-01-01T00:00:01.000000000Z', '{\"n\":1}');
        INSERT INTO events VALUES (2, 'id-2', 'host/old', 'old.two', NULL,
            '2026-01-01T00:00:02.000000000Z', '[1,2,3]');
    ";

    #[test]
    fn a_version_1_journal_is_migrated_in_place_and_keeps_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path());
        Connection::open(&path).unwrap().execute_batch(V1).unwrap();
        // A reader of the unmigrated file sees the old events without causation.
        let old = crate::bus::Journal::open_read_only(&path).unwrap();
        let before = old.query(&EventQuery::default()).unwrap();
        assert_eq!(before.len(), 2);
        assert_eq!(old.stats().unwrap().by_type["old.two"], 1);
        drop(old);

        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        assert_eq!(bus.head(), 2);
        let after = bus.query(&EventQuery::default()).unwrap();
        assert_eq!(after, before);
        assert_eq!((after[0].cause, after[0].depth), (None, 0));
        let stats = bus.stats();
        assert_eq!(stats.total, 2);
        assert_eq!(stats.by_source["host/old"], 2);
        let e = bus
            .publish(NewEvent::new("host/new", "new.one", json!(1)).caused_by(&after[1]))
            .unwrap();
        assert_eq!((e.sequence, e.cause, e.depth), (3, Some(2), 1));
        drop(bus);

        let conn = Connection::open(&path).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        assert!(has_column(&conn, "events", "depth").unwrap());
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            indexes.is_empty(),
            "no per-event index is kept: {indexes:?}"
        );
        let runs: i64 = conn
            .query_row("SELECT COUNT(*) FROM type_runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(runs, 3, "old.one, old.two, new.one");
        let bytes: i64 = conn
            .query_row("SELECT bytes FROM counts WHERE type = 'old.one'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            bytes as usize,
            crate::bus::event::approx_size("id-1", "host/old", "old.one", Some("web"), 7)
        );
    }

    #[test]
    fn a_current_journal_missing_its_counts_rebuilds_them() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
            bus.publish_all(vec![
                NewEvent::new("s", "a.b", json!(1)),
                NewEvent::new("s", "a.b", json!(2)),
            ])
            .unwrap();
        }
        Connection::open(journal_path(dir.path()))
            .unwrap()
            .execute_batch("DROP TABLE counts")
            .unwrap();
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        assert_eq!(bus.stats().by_type["a.b"], 2);
    }
}
