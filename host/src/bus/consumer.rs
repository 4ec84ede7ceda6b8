//! Consumers: cursors over the log, in the manner of NATS JetStream.
//!
//! A consumer remembers only a sequence number. Whatever it has not read yet is
//! still in the ring or the journal, so a slow consumer catches up instead of
//! being dropped, and a restarted one resumes with [`StartAt::After`] its last
//! cursor. Reading is one page at a time, so a consumer far behind never loads
//! the backlog into memory. The only losses possible are journal retention and
//! a journal row that cannot be decoded; both are counted ([`Consumer::skipped`]),
//! logged and announced as `bus.consumer_skipped`, never silent, and neither
//! stalls the consumer: its cursor moves past them.
//!
//! The cursor is also published in a shared atomic ([`Consumer::position`])
//! whenever it moves, including over events the filter passes by while the
//! consumer waits, so others (metrics, listings) can see how far behind the
//! head it really is without asking the task that owns it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use crate::bus::error::BusError;
use crate::bus::event::{Event, NewEvent};
use crate::bus::log::Bus;
use crate::bus::pattern::Pattern;

/// The type of the event announcing that a consumer lost events to retention;
/// its subject is the consumer's name.
pub(crate) const SKIPPED_TYPE: &str = "bus.consumer_skipped";
const SKIPPED_SOURCE: &str = "host/bus";

/// Where a new consumer's cursor starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// Just before the oldest event still retained: replay everything kept.
    Beginning,
    /// At the current head: only events published after the consumer is created.
    Head,
    /// After this sequence, e.g. a cursor saved before a reload.
    After(u64),
}

/// A cursor over the log that yields matching events in sequence order.
///
/// Owned by one task. Dropping it loses nothing: the events stay in the log.
pub struct Consumer {
    bus: Bus,
    name: String,
    filter: Vec<Pattern>,
    /// Last sequence delivered or passed over as non-matching.
    cursor: u64,
    /// `cursor`, for readers outside the owning task; see [`Consumer::position`].
    position: Arc<AtomicU64>,
    /// Events lost to retention before this consumer reached them.
    skipped: u64,
    /// Matching events read ahead from the current page, not yet delivered.
    pending: VecDeque<Event>,
    /// Last sequence the current page examined; the cursor moves here once
    /// `pending` is empty.
    scanned_to: u64,
    head: watch::Receiver<u64>,
}

/// What one read step achieved.
// Returned by value once per event and never stored: boxing the event would
// cost an allocation per delivery to save a few bytes of stack.
#[allow(clippy::large_enum_variant)]
enum Step {
    Delivered(Event),
    /// Read a page (possibly with nothing matching); more may follow at once.
    Advanced,
    /// Nothing after the cursor yet.
    Idle,
}

impl Consumer {
    pub(crate) fn new(bus: Bus, name: String, filter: Vec<Pattern>, cursor: u64) -> Consumer {
        let head = bus.watch_head();
        Consumer {
            bus,
            name,
            filter,
            cursor,
            position: Arc::new(AtomicU64::new(cursor)),
            skipped: 0,
            pending: VecDeque::new(),
            scanned_to: cursor,
            head,
        }
    }

    /// The next matching event after the cursor, waiting for one if needed.
    ///
    /// Cancel-safe: if the future is dropped (e.g. another `select!` branch won),
    /// no event is consumed, and the next call returns the same event.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] or [`BusError::CorruptEvent`] if a catch-up read
    /// fails; the cursor stays put, so calling again retries.
    pub async fn next(&mut self) -> Result<Event, BusError> {
        // All state changes happen in the synchronous `step`; the awaits below
        // only wait, so dropping this future at either of them loses nothing.
        loop {
            match self.step()? {
                Step::Delivered(event) => return Ok(event),
                // Catching up through many non-matching pages: let other tasks run.
                Step::Advanced => tokio::task::yield_now().await,
                Step::Idle => {
                    let cursor = self.cursor;
                    // The bus (and so the sender) lives as long as this consumer.
                    if self.head.wait_for(|head| *head > cursor).await.is_err() {
                        return Err(BusError::Closed);
                    }
                }
            }
        }
    }

    /// The next matching event if one is already in the log, without waiting.
    ///
    /// # Errors
    ///
    /// As [`Consumer::next`].
    pub fn try_next(&mut self) -> Result<Option<Event>, BusError> {
        loop {
            match self.step()? {
                Step::Delivered(event) => return Ok(Some(event)),
                Step::Advanced => continue,
                Step::Idle => return Ok(None),
            }
        }
    }

