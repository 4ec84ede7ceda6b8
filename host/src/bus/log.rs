//! The [`Bus`]: its shared state, opening it, and every read of it.
//!
//! Appending (in `append`) is serialised by one writer lock. Readers (consumers,
//! queries, stats) take a separate read-mostly lock on the ring and counters, and
//! catch-up reads use their own SQLite connection, so a consumer replaying
//! history never stalls a publisher.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::bus::checkpoint::Checkpointer;
use crate::bus::consumer::{Consumer, StartAt};
use crate::bus::error::BusError;
use crate::bus::event::Event;
use crate::bus::journal::{Journal, JournalPage, journal_path};
use crate::bus::pattern::{Pattern, matches_any};
use crate::bus::query::{self, EventQuery};
use crate::bus::ring::Ring;
use crate::bus::stats::{BusStats, StatsTracker};

/// How many events a consumer examines per read: enough to amortise a journal
/// round trip, small enough that a consumer far behind never holds much in memory.
const PAGE: usize = 256;

/// How the bus sizes its memory and its journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Newest events kept in memory for consumers and queries (0 disables the ring).
    ///
    /// Example: `ring_capacity = 10000`
    pub ring_capacity: usize,
    /// Events kept in the journal; older ones are pruned and counted as skipped by
    /// any consumer that had not read them yet. 0 keeps every event.
    ///
    /// Example: `max_journal_events = 1000000`
    pub max_journal_events: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            ring_capacity: 10_000,
            max_journal_events: 1_000_000,
        }
    }
}

/// The event log: publish events, query history, and read it through consumers.
///
/// Cheap to clone; every clone is the same log.
#[derive(Clone)]
pub struct Bus {
    pub(super) shared: Arc<Shared>,
}

pub(super) struct Shared {
    /// Serialises appends. A std mutex: it is never held across an `.await`.
    pub(super) writer: Mutex<Writer>,
    /// The ring, counters and retention boundary: written under `writer`, read by everyone.
    pub(super) recent: RwLock<Recent>,
    /// A separate read connection for catch-up and queries on a file journal, so
    /// those reads run beside appends (WAL). `None` in memory, where reads share `writer`.
    pub(super) reader: Option<Mutex<Journal>>,
    /// Last committed sequence. Stored while `recent` is write-locked, so it always
    /// agrees with the ring and the counters.
    pub(super) head: AtomicU64,
    /// Wakes waiting consumers with the new head. Sent after the locks are released;
    /// kept here (and so alive as long as any consumer) so receivers never see it close.
    pub(super) notify: watch::Sender<u64>,
    pub(super) config: BusConfig,
}

