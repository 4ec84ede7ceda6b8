//! Questions about history: [`EventQuery`] and its answer, [`QueryPage`].
//!
//! A query is answered from the in-memory ring when the ring provably holds
//! every event that could match, and from the journal (`sql`, `journal`)
//! otherwise. Both paths share one definition of "matches"
//! ([`EventQuery::matches`]) and one way of running within bounds (`scan`), so
//! the answer does not depend on where it came from.
//!
//! Event times never go backwards along the log (the bus clamps them), which is
//! what lets a time bound become a sequence bound.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bus::event::Event;
use crate::bus::pattern::{Pattern, matches_any};

/// A filter over the log.
///
/// Results are always in ascending sequence order. With `after_sequence`, the
/// answer is the *first* `limit` matches after it (paging forward); without it,
/// the *last* `limit` matches (the newest, still oldest first). `since` is
/// inclusive and `until` exclusive. Every field is optional; the default query
/// returns the whole retained log.
///
/// `max_scan` and `max_bytes` bound the work and the answer's size for callers
/// that must not be made to scan or hold the whole journal (an API serving
/// untrusted clients); [`Bus::query_page`](crate::bus::Bus::query_page) says
/// whether a bound cut the answer short and where to continue.
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
    /// Examine at most this many sequences: the newest ones in the window (or
    /// the first ones after `after_sequence`), matching or not.
    pub max_scan: Option<usize>,
    /// Stop before the event that would take the answer past this many
    /// (approximate) bytes; the first match is always returned.
    pub max_bytes: Option<usize>,
}

/// One bounded answer to an [`EventQuery`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryPage {
    /// The matches, in ascending sequence order.
    pub events: Vec<Event>,
    /// `false` if `max_scan` or `max_bytes` stopped the query before it had
    /// seen every event that could match; `limit` does not count as a bound.
    pub complete: bool,
    /// Pass this as `after_sequence` to continue paging forward: the last
    /// sequence this page covered (for a newest-first query, the newest one).
    pub next_after: Option<u64>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::event::NewEvent;
    use crate::bus::{Bus, BusConfig};
    use serde_json::json;

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

    /// Bounded pages over the fixture, from a ring that holds it all and from a
    /// two-event ring that sends most of them to the journal: same events, same
    /// completeness, same place to continue.
    #[test]
    fn bounded_pages_are_the_same_from_the_ring_and_the_journal() {
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
        publish_fixture(&roomy);
        publish_fixture(&tiny);
        let shape = |p: QueryPage| (seqs(&p.events), p.complete, p.next_after);
        let type_sets: [&[&str]; 3] = [&[], &["process.*"], &["*.loaded"]];
        let mut compared = 0;
        for types in type_sets {
            for after in [None, Some(0), Some(2), Some(8)] {
                for max_scan in [None, Some(0), Some(1), Some(3), Some(20)] {
                    for max_bytes in [None, Some(1), Some(300)] {
                        for limit in [None, Some(2)] {
                            let q = EventQuery {
                                types: types.iter().map(|t| Pattern::parse(t).unwrap()).collect(),
                                after_sequence: after,
                                max_scan,
                                max_bytes,
                                limit,
                                ..Default::default()
                            };
                            let (a, b) =
                                (roomy.query_page(&q).unwrap(), tiny.query_page(&q).unwrap());
                            assert_eq!(shape(a), shape(b), "{q:?}");
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 3 * 4 * 5 * 3 * 2);
        // One answer checked by hand: a leading wildcard over the newest three.
        let q = EventQuery {
            types: vec![Pattern::parse("*.loaded").unwrap()],
            max_scan: Some(3),
            ..Default::default()
        };
        assert_eq!(
            shape(tiny.query_page(&q).unwrap()),
            (vec![7], false, Some(8))
        );
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
}
