//! Publishing: validating and serializing on the caller's thread, then handing
//! the batch to the writer thread (`writer`) and, for all but [`Bus::submit`],
//! waiting for its commit.
//!
//! Everything that does not need the sequence happens here, in parallel across
//! publishers: validation, the size limit, JSON serialization, the UUID. The
//! writer only inserts and commits.

use chrono::DateTime;
use tokio::sync::oneshot;

use crate::bus::error::BusError;
use crate::bus::event::{Event, NewEvent, approx_size, new_event_id};
use crate::bus::log::Bus;
use crate::bus::queue::{Batch, Committed, Prepared, Reply};

impl Bus {
    /// Appends one event and returns it with its id, time and sequence.
    ///
    /// The event is in the journal when this returns; waiting consumers are woken.
    /// Blocks the calling thread until the writer has committed it; async code
    /// should prefer [`Bus::publish_async`].
    ///
    /// # Errors
    ///
    /// [`BusError::InvalidEvent`] naming the field if `type` or `source` is blank,
    /// `type` is not a dotted name, `subject` is blank, the cause is inconsistent
    /// or not yet published, or the event is larger than `max_event_bytes`
    /// (field `data`); [`BusError::Journal`] if the commit fails. Either way no
    /// sequence is used up. [`BusError::Closed`] if the writer has stopped.
    pub fn publish(&self, event: NewEvent) -> Result<Event, BusError> {
        let mut events = self.publish_all(vec![event])?;
        // publish_all returns exactly one event per input, so this cannot fail.
        Ok(events
            .pop()
            .expect("publish_all returns one event per input"))
    }

