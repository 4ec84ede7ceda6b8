//! Writing the journal: group commits, pruning and cursors. Only the bus's
//! writer thread calls these.
//!
//! Every write keeps the `counts` table in the same transaction as the rows it
//! counts, so the table can never disagree with the log, even after a crash.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::{TransactionBehavior, params};

use crate::bus::error::BusError;
use crate::bus::event::Event;
use crate::bus::sql::clamp_seq;

use super::schema::SIZE_SQL;
use super::{Journal, runs};

/// Events and bytes of one `(type, source)` pair, in the journal or removed from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupCount {
    pub(crate) ty: String,
    pub(crate) source: String,
    pub(crate) events: u64,
    pub(crate) bytes: u64,
}

/// One event to append: everything but its sequence and time, which the
/// group commit assigns.
pub(crate) struct AppendRow<'a> {
    pub(crate) event: &'a Event,
    /// `event.data` serialized, as stored.
    pub(crate) data: &'a str,
    /// `event::approx_size` of the event.
    pub(crate) size: usize,
}

/// What one group commit added per `(type, source)`: `(events, bytes)`.
pub(crate) type GroupDelta<'a> = HashMap<(&'a str, &'a str), (u64, u64)>;

/// Columns bound per appended row.
const COLUMNS: usize = 9;
/// Rows per multi-row INSERT: per-statement costs (a VDBE run, opening the
/// table and index cursors, a reset) are paid once per chunk instead of once
/// per event. Measured: about a third off the row cost without indexes.
const ROWS_PER_INSERT: usize = 32;
const INSERT_HEAD: &str =
    "INSERT INTO events (seq, id, source, type, subject, time, data, cause, depth) VALUES ";
const ROW_PLACEHOLDERS: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";

static INSERT_ONE: LazyLock<String> = LazyLock::new(|| format!("{INSERT_HEAD}{ROW_PLACEHOLDERS}"));
static INSERT_MANY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{INSERT_HEAD}{}",
        vec![ROW_PLACEHOLDERS; ROWS_PER_INSERT].join(", ")
    )
});

/// Binds one row's columns at parameters `base + 1 ..= base + COLUMNS`.
fn bind_row(
    stmt: &mut rusqlite::Statement<'_>,
    base: usize,
    seq: u64,
    row: &AppendRow<'_>,
    time: &str,
) -> rusqlite::Result<()> {
    let e = row.event;
    stmt.raw_bind_parameter(base + 1, clamp_seq(seq))?;
    stmt.raw_bind_parameter(base + 2, &e.id)?;
    stmt.raw_bind_parameter(base + 3, &e.source)?;
    stmt.raw_bind_parameter(base + 4, &e.ty)?;
    stmt.raw_bind_parameter(base + 5, &e.subject)?;
    stmt.raw_bind_parameter(base + 6, time)?;
    stmt.raw_bind_parameter(base + 7, row.data)?;
    stmt.raw_bind_parameter(base + 8, e.cause.map(clamp_seq))?;
    stmt.raw_bind_parameter(base + 9, e.depth)
}

/// Counts rows per `(type, source)`; runs of one pair are the rule, so they
/// are summed before touching the map.
#[derive(Default)]
struct CountRuns<'a> {
    run: Option<((&'a str, &'a str), u64, u64)>,
}

impl<'a> CountRuns<'a> {
    fn push(&mut self, delta: &mut GroupDelta<'a>, event: &'a Event, size: usize) {
        let key = (event.ty.as_str(), event.source.as_str());
        match &mut self.run {
            Some((k, n, bytes)) if *k == key => {
                *n += 1;
                *bytes += size as u64;
            }
            _ => {
                if let Some(done) = self.run.replace((key, 1, size as u64)) {
                    add(delta, done);
                }
            }
        }
    }

    fn finish(self, delta: &mut GroupDelta<'a>) {
        if let Some(done) = self.run {
            add(delta, done);
        }
    }
}

fn add<'a>(delta: &mut GroupDelta<'a>, (key, n, bytes): ((&'a str, &'a str), u64, u64)) {
    let counts = delta.entry(key).or_default();
    counts.0 += n;
    counts.1 += bytes;
}

