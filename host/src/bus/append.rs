//! The append path: validating, sequencing and journaling new events, and
//! retention.
//!
//! Split from `log` because this is the one place that writes: everything here
//! runs under the writer lock in a fixed order (journal commit first, then the
//! ring and counters, then the head), and consumers are woken only after the
//! lock is released.

use std::sync::atomic::Ordering;

use chrono::Utc;

use crate::bus::error::BusError;
use crate::bus::event::{Event, NewEvent};
use crate::bus::log::{Bus, Writer};

impl Bus {
    /// Appends one event and returns it with its id, time and sequence.
    ///
    /// The event is in the journal when this returns; waiting consumers are woken.
    ///
    /// # Errors
    ///
    /// [`BusError::InvalidEvent`] naming the field if `type` or `source` is blank,
    /// `type` is not a dotted name, or `subject` is blank; [`BusError::Journal`] if
    /// the append fails, in which case no sequence is used up.
    pub fn publish(&self, event: NewEvent) -> Result<Event, BusError> {
        let mut events = self.publish_all(vec![event])?;
        // publish_all returns exactly one event per input, so this cannot fail.
        Ok(events
            .pop()
            .expect("publish_all returns one event per input"))
    }

    /// Appends events atomically with consecutive sequences.
    ///
    /// Either every event is valid and appended in one transaction, or none is.
    ///
    /// # Errors
    ///
    /// As [`Bus::publish`], for the first invalid event.
    pub fn publish_all(&self, events: Vec<NewEvent>) -> Result<Vec<Event>, BusError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // Everything that does not need the sequence happens before taking the lock.
        let mut prepared = Vec::with_capacity(events.len());
        for event in events {
            event.validate()?;
            let data = serde_json::to_string(&event.data).map_err(|e| BusError::InvalidEvent {
                field: "data",
                reason: format!("cannot be serialized as JSON: {e}"),
            })?;
            prepared.push((event, uuid::Uuid::now_v7().to_string(), data));
        }

        let shared = &*self.shared;
        let (events, head) = {
            let mut writer = shared.writer.lock();
            let first = shared.head.load(Ordering::Acquire) + 1;
            let now = Utc::now();
            let time = writer.last_time.map_or(now, |last| last.max(now));
            let batch: Vec<(Event, String)> = prepared
                .into_iter()
                .zip(first..)
                .map(|((event, id, data), seq)| (event.into_event(seq, time, id), data))
                .collect();
            writer.journal.append(&batch)?;
            writer.last_time = Some(time);
            let head = first + batch.len() as u64 - 1;
            {
                let mut recent = shared.recent.write();
                // Only the newest `ring_capacity` of a large batch would survive anyway.
                let ring_from = batch.len().saturating_sub(shared.config.ring_capacity);
                if ring_from > 0 {
                    // The batch alone fills the ring; start it afresh so it stays gapless.
                    recent.ring.clear();
                }
                for (i, (event, _)) in batch.iter().enumerate() {
                    recent.stats.record(&event.ty, &event.source, event.time);
                    if i >= ring_from {
                        recent.ring.push(event.clone());
                    }
                }
                shared.head.store(head, Ordering::Release);
            }
            writer.since_prune += batch.len() as u64;
            if let Some(checkpointer) = &mut writer.checkpointer {
                checkpointer.appended(batch.len() as u64);
            }
            self.apply_retention(&mut writer, head);
            (batch.into_iter().map(|(e, _)| e).collect(), head)
        };
        shared.notify.send_if_modified(|current| {
            // Another publisher may have woken consumers for a later head already.
            let newer = head > *current;
            if newer {
                *current = head;
            }
            newer
        });
        Ok(events)
    }

    /// Prunes the journal to `max_journal_events`, every so many appends.
    fn apply_retention(&self, writer: &mut Writer, head: u64) {
        let max = self.shared.config.max_journal_events;
        // Small journals prune more often so they never grow far past their limit.
        if max == 0 || writer.since_prune < max.clamp(1, 1000) {
            return;
        }
        writer.since_prune = 0;
        let Some(cutoff) = head.checked_sub(max).filter(|c| *c > 0) else {
            return;
        };
        match writer.journal.prune_through(cutoff) {
            Ok(pruned) => {
                let mut recent = self.shared.recent.write();
                recent.stats.forget(&pruned);
                recent.journal_first = recent.journal_first.max(cutoff + 1);
            }
            // The publish itself succeeded; retention retries on the next pass.
            Err(error) => tracing::warn!(%error, cutoff, "event journal retention failed"),
        }
    }
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
        assert_eq!(e.specversion, "1.0");
        assert_eq!(e.datacontenttype, "application/json");
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
        };
        let bus = Bus::open_in_memory(config).unwrap();
        for _ in 0..30 {
            bus.publish(ev("a")).unwrap();
        }
        assert_eq!(bus.query(&EventQuery::default()).unwrap().len(), 30);
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
