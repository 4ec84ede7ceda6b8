//! The durable journal: every event, in sequence order, in one SQLite file.
//!
//! Why SQLite rather than an embedded key-value store such as redb:
//! - history is read by *attributes* (type, subject, source), and SQL
//!   answers those with filters over a sequence range; the one index kept
//!   (where each type occurs, `type_runs`) is sparse, so appends stay cheap
//!   (schema version 2 dropped the per-event secondary indexes, see
//!   `schema`);
//! - in WAL mode the journal is a single file another process can read while the
//!   host appends to it, which is exactly what `host events` does;
//! - its crash safety is decades old and well understood; with
//!   `synchronous=NORMAL` a commit survives a process crash and at worst loses the
//!   last few commits on power loss, a fair trade for a log of host events.
//!
//! Layout (schema version 2, see `schema`): `events(seq INTEGER PRIMARY KEY, id,
//! source, type, subject, time, data, cause, depth)`; `seq` is the rowid, so
//! "after sequence N" is a range scan. `time` is RFC 3339 text with nine fraction
//! digits and `Z`, which sorts as time and stays readable in the `sqlite3` shell;
//! `data` is JSON text. `counts` keeps events and bytes per `(type, source)` in
//! the same transactions as appends and prunes, so statistics never scan the log;
//! `type_runs` is a sparse index of where each type occurs (`runs`); `cursors`
//! holds durable consumer cursors.
//!
//! Split by phase: `schema` (creation and migration), `read` (queries,
//! catch-up, lookups), `summary` (what the bus reads at open, and statistics),
//! `write` (group commits, pruning, cursors), and `runs` (the type index, read
//! and written).

mod read;
mod runs;
mod schema;
mod summary;
mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::bus::error::BusError;

pub(crate) use read::JournalPage;
pub(crate) use summary::JournalSummary;
pub(crate) use write::{AppendRow, GroupCount};

/// How long a connection waits for a lock held elsewhere (a checkpoint, another
/// process's reader) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// The columns of an event row, in decoding order. A version 1 journal
    /// opened read-only has no causation columns; they read as absent.
    columns: &'static str,
    /// Whether the `counts` table exists (not in a version 1 journal read as is).
    has_counts: bool,
    /// Whether the `type_runs` table exists (likewise).
    has_type_runs: bool,
}

