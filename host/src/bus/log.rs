//! The [`Bus`]: its shared state, opening it, and every read of it.
//!
//! One writer thread (`writer`) owns appends; publishers only hand it batches
//! (`queue`). Readers (consumers, queries, stats) take a read-mostly lock on the
//! ring and counters, and catch-up reads use their own SQLite connection, so a
//! consumer replaying history never stalls the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use chrono::Utc;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::bus::checkpoint::Checkpointer;
use crate::bus::config::BusConfig;
use crate::bus::consumer::{Consumer, StartAt};
use crate::bus::error::BusError;
use crate::bus::event::Event;
use crate::bus::journal::{Journal, JournalPage, journal_path};
use crate::bus::pattern::{Pattern, matches_any};
use crate::bus::query::{EventQuery, QueryPage};
use crate::bus::queue::Queue;
use crate::bus::retention;
use crate::bus::ring::Ring;
use crate::bus::scan;
use crate::bus::stats::{BusStats, StatsTracker};
use crate::bus::writer::Writer;

/// How many events a consumer examines per read: enough to amortise a journal
/// round trip, small enough that a consumer far behind never holds much in memory.
const PAGE: usize = 256;
/// The writer connection's page cache. Appends touch the right edge of the
/// events table and a few places in each index; retention, the left edge.
/// A long-running host fills whatever is given: at 16 MiB the cache was the
/// largest single item of a host over 1,000 processes (heaptrack), and at
/// 4 MiB the largest part of a 1 GiB output burst's peak, the burst's first
/// lines filling it. 1 MiB holds the pages appends keep touching; `host
/// bench --only bus` measured 4 MiB, 1 MiB and 512 KiB alternately with no
/// difference outside its run-to-run noise (docs/benchmarks.md).
const WRITER_CACHE_BYTES: u64 = 1 << 20;
/// Bytes queued for the writer before publishers wait (back-pressure).
const QUEUE_BYTES: usize = 32 << 20;
/// Most bytes of events read back into the ring at open: enough for resuming
/// consumers to start in memory, little enough that a cold open of a large
/// journal stays fast (the ring fills up to `ring_max_bytes` as events come).
const REFILL_BYTES: usize = 16 << 20;

/// The event log: publish events, query history, and read it through consumers.
///
/// Cheap to clone; every clone is the same log. Dropping the last clone commits
/// whatever is still queued, stops the writer thread and truncates the WAL.
#[derive(Clone)]
pub struct Bus {
    pub(super) shared: Arc<Shared>,
}

/// Held only by [`Bus`] handles, so that its drop means "the last handle is gone".
pub(super) struct Shared {
    pub(super) core: Arc<Core>,
    /// The writer thread; joined on drop, after it has committed the queue.
    writer: Option<JoinHandle<()>>,
}

/// Everything the handles and the writer thread share.
pub(super) struct Core {
    pub(super) queue: Queue,
    /// The ring, counters and retention boundary: written by the writer, read by everyone.
    pub(super) recent: RwLock<Recent>,
    /// The writable journal. Only the writer thread writes through it; in memory
    /// it also serves reads (there is no second connection to an in-memory database).
    pub(super) journal: Mutex<Journal>,
    /// A separate read connection for a file journal, so reads run beside the
    /// writer (WAL). `None` in memory.
    pub(super) reader: Option<Mutex<Journal>>,
    /// Last committed sequence. Stored while `recent` is write-locked, so it always
    /// agrees with the ring and the counters.
    pub(super) head: AtomicU64,
    /// Wakes waiting consumers with the new head. Sent after the locks are released.
    pub(super) notify: watch::Sender<u64>,
    pub(super) config: BusConfig,
    /// The head when this bus was opened.
    pub(super) opened_at: u64,
    /// Durable cursors as this run knows them (the journal's, plus saves not yet
    /// written); see `cursors`.
    pub(super) cursors: Mutex<HashMap<String, u64>>,
    /// The journal's database and WAL files; `None` in memory.
    pub(super) files: Option<(PathBuf, PathBuf)>,
}

pub(super) struct Recent {
    pub(super) ring: Ring,
    pub(super) stats: StatsTracker,
    /// Oldest sequence still in the journal.
    pub(super) journal_first: u64,
}

