//! Questions about history: [`EventQuery`] and the two ways of answering it.
//!
//! A query is answered from the in-memory ring (here) when the ring provably holds
//! every event that could match, and from the journal (`sql`, `journal`)
//! otherwise. Both paths share one definition of "matches"
//! ([`EventQuery::matches`]) and one ordering rule, so the answer does not depend
//! on where it came from.
//!
//! Event times never go backwards along the log (the bus clamps them), which is
//! what lets a time bound prove that older events cannot match.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bus::event::Event;
use crate::bus::pattern::{Pattern, matches_any};
use crate::bus::ring::Ring;

/// A filter over the log.
///
/// Results are always in ascending sequence order. With `after_sequence`, the
/// answer is the *first* `limit` matches after it (paging forward); without it,
/// the *last* `limit` matches (the newest, still oldest first). `since` is
/// inclusive and `until` exclusive. Every field is optional; the default query
/// returns the whole retained log.
///
/// Example (JSON): `{"types": ["process.*"], "subject": "web", "limit": 50}`
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventQuery {
    /// Type patterns; an event matches if any matches. Empty means every type.
    pub types: Vec<Pattern>,
    /// Only events with exactly this subject.
    pub subject: Option<String>,
    /// Only events with exactly this source.
    pub source: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events strictly before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only events with a greater sequence; also switches to "first `limit`".
    pub after_sequence: Option<u64>,
    /// At most this many events.
    pub limit: Option<usize>,
}

impl EventQuery {
    /// Whether `event` passes every filter (ignores `limit`).
    pub fn matches(&self, event: &Event) -> bool {
        self.after_sequence
            .is_none_or(|after| event.sequence > after)
            && self.since.is_none_or(|since| event.time >= since)
            && self.until.is_none_or(|until| event.time < until)
            && self
                .subject
                .as_ref()
                .is_none_or(|s| event.subject.as_ref() == Some(s))
            && self.source.as_ref().is_none_or(|s| &event.source == s)
            && matches_any(&self.types, &event.ty)
    }
}