    /// Sequence of the last event delivered or passed over as non-matching; save
    /// it and resume with [`StartAt::After`].
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The cursor as a shared atomic, kept equal to [`Consumer::cursor`]
    /// whenever it moves: on each delivery, and as the consumer passes over
    /// events its filter does not match (also while it waits in
    /// [`Consumer::next`]). Cheap to read from anywhere, so a consumer that
    /// is idle because nothing matches shows no lag.
    ///
    /// Every call returns the same shared value.
    pub fn position(&self) -> Arc<AtomicU64> {
        self.position.clone()
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Events that journal retention removed before this consumer read them.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn step(&mut self) -> Result<Step, BusError> {
        if let Some(event) = self.pending.pop_front() {
            self.move_to(event.sequence);
            return Ok(Step::Delivered(event));
        }
        self.move_to(self.cursor.max(self.scanned_to));
        let page = self.bus.read_page(self.cursor, &self.filter)?;
        let (Some(first), Some(last)) = (page.first_seq, page.last_seq) else {
            return Ok(Step::Idle);
        };
        if first > self.cursor + 1 {
            self.report_loss(self.cursor + 1, first - 1);
        }
        for (sequence, error) in &page.corrupt {
            self.report_corrupt(*sequence, error);
        }
        self.pending = page.events.into();
        self.scanned_to = last;
        Ok(Step::Advanced)
    }

    /// Moves the cursor, and its shared [`Consumer::position`] with it.
    fn move_to(&mut self, cursor: u64) {
        if cursor != self.cursor {
            self.cursor = cursor;
            self.position.store(cursor, Ordering::Release);
        }
    }

    /// Counts an undecodable row as lost and announces it once: the cursor is
    /// already past it, so this consumer never reads it again.
    fn report_corrupt(&mut self, sequence: u64, error: &str) {
        self.skipped += 1;
        tracing::warn!(consumer = %self.name, sequence, error, "consumer skipped an unreadable journal row");
        let data = serde_json::json!({
            "consumer": self.name,
            "reason": "corrupt",
            "sequence": sequence,
            "error": error,
        });
        self.announce(data);
    }

    /// Counts events `from..=to` as lost, and says so in the log and in an event
    /// ([`SKIPPED_TYPE`]) so every other reader learns of it too.
    fn report_loss(&mut self, from: u64, to: u64) {
        let lost = to - from + 1;
        self.skipped += lost;
        tracing::warn!(
            consumer = %self.name,
            lost,
            from,
            to,
            "consumer fell behind journal retention; events were pruned before it read them"
        );
        let data = serde_json::json!({
            "consumer": self.name,
            "reason": "retention",
            "lost": lost,
            "from": from,
            "to": to,
        });
        self.announce(data);
    }

    fn announce(&self, data: serde_json::Value) {
        let event =
            NewEvent::new(SKIPPED_SOURCE, SKIPPED_TYPE, data).with_subject(self.name.clone());
        if let Err(error) = self.bus.publish(event) {
            tracing::warn!(consumer = %self.name, %error, "could not publish the skipped-events notice");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{BusConfig, NewEvent};
    use serde_json::json;
    use std::time::Duration;

    /// Generous: only there so a broken wake-up fails the test instead of hanging it.
    const HANG: Duration = Duration::from_secs(10);

    fn ev(ty: &str, n: u64) -> NewEvent {
        NewEvent::new("host/test", ty, json!({ "n": n }))
    }

    fn small_ring(ring_capacity: usize, max_journal_events: u64) -> BusConfig {
        BusConfig {
            ring_capacity,
            max_journal_events,
            ..BusConfig::default()
        }
    }

    fn drain(consumer: &mut Consumer) -> Vec<u64> {
        std::iter::from_fn(|| consumer.try_next().unwrap())
            .map(|e| e.sequence)
            .collect()
    }

    #[test]
    fn a_consumer_can_move_to_another_task() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<Consumer>();
    }

    #[test]
    fn consumer_from_the_beginning_reads_every_event_in_order() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        for n in 0..5 {
            bus.publish(ev("a", n)).unwrap();
        }
        let mut c = bus.consumer("reader", Vec::new(), StartAt::Beginning);
        assert_eq!(c.name(), "reader");
        assert_eq!(drain(&mut c), [1, 2, 3, 4, 5]);
        assert_eq!(c.cursor(), 5);
        assert_eq!(c.try_next().unwrap(), None);
    }

    /// What the ring's byte bound promises: a consumer left behind by a
    /// flood of large events (output lines) past the bound loses nothing; it
    /// reads what the ring let go from the journal, in order and whole.
    #[test]
    fn a_consumer_behind_a_flood_past_the_byte_bound_reads_every_event_from_the_journal() {
        const MIB: usize = 1024 * 1024;
        let bus = Bus::open_in_memory(BusConfig {
            ring_max_bytes: MIB,
            ..BusConfig::default()
        })
        .unwrap();
        let mut c = bus.consumer("behind", Vec::new(), StartAt::Head);
        let line = "x".repeat(99);
        for n in 0..40u64 {
            // ~64 KiB each: 40 of them are 2.5 MiB against a 1 MiB ring.
            let lines = vec![format!("{n} {line}"); 640];
            bus.publish(NewEvent::new(
                "host/supervisor",
                "process.output",
                json!({ "lines": lines }),
            ))
            .unwrap();
        }
        let got: Vec<_> = std::iter::from_fn(|| c.try_next().unwrap()).collect();
        assert_eq!(got.len(), 40);
        for (n, e) in got.iter().enumerate() {
            assert_eq!(e.sequence, n as u64 + 1);
            let lines = e.data["lines"].as_array().unwrap();
            assert_eq!(lines.len(), 640);
            assert_eq!(lines[639], format!("{n} {line}").as_str());
        }
    }

    #[test]
    fn consumer_at_head_sees_only_later_events() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        bus.publish(ev("a", 0)).unwrap();
        let mut c = bus.consumer("late", Vec::new(), StartAt::Head);
        assert_eq!(c.try_next().unwrap(), None);
        bus.publish(ev("a", 1)).unwrap();
        assert_eq!(drain(&mut c), [2]);
    }

