//! The hand-off between publishers and the writer thread.
//!
//! Publishers validate and serialize on their own thread, then push a [`Batch`]
//! here; the writer takes everything queued (up to a group size) and commits it
//! in one transaction. The queue is bounded in approximate bytes so that a flood
//! of fire-and-forget submissions turns into back-pressure on the flooders
//! instead of host memory: a push waits while the queue is full (a batch is
//! always admitted into an empty queue, whatever its size).
//!
//! Cursor saves are coalesced here too: only the latest value per name is kept
//! until the writer writes them, with the next commit or within [`CURSOR_DELAY`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::{Condvar, Mutex};
use tokio::sync::{Notify, oneshot};

use crate::bus::error::BusError;
use crate::bus::event::Event;

/// How long a saved cursor may wait for a commit to carry it.
pub(crate) const CURSOR_DELAY: Duration = Duration::from_millis(100);
/// What one queued event costs beyond its approximate size (the `Event`
/// struct, its allocations); keeps the byte bound honest for tiny events.
const EVENT_OVERHEAD: usize = 256;

/// One event ready for the journal, prepared on the publisher's thread.
pub(crate) struct Prepared {
    /// The event with its id; `sequence` and `time` are filled in by the writer.
    /// This copy ends up in the ring.
    pub(crate) event: Event,
    /// `event::approx_size`.
    pub(crate) size: usize,
}

/// Events published together: committed in one transaction with consecutive
/// sequences, or not at all. A batch with no events is a flush marker.
pub(crate) struct Batch {
    pub(crate) events: Vec<Prepared>,
    pub(crate) reply: Reply,
}

impl Batch {
    /// A batch that carries nothing but its reply: a flush.
    pub(crate) fn marker(reply: Reply) -> Batch {
        Batch {
            events: Vec::new(),
            reply,
        }
    }
}

impl Batch {
    fn bytes(&self) -> usize {
        self.events.iter().map(|p| p.size + EVENT_OVERHEAD).sum()
    }
}

/// Where a batch was committed: its first sequence, and the time every event got.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Committed {
    pub(crate) first: u64,
    pub(crate) time: DateTime<Utc>,
}

/// The writer's answer about one batch.
pub(crate) type Outcome = Result<Committed, BusError>;

/// Who waits for a batch's outcome.
pub(crate) enum Reply {
    /// Fire and forget: a failure is logged by the writer.
    Forget,
    /// A thread blocked in `publish` or `flush`.
    Blocking(std::sync::mpsc::SyncSender<Outcome>),
    /// A task awaiting `publish_async` or `flush_async`.
    Async(oneshot::Sender<Outcome>),
}

impl Reply {
    /// Delivers the outcome; `false` if nobody was listening for it (fire and
    /// forget, or a waiter that gave up), so the caller may log a failure.
    pub(crate) fn send(self, outcome: Outcome) -> bool {
        match self {
            Reply::Forget => false,
            // A full channel cannot happen (capacity 1, one send); a gone receiver
            // means the publisher stopped waiting, as with a dropped async future.
            Reply::Blocking(tx) => tx.try_send(outcome).is_ok(),
            Reply::Async(tx) => tx.send(outcome).is_ok(),
        }
    }
}

/// What the writer takes in one go.
pub(crate) struct Work {
    pub(crate) batches: Vec<Batch>,
    /// Cursor changes to write (`None` deletes), latest per name.
    pub(crate) cursors: Vec<(String, Option<u64>)>,
    /// The bus is closing and nothing is left after this: write it and stop.
    pub(crate) last: bool,
}

/// The queue itself; shared by every bus handle and the writer.
pub(crate) struct Queue {
    state: Mutex<State>,
    /// Wakes the writer.
    work: Condvar,
    /// Wakes blocked publishers when the writer makes room.
    room: Condvar,
    /// The same, for async publishers.
    room_async: Notify,
    max_bytes: usize,
}

struct State {
    batches: VecDeque<Batch>,
    /// Sum of the queued batches' `bytes()`.
    bytes: usize,
    cursors: HashMap<String, Option<u64>>,
    /// When the oldest unwritten cursor change arrived.
    cursors_since: Option<Instant>,
    /// The last bus handle is gone: the writer drains and stops.
    closing: bool,
    /// The writer has stopped; nothing more will be committed.
    closed: bool,
}