/// Answers `q` from the ring, or `None` when events outside the ring could match.
///
/// `journal_first` is the oldest sequence still in the journal; a ring that starts
/// at or before it holds the whole retained log.
pub(crate) fn from_ring(q: &EventQuery, ring: &Ring, journal_first: u64) -> Option<Vec<Event>> {
    let limit = q.limit.unwrap_or(usize::MAX);
    if limit == 0 {
        return Some(Vec::new());
    }
    let holds_all = ring.first_seq().is_some_and(|first| first <= journal_first);
    // Times are monotonic, so if the ring's oldest event is before `since`, every
    // event outside the ring is too.
    let since_proves_it = match (q.since, ring.front()) {
        (Some(since), Some(front)) => front.time < since,
        _ => false,
    };

    let mut found = Vec::new();
    match q.after_sequence {
        Some(after) => {
            if !(ring.covers_after(after) || holds_all || since_proves_it) {
                return None;
            }
            for e in ring.iter_after(after) {
                if q.until.is_some_and(|until| e.time >= until) {
                    break;
                }
                if q.matches(e) {
                    found.push(e.clone());
                    if found.len() == limit {
                        break;
                    }
                }
            }
        }
        None => {
            let mut complete = holds_all;
            for e in ring.iter().rev() {
                if q.since.is_some_and(|since| e.time < since) {
                    complete = true;
                    break;
                }
                if q.matches(e) {
                    found.push(e.clone());
                    if found.len() == limit {
                        complete = true;
                        break;
                    }
                }
            }
            if !complete {
                return None;
            }
            found.reverse();
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::event::NewEvent;
    use crate::bus::{Bus, BusConfig};
    use serde_json::json;

    fn ev(seq: u64, ty: &str) -> Event {
        NewEvent::new("s", ty, json!(null)).into_event(seq, Utc::now(), seq.to_string())
    }

    fn ring_of(types: &[&str], capacity: usize) -> Ring {
        let mut ring = Ring::new(capacity);
        for (i, ty) in types.iter().enumerate() {
            ring.push(ev(i as u64 + 1, ty));
        }
        ring
    }

    fn seqs(events: &[Event]) -> Vec<u64> {
        events.iter().map(|e| e.sequence).collect()
    }

    /// The fixture log, `(type, source, subject)` for sequences 1..=8. Pauses
    /// after 3 and 6 give `since`/`until` distinct times to cut at.
    const FIXTURE: [(&str, &str, Option<&str>); 8] = [
        ("process.started", "sup", Some("web")),
        ("process.exited", "sup", Some("web")),
        ("plugin.loaded", "plugins", None),
        ("process.started", "sup", Some("db")),
        ("process.output.line", "sup", Some("web")),
        ("process.exited", "sup", Some("db")),
        ("plugin.loaded", "plugins", None),
        ("process.started", "sup", Some("web")),
    ];

    /// Publishes the fixture into `bus` and returns the published events.
    fn publish_fixture(bus: &Bus) -> Vec<Event> {
        let mut out = Vec::new();
        for (i, (ty, source, subject)) in FIXTURE.iter().enumerate() {
            if i == 3 || i == 6 {
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
            let mut e = NewEvent::new(*source, *ty, json!({ "i": i }));
            if let Some(s) = subject {
                e = e.with_subject(*s);
            }
            out.push(bus.publish(e).unwrap());
        }
        out
    }

    /// Every query in the table, against a bus that answers from its ring and one
    /// whose two-event ring forces the journal; both must agree with the table.
    #[test]
    fn bus_queries_give_the_same_answers_from_the_ring_and_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let roomy = Bus::open_in_memory(BusConfig::default()).unwrap();
        let tiny = Bus::open(
            dir.path(),
            BusConfig {
                ring_capacity: 2,
                ..BusConfig::default()
            },
        )
        .unwrap();
        for (path, bus) in [("ring", &roomy), ("journal", &tiny)] {
            let published = publish_fixture(bus);
            for (name, q, expected) in query_table(published[3].time, published[6].time) {
                assert_eq!(seqs(&bus.query(&q).unwrap()), expected, "{name} ({path})");
            }
        }
    }

    /// Queries over the fixture and their answers; `t4`/`t7` are the times of events 4 and 7.
    fn query_table(
        t4: DateTime<Utc>,
        t7: DateTime<Utc>,
    ) -> Vec<(&'static str, EventQuery, Vec<u64>)> {
        let pats = |ps: &[&str]| ps.iter().map(|p| Pattern::parse(p).unwrap()).collect();
        let table: Vec<(&str, EventQuery, Vec<u64>)> = vec![
            ("everything", EventQuery::default(), (1..=8).collect()),
            (
                "process.*",
                EventQuery {
                    types: pats(&["process.*"]),
                    ..Default::default()
                },
                vec![1, 2, 4, 6, 8],
            ),
            (
                "process.>",
                EventQuery {
                    types: pats(&["process.>"]),
                    ..Default::default()
                },
                vec![1, 2, 4, 5, 6, 8],
            ),
            (
                "two literals",
                EventQuery {
                    types: pats(&["plugin.loaded", "process.exited"]),
                    ..Default::default()
                },
                vec![2, 3, 6, 7],
            ),
            (
                "leading wildcard",
                EventQuery {
                    types: pats(&["*.loaded"]),
                    ..Default::default()
                },
                vec![3, 7],
            ),
            (
                "subject",
                EventQuery {
                    subject: Some("web".into()),
                    ..Default::default()
                },
                vec![1, 2, 5, 8],
            ),
            (
                "source",
                EventQuery {
                    source: Some("plugins".into()),
                    ..Default::default()
                },
                vec![3, 7],
            ),
            (
                "after",
                EventQuery {
                    after_sequence: Some(3),
                    ..Default::default()
                },
                vec![4, 5, 6, 7, 8],
            ),
            (
                "first two after",
                EventQuery {
                    after_sequence: Some(3),
                    limit: Some(2),
                    ..Default::default()
                },
                vec![4, 5],
            ),
            (
                "last three",
                EventQuery {
                    limit: Some(3),
                    ..Default::default()
                },
                vec![6, 7, 8],
            ),
            (
                "last two of a type",
                EventQuery {
                    types: pats(&["process.*"]),
                    limit: Some(2),
                    ..Default::default()
                },
                vec![6, 8],
            ),
            (
                "first two of a type after",
                EventQuery {
                    types: pats(&["process.*"]),
                    after_sequence: Some(1),
                    limit: Some(2),
                    ..Default::default()
                },
                vec![2, 4],
            ),
            (
                "since",
                EventQuery {
                    since: Some(t4),
                    ..Default::default()
                },
                vec![4, 5, 6, 7, 8],
            ),
            (
                "until",
                EventQuery {
                    until: Some(t7),
                    ..Default::default()
                },
                vec![1, 2, 3, 4, 5, 6],
            ),
            (
                "window",
                EventQuery {
                    since: Some(t4),
                    until: Some(t7),
                    ..Default::default()
                },
                vec![4, 5, 6],
            ),
            (
                "window after",
                EventQuery {
                    since: Some(t4),
                    until: Some(t7),
                    after_sequence: Some(4),
                    ..Default::default()
                },
                vec![5, 6],
            ),
            (
                "subject and type",
                EventQuery {
                    subject: Some("db".into()),
                    types: pats(&["process.exited"]),
                    ..Default::default()
                },
                vec![6],
            ),
            (
                "limit zero",
                EventQuery {
                    limit: Some(0),
                    ..Default::default()
                },
                vec![],
            ),
            (
                "nothing after head",
                EventQuery {
                    after_sequence: Some(8),
                    ..Default::default()
                },
                vec![],
            ),
        ];
        table
    }

    #[test]
    fn events_read_back_from_the_journal_equal_what_publish_returned() {
        let bus = Bus::open_in_memory(BusConfig {
            ring_capacity: 0,
            ..BusConfig::default()
        })
        .unwrap();
        let published = publish_fixture(&bus);
        assert_eq!(bus.query(&EventQuery::default()).unwrap(), published);
    }

    #[test]
    fn query_deserializes_with_defaults_and_refuses_unknown_keys() {
        let q: EventQuery = serde_json::from_str(r#"{"types":["a.*"],"limit":5}"#).unwrap();
        assert_eq!(q.types, vec![Pattern::parse("a.*").unwrap()]);
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.subject, None);
        assert!(serde_json::from_str::<EventQuery>(r#"{"typo":1}"#).is_err());
        assert!(serde_json::from_str::<EventQuery>(r#"{"types":["a..b"]}"#).is_err());
    }

    #[test]
    fn a_ring_that_holds_the_whole_journal_answers_any_query() {
        let ring = ring_of(&["a.x", "b.x", "a.y"], 10);
        let q = EventQuery {
            types: vec![Pattern::parse("a.*").unwrap()],
            ..Default::default()
        };
        assert_eq!(seqs(&from_ring(&q, &ring, 1).unwrap()), [1, 3]);
    }

    #[test]
    fn a_partial_ring_answers_tail_queries_only_when_it_finds_enough() {
        let ring = ring_of(&["a", "b", "a", "b", "a"], 3); // holds 3..=5
        let tail = |limit| EventQuery {
            types: vec![Pattern::parse("a").unwrap()],
            limit: Some(limit),
            ..Default::default()
        };
        assert_eq!(seqs(&from_ring(&tail(2), &ring, 1).unwrap()), [3, 5]);
        assert!(from_ring(&tail(3), &ring, 1).is_none());
    }

    #[test]
    fn a_partial_ring_answers_forward_pages_only_from_inside_it() {
        let ring = ring_of(&["a", "b", "a", "b", "a"], 3); // holds 3..=5
        let after = |after| EventQuery {
            after_sequence: Some(after),
            ..Default::default()
        };
        assert_eq!(seqs(&from_ring(&after(2), &ring, 1).unwrap()), [3, 4, 5]);
        assert_eq!(seqs(&from_ring(&after(4), &ring, 1).unwrap()), [5]);
        assert!(from_ring(&after(1), &ring, 1).is_none());
        // Retention removed 1..=3 from the journal: nothing older can exist.
        assert_eq!(seqs(&from_ring(&after(0), &ring, 4).unwrap()), [3, 4, 5]);
    }
}
