//! The writer thread: the one place that writes the journal.
//!
//! It takes everything queued (up to a group size), assigns consecutive
//! sequences, inserts the group in one transaction with prepared statements and
//! commits; only then does it update the ring, counters and head (in that
//! order, under the `recent` lock), wake consumers and answer publishers. So
//! consumers only ever see committed events, and a failed commit rolls back
//! having used up no sequence: sequences are derived from the head, which moves
//! only after a successful commit.
//!
//! Between groups it applies retention (by count and by bytes, a bounded chunk
//! per pass so a large prune never stalls publishers for long) and keeps the
//! WAL bounded: when the `-wal` file passes `max_wal_bytes` it runs a RESTART
//! checkpoint, which is cheap because the checkpoint thread (`checkpoint`) has
//! been copying frames into the database all along; the next commit then
//! writes the WAL from its start and SQLite cuts the file back to
//! `journal_size_limit` (the same bound). After a second without commits, and
//! at close, it truncates the WAL to nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::bus::checkpoint::Checkpointer;
use crate::bus::config::BusConfig;
use crate::bus::error::BusError;
use crate::bus::event::Event;
use crate::bus::journal::{AppendRow, Journal, JournalSummary};
use crate::bus::log::Core;
use crate::bus::queue::{Batch, Committed};
use crate::bus::sql::time_to_sql;

/// Most events in one transaction: large enough to amortise a commit, small
/// enough that a commit takes milliseconds. Also at most half the ring (see
/// `run`). Must not exceed the journal's run span (`journal::runs`).
const MAX_GROUP_EVENTS: usize = 32_768;
/// Fewest events a group may be capped to, whatever the ring's size.
const MIN_GROUP_EVENTS: usize = 1024;
/// Most rows one retention pass deletes; the rest waits for the next pass.
const PRUNE_ROWS: usize = 50_000;
/// How long a WAL-truncating checkpoint waits for readers before trying later.
const WAL_WAIT: Duration = Duration::from_millis(250);
/// How long after a checkpoint that could not finish the next one is tried.
const WAL_RETRY: Duration = Duration::from_secs(1);
/// How soon an idle writer looks again at a WAL still over its bound.
const WAL_RECHECK: Duration = Duration::from_millis(50);
/// How long without commits before the writer truncates the WAL to nothing.
const WAL_IDLE: Duration = Duration::from_secs(1);

/// The writer thread's state.
pub(crate) struct Writer {
    core: Arc<Core>,
    /// Time of the last event: the next one is never stamped earlier, so time
    /// order agrees with sequence order even if the wall clock steps back.
    last_time: Option<DateTime<Utc>>,
    /// Events appended since the last count-retention pass.
    since_prune: u64,
    /// The last retention pass left work (it is chunked).
    prune_owed: bool,
    /// Passive checkpoints off this thread; stopped (and joined) at close.
    checkpointer: Option<Checkpointer>,
    /// The WAL file and its bound; `None` in memory.
    wal: Option<WalBound>,
    /// Frees what leaves the ring on another thread.
    reaper: Reaper,
}

struct WalBound {
    path: PathBuf,
    max: u64,
    /// After a checkpoint could not finish, not before this.
    retry_at: Option<Instant>,
    /// The WAL was over its bound at the last look: check again soon even if
    /// nothing is published, so it shrinks after a storm.
    over: bool,
    /// Something was committed since the WAL was last truncated.
    dirty: bool,
}

/// Frees events the writer is done with (evicted from the ring, or never
/// entering it) on a thread of its own. Every event is allocated by its
/// publisher and freed by whoever drops it last; for the writer those frees
/// (about ten allocations per event, across threads) were a sixth of its
/// time, and the writer is the one thread every event goes through.
struct Reaper {
    /// Bounded: when the reaper falls behind, the writer frees inline.
    /// An `Option` only so that drop can disconnect it before joining.
    tx: Option<std::sync::mpsc::SyncSender<Vec<Event>>>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Below this many events, freeing inline is cheaper than a hand-off.
    const MIN: usize = 256;

    fn spawn() -> Reaper {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Event>>(4);
        let thread = std::thread::Builder::new()
            .name("bus-reaper".into())
            .spawn(move || rx.into_iter().for_each(drop));
        match thread {
            Ok(thread) => Reaper {
                tx: Some(tx),
                thread: Some(thread),
            },
            // Without the thread the writer frees inline, as it would anyway.
            Err(error) => {
                tracing::warn!(%error, "cannot start the bus reaper thread; the writer frees events itself");
                Reaper {
                    tx: None,
                    thread: None,
                }
            }
        }
    }

