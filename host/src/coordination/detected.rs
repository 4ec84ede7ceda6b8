//! The `dependency.detected` event, written and read in one place.
//!
//! A registration publishes, after its `task.registered`, one
//! `dependency.detected` per rule that found something, with the rule's
//! hits **grouped by what they share**: hits with the same relationship,
//! reason and confidence are one group listing the tasks they depend on.
//!
//! ```json
//! {"task":"t9","rule":"api-contract-rule","count":3,
//!  "groups":[{"relationship":"api-contract","reason":"both tasks touch an API and share: orders",
//!             "confidence":0.6,"depends_on":["t1","t4"]},
//!            {"relationship":"api-contract","reason":"...","confidence":0.45,"depends_on":["t7"]}],
//!  "part":1,"parts":1}
//! ```
//!
//! Why grouped: a rule's reason names what the two tasks share, so a task
//! touching a thousand others has a handful of distinct reasons, not a
//! thousand. One record per hit wrote each reason a thousand times (583 KB
//! of JSON for a dense registration's 4,024 hits, most of its commit time);
//! grouped, the same hits are ~40 KB. Group order is the order each group's
//! first hit was found, and a group's tasks keep the order they were found
//! in.
//!
//! Readers: [`dependencies_in`] flattens an event into [`Dependency`]s, in
//! group order, and still reads the two shapes an older host wrote (one
//! record per hit in `dependencies`; one pair per event), so a journal
//! left by one is read in full.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::SOURCE;
use super::task::{Dependency, Task, tidy_f32};
use crate::bus::{EventData, NewEvent};

/// The events of one registration: `task.registered`, then, for each rule
/// that found something, `dependency.detected` with the rule's hits
/// grouped, all about the new task.
///
/// One event per rule rather than one per pair: a new task touching a
/// thousand others is four events, not four thousand (committing an event
/// costs ~6 µs, which was most of a dense registration). A list that would
/// pass half of `max_event_bytes` is split into `parts` events, numbered
/// by `part` from 1 (a group may continue in the next part), so no hit is
/// lost to the size limit.
pub(crate) fn registration_events(
    task: &Task,
    by: &str,
    found: &[Dependency],
    max_event_bytes: usize,
) -> Vec<NewEvent> {
    let mut events = vec![
        NewEvent::new(
            SOURCE,
            "task.registered",
            serde_json::json!({ "task": task, "by": by }),
        )
        .with_subject(&task.id),
    ];
    let budget = (max_event_bytes / 2).max(1);
    for by_rule in found.chunk_by(|a, b| a.rule == b.rule) {
        let parts = into_parts(groups_of(by_rule), budget);
        let count = parts.len();
        for (k, groups) in parts.into_iter().enumerate() {
            // Written straight to text, with no `Value` tree on the way: half
            // the cost of a dense registration's commit was building maps of
            // every field, only for the journal to write them out as text.
            let detected = Detected {
                task: &task.id,
                rule: &by_rule[0].rule,
                count: groups.iter().map(|g| g.depends_on.len()).sum(),
                groups,
                part: k + 1,
                parts: count,
            };
            let data =
                EventData::serialized(&detected).expect("strings and numbers always serialize");
            events.push(NewEvent::new(SOURCE, "dependency.detected", data).with_subject(&task.id));
        }
    }
    events
}

/// The dependencies one `dependency.detected` lists, flattened in group
/// order; `None` when the data is none of the shapes a host ever wrote.
pub(crate) fn dependencies_in(data: &serde_json::Value) -> Option<Vec<Dependency>> {
    if let Ok(event) = Read::deserialize(data) {
        let Read { task, rule, groups } = event;
        let mut found = Vec::with_capacity(groups.iter().map(|g| g.depends_on.len()).sum());
        for group in groups {
            for depends_on in group.depends_on {
                found.push(Dependency {
                    rule: rule.clone(),
                    task: task.clone(),
                    depends_on,
                    relationship: group.relationship.clone(),
                    reason: group.reason.clone(),
                    confidence: group.confidence,
                });
            }
        }
        return Some(found);
    }
    if let Ok(list) = ReadList::deserialize(data) {
        let (rule, task) = (list.rule, list.task);
        return Some(
            list.dependencies
                .into_iter()
                .map(|hit| Dependency {
                    rule: rule.clone(),
                    task: task.clone(),
                    depends_on: hit.depends_on,
                    relationship: hit.relationship,
                    reason: hit.reason,
                    confidence: hit.confidence,
                })
                .collect(),
        );
    }
    Dependency::deserialize(data).ok().map(|one| vec![one])
}

/// The data of one `dependency.detected`, as written.
#[derive(Serialize)]
struct Detected<'a> {
    task: &'a str,
    rule: &'a str,
    /// Hits in this event (the lengths of the groups' lists, summed).
    count: usize,
    groups: Vec<Group<'a>>,
    part: usize,
    parts: usize,
}