impl Bus {
    /// Opens the bus whose journal lives in `dir`, creating both if needed.
    ///
    /// Sequences continue from the highest one in the journal, and the ring is
    /// refilled with the newest events so resuming consumers start in memory.
    /// Opening reads a bounded amount whatever the journal's size (see `journal::read`);
    /// an older journal is migrated in place first.
    ///
    /// - `dir`: the state directory; the journal is [`journal_path`]`(dir)`.
    /// - `config`: ring, retention and size limits.
    ///
    /// # Errors
    ///
    /// [`BusError::StateDir`] if `dir` cannot be created, [`BusError::Journal`] or
    /// [`BusError::UnsupportedSchema`] if the journal cannot be opened.
    ///
    /// # Examples
    ///
    /// ```
    /// # use host::bus::{Bus, BusConfig, NewEvent};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let bus = Bus::open(dir.path(), BusConfig::default())?;
    /// let e = bus.publish(NewEvent::new("host/doc", "doc.example", serde_json::json!({})))?;
    /// assert_eq!(e.sequence, bus.head());
    /// # Ok::<(), host::bus::BusError>(())
    /// ```
    pub fn open(dir: &Path, config: BusConfig) -> Result<Bus, BusError> {
        std::fs::create_dir_all(dir).map_err(|source| BusError::StateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = journal_path(dir);
        let journal =
            Journal::open_writable(Some(&path), WRITER_CACHE_BYTES, config.max_wal_bytes)?;
        let reader = Journal::open_read_only(&path)?;
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let checkpointer = Checkpointer::spawn(&path, wal.clone(), config.max_wal_bytes);
        if checkpointer.is_some() {
            journal.disable_auto_checkpoint()?;
        }
        Bus::start(
            journal,
            Some(reader),
            checkpointer,
            Some((path, wal)),
            config,
        )
    }

    /// Opens a bus whose journal lives only in memory; for tests.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if SQLite cannot create the in-memory database.
    pub fn open_in_memory(config: BusConfig) -> Result<Bus, BusError> {
        let journal = Journal::open_writable(None, WRITER_CACHE_BYTES, config.max_wal_bytes)?;
        Bus::start(journal, None, None, None, config)
    }

    fn start(
        mut journal: Journal,
        reader: Option<Journal>,
        checkpointer: Option<Checkpointer>,
        files: Option<(PathBuf, PathBuf)>,
        config: BusConfig,
    ) -> Result<Bus, BusError> {
        let mut summary = journal.summary(Utc::now())?;
        // Apply retention now, in case a limit shrank since the journal was written.
        if retention::prune_at_open(&mut journal, &config, &summary)? {
            summary = journal.summary(Utc::now())?;
        }
        let stats =
            StatsTracker::seeded(&summary.groups, summary.recent_seconds, summary.last_time);
        let mut ring = Ring::new(config.ring_capacity, config.ring_max_bytes);
        let refill = config.ring_max_bytes.min(REFILL_BYTES);
        for (event, size) in journal.tail(config.ring_capacity, refill)? {
            ring.push(event, size);
        }
        let cursors = journal.cursors()?.into_iter().collect();
        let (notify, _) = watch::channel(summary.head);
        let core = Arc::new(Core {
            queue: Queue::new(QUEUE_BYTES),
            recent: RwLock::new(Recent {
                ring,
                stats,
                journal_first: summary.first,
            }),
            journal: Mutex::new(journal),
            reader: reader.map(Mutex::new),
            head: AtomicU64::new(summary.head),
            notify,
            opened_at: summary.head,
            cursors: Mutex::new(cursors),
            files,
            config,
        });
        let writer = Writer::new(core.clone(), summary.last_time, checkpointer).spawn()?;
        Ok(Bus {
            shared: Arc::new(Shared {
                core,
                writer: Some(writer),
            }),
        })
    }

    pub(super) fn core(&self) -> &Core {
        &self.shared.core
    }

    /// The most bytes one event may take (`max_event_bytes`): what a
    /// publisher splitting a long list into several events stays under.
    pub fn max_event_bytes(&self) -> usize {
        self.core().config.max_event_bytes
    }

    /// The last committed sequence, 0 if nothing was ever published.
    pub fn head(&self) -> u64 {
        self.core().head.load(Ordering::Acquire)
    }

    /// The head when this bus was opened: events with a sequence at or below it
    /// are from before this run.
    pub fn opened_at(&self) -> u64 {
        self.core().opened_at
    }

    /// Answers a query about history; see [`EventQuery`] for the semantics.
    ///
    /// Served from memory when the ring holds every event that could match,
    /// otherwise from the journal. Unreadable journal rows are skipped with a warning.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if the journal read fails.
    pub fn query(&self, q: &EventQuery) -> Result<Vec<Event>, BusError> {
        self.query_page(q).map(|page| page.events)
    }

    /// Answers a query within its `max_scan` and `max_bytes` bounds, saying
    /// whether a bound cut it short and where to continue paging forward.
    ///
    /// # Errors
    ///
    /// As [`Bus::query`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use host::bus::{Bus, BusConfig, EventQuery, NewEvent};
    /// # let bus = Bus::open_in_memory(BusConfig::default())?;
    /// # for n in 0..10 { bus.publish(NewEvent::new("host/doc", "doc.n", serde_json::json!(n)))?; }
    /// let mut q = EventQuery { after_sequence: Some(0), max_scan: Some(4), ..EventQuery::default() };
    /// let page = bus.query_page(&q)?;
    /// assert_eq!((page.events.len(), page.complete, page.next_after), (4, false, Some(4)));
    /// q.after_sequence = page.next_after;
    /// assert_eq!(bus.query_page(&q)?.events[0].sequence, 5);
    /// # Ok::<(), host::bus::BusError>(())
    /// ```
    pub fn query_page(&self, q: &EventQuery) -> Result<QueryPage, BusError> {
        {
            let recent = self.core().recent.read();
            if let Some(page) = scan::from_ring(q, &recent.ring, recent.journal_first) {
                return Ok(page);
            }
        }
        self.read_journal(|journal| journal.query_page(q))
    }

    /// The event with this sequence: from the ring if it holds it, else the journal.
    /// `None` if it was never published or was pruned.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if the journal read fails, [`BusError::CorruptEvent`]
    /// if its row cannot be decoded.
    pub fn get(&self, sequence: u64) -> Result<Option<Event>, BusError> {
        if let Some(event) = self.core().recent.read().ring.get(sequence) {
            return Ok(Some(event.clone()));
        }
        if sequence > self.head() {
            return Ok(None);
        }
        self.read_journal(|journal| journal.get(sequence))
    }

    /// Counts over the journal, the recent publish rate and the journal's size.
    pub fn stats(&self) -> BusStats {
        let mut stats = {
            let recent = self.core().recent.read();
            recent.stats.snapshot(self.head(), Utc::now())
        };
        if let Some((db, wal)) = &self.core().files {
            let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
            stats.journal_bytes = size(db) + size(wal);
        }
        stats
    }

    /// A consumer reading events after a starting point, optionally filtered by type.
    ///
    /// - `name`: for logs, e.g. the plugin or client it serves.
    /// - `filter`: type patterns; empty means every type.
    /// - `start`: where the cursor begins.
    pub fn consumer(
        &self,
        name: impl Into<String>,
        filter: Vec<Pattern>,
        start: StartAt,
    ) -> Consumer {
        let cursor = match start {
            // Just before the oldest event still held: events pruned before this
            // consumer existed were never its to miss, so they are not "skipped".
            StartAt::Beginning => {
                let recent = self.core().recent.read();
                let ring_first = recent.ring.first_seq().unwrap_or(u64::MAX);
                recent.journal_first.min(ring_first).saturating_sub(1)
            }
            StartAt::Head => self.head(),
            StartAt::After(seq) => seq,
        };
        Consumer::new(self.clone(), name.into(), filter, cursor)
    }

    /// A receiver of head changes, for consumers waiting on new events.
    pub(crate) fn watch_head(&self) -> watch::Receiver<u64> {
        self.core().notify.subscribe()
    }

    /// Up to one page of events after `after`, keeping those `filter` matches.
    /// Reads the ring when it covers `after`, otherwise the journal.
    pub(crate) fn read_page(
        &self,
        after: u64,
        filter: &[Pattern],
    ) -> Result<JournalPage, BusError> {
        let ring_first = {
            let recent = self.core().recent.read();
            if recent.ring.covers_after(after) {
                return Ok(page_from_ring(&recent.ring, after, filter));
            }
            recent.ring.first_seq()
        };
        let page =
            self.read_journal(|j| j.read_after(after, PAGE, |ty| matches_any(filter, ty)))?;
        // Retention may have pruned the journal past events the ring still holds
        // (a ring larger than the journal): those are not lost, so read them.
        match (ring_first, page.first_seq) {
            (Some(ring_first), first) if first.is_none_or(|f| f > ring_first) => Ok(
                page_from_ring(&self.core().recent.read().ring, after, filter),
            ),
            _ => Ok(page),
        }
    }

    fn read_journal<R>(
        &self,
        f: impl FnOnce(&Journal) -> Result<R, BusError>,
    ) -> Result<R, BusError> {
        match &self.core().reader {
            Some(reader) => f(&reader.lock()),
            None => f(&self.core().journal.lock()),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.core.queue.close();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the event bus writer thread panicked");
        }
    }
}

fn page_from_ring(ring: &Ring, after: u64, filter: &[Pattern]) -> JournalPage {
    let mut page = JournalPage {
        events: Vec::new(),
        first_seq: None,
        last_seq: None,
        corrupt: Vec::new(),
    };
    for event in ring.iter_after(after).take(PAGE) {
        page.first_seq.get_or_insert(event.sequence);
        page.last_seq = Some(event.sequence);
        if matches_any(filter, &event.ty) {
            page.events.push(event.clone());
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::NewEvent;
    use serde_json::json;

    fn ev(ty: &str) -> NewEvent {
        NewEvent::new("host/test", ty, json!({"n": 1}))
    }

    #[test]
    fn the_bus_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Bus>();
    }

    #[test]
    fn reopening_continues_the_sequence_and_keeps_history() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
            bus.publish_all(vec![ev("a"), ev("b"), ev("c")]).unwrap()
        };
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        assert_eq!(bus.head(), 3);
        assert_eq!(bus.opened_at(), 3);
        let next = bus.publish(ev("d")).unwrap();
        assert_eq!(next.sequence, 4);
        assert_eq!(bus.opened_at(), 3, "opened_at stays what it was at open");
        assert!(next.time >= before[2].time);
        let all = bus.query(&EventQuery::default()).unwrap();
        assert_eq!(&all[..3], &before[..]);
    }