/// Why a push did not happen.
enum Refused {
    Full(Batch),
    Closed,
}

impl Queue {
    /// An empty queue holding at most about `max_bytes`.
    pub(crate) fn new(max_bytes: usize) -> Queue {
        Queue {
            state: Mutex::new(State {
                batches: VecDeque::new(),
                bytes: 0,
                cursors: HashMap::new(),
                cursors_since: None,
                closing: false,
                closed: false,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            room_async: Notify::new(),
            max_bytes,
        }
    }

    /// Queues a batch, blocking the thread while the queue is full.
    ///
    /// # Errors
    ///
    /// [`BusError::Closed`] if the writer has stopped.
    pub(crate) fn push_blocking(&self, batch: Batch) -> Result<(), BusError> {
        let bytes = batch.bytes();
        let mut state = self.state.lock();
        loop {
            if state.closed {
                return Err(BusError::Closed);
            }
            if state.batches.is_empty() || state.bytes + bytes <= self.max_bytes {
                break;
            }
            self.room.wait(&mut state);
        }
        self.admit(&mut state, batch, bytes);
        Ok(())
    }

    /// Queues a batch, awaiting room while the queue is full.
    ///
    /// # Errors
    ///
    /// [`BusError::Closed`] if the writer has stopped.
    pub(crate) async fn push_async(&self, mut batch: Batch) -> Result<(), BusError> {
        loop {
            // Registered before the attempt, so room made in between is not missed.
            let room = self.room_async.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push(batch) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed) => return Err(BusError::Closed),
                Err(Refused::Full(back)) => batch = back,
            }
            room.await;
        }
    }

    fn try_push(&self, batch: Batch) -> Result<(), Refused> {
        let bytes = batch.bytes();
        let mut state = self.state.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        if !state.batches.is_empty() && state.bytes + bytes > self.max_bytes {
            return Err(Refused::Full(batch));
        }
        self.admit(&mut state, batch, bytes);
        Ok(())
    }

    fn admit(&self, state: &mut State, batch: Batch, bytes: usize) {
        state.bytes += bytes;
        state.batches.push_back(batch);
        self.work.notify_one();
    }

    /// Records a cursor change for the writer (`None` forgets the cursor).
    pub(crate) fn note_cursor(&self, name: &str, sequence: Option<u64>) {
        let mut state = self.state.lock();
        state.cursors.insert(name.to_owned(), sequence);
        if state.cursors_since.is_none() {
            state.cursors_since = Some(Instant::now());
            // The writer may be asleep with nothing to do; it must set a timer.
            self.work.notify_one();
        }
    }

    /// For the writer: waits for work and takes a group of at most `max_events`
    /// events and about `max_bytes` (always at least one batch). Returns an
    /// empty `Work` after `idle` if given (the writer has upkeep to do).
    pub(crate) fn take(&self, max_events: usize, max_bytes: usize, idle: Option<Duration>) -> Work {
        let mut state = self.state.lock();
        let deadline = idle.map(|d| Instant::now() + d);
        loop {
            let cursors_due = state.cursors_since.map(|since| since + CURSOR_DELAY);
            let now = Instant::now();
            let ready = !state.batches.is_empty()
                || state.closing
                || cursors_due.is_some_and(|due| due <= now)
                || deadline.is_some_and(|d| d <= now);
            if ready {
                break;
            }
            match [cursors_due, deadline].into_iter().flatten().min() {
                Some(until) => {
                    self.work.wait_until(&mut state, until);
                }
                None => self.work.wait(&mut state),
            }
        }
        let mut batches = Vec::new();
        let (mut events, mut bytes) = (0usize, 0usize);
        while let Some(batch) = state.batches.front() {
            let n = batch.events.len();
            if !batches.is_empty() && (events + n > max_events || bytes >= max_bytes) {
                break;
            }
            let batch = state.batches.pop_front().expect("front exists");
            let size = batch.bytes();
            state.bytes -= size;
            events += n;
            bytes += size;
            batches.push(batch);
        }
        let cursors = std::mem::take(&mut state.cursors).into_iter().collect();
        state.cursors_since = None;
        let last = state.closing && state.batches.is_empty();
        drop(state);
        if !batches.is_empty() {
            self.room.notify_all();
            self.room_async.notify_waiters();
        }
        Work {
            batches,
            cursors,
            last,
        }
    }