impl Journal {
    /// Appends `rows` with sequences `first, first + 1, ...`, all stamped `time`,
    /// updates their counts and applies `cursors` (`None` deletes), in one
    /// transaction. On error nothing is written.
    pub(crate) fn append_group<'a>(
        &mut self,
        first: u64,
        time: &str,
        rows: impl IntoIterator<Item = AppendRow<'a>>,
        cursors: &[(String, Option<u64>)],
    ) -> Result<GroupDelta<'a>, BusError> {
        let path = self.path.clone();
        let err = |action| BusError::journal(&path, action);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin an append"))?;
        let mut delta = GroupDelta::new();
        {
            let mut many = tx
                .prepare_cached(&INSERT_MANY)
                .map_err(err("prepare the append"))?;
            let mut one = tx
                .prepare_cached(&INSERT_ONE)
                .map_err(err("prepare the append"))?;
            // Rows stream through a chunk buffer: a group can hold tens of
            // thousands, and a large temporary per commit made glibc consolidate
            // its free lists on every free (measured: a sixth of the writer).
            let mut chunk: Vec<AppendRow<'a>> = Vec::with_capacity(ROWS_PER_INSERT);
            let mut runs = runs::RunTracker::default();
            let mut counted = CountRuns::default();
            let mut seq = first;
            for row in rows {
                runs.push(seq + chunk.len() as u64, &row.event.ty);
                counted.push(&mut delta, row.event, row.size);
                chunk.push(row);
                // A full chunk goes in one statement (one VDBE run, cursors kept
                // open across its rows); the remainder row by row.
                if chunk.len() == ROWS_PER_INSERT {
                    for (i, row) in chunk.iter().enumerate() {
                        bind_row(&mut many, i * COLUMNS, seq + i as u64, row, time)
                            .map_err(err("append events"))?;
                    }
                    many.raw_execute().map_err(err("append events"))?;
                    seq += chunk.len() as u64;
                    chunk.clear();
                }
            }
            for (i, row) in chunk.iter().enumerate() {
                bind_row(&mut one, 0, seq + i as u64, row, time).map_err(err("append events"))?;
                one.raw_execute().map_err(err("append events"))?;
            }
            counted.finish(&mut delta);
            runs::insert_runs(&tx, &runs.finish()).map_err(err("index appended events by type"))?;
            let mut count = tx
                .prepare_cached(
                    "INSERT INTO counts (type, source, events, bytes) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (type, source) DO UPDATE SET \
                     events = events + excluded.events, bytes = bytes + excluded.bytes",
                )
                .map_err(err("prepare counting"))?;
            for ((ty, source), (events, bytes)) in &delta {
                count
                    .execute(params![ty, source, clamp_seq(*events), clamp_seq(*bytes)])
                    .map_err(err("count appended events"))?;
            }
        }
        write_cursors(&tx, cursors).map_err(err("save consumer cursors"))?;
        tx.commit().map_err(err("commit an append"))?;
        Ok(delta)
    }

    /// Writes cursor changes alone (no events waiting), in one transaction.
    pub(crate) fn save_cursors(
        &mut self,
        cursors: &[(String, Option<u64>)],
    ) -> Result<(), BusError> {
        let path = self.path.clone();
        let err = |action| BusError::journal(&path, action);
        let tx = self
            .conn
            .transaction()
            .map_err(err("begin saving cursors"))?;
        write_cursors(&tx, cursors).map_err(err("save consumer cursors"))?;
        tx.commit().map_err(err("commit saved cursors"))
    }

    /// Deletes every event up to and including `seq`; returns what it removed per
    /// `(type, source)` so the counters can follow.
    pub(crate) fn prune_through(&mut self, seq: u64) -> Result<Vec<GroupCount>, BusError> {
        let path = self.path.clone();
        let err = |action| BusError::journal(&path, action);
        let tx = self.conn.transaction().map_err(err("begin pruning"))?;
        let through = clamp_seq(seq);
        let groups = {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT type, source, COUNT(*), SUM({SIZE_SQL}) FROM events \
                     WHERE seq <= ?1 GROUP BY type, source"
                ))
                .map_err(err("prepare counting events to prune"))?;
            let rows = stmt
                .query_map([through], |r| {
                    Ok(GroupCount {
                        ty: r.get(0)?,
                        source: r.get(1)?,
                        events: r.get::<_, i64>(2)?.max(0) as u64,
                        bytes: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                })
                .map_err(err("count events to prune"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(err("count events to prune"))?
        };
        tx.prepare_cached("DELETE FROM events WHERE seq <= ?1")
            .and_then(|mut s| s.execute([through]))
            .map_err(err("prune old events"))?;
        runs::prune_runs(&tx, groups.iter().map(|g| g.ty.as_str()), seq)
            .map_err(err("prune type runs"))?;
        {
            let mut uncount = tx
                .prepare_cached(
                    "UPDATE counts SET events = events - ?3, bytes = bytes - ?4 \
                     WHERE type = ?1 AND source = ?2",
                )
                .map_err(err("prepare uncounting"))?;
            for g in &groups {
                uncount
                    .execute(params![
                        g.ty,
                        g.source,
                        clamp_seq(g.events),
                        clamp_seq(g.bytes)
                    ])
                    .map_err(err("uncount pruned events"))?;
            }
        }
        tx.execute("DELETE FROM counts WHERE events <= 0", [])
            .map_err(err("drop empty counts"))?;
        tx.commit().map_err(err("commit pruning"))?;
        Ok(groups)
    }

    /// The sequence through which pruning removes at least `excess` bytes, looking
    /// at no more than `max_rows` of the oldest rows (the last of them if they
    /// hold less). `None` for an empty journal.
    pub(crate) fn cutoff_for_bytes(
        &self,
        excess: u64,
        max_rows: usize,
    ) -> Result<Option<u64>, BusError> {
        let err = |action| BusError::journal(&self.path, action);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT seq, {SIZE_SQL} FROM events ORDER BY seq LIMIT ?1"
            ))
            .map_err(err("prepare sizing old events"))?;
        let mut rows = stmt
            .query([i64::try_from(max_rows).unwrap_or(i64::MAX)])
            .map_err(err("size old events"))?;
        let (mut sum, mut cutoff) = (0u64, None);
        while let Some(row) = rows.next().map_err(err("size an old event"))? {
            let seq: i64 = row.get(0).map_err(err("read a sequence"))?;
            let size: i64 = row.get(1).unwrap_or(0);
            sum = sum.saturating_add(size.max(0) as u64);
            cutoff = Some(seq.max(0) as u64);
            if sum >= excess {
                break;
            }
        }
        Ok(cutoff)
    }
}

