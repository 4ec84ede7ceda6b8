//! The in-memory tail of the log: the last `ring_capacity` events.
//!
//! Consumers that keep up and queries about recent history are served from here
//! without touching SQLite. The ring only ever receives consecutive sequences
//! (appends happen under the writer lock), so an event's position is a subtraction
//! away and lookups need no search.

use std::collections::VecDeque;

use crate::bus::event::Event;

/// A bounded, sequence-ordered window over the newest events.
#[derive(Debug)]
pub(crate) struct Ring {
    events: VecDeque<Event>,
    capacity: usize,
}

impl Ring {
    /// An empty ring that keeps at most `capacity` events (0 disables it).
    pub(crate) fn new(capacity: usize) -> Self {
        Ring {
            // Cap the preallocation: a huge configured ring should grow as used.
            events: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    /// Appends the next event, evicting the oldest when full.
    pub(crate) fn push(&mut self, event: Event) {
        if self.capacity == 0 {
            return;
        }
        debug_assert!(
            self.last_seq()
                .is_none_or(|last| last + 1 == event.sequence),
            "ring must receive consecutive sequences"
        );
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Drops every event held.
    pub(crate) fn clear(&mut self) {
        self.events.clear();
    }

    /// Sequence of the oldest event held.
    pub(crate) fn first_seq(&self) -> Option<u64> {
        self.events.front().map(|e| e.sequence)
    }

    /// Sequence of the newest event held.
    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.events.back().map(|e| e.sequence)
    }

    /// The oldest event held.
    pub(crate) fn front(&self) -> Option<&Event> {
        self.events.front()
    }

    /// Whether every event after `after` that has been appended is still held.
    pub(crate) fn covers_after(&self, after: u64) -> bool {
        self.first_seq().is_some_and(|first| first <= after + 1)
    }

    /// Events with sequence greater than `after`, oldest first. Starts at the
    /// ring's first event when `after` is older than the ring.
    pub(crate) fn iter_after(&self, after: u64) -> impl DoubleEndedIterator<Item = &Event> {
        let skip = match self.first_seq() {
            // Sequences are consecutive, so the offset is the distance from the front.
            Some(first) if after >= first => {
                usize::try_from(after + 1 - first).unwrap_or(usize::MAX)
            }
            _ => 0,
        };
        self.events.iter().skip(skip)
    }

    /// All events held, oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Event> {
        self.events.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::event::NewEvent;
    use chrono::Utc;

    fn ev(seq: u64) -> Event {
        NewEvent::new("s", "t", serde_json::json!(seq)).into_event(seq, Utc::now(), seq.to_string())
    }

    #[test]
    fn ring_keeps_only_the_newest_events() {
        let mut ring = Ring::new(3);
        for seq in 1..=5 {
            ring.push(ev(seq));
        }
        assert_eq!(ring.first_seq(), Some(3));
        assert_eq!(ring.last_seq(), Some(5));
        let seqs: Vec<u64> = ring.iter().map(|e| e.sequence).collect();
        assert_eq!(seqs, [3, 4, 5]);
    }

    #[test]
    fn iter_after_starts_right_after_the_given_sequence() {
        let mut ring = Ring::new(10);
        for seq in 1..=5 {
            ring.push(ev(seq));
        }
        let seqs: Vec<u64> = ring.iter_after(3).map(|e| e.sequence).collect();
        assert_eq!(seqs, [4, 5]);
        assert_eq!(ring.iter_after(5).count(), 0);
        assert_eq!(ring.iter_after(9).count(), 0);
        assert_eq!(ring.iter_after(0).count(), 5);
    }

    #[test]
    fn coverage_depends_on_the_oldest_event_held() {
        let mut ring = Ring::new(2);
        assert!(!ring.covers_after(0));
        for seq in 1..=4 {
            ring.push(ev(seq));
        }
        assert!(ring.covers_after(2));
        assert!(ring.covers_after(4));
        assert!(!ring.covers_after(1));
    }

    #[test]
    fn a_zero_capacity_ring_holds_nothing() {
        let mut ring = Ring::new(0);
        ring.push(ev(1));
        assert_eq!(ring.first_seq(), None);
        assert!(!ring.covers_after(0));
    }
}
