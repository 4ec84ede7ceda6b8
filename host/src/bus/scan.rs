//! Running an [`EventQuery`] within its bounds, the same way over the ring and
//! over the journal.
//!
//! A query first becomes a *window*: the inclusive range of sequences that can
//! match, from `after_sequence`, retention, and the time bounds (times never
//! decrease along the log, so `since`/`until` are sequence bounds found by
//! binary search). `max_scan` then cuts the window to that many sequences at the
//! end the query reads from, so the work is bounded whatever the filters (a type
//! pattern with a leading wildcard cannot use an index). [`Scan`] accumulates
//! matches under `limit` and `max_bytes` and says whether the answer is complete
//! and where forward paging continues.

use crate::bus::event::Event;
use crate::bus::query::{EventQuery, QueryPage};
use crate::bus::ring::Ring;

/// The sequences a query examines (inclusive; empty when `lo > hi`) and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScanPlan {
    pub(crate) lo: u64,
    pub(crate) hi: u64,
    /// Newest first (a query without `after_sequence` wants the last matches).
    pub(crate) backward: bool,
    /// `max_scan` cut the window: matches may exist beyond the plan.
    pub(crate) cut: bool,
}

impl ScanPlan {
    /// The plan for `q` over the window `lo..=hi`.
    pub(crate) fn new(q: &EventQuery, lo: u64, hi: u64) -> ScanPlan {
        let backward = q.after_sequence.is_none();
        let mut plan = ScanPlan {
            lo,
            hi,
            backward,
            cut: false,
        };
        if lo > hi {
            return plan;
        }
        let width = hi - lo + 1;
        if let Some(max) = q.max_scan.map(|m| m as u64).filter(|m| *m < width) {
            plan.cut = true;
            if backward {
                plan.lo = hi + 1 - max;
            } else {
                plan.hi = lo + max - 1;
            }
        }
        plan
    }

    /// Whether no sequence is to be examined.
    pub(crate) fn is_empty(&self) -> bool {
        self.lo > self.hi
    }
}

/// Why a scan stopped before the end of its plan, and at which sequence.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// `limit` matches found; the last one is at this sequence.
    Limit(u64),
    /// The match at this sequence would have passed `max_bytes`.
    Bytes(u64),
}

/// The matches of one query so far.
pub(crate) struct Scan<'q> {
    q: &'q EventQuery,
    plan: ScanPlan,
    limit: usize,
    found: Vec<Event>,
    bytes: usize,
    stop: Option<Stop>,
}