    fn reap(&self, garbage: Vec<Event>) {
        if garbage.len() < Self::MIN {
            return;
        }
        if let Some(tx) = &self.tx {
            // Full or gone: the garbage comes back in the error and drops here.
            let _ = tx.try_send(garbage);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the bus reaper thread panicked");
        }
    }
}

/// Marks the queue closed when the writer thread ends, normally or by panic,
/// so no publisher waits forever for a commit.
struct CloseOnExit(Arc<Core>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.queue.mark_closed();
    }
}

impl Writer {
    pub(crate) fn new(
        core: Arc<Core>,
        last_time: Option<DateTime<Utc>>,
        checkpointer: Option<Checkpointer>,
    ) -> Writer {
        let wal = core.files.as_ref().map(|(_, wal)| WalBound {
            path: wal.clone(),
            max: core.config.max_wal_bytes,
            retry_at: None,
            over: false,
            dirty: false,
        });
        Writer {
            core,
            last_time,
            since_prune: 0,
            prune_owed: false,
            checkpointer,
            wal,
            reaper: Reaper::spawn(),
        }
    }

    /// Starts the thread.
    ///
    /// # Errors
    ///
    /// [`BusError::Thread`] if the OS refuses a thread.
    pub(crate) fn spawn(self) -> Result<JoinHandle<()>, BusError> {
        std::thread::Builder::new()
            .name("bus-writer".into())
            .spawn(move || self.run())
            .map_err(|source| BusError::Thread { source })
    }

    fn run(mut self) {
        let _closed = CloseOnExit(self.core.clone());
        // A commit carries at most a quarter of the WAL bound in events (about
        // half of it in WAL frames, with the index pages), and the WAL is checked
        // after every commit, so it stays under about 1.5 times the bound.
        let group_bytes = (self.core.config.max_wal_bytes / 4).max(64 << 10) as usize;
        // A commit never replaces more than half the ring, so a consumer that
        // keeps up with commits keeps reading from memory under a storm.
        let group_events = match self.core.config.ring_capacity {
            0 => MAX_GROUP_EVENTS,
            ring => (ring / 2).clamp(MIN_GROUP_EVENTS, MAX_GROUP_EVENTS),
        };
        loop {
            let idle = match &self.wal {
                _ if self.prune_owed => Some(Duration::ZERO),
                Some(wal) if wal.over => Some(WAL_RECHECK),
                Some(wal) if wal.dirty => Some(WAL_IDLE),
                _ => None,
            };
            let work = self.core.queue.take(group_events, group_bytes, idle);
            let quiet = work.batches.is_empty() && work.cursors.is_empty() && !work.last;
            if let Some(wal) = &mut self.wal
                && !quiet
            {
                wal.dirty = true;
            }
            if self.commit(work.batches, &work.cursors) == 0 && self.prune_owed {
                self.retention(0);
            }
            self.bound_wal();
            if quiet && !self.prune_owed && self.wal.as_ref().is_some_and(|w| w.dirty && !w.over) {
                self.truncate_idle_wal();
            }
            if work.last {
                break;
            }
        }
        self.close();
    }