    /// The last bus handle is gone: the writer commits what is queued and stops.
    pub(crate) fn close(&self) {
        self.state.lock().closing = true;
        self.work.notify_one();
    }

    /// The writer has stopped (normally or not): fails whatever is still queued
    /// and refuses further pushes.
    pub(crate) fn mark_closed(&self) {
        let leftovers: Vec<Batch> = {
            let mut state = self.state.lock();
            state.closed = true;
            state.bytes = 0;
            state.batches.drain(..).collect()
        };
        self.room.notify_all();
        self.room_async.notify_waiters();
        for batch in leftovers {
            let n = batch.events.len();
            if !batch.reply.send(Err(BusError::Closed)) && n > 0 {
                tracing::error!(
                    events = n,
                    "the bus writer stopped; submitted events were not journaled"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::event::NewEvent;

    fn batch(n: usize, size: usize) -> Batch {
        let events = (0..n)
            .map(|_| Prepared {
                event: NewEvent::new("s", "t", serde_json::Value::Null).into_event(
                    0,
                    Utc::now(),
                    String::new(),
                ),
                size,
            })
            .collect();
        Batch {
            events,
            reply: Reply::Forget,
        }
    }

    #[test]
    fn the_writer_takes_everything_queued_up_to_a_group_size() {
        let queue = Queue::new(usize::MAX);
        for _ in 0..5 {
            queue.push_blocking(batch(3, 10)).unwrap();
        }
        let work = queue.take(7, usize::MAX, None);
        assert_eq!(work.batches.len(), 2, "a third batch would pass 7 events");
        let work = queue.take(100, usize::MAX, None);
        assert_eq!(work.batches.len(), 3);
        assert!(!work.last);
    }

    #[test]
    fn a_full_queue_holds_a_publisher_until_the_writer_makes_room() {
        let queue = std::sync::Arc::new(Queue::new(2 * (100 + EVENT_OVERHEAD)));
        queue.push_blocking(batch(2, 100)).unwrap();
        let pusher = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.push_blocking(batch(1, 100)))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !pusher.is_finished(),
            "the queue is full; the push must wait"
        );
        assert_eq!(queue.take(100, usize::MAX, None).batches.len(), 1);
        pusher.join().unwrap().unwrap();
        assert_eq!(queue.take(100, usize::MAX, None).batches.len(), 1);
    }

    #[test]
    fn a_batch_larger_than_the_bound_enters_an_empty_queue() {
        let queue = Queue::new(10);
        queue.push_blocking(batch(3, 1000)).unwrap();
        assert_eq!(queue.take(100, usize::MAX, None).batches.len(), 1);
    }

    #[test]
    fn cursor_changes_are_coalesced_and_come_due_without_events() {
        let queue = Queue::new(usize::MAX);
        queue.note_cursor("a", Some(1));
        queue.note_cursor("a", Some(5));
        queue.note_cursor("b", None);
        let started = Instant::now();
        let mut work = queue.take(100, usize::MAX, None);
        assert!(started.elapsed() >= CURSOR_DELAY - Duration::from_millis(5));
        work.cursors.sort();
        assert_eq!(work.cursors, [("a".into(), Some(5)), ("b".into(), None)]);
    }

    #[test]
    fn a_closed_queue_refuses_pushes_and_fails_what_was_left() {
        let queue = Queue::new(usize::MAX);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let mut waiting = batch(1, 1);
        waiting.reply = Reply::Blocking(tx);
        queue.push_blocking(waiting).unwrap();
        queue.mark_closed();
        assert!(matches!(rx.recv().unwrap(), Err(BusError::Closed)));
        assert!(matches!(
            queue.push_blocking(batch(1, 1)),
            Err(BusError::Closed)
        ));
    }
}
