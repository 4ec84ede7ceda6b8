//! The in-memory tail of the log: the newest events, bounded in count and bytes.
//!
//! Consumers that keep up and queries about recent history are served from here
//! without touching SQLite. The ring only ever receives consecutive sequences
//! (the writer thread appends in order), so an event's position is a subtraction
//! away and lookups need no search. The byte bound exists because a count alone
//! let a plugin emitting 5 MB events grow the host by gigabytes.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use crate::bus::event::Event;

/// A bounded, sequence-ordered window over the newest events.
#[derive(Debug)]
pub(crate) struct Ring {
    /// Each event with its approximate size (`event::approx_size`).
    events: VecDeque<(Event, usize)>,
    capacity: usize,
    max_bytes: usize,
    /// Sum of the sizes held.
    bytes: usize,
}

impl Ring {
    /// An empty ring that keeps at most `capacity` events and `max_bytes`
    /// (approximate) bytes; a capacity of 0 disables it.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        Ring {
            // Cap the preallocation: a huge configured ring should grow as used.
            events: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            max_bytes,
            bytes: 0,
        }
    }

    /// Appends the next event, evicting the oldest while either bound is exceeded.
    /// An event larger than the whole byte bound empties the ring: it cannot be
    /// held, and the ring must stay gapless.
    pub(crate) fn push(&mut self, event: Event, size: usize) {
        self.push_evicting(event, size, &mut Vec::new());
    }

    /// [`Ring::push`], handing what leaves the ring to `evicted` instead of
    /// dropping it (the writer has it freed on another thread).
    pub(crate) fn push_evicting(&mut self, event: Event, size: usize, evicted: &mut Vec<Event>) {
        if self.capacity == 0 {
            evicted.push(event);
            return;
        }
        debug_assert!(
            self.last_seq()
                .is_none_or(|last| last + 1 == event.sequence),
            "ring must receive consecutive sequences"
        );
        if size > self.max_bytes {
            self.clear_into(evicted);
            evicted.push(event);
            return;
        }
        while self.events.len() >= self.capacity || self.bytes + size > self.max_bytes {
            match self.events.pop_front() {
                Some((old, old_size)) => {
                    self.bytes -= old_size;
                    evicted.push(old);
                }
                None => break,
            }
        }
        if self.events.len() == self.events.capacity() {
            // Doubling would overshoot the bound: a ring of 10,000 grew to
            // 16,384 slots (~3 MiB) where 10,000 are ever used.
            let room = (self.events.capacity() * 2).max(4).min(self.capacity);
            self.events.reserve_exact(room - self.events.len());
        }
        self.bytes += size;
        self.events.push_back((event, size));
    }

    /// Empties the ring into `evicted`.
    pub(crate) fn clear_into(&mut self, evicted: &mut Vec<Event>) {
        evicted.extend(self.events.drain(..).map(|(e, _)| e));
        self.bytes = 0;
    }

    /// The most events the ring holds: of a larger group of appends, the writer
    /// pushes only the newest this many.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Approximate bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Sequence of the oldest event held.
    pub(crate) fn first_seq(&self) -> Option<u64> {
        self.events.front().map(|(e, _)| e.sequence)
    }

    /// Sequence of the newest event held.
    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.events.back().map(|(e, _)| e.sequence)
    }

    /// Whether every event after `after` that has been appended is still held.
    pub(crate) fn covers_after(&self, after: u64) -> bool {
        self.first_seq().is_some_and(|first| first <= after + 1)
    }

    /// The event with this sequence, if held.
    pub(crate) fn get(&self, sequence: u64) -> Option<&Event> {
        let first = self.first_seq()?;
        let index = usize::try_from(sequence.checked_sub(first)?).ok()?;
        self.events.get(index).map(|(e, _)| e)
    }

    /// Events with sequence greater than `after`, oldest first. Starts at the
    /// ring's first event when `after` is older than the ring.
    pub(crate) fn iter_after(&self, after: u64) -> impl DoubleEndedIterator<Item = &Event> {
        self.range(after.saturating_add(1), u64::MAX)
            .map(|(e, _)| e)
    }

    /// Events (with sizes) whose sequence is in `from..=to`, oldest first;
    /// the part of that range the ring does not hold is left out.
    pub(crate) fn range(
        &self,
        from: u64,
        to: u64,
    ) -> impl DoubleEndedIterator<Item = (&Event, usize)> {
        let (start, end) = match self.first_seq() {
            Some(first) if from <= to => {
                // Sequences are consecutive, so offsets are distances from the front.
                let offset =
                    |seq: u64| usize::try_from(seq.saturating_sub(first)).unwrap_or(usize::MAX);
                let len = self.events.len();
                (offset(from).min(len), offset(to).saturating_add(1).min(len))
            }
            _ => (0, 0),
        };
        self.events.range(start..end).map(|(e, size)| (e, *size))
    }

    /// All events held, oldest first.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Event> {
        self.events.iter().map(|(e, _)| e)
    }

    /// The first sequence whose time is at or after `t`, when the ring can tell:
    /// its oldest event is earlier than `t`, so (times never decrease along the
    /// log) nothing outside the ring is at or after `t`. The answer may be one
    /// past the newest event. `None` when the boundary could lie before the ring.
    pub(crate) fn seq_at_time(&self, t: DateTime<Utc>) -> Option<u64> {
        let first = self.first_seq()?;
        let (front, _) = self.events.front()?;
        if front.time >= t {
            return None;
        }
        Some(first + self.events.partition_point(|(e, _)| e.time < t) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::event::NewEvent;

    fn ev(seq: u64) -> Event {
        NewEvent::new("s", "t", serde_json::json!(seq)).into_event(seq, Utc::now(), seq.to_string())
    }

    fn filled(capacity: usize, max_bytes: usize, seqs: std::ops::RangeInclusive<u64>) -> Ring {
        let mut ring = Ring::new(capacity, max_bytes);
        for seq in seqs {
            ring.push(ev(seq), 10);
        }
        ring
    }

    #[test]
    fn ring_keeps_only_the_newest_events() {
        let ring = filled(3, usize::MAX, 1..=5);
        assert_eq!(ring.first_seq(), Some(3));
        assert_eq!(ring.last_seq(), Some(5));
        let seqs: Vec<u64> = ring.iter().map(|e| e.sequence).collect();
        assert_eq!(seqs, [3, 4, 5]);
    }

    #[test]
    fn a_full_ring_holds_no_more_slots_than_its_bound() {
        for capacity in [1, 3, 5_000, 10_000] {
            let ring = filled(capacity, usize::MAX, 1..=(capacity as u64 + 7));
            assert_eq!(ring.events.len(), capacity);
            // Doubling from 4,096 would have made 16,384 slots for 10,000.
            assert!(
                ring.events.capacity() < capacity + 64,
                "{capacity}: {}",
                ring.events.capacity()
            );
        }
    }

    /// The default byte bound must only ever bind in a flood: 10,000 events
    /// the size of a resource sample (the most frequent event of a quiet
    /// host), counted at twice their size, all fit, so the count bound is
    /// the one ordinary traffic meets.
    #[test]
    fn the_default_bounds_hold_ten_thousand_ordinary_events() {
        let defaults = crate::bus::BusConfig::default();
        let mut ring = Ring::new(defaults.ring_capacity, defaults.ring_max_bytes);
        let data = serde_json::json!({
            "cpu_percent": 0.0, "disk_read_bytes": 0, "disk_written_bytes": 0,
            "memory_bytes": 1_650_688, "pids": [16789],
        });
        for seq in 1..=defaults.ring_capacity as u64 + 1 {
            let e = NewEvent::new("host/supervisor", "process.resource", data.clone())
                .with_subject("service")
                .into_event(seq, Utc::now(), uuid::Uuid::now_v7().to_string());
            // Twice the measured size: room for events larger than a sample.
            let size = 2 * crate::bus::event::approx_size(
                &e.id,
                &e.source,
                &e.ty,
                e.subject.as_deref(),
                e.data.json().len(),
            );
            ring.push(e, size);
        }
        assert_eq!(ring.first_seq(), Some(2), "held {} bytes", ring.bytes());
    }

    #[test]
    fn the_byte_bound_evicts_the_oldest_events_too() {
        let mut ring = filled(100, 35, 1..=5);
        assert_eq!((ring.first_seq(), ring.bytes()), (Some(3), 30));
        // An event bigger than the whole bound cannot be held: the ring empties.
        ring.push(ev(6), 36);
        assert_eq!((ring.first_seq(), ring.bytes()), (None, 0));
        ring.push(ev(7), 20);
        assert_eq!(ring.first_seq(), Some(7));
    }

    #[test]
    fn iter_after_starts_right_after_the_given_sequence() {
        let ring = filled(10, usize::MAX, 1..=5);
        let seqs: Vec<u64> = ring.iter_after(3).map(|e| e.sequence).collect();
        assert_eq!(seqs, [4, 5]);
        assert_eq!(ring.iter_after(5).count(), 0);
        assert_eq!(ring.iter_after(9).count(), 0);
        assert_eq!(ring.iter_after(0).count(), 5);
    }

    #[test]
    fn range_and_get_clip_to_what_is_held() {
        let ring = filled(3, usize::MAX, 1..=5); // holds 3..=5
        let seqs = |a, b| -> Vec<u64> { ring.range(a, b).map(|(e, _)| e.sequence).collect() };
        assert_eq!(seqs(1, 4), [3, 4]);
        assert_eq!(seqs(4, 99), [4, 5]);
        assert!(seqs(5, 4).is_empty());
        assert_eq!(ring.get(4).map(|e| e.sequence), Some(4));
        assert!(ring.get(2).is_none() && ring.get(6).is_none());
    }

    #[test]
    fn coverage_depends_on_the_oldest_event_held() {
        let mut ring = Ring::new(2, usize::MAX);
        assert!(!ring.covers_after(0));
        for seq in 1..=4 {
            ring.push(ev(seq), 1);
        }
        assert!(ring.covers_after(2));
        assert!(ring.covers_after(4));
        assert!(!ring.covers_after(1));
    }

    #[test]
    fn a_zero_capacity_ring_holds_nothing() {
        let mut ring = Ring::new(0, usize::MAX);
        ring.push(ev(1), 1);
        assert_eq!(ring.first_seq(), None);
        assert!(!ring.covers_after(0));
    }

    #[test]
    fn a_time_bound_is_found_only_when_the_ring_starts_before_it() {
        let t0 = Utc::now();
        let mut ring = Ring::new(10, usize::MAX);
        for seq in 1..=4u64 {
            let mut e = ev(seq);
            e.time = t0 + chrono::Duration::seconds(seq as i64);
            ring.push(e, 1);
        }
        let at = |s: i64| ring.seq_at_time(t0 + chrono::Duration::seconds(s));
        assert_eq!(
            at(1),
            None,
            "event 1 is at the bound: older ones might be too"
        );
        assert_eq!(at(2), Some(2));
        assert_eq!(at(3), Some(3));
        assert_eq!(at(9), Some(5), "one past the newest");
    }
}