    /// Commits one group, applies retention and answers the publishers; returns
    /// the events appended.
    fn commit(&mut self, batches: Vec<Batch>, cursors: &[(String, Option<u64>)]) -> u64 {
        let core = &*self.core;
        let n: usize = batches.iter().map(|b| b.events.len()).sum();
        let head = core.head.load(Ordering::Acquire);
        if n == 0 {
            // Flush markers and cursor saves only.
            let result = if cursors.is_empty() {
                Ok(())
            } else {
                core.journal.lock().save_cursors(cursors)
            };
            if let Err(error) = &result {
                tracing::warn!(%error, cursors = cursors.len(), "consumer cursors were not saved");
            }
            let done = Committed {
                first: head + 1,
                time: self.last_time.unwrap_or_else(Utc::now),
            };
            for batch in batches {
                batch
                    .reply
                    .send(result.as_ref().map(|()| done).map_err(BusError::duplicate));
            }
            return 0;
        }

        let now = Utc::now();
        let time = self.last_time.map_or(now, |last| last.max(now));
        let time_text = time_to_sql(time);
        let first = head + 1;
        let mut journal = core.journal.lock();
        let rows = batches.iter().flat_map(|b| {
            b.events.iter().map(|p| AppendRow {
                event: &p.event,
                data: b.data_of(p),
                size: p.size,
            })
        });
        let delta = match journal.append_group(first, &time_text, rows, cursors) {
            Ok(delta) => delta,
            Err(error) => {
                drop(journal);
                fail(batches, cursors, &error);
                return 0;
            }
        };
        drop(journal);
        let last = first + n as u64 - 1;
        let mut replies = Vec::with_capacity(batches.len());
        let mut garbage = Vec::new();
        {
            let mut recent = core.recent.write();
            recent.stats.record(
                delta.iter().map(|((ty, src), (e, b))| (*ty, *src, *e, *b)),
                time,
            );
            drop(delta);
            // Only the newest `capacity` of a large group would survive anyway.
            let ring_from = n.saturating_sub(recent.ring.capacity());
            if ring_from > 0 {
                // The group alone fills the ring; start it afresh so it stays gapless.
                recent.ring.clear_into(&mut garbage);
            }
            let mut seq = first;
            for batch in batches {
                replies.push((batch.reply, seq));
                for p in batch.events {
                    if seq - first >= ring_from as u64 {
                        let mut event = p.event;
                        event.sequence = seq;
                        event.time = time;
                        recent.ring.push_evicting(event, p.size, &mut garbage);
                    } else {
                        garbage.push(p.event);
                    }
                    seq += 1;
                }
            }
            core.head.store(last, Ordering::Release);
        }
        self.reaper.reap(garbage);
        self.last_time = Some(time);
        core.notify.send_if_modified(|current| {
            let newer = last > *current;
            if newer {
                *current = last;
            }
            newer
        });
        if let Some(checkpointer) = &mut self.checkpointer {
            checkpointer.appended(n as u64);
        }
        // Retention before the answers: a publisher that returns sees the
        // journal already within its limits, as it did before group commit.
        self.retention(n as u64);
        for (reply, first) in replies {
            reply.send(Ok(Committed { first, time }));
        }
        n as u64
    }

    /// Prunes to `max_journal_events` every so many appends and to
    /// `max_journal_bytes` (down to 15/16 of it, so it does not prune on every
    /// commit), at most [`PRUNE_ROWS`] per pass.
    fn retention(&mut self, appended: u64) {
        let core = &*self.core;
        let config = &core.config;
        self.since_prune += appended;
        let head = core.head.load(Ordering::Acquire);
        let (bytes, first) = {
            let recent = core.recent.read();
            (recent.stats.bytes(), recent.journal_first)
        };
        let mut cutoff = None;
        let max = config.max_journal_events;
        // Small journals prune more often so they never grow far past their limit.
        if max > 0 && (self.since_prune >= max.clamp(1, 1000) || self.prune_owed) {
            self.since_prune = 0;
            cutoff = head.checked_sub(max).filter(|c| *c > 0);
        }
        let max_bytes = config.max_journal_bytes;
        let target = max_bytes - max_bytes / 16;
        if max_bytes > 0 && (bytes > max_bytes || (self.prune_owed && bytes > target)) {
            match core
                .journal
                .lock()
                .cutoff_for_bytes(bytes - target, PRUNE_ROWS)
            {
                Ok(found) => cutoff = cutoff.max(found),
                Err(error) => {
                    tracing::warn!(%error, "event journal retention could not size old events")
                }
            }
        }
        self.prune_owed = false;
        let Some(mut cutoff) = cutoff.filter(|c| *c >= first) else {
            return;
        };
        if cutoff - first >= PRUNE_ROWS as u64 {
            cutoff = first + PRUNE_ROWS as u64 - 1;
            self.prune_owed = true;
        }
        let pruned = core.journal.lock().prune_through(cutoff);
        match pruned {
            Ok(pruned) => {
                let mut recent = core.recent.write();
                recent.stats.forget(&pruned);
                recent.journal_first = recent.journal_first.max(cutoff + 1);
                if max_bytes > 0 && recent.stats.bytes() > target {
                    self.prune_owed = true;
                }
            }
            // The publishes succeeded; retention retries on the next pass.
            Err(error) => tracing::warn!(%error, cutoff, "event journal retention failed"),
        }
    }

    /// Restarts the WAL once it passes its bound, so the next commit writes it
    /// from the start (and cuts the file back to `journal_size_limit`, the bound).
    fn bound_wal(&mut self) {
        let Some(wal) = &mut self.wal else {
            return;
        };
        let size = std::fs::metadata(&wal.path).map_or(0, |m| m.len());
        wal.over = size > wal.max;
        if wal.over && wal.retry_at.is_none_or(|at| Instant::now() >= at) {
            self.checkpoint_wal("RESTART", size);
        }
    }