    #[test]
    fn reopening_with_a_smaller_limit_prunes_at_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
            bus.publish_all((0..20).map(|_| ev("a")).collect()).unwrap();
        }
        let config = BusConfig {
            ring_capacity: 0,
            max_journal_events: 5,
            ..BusConfig::default()
        };
        let bus = Bus::open(dir.path(), config).unwrap();
        let kept: Vec<u64> = bus
            .query(&EventQuery::default())
            .unwrap()
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(kept, [16, 17, 18, 19, 20]);
        assert_eq!(bus.stats().total, 5);
    }

    #[test]
    fn the_ring_is_refilled_within_its_byte_bound() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
            for _ in 0..10 {
                bus.publish(NewEvent::new("s", "big", json!("x".repeat(1000))))
                    .unwrap();
            }
        }
        let config = BusConfig {
            ring_max_bytes: 3500,
            ..BusConfig::default()
        };
        let bus = Bus::open(dir.path(), config).unwrap();
        let recent = bus.core().recent.read();
        assert_eq!(
            recent.ring.first_seq(),
            Some(8),
            "three events of ~1.1 kB fit"
        );
        assert!(recent.ring.bytes() <= 3500);
    }

    #[test]
    fn get_finds_events_in_the_ring_and_in_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let config = BusConfig {
            ring_capacity: 2,
            ..BusConfig::default()
        };
        let bus = Bus::open(dir.path(), config).unwrap();
        let published = bus.publish_all((0..5).map(|_| ev("a")).collect()).unwrap();
        assert_eq!(
            bus.get(5).unwrap().as_ref(),
            Some(&published[4]),
            "in the ring"
        );
        assert_eq!(
            bus.get(1).unwrap().as_ref(),
            Some(&published[0]),
            "in the journal"
        );
        assert_eq!(bus.get(6).unwrap(), None);
        assert_eq!(bus.get(0).unwrap(), None);
    }

    #[test]
    fn open_creates_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        Bus::open(&nested, BusConfig::default()).unwrap();
        assert!(journal_path(&nested).exists());
    }
}