fn write_cursors(
    tx: &rusqlite::Transaction<'_>,
    cursors: &[(String, Option<u64>)],
) -> rusqlite::Result<()> {
    if cursors.is_empty() {
        return Ok(());
    }
    let mut save = tx.prepare_cached(
        "INSERT INTO cursors (name, seq) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
    )?;
    let mut forget = tx.prepare_cached("DELETE FROM cursors WHERE name = ?1")?;
    for (name, seq) in cursors {
        match seq {
            Some(seq) => save.execute(params![name, clamp_seq(*seq)])?,
            None => forget.execute([name])?,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Bus, BusConfig, NewEvent, journal_path};
    use rusqlite::Connection;
    use serde_json::json;

    type Rows = Vec<(String, String, i64, i64)>;

    fn rows(conn: &Connection, sql: &str) -> Rows {
        let mut stmt = conn.prepare(sql).unwrap();
        let mut rows: Rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        rows
    }

    /// The counts table, a fresh GROUP BY over the events, and the bus's own
    /// counters must all say the same; returns the events and bytes counted.
    fn assert_counts_agree(bus: &Bus, path: &std::path::Path) -> (i64, i64) {
        bus.flush().unwrap();
        let conn = Connection::open(path).unwrap();
        let table = rows(&conn, "SELECT type, source, events, bytes FROM counts");
        let scanned = rows(
            &conn,
            &format!("SELECT type, source, COUNT(*), SUM({SIZE_SQL}) FROM events GROUP BY 1, 2"),
        );
        assert_eq!(table, scanned);
        let stats = bus.stats();
        assert_eq!(stats.total, scanned.iter().map(|r| r.2 as u64).sum::<u64>());
        for (ty, n) in &stats.by_type {
            let counted: i64 = scanned.iter().filter(|r| &r.0 == ty).map(|r| r.2).sum();
            assert_eq!(*n, counted as u64, "type {ty}");
        }
        for (source, n) in &stats.by_source {
            let counted: i64 = scanned.iter().filter(|r| &r.1 == source).map(|r| r.2).sum();
            assert_eq!(*n, counted as u64, "source {source}");
        }
        (
            scanned.iter().map(|r| r.2).sum(),
            scanned.iter().map(|r| r.3).sum(),
        )
    }

    #[test]
    fn the_counts_table_agrees_with_the_events_through_appends_prunes_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path());
        let config = BusConfig {
            ring_capacity: 5,
            max_journal_events: 120,
            max_journal_bytes: 30_000,
            ..BusConfig::default()
        };
        let ev = |n: usize| {
            NewEvent::new(
                format!("src/{}", n % 3),
                format!("t.{}", n % 4),
                json!("p".repeat(n % 7 * 60)),
            )
        };
        for round in 0..3 {
            let bus = Bus::open(dir.path(), config.clone()).unwrap();
            assert_counts_agree(&bus, &path);
            for n in 0..300 {
                if n % 10 == 0 {
                    bus.publish_all((n..n + 5).map(ev).collect()).unwrap();
                } else {
                    bus.submit(vec![ev(n)]).unwrap();
                }
            }
            let (events, bytes) = assert_counts_agree(&bus, &path);
            // Count retention runs every 120 appends; byte retention after every
            // commit, so at most one commit's worth over the limit.
            assert!(events <= 240, "round {round}: {events} events kept");
            assert!(
                bytes <= 30_000 + 5 * 500,
                "round {round}: {bytes} bytes kept"
            );
        }
    }
}