    /// After a quiet second: truncate the WAL to nothing, so an idle host
    /// leaves no WAL behind.
    fn truncate_idle_wal(&mut self) {
        let size = self
            .wal
            .as_ref()
            .map_or(0, |wal| std::fs::metadata(&wal.path).map_or(0, |m| m.len()));
        if size > 0 {
            self.checkpoint_wal("TRUNCATE", size);
        } else if let Some(wal) = &mut self.wal {
            wal.dirty = false;
        }
    }

    /// RESTART, not TRUNCATE, under load: the file keeps its blocks and the
    /// next commits overwrite them, where a truncated file would be grown (and
    /// its blocks allocated) again.
    fn checkpoint_wal(&mut self, mode: &str, size: u64) {
        let Some(wal) = &mut self.wal else {
            return;
        };
        // Wait out a passive pass in progress (at most one; none starts while
        // the WAL is over its bound), so the checkpoint is not refused.
        let _turn = self.checkpointer.as_ref().map(Checkpointer::hold);
        match self.core.journal.lock().checkpoint(mode, WAL_WAIT) {
            Ok(done) if !done.busy => {
                wal.retry_at = None;
                wal.over = false;
                wal.dirty = mode != "TRUNCATE";
                tracing::debug!(
                    mode,
                    wal_bytes = size,
                    frames = done.wal_frames,
                    copied = done.copied,
                    "WAL checkpointed"
                );
            }
            Ok(done) if done.wal_frames < 0 => {
                // Another checkpoint holds the lock (SQLite does not wait for it):
                // try again after the next commit.
                tracing::trace!(mode, wal_bytes = size, "WAL checkpoint met another");
            }
            Ok(_) => {
                // A reader holds an old snapshot; the WAL grows until it lets go.
                wal.retry_at = Some(Instant::now() + WAL_RETRY);
                tracing::debug!(mode, wal_bytes = size, "WAL checkpoint waits for a reader");
            }
            Err(error) => {
                wal.retry_at = Some(Instant::now() + WAL_RETRY);
                tracing::warn!(%error, mode, wal_bytes = size, "WAL checkpoint failed");
            }
        }
    }

    /// After the last commit: stop the checkpoint thread, then leave an empty WAL.
    fn close(mut self) {
        drop(self.checkpointer.take());
        if self.wal.is_none() {
            return;
        }
        match self
            .core
            .journal
            .lock()
            .checkpoint("TRUNCATE", Duration::from_secs(5))
        {
            Ok(done) if !done.busy => {}
            Ok(_) => tracing::warn!("the WAL could not be truncated at close: a reader holds it"),
            Err(error) => tracing::warn!(%error, "the WAL could not be truncated at close"),
        }
    }
}

/// Answers every batch of a failed group with the error (logging what nobody
/// waits for: fire-and-forget submissions must not fail silently).
fn fail(batches: Vec<Batch>, cursors: &[(String, Option<u64>)], error: &BusError) {
    let mut unheard = 0;
    for batch in batches {
        let n = batch.events.len();
        if !batch.reply.send(Err(error.duplicate())) {
            unheard += n;
        }
    }
    if unheard > 0 {
        tracing::error!(%error, events = unheard, "submitted events could not be journaled and are lost");
    }
    if !cursors.is_empty() {
        tracing::warn!(%error, cursors = cursors.len(), "consumer cursors were not saved");
    }
}