/// Hits of one rule sharing relationship, reason and confidence.
#[derive(Serialize, Clone)]
struct Group<'a> {
    relationship: &'a str,
    reason: &'a str,
    confidence: f64,
    depends_on: Vec<&'a str>,
}

/// A `dependency.detected` as read (`count`, `part` and `parts` are for
/// people and other readers; the lists say it all).
#[derive(Deserialize)]
struct Read {
    task: Arc<str>,
    rule: Arc<str>,
    groups: Vec<ReadGroup>,
}

/// One group as read.
#[derive(Deserialize)]
struct ReadGroup {
    relationship: Arc<str>,
    reason: Arc<str>,
    confidence: f32,
    depends_on: Vec<Arc<str>>,
}

/// The shape of an older host: one record per hit in `dependencies`.
#[derive(Deserialize)]
struct ReadList {
    task: Arc<str>,
    rule: Arc<str>,
    dependencies: Vec<ReadHit>,
}

/// One hit of a [`ReadList`].
#[derive(Deserialize)]
struct ReadHit {
    depends_on: Arc<str>,
    relationship: Arc<str>,
    reason: Arc<str>,
    confidence: f32,
}

/// One rule's hits grouped by relationship, reason and confidence, groups
/// in the order of their first hit.
fn groups_of(found: &[Dependency]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut index: HashMap<(&str, &str, u32), usize> = HashMap::new();
    for d in found {
        let key = (&*d.relationship, &*d.reason, d.confidence.to_bits());
        let at = *index.entry(key).or_insert_with(|| {
            groups.push(Group {
                relationship: &d.relationship,
                reason: &d.reason,
                confidence: tidy_f32(d.confidence),
                depends_on: Vec::new(),
            });
            groups.len() - 1
        });
        groups[at].depends_on.push(&d.depends_on);
    }
    groups
}