impl<'q> Scan<'q> {
    pub(crate) fn new(q: &'q EventQuery, plan: ScanPlan) -> Scan<'q> {
        let limit = q.limit.unwrap_or(usize::MAX);
        Scan {
            q,
            plan,
            limit,
            found: Vec::new(),
            bytes: 0,
            stop: (limit == 0).then_some(Stop::Limit(plan.lo.saturating_sub(1))),
        }
    }

    /// Whether the scan wants no more events.
    pub(crate) fn done(&self) -> bool {
        self.stop.is_some()
    }

    /// Considers the next event in scan order; `false` once the scan is done.
    pub(crate) fn offer(&mut self, event: &Event, size: usize) -> bool {
        if self.admit(event, size) {
            self.take(event.clone(), size);
        }
        !self.done()
    }

    /// As [`Scan::offer`], for an event the caller owns.
    pub(crate) fn offer_owned(&mut self, event: Event, size: usize) -> bool {
        if self.admit(&event, size) {
            self.take(event, size);
        }
        !self.done()
    }

    fn admit(&mut self, event: &Event, size: usize) -> bool {
        if self.done() || !self.q.matches(event) {
            return false;
        }
        // The first match is always taken, so paging by bytes always progresses.
        let over = self
            .q
            .max_bytes
            .is_some_and(|max| self.bytes.saturating_add(size) > max);
        if over && !self.found.is_empty() {
            self.stop = Some(Stop::Bytes(event.sequence));
            return false;
        }
        true
    }

    fn take(&mut self, event: Event, size: usize) {
        self.bytes = self.bytes.saturating_add(size);
        let sequence = event.sequence;
        self.found.push(event);
        if self.found.len() >= self.limit {
            self.stop = Some(Stop::Limit(sequence));
        }
    }

    /// The answer, oldest first.
    pub(crate) fn finish(mut self) -> QueryPage {
        let plan = self.plan;
        if plan.backward {
            self.found.reverse();
        }
        let complete = match self.stop {
            Some(Stop::Bytes(_)) => false,
            Some(Stop::Limit(_)) => true,
            None => !plan.cut,
        };
        let next_after = if plan.backward {
            // Paging forward continues after the newest sequence the window reached.
            plan.hi
        } else {
            match self.stop {
                Some(Stop::Limit(at)) => at,
                Some(Stop::Bytes(at)) => at - 1,
                None => plan.hi.max(plan.lo.saturating_sub(1)),
            }
        };
        QueryPage {
            events: self.found,
            complete,
            next_after: Some(next_after),
        }
    }
}

/// Answers `q` from the ring, or `None` when events outside it could matter.
///
/// `journal_first` is the oldest sequence still in the journal; a ring that
/// starts at or before it holds the whole retained log.
pub(crate) fn from_ring(q: &EventQuery, ring: &Ring, journal_first: u64) -> Option<QueryPage> {
    let (ring_first, head) = (ring.first_seq()?, ring.last_seq()?);
    let holds_all = ring_first <= journal_first;
    // The first sequence at or after `t`, when the ring can tell.
    let bound = |t| ring.seq_at_time(t).or(holds_all.then_some(ring_first));
    let mut lo = ring_first
        .min(journal_first)
        .max(q.after_sequence.map_or(0, |a| a.saturating_add(1)));
    if let Some(since) = q.since {
        match bound(since) {
            Some(seq) => lo = lo.max(seq),
            // The bound is at or before the ring's first event, so at or below `lo`.
            None if lo >= ring_first => {}
            None => return None,
        }
    }
    let mut hi = head;
    if let Some(until) = q.until {
        hi = hi.min(bound(until)?.saturating_sub(1));
    }
    let plan = ScanPlan::new(q, lo, hi);
    let mut scan = Scan::new(q, plan);
    if plan.is_empty() || scan.done() {
        return Some(scan.finish());
    }
    // Below `ring_first` are journal events, unless the ring holds everything.
    let needs_journal = plan.lo < ring_first && !holds_all;
    if plan.backward {
        for (event, size) in ring.range(plan.lo, plan.hi).rev() {
            if !scan.offer(event, size) {
                break;
            }
        }
        if needs_journal && !scan.done() {
            return None;
        }
    } else {
        if needs_journal {
            return None;
        }
        for (event, size) in ring.range(plan.lo, plan.hi) {
            if !scan.offer(event, size) {
                break;
            }
        }
    }
    Some(scan.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::event::NewEvent;
    use crate::bus::pattern::Pattern;
    use chrono::Utc;
    use serde_json::json;

    fn ev(seq: u64, ty: &str) -> Event {
        NewEvent::new("s", ty, json!(null)).into_event(seq, Utc::now(), seq.to_string())
    }

    fn ring_of(types: &[&str], capacity: usize) -> Ring {
        let mut ring = Ring::new(capacity, usize::MAX);
        for (i, ty) in types.iter().enumerate() {
            ring.push(ev(i as u64 + 1, ty), 10);
        }
        ring
    }

    fn seqs(page: Option<QueryPage>) -> Vec<u64> {
        page.expect("the ring should answer")
            .events
            .iter()
            .map(|e| e.sequence)
            .collect()
    }

    #[test]
    fn a_ring_that_holds_the_whole_journal_answers_any_query() {
        let ring = ring_of(&["a.x", "b.x", "a.y"], 10);
        let q = EventQuery {
            types: vec![Pattern::parse("a.*").unwrap()],
            ..Default::default()
        };
        assert_eq!(seqs(from_ring(&q, &ring, 1)), [1, 3]);
    }

    #[test]
    fn a_partial_ring_answers_tail_queries_only_when_it_finds_enough() {
        let ring = ring_of(&["a", "b", "a", "b", "a"], 3); // holds 3..=5
        let tail = |limit| EventQuery {
            types: vec![Pattern::parse("a").unwrap()],
            limit: Some(limit),
            ..Default::default()
        };
        assert_eq!(seqs(from_ring(&tail(2), &ring, 1)), [3, 5]);
        assert!(from_ring(&tail(3), &ring, 1).is_none());
    }

    #[test]
    fn a_partial_ring_answers_forward_pages_only_from_inside_it() {
        let ring = ring_of(&["a", "b", "a", "b", "a"], 3); // holds 3..=5
        let after = |after| EventQuery {
            after_sequence: Some(after),
            ..Default::default()
        };
        assert_eq!(seqs(from_ring(&after(2), &ring, 1)), [3, 4, 5]);
        assert_eq!(seqs(from_ring(&after(4), &ring, 1)), [5]);
        assert!(from_ring(&after(1), &ring, 1).is_none());
        // Retention removed 1..=3 from the journal: nothing older can exist.
        assert_eq!(seqs(from_ring(&after(0), &ring, 4)), [3, 4, 5]);
    }

    #[test]
    fn max_scan_cuts_the_window_at_the_end_the_query_reads_from() {
        let q = |after, max_scan| EventQuery {
            after_sequence: after,
            max_scan: Some(max_scan),
            ..Default::default()
        };
        let forward = ScanPlan::new(&q(Some(0), 3), 1, 10);
        assert_eq!((forward.lo, forward.hi, forward.cut), (1, 3, true));
        let backward = ScanPlan::new(&q(None, 3), 1, 10);
        assert_eq!((backward.lo, backward.hi, backward.cut), (8, 10, true));
        assert!(!ScanPlan::new(&q(None, 10), 1, 10).cut);
        assert!(ScanPlan::new(&q(None, 0), 1, 10).is_empty());
    }

    #[test]
    fn a_bounded_page_says_it_is_incomplete_and_where_to_continue() {
        let ring = ring_of(&["a", "b", "b", "b", "a", "a"], 10);
        let q = EventQuery {
            types: vec![Pattern::parse("a").unwrap()],
            after_sequence: Some(0),
            max_scan: Some(4),
            ..Default::default()
        };
        let page = from_ring(&q, &ring, 1).unwrap();
        assert_eq!(page.events.len(), 1);
        assert!(!page.complete);
        assert_eq!(page.next_after, Some(4));
        let rest = from_ring(
            &EventQuery {
                after_sequence: page.next_after,
                ..q.clone()
            },
            &ring,
            1,
        )
        .unwrap();
        assert_eq!(
            rest.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [5, 6]
        );
        assert!(rest.complete);
        assert_eq!(rest.next_after, Some(6));
    }

    #[test]
    fn max_bytes_stops_before_the_event_that_would_pass_it_but_takes_the_first() {
        let ring = ring_of(&["a", "a", "a"], 10); // 10 bytes each
        let q = |max_bytes| EventQuery {
            after_sequence: Some(0),
            max_bytes: Some(max_bytes),
            ..Default::default()
        };
        let page = from_ring(&q(25), &ring, 1).unwrap();
        assert_eq!(page.events.len(), 2);
        assert!(!page.complete);
        assert_eq!(page.next_after, Some(2));
        let tiny = from_ring(&q(1), &ring, 1).unwrap();
        assert_eq!(tiny.events.len(), 1, "the first event is always returned");
    }
}
