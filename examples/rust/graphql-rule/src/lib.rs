//! `graphql-rule`: seed 003's custom-rule example (`GraphQL_Schema`) as a
//! plugin. Two tasks depend when one changes a GraphQL schema and the other
//! works on resolvers: "GraphQL schema and resolver must be coordinated".
//!
//! Unlike the seed, which accepted "schema" in one task and "resolver" in
//! either, the two words must come from different tasks, and shared terms
//! (`order`, `inventory`) raise the confidence.
//!
//! Built against `host:plugin@0.2.0`: `check-batch` answers for every
//! candidate in one call. A rule built against 0.1 (`wit/v0.1`) exports
//! only `check`, and the host asks it pair by pair.

use std::collections::BTreeSet;

use exports::host::plugin::dependency_rule::Guest;
use host::plugin::types::{Dependency, RuleInfo, Task};

wit_bindgen::generate!({ world: "dependency-rule-plugin", path: "../../../wit" });

/// The host pairs only tasks that both mention one of these (whole words).
const KEYWORDS: &[&str] = &[
    "graphql", "schema", "resolver", "resolvers", "query", "mutation", "mutations",
];
/// Words that say nothing about which part of the graph two tasks share.
const FILLER: &[&str] = &[
    "the", "and", "for", "with", "add", "update", "fix", "new", "implement", "graphql", "schema",
    "resolver", "query", "mutation", "type", "field",
];

struct GraphQlRule;

impl Guest for GraphQlRule {
    fn describe() -> RuleInfo {
        RuleInfo {
            name: "graphql-schema".to_string(),
            description: "GraphQL schema and resolver dependencies".to_string(),
            keywords: KEYWORDS.iter().map(|k| k.to_string()).collect(),
        }
    }

    fn check(a: Task, b: Task) -> Option<Dependency> {
        decide(&terms(&a), &terms(&b))
    }

    fn check_batch(task: Task, candidates: Vec<Task>) -> Vec<(u32, Dependency)> {
        let a = terms(&task);
        candidates
            .iter()
            .enumerate()
            .filter_map(|(i, b)| decide(&a, &terms(b)).map(|d| (i as u32, d)))
            .collect()
    }
}

/// The decision over two tasks' terms.
fn decide(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Option<Dependency> {
    let has = |t: &BTreeSet<String>, w: &str| t.contains(w);
    let paired = (has(a, "schema") && has(b, "resolver")) || (has(b, "schema") && has(a, "resolver"));
    if !paired {
        return None;
    }
    let shared: Vec<&str> = a
        .intersection(b)
        .map(String::as_str)
        .filter(|t| !FILLER.contains(t))
        .collect();
    let mut reason = "GraphQL schema and resolver must be coordinated".to_string();
    if !shared.is_empty() {
        reason.push_str(&format!("; both concern: {}", shared.join(", ")));
    }
    Some(Dependency {
        relationship: "graphql-schema".to_string(),
        reason,
        confidence: (0.6 + 0.1 * shared.len() as f32).min(0.9),
    })
}

/// Lowercase words of title, description and keywords, plurals folded.
fn terms(task: &Task) -> BTreeSet<String> {
    let keywords = task.keywords.join(" ");
    [task.title.as_str(), task.description.as_str(), keywords.as_str()]
        .iter()
        .flat_map(|text| text.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.len() >= 3)
        .map(|w| {
            let w = w.to_lowercase();
            match w.strip_suffix('s') {
                Some(stem) if stem.len() >= 3 && !w.ends_with("ss") => stem.to_string(),
                _ => w,
            }
        })
        .collect()
}

export!(GraphQlRule);
