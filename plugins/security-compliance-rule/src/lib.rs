//! `security-compliance-rule`: a dependency rule (seed 003's `Security_Compliance`). Links tasks that both touch security (auth, tokens, permissions, encryption), e.g. "Implement JWT token refresh" and "Update authentication middleware".
//!
//! This file is the thin WIT glue; the decision lives in [`rule`] so it
//! runs under `cargo test` natively. `check-batch` reads the config and the
//! new task's terms once for all candidates.

mod rule;
use rule_text as text;

use exports::host::plugin::dependency_rule::Guest;
use host::plugin::host::config;
use host::plugin::types::{Dependency, RuleInfo, Task};

wit_bindgen::generate!({ world: "dependency-rule-plugin", path: "../../wit" });

struct Plugin;

impl Guest for Plugin {
    fn describe() -> RuleInfo {
        RuleInfo {
            name: rule::NAME.to_string(),
            description: rule::DESCRIPTION.to_string(),
            keywords: keywords(),
        }
    }

    fn check(a: Task, b: Task) -> Option<Dependency> {
        let keywords = keywords();
        let a = rule::Prepared::new(&text(&a), &keywords);
        found(rule::check(
            &a,
            &rule::Prepared::new(&text(&b), &keywords),
            &keywords,
        ))
    }

    fn check_batch(task: Task, candidates: Vec<Task>) -> Vec<(u32, Dependency)> {
        let keywords = keywords();
        let a = rule::Prepared::new(&text(&task), &keywords);
        candidates
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let b = rule::Prepared::new(&text(b), &keywords);
                found(rule::check(&a, &b, &keywords)).map(|d| (i as u32, d))
            })
            .collect()
    }
}

fn found(finding: Option<rule::Finding>) -> Option<Dependency> {
    finding.map(|f| Dependency {
        relationship: rule::RELATIONSHIP.to_string(),
        reason: f.reason,
        confidence: f.confidence,
    })
}

fn keywords() -> Vec<String> {
    text::parse_keywords(config("keywords").as_deref(), rule::DEFAULT_KEYWORDS)
}

fn text(task: &Task) -> text::TaskText<'_> {
    text::TaskText {
        title: &task.title,
        description: &task.description,
        keywords: &task.keywords,
    }
}

export!(Plugin);