    #[test]
    fn consumer_resumes_after_its_cursor() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        for n in 0..6 {
            bus.publish(ev("a", n)).unwrap();
        }
        let mut first = bus.consumer("p", Vec::new(), StartAt::Beginning);
        first.try_next().unwrap();
        first.try_next().unwrap();
        let saved = first.cursor();
        drop(first);
        let mut resumed = bus.consumer("p", Vec::new(), StartAt::After(saved));
        assert_eq!(drain(&mut resumed), [3, 4, 5, 6]);
    }

    #[test]
    fn consumer_with_a_filter_gets_only_matching_types_and_passes_the_rest() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        for ty in [
            "process.started",
            "plugin.loaded",
            "process.exited",
            "plugin.x",
        ] {
            bus.publish(ev(ty, 0)).unwrap();
        }
        let filter = vec![Pattern::parse("process.*").unwrap()];
        let mut c = bus.consumer("procs", filter, StartAt::Beginning);
        let types: Vec<String> = std::iter::from_fn(|| c.try_next().unwrap())
            .map(|e| e.ty)
            .collect();
        assert_eq!(types, ["process.started", "process.exited"]);
        // The trailing non-matching event was passed over, not left pending.
        assert_eq!(c.cursor(), 4);
        assert_eq!(c.position().load(Ordering::Acquire), 4);
    }

    #[test]
    fn consumer_catches_up_from_the_journal_when_far_behind_the_ring() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open(dir.path(), small_ring(8, 0)).unwrap();
        let mut c = bus.consumer("slow", Vec::new(), StartAt::Beginning);
        let total = 1000;
        let batch = (0..total).map(|n| ev("a", n)).collect();
        bus.publish_all(batch).unwrap();
        let seqs = drain(&mut c);
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
        assert_eq!(c.skipped(), 0);
    }

    #[test]
    fn filtered_catch_up_crosses_many_non_matching_pages() {
        let bus = Bus::open_in_memory(small_ring(4, 0)).unwrap();
        bus.publish_all((0..2000).map(|n| ev("noise", n)).collect())
            .unwrap();
        bus.publish(ev("wanted", 0)).unwrap();
        bus.publish_all((0..10).map(|n| ev("noise", n)).collect())
            .unwrap();
        let mut c = bus.consumer(
            "needle",
            vec![Pattern::parse("wanted").unwrap()],
            StartAt::Beginning,
        );
        assert_eq!(drain(&mut c), [2001]);
        assert_eq!(c.cursor(), 2011);
    }

    #[tokio::test]
    async fn next_waits_and_wakes_when_an_event_is_published() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let mut c = bus.consumer("waiter", Vec::new(), StartAt::Head);
        let waiter = tokio::spawn(async move { tokio::time::timeout(HANG, c.next()).await });
        // Let the waiter reach its await point before publishing.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let published = bus.publish(ev("a", 7)).unwrap();
        let got = waiter
            .await
            .unwrap()
            .expect("consumer was never woken")
            .unwrap();
        assert_eq!(got, published);
    }

    #[tokio::test]
    async fn a_narrow_consumer_waiting_in_next_keeps_its_position_at_the_head() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        bus.publish(ev("noise", 0)).unwrap();
        let filter = vec![Pattern::parse("wanted").unwrap()];
        let mut c = bus.consumer("narrow", filter, StartAt::Head);
        let position = c.position();
        assert_eq!(position.load(Ordering::Acquire), 1);
        let waiter = tokio::spawn(async move { tokio::time::timeout(HANG, c.next()).await });
        // Nothing the consumer wants: it must still pass over all of it.
        bus.publish_all((1..=50).map(|n| ev("noise", n)).collect())
            .unwrap();
        let head = bus.head();
        let deadline = tokio::time::Instant::now() + HANG;
        while position.load(Ordering::Acquire) < head {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the position stayed at {} while the head is {head}",
                position.load(Ordering::Acquire)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(position.load(Ordering::Acquire), head);
        assert!(!waiter.is_finished(), "nothing matching was delivered");
        let wanted = bus.publish(ev("wanted", 0)).unwrap();
        let got = waiter.await.unwrap().expect("never woken").unwrap();
        assert_eq!(got, wanted);
        assert_eq!(position.load(Ordering::Acquire), wanted.sequence);
    }

    #[tokio::test]
    async fn dropping_a_waiting_next_loses_no_event() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let mut c = bus.consumer("select", Vec::new(), StartAt::Head);
        tokio::select! {
            _ = c.next() => panic!("nothing was published yet"),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        let published = bus.publish(ev("a", 1)).unwrap();
        let got = tokio::time::timeout(HANG, c.next()).await.unwrap().unwrap();
        assert_eq!(got, published);
        assert_eq!(
            c.try_next().unwrap(),
            None,
            "the event must come exactly once"
        );
    }

    #[tokio::test]
    async fn dropping_next_in_the_middle_of_a_catch_up_loses_no_event() {
        let bus = Bus::open_in_memory(small_ring(4, 0)).unwrap();
        let early = bus.publish(ev("wanted", 0)).unwrap();
        bus.publish_all((0..1000).map(|n| ev("noise", n)).collect())
            .unwrap();
        let late = bus.publish(ev("wanted", 1)).unwrap();
        let filter = vec![Pattern::parse("wanted").unwrap()];
        let mut c = bus.consumer("select", filter, StartAt::Beginning);
        // `next` is polled first: it reads the first journal page (holding `early`)
        // and yields before delivering; the second branch is then ready, so the
        // `next` future is dropped with a page read but not yet handed out.
        tokio::select! {
            biased;
            _ = c.next() => panic!("next should yield after reading a page"),
            _ = std::future::ready(()) => {}
        }
        assert_eq!(c.cursor(), 0, "nothing was delivered, so the cursor stays");
        let got = tokio::time::timeout(HANG, c.next()).await.unwrap().unwrap();
        assert_eq!(got, early);
        let got = tokio::time::timeout(HANG, c.next()).await.unwrap().unwrap();
        assert_eq!(got, late);
        assert_eq!(c.try_next().unwrap(), None, "each event exactly once");
    }

    #[test]
    fn retention_counts_the_events_a_lagging_consumer_missed() {
        let bus = Bus::open_in_memory(small_ring(2, 10)).unwrap();
        let mut c = bus.consumer("laggard", Vec::new(), StartAt::Beginning);
        for n in 0..100 {
            bus.publish(ev("a", n)).unwrap();
        }
        // Retention ran at head 100 and kept 91..=100; the consumer also reads
        // the notice of its own loss, published as event 101.
        let seqs = drain(&mut c);
        assert_eq!(seqs, (91..=101).collect::<Vec<_>>());
        assert_eq!(c.skipped(), 90);
        let notice = bus
            .query(&crate::bus::EventQuery {
                types: vec![Pattern::parse(SKIPPED_TYPE).unwrap()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(notice.len(), 1);
        assert_eq!(notice[0].subject.as_deref(), Some("laggard"));
        assert_eq!(notice[0].data["lost"], 90);
        assert_eq!(notice[0].data["reason"], "retention");
        assert_eq!(notice[0].data["from"], 1);
        assert_eq!(notice[0].data["to"], 90);
    }

    #[test]
    fn a_consumer_created_after_pruning_starts_at_the_oldest_kept_event() {
        let bus = Bus::open_in_memory(small_ring(2, 10)).unwrap();
        for n in 0..100 {
            bus.publish(ev("a", n)).unwrap();
        }
        let mut c = bus.consumer("newcomer", Vec::new(), StartAt::Beginning);
        assert_eq!(drain(&mut c), (91..=100).collect::<Vec<_>>());
        assert_eq!(c.skipped(), 0);
    }

    #[test]
    fn a_corrupt_row_is_skipped_and_reported_once_without_stalling_the_consumer() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open(dir.path(), small_ring(2, 0)).unwrap();
        bus.publish_all((0..10).map(|n| ev("a", n)).collect())
            .unwrap();
        bus.core()
            .journal
            .lock()
            .connection()
            .execute("UPDATE events SET data = '{broken' WHERE seq = 4", [])
            .unwrap();
        let mut c = bus.consumer("reader", Vec::new(), StartAt::Beginning);
        let seqs = drain(&mut c);
        // 1..=10 without 4, then its own notice about 4 (published as 11).
        assert_eq!(seqs, [1, 2, 3, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(c.skipped(), 1);
        let notice = bus.get(11).unwrap().unwrap();
        assert_eq!(notice.ty, SKIPPED_TYPE);
        assert_eq!(notice.data["reason"], "corrupt");
        assert_eq!(notice.data["sequence"], 4);
        assert_eq!(notice.data["consumer"], "reader");
        assert!(notice.data["error"].as_str().unwrap().contains("JSON"));
        // Reading on reports nothing more: the row was passed once.
        bus.publish(ev("a", 99)).unwrap();
        assert_eq!(drain(&mut c), [12]);
        assert_eq!(c.skipped(), 1);
        // Queries skip the row too, instead of failing on it forever.
        let all = bus.query(&crate::bus::EventQuery::default()).unwrap();
        assert_eq!(all.len(), 11);
        assert!(all.iter().all(|e| e.sequence != 4));
    }

    /// The storm from issue 6: two handlers emitting each other's type. The bus
    /// does not stop it (the runtime does), but it records the chain so that a
    /// depth limit can: every hop is one deeper and points at its cause.
    #[test]
    fn handlers_that_answer_each_other_leave_a_chain_of_growing_depth() {
        let bus = Bus::open_in_memory(small_ring(16, 0)).unwrap();
        let only = |ty| vec![Pattern::parse(ty).unwrap()];
        let mut pinged = bus.consumer("ponger", only("test.ping"), StartAt::Head);
        let mut ponged = bus.consumer("pinger", only("test.pong"), StartAt::Head);
        let first = bus.publish(ev("test.ping", 0)).unwrap();
        let mut last = first.clone();
        for hop in 0..50 {
            let ping = pinged.try_next().unwrap().expect("a ping to answer");
            bus.publish(ev("test.pong", hop).caused_by(&ping)).unwrap();
            let pong = ponged.try_next().unwrap().expect("a pong to answer");
            last = bus.publish(ev("test.ping", hop).caused_by(&pong)).unwrap();
        }
        assert_eq!(last.depth, 100);
        let (mut event, mut hops) = (last, 0);
        // Walk back through the journal: the ring holds only the last 16.
        while let Some(cause) = event.cause {
            let parent = bus.get(cause).unwrap().expect("the cause is in the log");
            assert_eq!(parent.depth + 1, event.depth);
            event = parent;
            hops += 1;
        }
        assert_eq!(
            (hops, event.sequence, event.depth),
            (100, first.sequence, 0)
        );
    }

    #[test]
    fn events_still_in_the_ring_are_not_counted_as_lost() {
        // A ring larger than the journal holds events retention already pruned.
        let bus = Bus::open_in_memory(small_ring(50, 10)).unwrap();
        let mut c = bus.consumer("laggard", Vec::new(), StartAt::Beginning);
        for n in 0..100 {
            bus.publish(ev("a", n)).unwrap();
        }
        let seqs = drain(&mut c);
        assert_eq!(seqs, (51..=101).collect::<Vec<_>>());
        assert_eq!(c.skipped(), 50);
    }
}
