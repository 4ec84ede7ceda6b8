// The rule itself, shared by `forgetful-rule` and `grouping-rule`, which
// differ only in the world they are built for (`include!`d after each
// crate's `wit_bindgen::generate!`, so it names that crate's bindings).

use std::cell::RefCell;
use std::collections::HashMap;

use exports::host::plugin::dependency_rule::Guest;
use exports::host::plugin::task_memory::{Guest as MemoryGuest, NumberedTask};
use host::plugin::host::config;
use host::plugin::types::{Dependency, RuleInfo, Task};

thread_local! {
    /// Titles by the host's number.
    static TITLES: RefCell<HashMap<u32, String>> = RefCell::default();
}

struct Forgetful;

/// How many candidates past the end a `flood` answer names.
#[allow(dead_code)]
const FLOOD: u32 = 4_000_000;

fn mode() -> String {
    config("memory").unwrap_or_else(|| "honest".to_string())
}

fn same_title(a: &str, b: &str) -> Option<Dependency> {
    (a == b).then(|| Dependency {
        relationship: "same-title".to_string(),
        reason: format!("both are titled {a:?}"),
        confidence: 0.5,
    })
}

impl Guest for Forgetful {
    fn describe() -> RuleInfo {
        RuleInfo {
            name: "forgetful".to_string(),
            description: "Same title, with a memory that behaves as configured".to_string(),
            keywords: Vec::new(),
        }
    }

    fn check(a: Task, b: Task) -> Option<Dependency> {
        same_title(&a.title, &b.title)
    }

    fn check_batch(task: Task, candidates: Vec<Task>) -> Vec<(u32, Dependency)> {
        candidates
            .iter()
            .enumerate()
            .filter_map(|(i, b)| same_title(&task.title, &b.title).map(|d| (i as u32, d)))
            .collect()
    }
}

impl MemoryGuest for Forgetful {
    fn remember(tasks: Vec<NumberedTask>) {
        if mode() == "forgets" {
            return;
        }
        TITLES.with_borrow_mut(|titles| {
            for t in tasks {
                titles.insert(t.number, t.task.title);
            }
        });
    }

    fn check_remembered(
        task: u32,
        candidates: Vec<u32>,
    ) -> Result<Vec<(u32, Dependency)>, Vec<u32>> {
        let mode = mode();
        if mode == "liar" {
            return Err(vec![u32::MAX]);
        }
        TITLES.with_borrow(|titles| {
            let mut unknown: Vec<u32> = std::iter::once(task)
                .chain(candidates.iter().copied())
                .filter(|n| !titles.contains_key(n))
                .collect();
            unknown.dedup();
            if !unknown.is_empty() {
                return Err(unknown);
            }
            let a = &titles[&task];
            let mut hits: Vec<(u32, Dependency)> = candidates
                .iter()
                .enumerate()
                .filter_map(|(i, n)| same_title(a, &titles[n]).map(|d| (i as u32, d)))
                .collect();
            if mode == "out-of-range" {
                let again = hits.clone();
                hits.extend(again);
                hits.push((candidates.len() as u32, same_title(a, a).unwrap()));
            }
            Ok(hits)
        })
    }
}

/// `check-remembered`'s answer with the hits grouped by their dependency,
/// in the order of each group's first hit (`grouped-memory`, where the
/// world has it): the same hits, so the same misbehaviour per `memory`.
#[allow(dead_code)]
fn grouped_hits(task: u32, candidates: Vec<u32>) -> Result<Vec<(Dependency, Vec<u32>)>, Vec<u32>> {
    let len = candidates.len() as u32;
    let mut groups: Vec<(Dependency, Vec<u32>)> = Vec::new();
    for (i, d) in Forgetful::check_remembered(task, candidates)? {
        match groups.iter_mut().find(|(g, _)| g.reason == d.reason) {
            Some((_, hits)) => hits.push(i),
            None => groups.push((d, vec![i])),
        }
    }
    if mode() == "flood" {
        // Four million candidates past the end, in one more group.
        let past = same_title("flood", "flood").unwrap();
        groups.push((past, (len..len + FLOOD).collect()));
    }
    Ok(groups)
}