/// Retention at open, in full: the limits may have shrunk since the journal was
/// written. Returns whether anything was pruned.
pub(crate) fn prune_at_open(
    journal: &mut Journal,
    config: &BusConfig,
    summary: &JournalSummary,
) -> Result<bool, BusError> {
    let mut bytes: u64 = summary.groups.iter().map(|g| g.bytes).sum();
    let mut pruned = false;
    let max = config.max_journal_events;
    if max > 0 && summary.head > max && summary.head - max >= summary.first {
        let removed = journal.prune_through(summary.head - max)?;
        bytes -= removed.iter().map(|g| g.bytes).sum::<u64>().min(bytes);
        pruned = true;
    }
    let max_bytes = config.max_journal_bytes;
    while max_bytes > 0 && bytes > max_bytes {
        let Some(cutoff) = journal.cutoff_for_bytes(bytes - max_bytes, usize::MAX)? else {
            break;
        };
        let removed = journal.prune_through(cutoff)?;
        bytes -= removed.iter().map(|g| g.bytes).sum::<u64>().min(bytes);
        pruned = true;
    }
    if pruned {
        tracing::info!(journal = %journal.path().display(), "pruned the event journal to its configured limits at open");
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use crate::bus::{Bus, BusConfig, BusError, EventQuery, NewEvent, journal_path};
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    fn ev(n: u64) -> NewEvent {
        NewEvent::new(
            "host/test",
            "storm.event",
            json!({ "n": n, "pad": "x".repeat(200) }),
        )
    }

    /// Caps the journal at its current size, so the next append that needs a
    /// page fails as on a full disk; `None` lifts the cap.
    fn cap_pages(bus: &Bus, cap: Option<i64>) {
        let journal = bus.core().journal.lock();
        let conn = journal.connection();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", cap.unwrap_or(pages))
            .unwrap();
    }

    #[test]
    fn a_failing_commit_fails_its_batches_and_uses_up_no_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        bus.publish(ev(1)).unwrap();
        cap_pages(&bus, None);
        let big = || NewEvent::new("host/test", "big", json!("y".repeat(200_000)));
        match bus.publish(big()) {
            Err(BusError::Journal {
                source: rusqlite::Error::SqliteFailure(code, _),
                ..
            }) => assert_eq!(code.code, rusqlite::ErrorCode::DiskFull),
            other => panic!("expected a full journal, got {other:?}"),
        }
        // Fire and forget: accepted now, refused by the commit (and logged).
        bus.submit(vec![big(), big()]).unwrap();
        let _ = bus.flush();
        assert_eq!(bus.head(), 1, "no sequence was used up");
        assert_eq!(bus.stats().total, 1);

        cap_pages(&bus, Some(1 << 30));
        let next = bus.publish(ev(2)).unwrap();
        assert_eq!(next.sequence, 2, "sequences continue without a gap");
        let all: Vec<u64> = bus
            .query(&EventQuery::default())
            .unwrap()
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(all, [1, 2]);
    }

    #[test]
    fn concurrent_publishers_get_unique_consecutive_sequences() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    let mut firsts = Vec::new();
                    for i in 0..100 {
                        let batch = bus.publish_all(vec![ev(t), ev(i), ev(i)]).unwrap();
                        let seqs: Vec<u64> = batch.iter().map(|e| e.sequence).collect();
                        assert_eq!(seqs, [seqs[0], seqs[0] + 1, seqs[0] + 2]);
                        firsts.push(seqs[0]);
                    }
                    firsts
                })
            })
            .collect();
        let mut firsts: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        firsts.sort_unstable();
        assert_eq!(firsts, (0..800).map(|i| 1 + 3 * i).collect::<Vec<_>>());
        assert_eq!(bus.head(), 2400);
        assert_eq!(bus.stats().total, 2400);
    }

    #[test]
    fn a_publish_storm_keeps_the_wal_under_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let bound: u64 = 256 << 10;
        let config = BusConfig {
            max_wal_bytes: bound,
            max_journal_events: 0,
            ..BusConfig::default()
        };
        let bus = Bus::open(dir.path(), config).unwrap();
        let mut wal = journal_path(dir.path()).into_os_string();
        wal.push("-wal");
        let wal = std::path::PathBuf::from(wal);
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (stop, peak, wal) = (stop.clone(), peak.clone(), wal.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
                    peak.fetch_max(size, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        let storm_until = Instant::now() + Duration::from_secs(3);
        let publishers: Vec<_> = (0..4)
            .map(|_| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    while Instant::now() < storm_until {
                        bus.submit((0..50).map(ev).collect()).unwrap();
                    }
                })
            })
            .collect();
        for p in publishers {
            p.join().unwrap();
        }
        bus.flush().unwrap();
        stop.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
        let deadline = Instant::now() + Duration::from_secs(20);
        while wal_size() > 0 {
            assert!(
                Instant::now() < deadline,
                "an idle bus never truncated its WAL"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bus.publish(ev(0)).unwrap();
        let written = bus.head() * 250;
        assert!(
            written > 8 * bound,
            "the storm wrote only {written} bytes of events; it must exceed the bound many times"
        );
        let peak = peak.load(Ordering::Relaxed);
        assert!(
            peak <= 2 * bound,
            "the WAL reached {peak} bytes; the bound is {bound}"
        );
        assert!(wal_size() > 0);
        drop(bus);
        assert_eq!(wal_size(), 0, "the WAL is truncated at close");
    }
}