pub(super) struct Writer {
    pub(super) journal: Journal,
    /// Time of the last event: the next one is never stamped earlier, so time
    /// order agrees with sequence order even if the wall clock steps back.
    pub(super) last_time: Option<DateTime<Utc>>,
    /// Events appended since the last retention pass.
    pub(super) since_prune: u64,
    /// Checkpoints the WAL off the publish path (file journals only); dropped
    /// with the writer, which stops its thread.
    pub(super) checkpointer: Option<Checkpointer>,
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
    ///
    /// - `dir`: the state directory; the journal is [`journal_path`]`(dir)`.
    /// - `config`: ring and retention sizes.
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
        let journal = Journal::open_writable(Some(&path))?;
        let reader = Journal::open_read_only(&path)?;
        let checkpointer = Checkpointer::spawn(&path);
        if checkpointer.is_some() {
            journal.disable_auto_checkpoint()?;
        }
        Bus::with_journal(journal, Some(reader), checkpointer, config)
    }

    /// Opens a bus whose journal lives only in memory; for tests.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if SQLite cannot create the in-memory database.
    pub fn open_in_memory(config: BusConfig) -> Result<Bus, BusError> {
        Bus::with_journal(Journal::open_writable(None)?, None, None, config)
    }

    fn with_journal(
        mut journal: Journal,
        reader: Option<Journal>,
        checkpointer: Option<Checkpointer>,
        config: BusConfig,
    ) -> Result<Bus, BusError> {
        // Apply retention now, in case the limit shrank since the journal was written.
        let max = config.max_journal_events;
        let head = journal.head()?;
        if max > 0 && head > max {
            journal.prune_through(head - max)?;
        }
        let summary = journal.summary(Utc::now())?;
        let mut ring = Ring::new(config.ring_capacity);
        for event in journal.tail(config.ring_capacity)? {
            ring.push(event);
        }
        let stats = StatsTracker::seeded(summary.groups, summary.recent_seconds, summary.last_time);
        let (notify, _) = watch::channel(summary.head);
        Ok(Bus {
            shared: Arc::new(Shared {
                writer: Mutex::new(Writer {
                    journal,
                    last_time: summary.last_time,
                    since_prune: 0,
                    checkpointer,
                }),
                recent: RwLock::new(Recent {
                    ring,
                    stats,
                    journal_first: summary.first,
                }),
                reader: reader.map(Mutex::new),
                head: AtomicU64::new(summary.head),
                notify,
                config,
            }),
        })
    }

    /// The last assigned sequence, 0 if nothing was ever published.
    pub fn head(&self) -> u64 {
        self.shared.head.load(Ordering::Acquire)
    }

    /// Answers a query about history; see [`EventQuery`] for the semantics.
    ///
    /// Served from memory when the ring holds every event that could match,
    /// otherwise from the journal.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] or [`BusError::CorruptEvent`] if the journal read fails.
    pub fn query(&self, q: &EventQuery) -> Result<Vec<Event>, BusError> {
        {
            let recent = self.shared.recent.read();
            if let Some(found) = query::from_ring(q, &recent.ring, recent.journal_first) {
                return Ok(found);
            }
        }
        self.read_journal(|journal| journal.query(q))
    }

    /// Counts over the journal and the recent publish rate.
    pub fn stats(&self) -> BusStats {
        let recent = self.shared.recent.read();
        recent.stats.snapshot(self.head(), Utc::now())
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
                let recent = self.shared.recent.read();
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
        self.shared.notify.subscribe()
    }

    /// Up to one page of events after `after`, keeping those `filter` matches.
    /// Reads the ring when it covers `after`, otherwise the journal.
    pub(crate) fn read_page(
        &self,
        after: u64,
        filter: &[Pattern],
    ) -> Result<JournalPage, BusError> {
        let ring_first = {
            let recent = self.shared.recent.read();
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
                page_from_ring(&self.shared.recent.read().ring, after, filter),
            ),
            _ => Ok(page),
        }
    }

    fn read_journal<R>(
        &self,
        f: impl FnOnce(&Journal) -> Result<R, BusError>,
    ) -> Result<R, BusError> {
        match &self.shared.reader {
            Some(reader) => f(&reader.lock()),
            None => f(&self.shared.writer.lock().journal),
        }
    }
}

fn page_from_ring(ring: &Ring, after: u64, filter: &[Pattern]) -> JournalPage {
    let mut page = JournalPage {
        events: Vec::new(),
        first_seq: None,
        last_seq: None,
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
        let next = bus.publish(ev("d")).unwrap();
        assert_eq!(next.sequence, 4);
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
    fn config_reads_from_toml_shaped_data_with_defaults() {
        let config: BusConfig = serde_json::from_value(json!({ "ring_capacity": 5 })).unwrap();
        assert_eq!(config.ring_capacity, 5);
        assert_eq!(config.max_journal_events, 1_000_000);
        assert!(serde_json::from_value::<BusConfig>(json!({ "ring": 5 })).is_err());
    }

    #[test]
    fn open_creates_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        Bus::open(&nested, BusConfig::default()).unwrap();
        assert!(journal_path(&nested).exists());
    }
}