/// The result of one `PRAGMA wal_checkpoint`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkpoint {
    /// The checkpoint could not finish because a reader or writer held on.
    pub(crate) busy: bool,
    /// Frames in the WAL, and how many of them are now in the database file.
    pub(crate) wal_frames: i64,
    pub(crate) copied: i64,
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
        let mut journal = Journal {
            conn,
            path: path.to_path_buf(),
            columns: schema::COLUMNS,
            has_counts: false,
            has_type_runs: false,
        };
        journal.configure()?;
        schema::check_version(&journal.conn, &journal.path)?;
        journal
            .conn
            .prepare_cached("SELECT seq FROM events LIMIT 0")
            .map_err(BusError::journal(path, "find the events table"))?;
        journal.inspect()?;
        Ok(journal)
    }

    /// Opens (creating or migrating if needed) a writable journal; `None` keeps
    /// it in memory.
    ///
    /// - `cache_bytes`: SQLite's page cache for this connection;
    /// - `wal_limit`: `journal_size_limit`, the size a restarted WAL is cut back to.
    pub(crate) fn open_writable(
        path: Option<&Path>,
        cache_bytes: u64,
        wal_limit: u64,
    ) -> Result<Journal, BusError> {
        let label = path.map_or_else(|| PathBuf::from(":memory:"), Path::to_path_buf);
        let conn = match path {
            Some(p) => Connection::open(p),
            None => Connection::open_in_memory(),
        }
        .map_err(BusError::journal(&label, "open"))?;
        let mut journal = Journal {
            conn,
            path: label,
            columns: schema::COLUMNS,
            has_counts: true,
            has_type_runs: true,
        };
        journal.configure()?;
        schema::check_version(&journal.conn, &journal.path)?;
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
        // Negative: a size in KiB rather than in pages.
        let cache_kib = -i64::try_from(cache_bytes / 1024).unwrap_or(i64::MAX);
        journal
            .conn
            .pragma_update(None, "cache_size", cache_kib)
            .map_err(err("set the page cache size"))?;
        journal
            .conn
            .pragma_update(None, "journal_size_limit", wal_limit)
            .map_err(err("set journal_size_limit"))?;
        schema::ensure(&journal.conn, &journal.path)?;
        journal.inspect()?;
        Ok(journal)
    }

    /// Leaves checkpoints to the bus (its checkpoint thread and writer) instead of
    /// whichever commit crosses SQLite's threshold.
    pub(crate) fn disable_auto_checkpoint(&self) -> Result<(), BusError> {
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(BusError::journal(
                &self.path,
                "turn off automatic checkpoints",
            ))
    }

    /// Runs `PRAGMA wal_checkpoint(mode)`, waiting at most `wait` for readers and
    /// writers in the way (SQLite's busy handler), then restores the usual timeout.
    pub(crate) fn checkpoint(&self, mode: &str, wait: Duration) -> Result<Checkpoint, BusError> {
        let err = |action| BusError::journal(&self.path, action);
        self.conn
            .busy_timeout(wait)
            .map_err(err("set the checkpoint timeout"))?;
        let result = self
            .conn
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
                Ok(Checkpoint {
                    busy: row.get::<_, i64>(0)? != 0,
                    wal_frames: row.get(1)?,
                    copied: row.get(2)?,
                })
            })
            .map_err(err("checkpoint the WAL"));
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(err("restore the busy timeout"))?;
        result
    }

    /// The journal file, or `:memory:`.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The raw connection: for the grouped read of a stats breakdown
    /// (`stats.rs`), and for tests that break the journal on purpose.
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    fn configure(&self) -> Result<(), BusError> {
        // A reader may meet a checkpoint in progress; wait rather than fail.
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(BusError::journal(&self.path, "set the busy timeout"))?;
        // Queries build a handful of SQL shapes; keep them all prepared.
        self.conn.set_prepared_statement_cache_capacity(64);
        Ok(())
    }

    /// Learns which schema the file has, for a reader of an older journal.
    fn inspect(&mut self) -> Result<(), BusError> {
        let err = |action| BusError::journal(&self.path, action);
        let causation = schema::has_column(&self.conn, "events", "cause")
            .map_err(err("read the events table's columns"))?;
        self.columns = if causation {
            schema::COLUMNS
        } else {
            schema::COLUMNS_V1
        };
        self.has_counts =
            schema::has_table(&self.conn, "counts").map_err(err("look for the counts table"))?;
        self.has_type_runs = schema::has_table(&self.conn, "type_runs")
            .map_err(err("look for the type runs table"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Bus, BusConfig, EventQuery, NewEvent};
    use serde_json::json;

    fn publish_three(bus: &Bus) -> Vec<crate::bus::Event> {
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
        assert!(read.journal_bytes > 0);
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
            Journal::open_writable(Some(&path), 1 << 20, 1 << 20),
            Err(BusError::UnsupportedSchema { found: 99, .. })
        ));
    }

    #[test]
    fn an_unreadable_row_is_skipped_by_queries_and_named_by_get() {
        let dir = tempfile::tempdir().unwrap();
        let published = publish_three(&Bus::open(dir.path(), BusConfig::default()).unwrap());
        let path = journal_path(dir.path());
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE events SET data = 'not json' WHERE seq = 2", [])
            .unwrap();
        let reader = Journal::open_read_only(&path).unwrap();
        // A query that failed on the bad row would fail forever; it skips it instead.
        let read = reader.query(&EventQuery::default()).unwrap();
        assert_eq!(read, vec![published[0].clone(), published[2].clone()]);
        match reader.get(2) {
            Err(BusError::CorruptEvent { sequence: 2, .. }) => {}
            other => panic!("expected a corrupt event #2, got {other:?}"),
        }
        assert_eq!(reader.get(3).unwrap().as_ref(), Some(&published[2]));
        assert_eq!(reader.get(4).unwrap(), None);
    }
}