/// `groups` cut into parts whose JSON stays within about `budget` bytes; a
/// group too long for what is left of a part continues in the next one.
/// Each part holds at least one hit, so a hit larger than the budget still
/// goes, alone.
fn into_parts(groups: Vec<Group<'_>>, budget: usize) -> Vec<Vec<Group<'_>>> {
    // Field names, punctuation and the confidence: an over-estimate, so a
    // part never passes its budget.
    const GROUP_OVERHEAD: usize = 96;
    const PART_OVERHEAD: usize = 128;
    let mut parts = Vec::new();
    let mut part: Vec<Group<'_>> = Vec::new();
    let mut bytes = PART_OVERHEAD;
    for group in groups {
        let head = GROUP_OVERHEAD + escaped_len(group.relationship) + escaped_len(group.reason);
        let mut open = Group {
            depends_on: Vec::new(),
            ..group.clone()
        };
        for id in group.depends_on {
            let size = escaped_len(id) + 1;
            let mut need = if open.depends_on.is_empty() {
                head + size
            } else {
                size
            };
            let holds_a_hit = !open.depends_on.is_empty() || !part.is_empty();
            if bytes + need > budget && holds_a_hit {
                if !open.depends_on.is_empty() {
                    let rest = Group {
                        depends_on: Vec::new(),
                        ..open.clone()
                    };
                    part.push(std::mem::replace(&mut open, rest));
                }
                parts.push(std::mem::take(&mut part));
                bytes = PART_OVERHEAD;
                need = head + size;
            }
            open.depends_on.push(id);
            bytes += need;
        }
        if !open.depends_on.is_empty() {
            part.push(open);
        }
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

/// Bytes `text` takes as a JSON string at most: a quote or backslash takes
/// two, a control character six (`\u0001`).
fn escaped_len(text: &str) -> usize {
    2 + text.len()
        + text
            .bytes()
            .map(|b| match b {
                b'"' | b'\\' => 1,
                0..0x20 => 5,
                _ => 0,
            })
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::task::example_dependency as dependency;
    use serde_json::json;

    fn task() -> Task {
        Task {
            id: "new".into(),
            repository: "r".into(),
            title: "New".into(),
            description: String::new(),
            keywords: vec![],
            agent: None,
        }
    }

    /// Every dependency the events of a registration list, in order.
    fn read_back(events: &[NewEvent]) -> Vec<Dependency> {
        events
            .iter()
            .filter(|e| e.ty.as_str() == "dependency.detected")
            .flat_map(|e| dependencies_in(&e.data).expect("readable"))
            .collect()
    }

    #[test]
    fn a_registration_is_its_task_then_one_grouped_list_per_rule() {
        let found: Vec<_> = [
            (0, "shares orders"),
            (1, "shares carts"),
            (2, "shares orders"),
        ]
        .into_iter()
        .map(|(i, reason)| dependency("api", i, reason))
        .chain([dependency("db", 7, "shares tables")])
        .collect();
        let events = registration_events(&task(), "test", &found, 1 << 20);
        let types: Vec<&str> = events.iter().map(|e| e.ty.as_str()).collect();
        assert_eq!(
            types,
            [
                "task.registered",
                "dependency.detected",
                "dependency.detected"
            ]
        );
        assert_eq!(
            *events[1].data,
            json!({
                "task": "new", "rule": "api", "count": 3, "part": 1, "parts": 1,
                "groups": [
                    { "relationship": "api-contract", "reason": "shares orders",
                      "confidence": 0.5, "depends_on": ["t0", "t2"] },
                    { "relationship": "api-contract", "reason": "shares carts",
                      "confidence": 0.5, "depends_on": ["t1"] }
                ]
            })
        );
        assert_eq!(events[2].data["groups"][0]["depends_on"], json!(["t7"]));
        assert!(events.iter().all(|e| e.subject.as_deref() == Some("new")));
        // Read back: the same dependencies, grouped hits together.
        let order: Vec<&str> = ["t0", "t2", "t1", "t7"].into();
        let back = read_back(&events);
        assert_eq!(
            back.iter().map(|d| &*d.depends_on).collect::<Vec<_>>(),
            order
        );
        for d in &back {
            let original = found.iter().find(|f| f.depends_on == d.depends_on);
            assert_eq!(Some(d), original);
        }
        // Nothing found: the registration alone.
        assert_eq!(registration_events(&task(), "test", &[], 1 << 20).len(), 1);
    }

    #[test]
    fn hits_differing_in_confidence_or_relationship_are_not_grouped() {
        let mut found = vec![dependency("api", 1, "same"), dependency("api", 2, "same")];
        found.push(Dependency {
            confidence: 0.75,
            ..dependency("api", 3, "same")
        });
        found.push(Dependency {
            relationship: "schema".into(),
            ..dependency("api", 4, "same")
        });
        let events = registration_events(&task(), "test", &found, 1 << 20);
        let groups = events[1].data["groups"].as_array().unwrap().clone();
        assert_eq!(groups.len(), 3, "{groups:#?}");
        assert_eq!(groups[1]["confidence"], 0.75);
        assert_eq!(read_back(&events), found);
    }

    #[test]
    fn a_list_past_half_the_event_limit_is_split_into_numbered_parts_losing_nothing() {
        // Quotes and control characters count at their escaped size; three
        // reasons, so groups both fill parts and continue across them.
        let reasons: Vec<String> = (0..3)
            .map(|r| format!("{r}\"quoted\"\u{1}").repeat(40))
            .collect();
        let found: Vec<_> = (0..3000)
            .map(|i| dependency("api", i, &reasons[(i / 700) % 3]))
            .collect();
        let limit = 16 * 1024;
        let events = registration_events(&task(), "test", &found, limit);
        let lists = &events[1..];
        assert!(lists.len() > 3, "split: {}", lists.len());
        for (k, e) in lists.iter().enumerate() {
            let bytes = e.data.json().len();
            assert!(bytes <= limit / 2, "part {k} is {bytes} bytes");
            assert_eq!(e.data["part"], k + 1);
            assert_eq!(e.data["parts"], lists.len());
            let listed: usize = e.data["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["depends_on"].as_array().unwrap().len())
                .sum();
            assert_eq!(e.data["count"], listed);
        }
        let mut back: Vec<String> = read_back(lists)
            .into_iter()
            .map(|d| d.depends_on.to_string())
            .collect();
        back.sort_by_key(|id| id[1..].parse::<usize>().unwrap());
        let expected: Vec<String> = (0..3000).map(|i| format!("t{i}")).collect();
        assert_eq!(back, expected);
        // One dependency larger than the budget still goes, alone.
        let huge = dependency("api", 1, &"x".repeat(limit));
        let events = registration_events(&task(), "test", std::slice::from_ref(&huge), limit);
        assert_eq!(events.len(), 2);
        assert_eq!(read_back(&events), [huge]);
    }

    #[test]
    fn the_shapes_older_hosts_wrote_read_as_dependencies() {
        let list = json!({
            "task": "b", "rule": "api", "part": 1, "parts": 1,
            "dependencies": [
                { "depends_on": "a", "relationship": "api-contract", "reason": "shares orders", "confidence": 0.5 },
                { "depends_on": "c", "relationship": "api-contract", "reason": "shares carts", "confidence": 0.45 }
            ]
        });
        let found = dependencies_in(&list).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!((&*found[1].rule, &*found[1].task), ("api", "b"));
        assert_eq!((&*found[1].depends_on, found[1].confidence), ("c", 0.45));
        let older = json!({
            "rule": "api", "task": "b", "depends_on": "a",
            "relationship": "api-contract", "reason": "shares orders", "confidence": 0.5
        });
        assert_eq!(dependencies_in(&older).unwrap(), found[..1]);
        assert_eq!(dependencies_in(&json!({ "task": "b" })), None);
        assert_eq!(
            dependencies_in(&json!({ "task": "b", "rule": "r", "groups": [{ "reason": "x" }] })),
            None,
            "a group without its fields is malformed"
        );
    }
}