    /// Appends events atomically with consecutive sequences.
    ///
    /// Either every event is valid and committed in one transaction, or none is.
    /// Blocks like [`Bus::publish`].
    ///
    /// # Errors
    ///
    /// As [`Bus::publish`], for the first invalid event.
    pub fn publish_all(&self, events: Vec<NewEvent>) -> Result<Vec<Event>, BusError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (mut batch, copies) = self.prepare(events, true)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        batch.reply = Reply::Blocking(tx);
        self.core().queue.push_blocking(batch)?;
        let committed = rx.recv().map_err(|_| BusError::Closed)??;
        Ok(stamp(copies, committed))
    }

    /// [`Bus::publish`] for async code: awaits the commit instead of blocking.
    ///
    /// If the future is dropped after the event was queued, the event is still
    /// committed (as with [`Bus::submit`]).
    ///
    /// # Errors
    ///
    /// As [`Bus::publish`].
    pub async fn publish_async(&self, event: NewEvent) -> Result<Event, BusError> {
        let mut events = self.publish_all_async(vec![event]).await?;
        Ok(events
            .pop()
            .expect("publish_all_async returns one event per input"))
    }

    /// [`Bus::publish_all`] for async code: awaits the commit instead of blocking.
    ///
    /// # Errors
    ///
    /// As [`Bus::publish`].
    pub async fn publish_all_async(&self, events: Vec<NewEvent>) -> Result<Vec<Event>, BusError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (mut batch, copies) = self.prepare(events, true)?;
        let (tx, rx) = oneshot::channel();
        batch.reply = Reply::Async(tx);
        self.core().queue.push_async(batch).await?;
        let committed = rx.await.map_err(|_| BusError::Closed)??;
        Ok(stamp(copies, committed))
    }

    /// [`Bus::publish_all_async`] for a caller that needs only to know the
    /// events are committed: no copies are kept for it, which for a batch of
    /// thousands (a registration's hits) is most of the cost of preparing it.
    ///
    /// # Errors
    ///
    /// As [`Bus::publish`].
    pub async fn commit_all_async(&self, events: Vec<NewEvent>) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let (mut batch, _) = self.prepare(events, false)?;
        let (tx, rx) = oneshot::channel();
        batch.reply = Reply::Async(tx);
        self.core().queue.push_async(batch).await?;
        rx.await.map_err(|_| BusError::Closed)??;
        Ok(())
    }

    /// Validates events now and queues them for the writer without waiting for
    /// the commit (fire and forget). They are committed atomically, in order
    /// after everything queued before; a commit failure is logged as an error.
    /// [`Bus::flush`] waits for them.
    ///
    /// Returns at once unless the writer's queue is full (about 32 MiB), in
    /// which case it waits for room: back-pressure rather than unbounded memory.
    ///
    /// # Errors
    ///
    /// The validation errors of [`Bus::publish`]; [`BusError::Closed`] if the
    /// writer has stopped.
    pub fn submit(&self, events: Vec<NewEvent>) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let (batch, _) = self.prepare(events, false)?;
        self.core().queue.push_blocking(batch)
    }

    /// Returns once everything queued before it (events and cursor saves) is
    /// committed, or has failed and been logged.
    ///
    /// # Errors
    ///
    /// [`BusError::Journal`] if the commit that carried the flush failed;
    /// [`BusError::Closed`] if the writer has stopped.
    pub fn flush(&self) -> Result<(), BusError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.core()
            .queue
            .push_blocking(Batch::marker(Reply::Blocking(tx)))?;
        rx.recv().map_err(|_| BusError::Closed)?.map(|_| ())
    }

    /// [`Bus::flush`] for async code.
    ///
    /// # Errors
    ///
    /// As [`Bus::flush`].
    pub async fn flush_async(&self) -> Result<(), BusError> {
        let (tx, rx) = oneshot::channel();
        self.core()
            .queue
            .push_async(Batch::marker(Reply::Async(tx)))
            .await?;
        rx.await.map_err(|_| BusError::Closed)?.map(|_| ())
    }

    /// Validates and serializes `events` into a batch (fire and forget until
    /// the caller sets its reply); with `keep`, also returns a copy of each
    /// event for the caller (the prepared one goes to the ring).
    fn prepare(&self, events: Vec<NewEvent>, keep: bool) -> Result<(Batch, Vec<Event>), BusError> {
        let max = self.core().config.max_event_bytes;
        let head = self.head();
        let mut prepared = Vec::with_capacity(events.len());
        let mut copies = Vec::with_capacity(if keep { events.len() } else { 0 });
        for event in events {
            event.validate()?;
            if let Some(cause) = event.cause.filter(|c| *c > head) {
                return Err(BusError::InvalidEvent {
                    field: "causesequence",
                    reason: format!("#{cause} has not been published yet (the head is #{head})"),
                });
            }
            let id = new_event_id();
            let size = approx_size(
                &id,
                &event.source,
                &event.ty,
                event.subject.as_deref(),
                event.data.json().len(),
            );
            if size > max {
                return Err(BusError::InvalidEvent {
                    field: "data",
                    reason: format!(
                        "makes the event {size} bytes (data plus attributes); the limit is {max} bytes (max_event_bytes)"
                    ),
                });
            }
            let event = event.into_event(0, DateTime::UNIX_EPOCH, id);
            if keep {
                copies.push(event.clone());
            }
            prepared.push(Prepared { event, size });
        }
        let batch = Batch {
            events: prepared,
            reply: Reply::Forget,
        };
        Ok((batch, copies))
    }
}

