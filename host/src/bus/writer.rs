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
//! After each commit it applies retention (`retention`) and keeps the WAL
//! bounded (`wal`); what leaves the ring is freed on another thread (`reaper`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::bus::checkpoint::Checkpointer;
use crate::bus::error::BusError;
use crate::bus::journal::AppendRow;
use crate::bus::log::Core;
use crate::bus::queue::{Batch, Committed};
use crate::bus::reaper::Reaper;
use crate::bus::retention::Retention;
use crate::bus::sql::time_to_sql;
use crate::bus::wal::Wal;

/// Most events in one transaction: large enough to amortise a commit, small
/// enough that a commit takes milliseconds. Also at most half the ring (see
/// `run`). Must not exceed the journal's run span (`journal::runs`).
const MAX_GROUP_EVENTS: usize = 32_768;
/// Fewest events a group may be capped to, whatever the ring's size.
const MIN_GROUP_EVENTS: usize = 1024;

/// The writer thread's state.
pub(crate) struct Writer {
    core: Arc<Core>,
    /// Time of the last event: the next one is never stamped earlier, so time
    /// order agrees with sequence order even if the wall clock steps back.
    last_time: Option<DateTime<Utc>>,
    retention: Retention,
    /// Passive checkpoints off this thread; stopped (and joined) at close.
    checkpointer: Option<Checkpointer>,
    /// The WAL file and its bound; `None` in memory.
    wal: Option<Wal>,
    /// Frees what leaves the ring on another thread.
    reaper: Reaper,
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
        let wal = core
            .files
            .as_ref()
            .map(|(_, wal)| Wal::new(wal.clone(), core.config.max_wal_bytes));
        Writer {
            core,
            last_time,
            retention: Retention::default(),
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
                _ if self.retention.owed() => Some(Duration::ZERO),
                Some(wal) => wal.idle_timeout(),
                None => None,
            };
            let work = self.core.queue.take(group_events, group_bytes, idle);
            let quiet = work.batches.is_empty() && work.cursors.is_empty() && !work.last;
            if let Some(wal) = &mut self.wal
                && !quiet
            {
                wal.written();
            }
            if self.commit(work.batches, &work.cursors) == 0 && self.retention.owed() {
                self.retention.after_commit(&self.core, 0);
            }
            if let Some(wal) = &mut self.wal {
                wal.bound(&self.core, self.checkpointer.as_ref());
                if quiet && !self.retention.owed() {
                    wal.quiet(&self.core, self.checkpointer.as_ref());
                }
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
                data: p.event.data.json(),
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
        self.retention.after_commit(core, n as u64);
        for (reply, first) in replies {
            reply.send(Ok(Committed { first, time }));
        }
        n as u64
    }

    /// After the last commit: stop the checkpoint thread, then leave an empty WAL.
    fn close(mut self) {
        drop(self.checkpointer.take());
        if let Some(wal) = &mut self.wal {
            wal.close(&self.core);
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

#[cfg(test)]
mod tests {
    use crate::bus::{Bus, BusConfig, BusError, EventQuery, NewEvent};
    use serde_json::json;

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
}