/// The caller's copies of a committed batch, with their sequences and time.
fn stamp(mut events: Vec<Event>, committed: Committed) -> Vec<Event> {
    for (event, seq) in events.iter_mut().zip(committed.first..) {
        event.sequence = seq;
        event.time = committed.time;
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{BusConfig, EventQuery, StartAt};
    use serde_json::json;

    fn ev(ty: &str) -> NewEvent {
        NewEvent::new("host/test", ty, json!({"n": 1}))
    }

    fn invalid_field(result: Result<impl std::fmt::Debug, BusError>) -> &'static str {
        match result {
            Err(BusError::InvalidEvent { field, .. }) => field,
            other => panic!("expected an invalid-event error, got {other:?}"),
        }
    }

    #[test]
    fn publish_assigns_strictly_increasing_sequences() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        assert_eq!(bus.head(), 0);
        let events: Vec<Event> = (0..5).map(|_| bus.publish(ev("a.b")).unwrap()).collect();
        let seqs: Vec<u64> = events.iter().map(|e| e.sequence).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert_eq!(bus.head(), 5);
        for pair in events.windows(2) {
            assert!(pair[0].time <= pair[1].time, "time went backwards");
            assert_ne!(pair[0].id, pair[1].id);
        }
        let e = &events[0];
        assert_eq!(e.specversion.as_str(), "1.0");
        assert_eq!(e.datacontenttype.as_str(), "application/json");
        assert_eq!(uuid::Uuid::parse_str(&e.id).unwrap().get_version_num(), 7);
    }

    #[test]
    fn publish_refuses_a_missing_type_or_source_and_names_the_field() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        assert_eq!(
            invalid_field(bus.publish(NewEvent::new("src", "", json!(null)))),
            "type"
        );
        assert_eq!(
            invalid_field(bus.publish(NewEvent::new("src", "a..b", json!(null)))),
            "type"
        );
        assert_eq!(
            invalid_field(bus.publish(NewEvent::new("  ", "a.b", json!(null)))),
            "source"
        );
        assert_eq!(bus.head(), 0, "a refused event must not use up a sequence");
        assert_eq!(bus.publish(ev("a.b")).unwrap().sequence, 1);
    }

    #[test]
    fn publish_all_appends_consecutive_sequences() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        bus.publish(ev("first")).unwrap();
        let batch = bus.publish_all(vec![ev("a"), ev("b"), ev("c")]).unwrap();
        let seqs: Vec<u64> = batch.iter().map(|e| e.sequence).collect();
        assert_eq!(seqs, [2, 3, 4]);
        assert_eq!(batch[1].ty, "b");
        assert!(bus.publish_all(Vec::new()).unwrap().is_empty());
        assert_eq!(bus.head(), 4);
    }

    #[test]
    fn publish_all_publishes_nothing_if_any_event_is_invalid() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let bad = NewEvent::new("", "a", json!(null));
        assert_eq!(
            invalid_field(bus.publish_all(vec![ev("a"), bad, ev("c")])),
            "source"
        );
        assert_eq!(bus.head(), 0);
        assert!(bus.query(&EventQuery::default()).unwrap().is_empty());
        assert_eq!(bus.stats().total, 0);
    }

    #[test]
    fn retention_prunes_old_events_and_the_counters_follow() {
        let config = BusConfig {
            ring_capacity: 2,
            max_journal_events: 10,
            ..BusConfig::default()
        };
        let bus = Bus::open_in_memory(config).unwrap();
        for _ in 0..55 {
            bus.publish(ev("a")).unwrap();
        }
        let kept = bus.query(&EventQuery::default()).unwrap();
        // Pruned every 10 appends: at 50 everything through 40 went.
        assert_eq!(kept.first().map(|e| e.sequence), Some(41));
        assert_eq!(kept.last().map(|e| e.sequence), Some(55));
        let stats = bus.stats();
        assert_eq!(stats.total, kept.len() as u64);
        assert_eq!(stats.by_type["a"], kept.len() as u64);
        assert_eq!(stats.head, 55);
    }

    #[test]
    fn zero_retention_keeps_every_event() {
        let config = BusConfig {
            ring_capacity: 2,
            max_journal_events: 0,
            ..BusConfig::default()
        };
        let bus = Bus::open_in_memory(config).unwrap();
        for _ in 0..30 {
            bus.publish(ev("a")).unwrap();
        }
        assert_eq!(bus.query(&EventQuery::default()).unwrap().len(), 30);
    }

    #[test]
    fn every_publisher_refuses_an_oversized_event_with_its_size_and_the_limit() {
        let bus = Bus::open_in_memory(BusConfig {
            max_event_bytes: 1000,
            ..BusConfig::default()
        })
        .unwrap();
        let big = || NewEvent::new("host/test", "a.b", json!("x".repeat(5_000)));
        let reason = |r: Result<(), BusError>| match r {
            Err(BusError::InvalidEvent {
                field: "data",
                reason,
            }) => reason,
            other => panic!("expected a data error, got {other:?}"),
        };
        let text = reason(bus.publish(big()).map(|_| ()));
        assert!(text.contains("1000") && text.contains("50"), "{text}");
        reason(bus.publish_all(vec![ev("a"), big()]).map(|_| ()));
        reason(bus.submit(vec![big()]));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        reason(runtime.block_on(bus.publish_async(big())).map(|_| ()));
        bus.flush().unwrap();
        assert_eq!(bus.head(), 0, "nothing was journaled and no sequence used");
        // Just under the limit passes.
        let fits = NewEvent::new("host/test", "a.b", json!("x".repeat(800)));
        assert_eq!(bus.publish(fits).unwrap().sequence, 1);
    }

    #[test]
    fn a_cause_that_was_never_published_is_refused() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let first = bus.publish(ev("a")).unwrap();
        assert_eq!(
            invalid_field(bus.publish(ev("b").with_cause(2, 1))),
            "causesequence"
        );
        let second = bus.publish(ev("b").caused_by(&first)).unwrap();
        assert_eq!((second.cause, second.depth), (Some(1), 1));
        let third = bus.publish(ev("c").caused_by(&second)).unwrap();
        assert_eq!(third.depth, 2);
        let read = bus
            .query(&EventQuery {
                after_sequence: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(read, vec![third]);
    }

    #[test]
    fn submitted_events_are_durable_after_flush_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
            for n in 0..100 {
                bus.submit(vec![ev("a"), ev("b")]).unwrap();
                if n == 50 {
                    bus.flush().unwrap();
                    assert_eq!(bus.head(), 102);
                }
            }
            bus.flush().unwrap();
            assert_eq!(bus.head(), 200);
        }
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        let types: Vec<String> = bus
            .query(&EventQuery::default())
            .unwrap()
            .into_iter()
            .map(|e| e.ty)
            .collect();
        assert_eq!(types.len(), 200);
        assert!(
            types.chunks(2).all(|pair| pair == ["a", "b"]),
            "batches stay whole and ordered"
        );
    }

    #[test]
    fn dropping_the_last_handle_commits_what_was_submitted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
            bus.submit((0..1000).map(|_| ev("a")).collect()).unwrap();
        }
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        assert_eq!(bus.head(), 1000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_publishers_get_their_events_back_committed() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let bus = bus.clone();
                tokio::spawn(async move {
                    let mut seqs = Vec::new();
                    for _ in 0..50 {
                        let batch = bus.publish_all_async(vec![ev("a"), ev("b")]).await.unwrap();
                        assert_eq!(batch[1].sequence, batch[0].sequence + 1);
                        seqs.push(batch[0].sequence);
                    }
                    bus.flush_async().await.unwrap();
                    seqs
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (0..400).map(|i| 1 + 2 * i).collect::<Vec<u64>>());
        let e = bus.publish_async(ev("c")).await.unwrap();
        assert_eq!(bus.get(e.sequence).unwrap(), Some(e));
    }

    #[tokio::test]
    async fn commit_all_async_returns_once_the_batch_is_in_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        let first = bus.publish_async(ev("a")).await.unwrap().sequence;
        bus.commit_all_async(vec![ev("b"), ev("c")]).await.unwrap();
        assert_eq!(bus.head(), first + 2);
        assert_eq!(bus.get(first + 2).unwrap().unwrap().ty, "c");
        let bad = NewEvent::new("host/test", "", json!({}));
        assert!(bus.commit_all_async(vec![ev("d"), bad]).await.is_err());
        assert_eq!(bus.head(), first + 2, "an invalid batch commits nothing");
    }

    /// A by-hand sanity check, not a benchmark with a threshold:
    /// `cargo test --release -- --ignored --nocapture publish_throughput`
    #[test]
    #[ignore = "prints a throughput figure; run by hand in release mode"]
    fn publish_throughput_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        let n = 50_000;
        let data = json!({"pid": 4242, "line": "some output line of moderate length"});
        let start = std::time::Instant::now();
        for i in 0..n {
            let e = NewEvent::new("host/bench", "process.output", data.clone());
            bus.publish(e.with_subject(format!("p{}", i % 16))).unwrap();
        }
        let single = n as f64 / start.elapsed().as_secs_f64();
        let start = std::time::Instant::now();
        for _ in 0..(n / 100) {
            let batch = (0..100)
                .map(|_| NewEvent::new("host/bench", "process.output", data.clone()))
                .collect();
            bus.publish_all(batch).unwrap();
        }
        let batched = n as f64 / start.elapsed().as_secs_f64();
        let mut consumer = bus.consumer("bench", Vec::new(), StartAt::Beginning);
        let start = std::time::Instant::now();
        let mut read = 0u64;
        while consumer.try_next().unwrap().is_some() {
            read += 1;
        }
        let replay = read as f64 / start.elapsed().as_secs_f64();
        println!(
            "publish: {single:.0} events/s one by one, {batched:.0} events/s in batches of 100; \
             consumer replay from the journal: {replay:.0} events/s ({read} events)"
        );
    }
}
