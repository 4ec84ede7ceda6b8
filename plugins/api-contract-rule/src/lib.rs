//! `api-contract-rule`: a dependency rule (seed 003's `API_Contract`) that
//! links tasks in different repositories when both touch an API and share
//! terms, e.g. "Define user authentication API" and "Implement authentication
//! endpoint".
//!
//! This file is the thin WIT glue; the decision lives in [`terms`] so it runs
//! under `cargo test` natively. `check-batch` (WIT 0.2) reads the config and
//! the new task's terms once for all candidates, and remembers each
//! candidate's terms for the next registration.

mod terms;

use exports::host::plugin::dependency_rule::Guest;
use host::plugin::host::config;
use host::plugin::types::{Dependency, RuleInfo, Task};
use terms::{Prepared, TaskText, Vocabulary, check, check_prepared, parse_keywords};

wit_bindgen::generate!({ world: "dependency-rule-plugin", path: "../../wit" });

struct ApiContractRule;

impl Guest for ApiContractRule {
    fn describe() -> RuleInfo {
        RuleInfo {
            name: "api-contract".to_string(),
            description: "Tasks in different repositories that touch the same API contract"
                .to_string(),
            keywords: keywords(),
        }
    }

    fn check(a: Task, b: Task) -> Option<Dependency> {
        rule_text::begin_batch();
        let finding = check(&text(&a), &text(&b), &keywords())?;
        Some(Dependency {
            relationship: "api-contract".to_string(),
            reason: finding.reason,
            confidence: finding.confidence,
        })
    }

    fn check_batch(task: Task, candidates: Vec<Task>) -> Vec<(u32, Dependency)> {
        rule_text::begin_batch();
        let vocabulary = Vocabulary::new(&keywords());
        let a = Prepared::new(&text(&task));
        candidates
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let b = Prepared::remembered(&b.id, &text(b));
                let finding = check_prepared(&a, &b, &vocabulary)?;
                Some((
                    i as u32,
                    Dependency {
                        relationship: "api-contract".to_string(),
                        reason: finding.reason,
                        confidence: finding.confidence,
                    },
                ))
            })
            .collect()
    }
}

fn keywords() -> Vec<String> {
    parse_keywords(config("keywords").as_deref())
}

fn text(task: &Task) -> TaskText<'_> {
    TaskText {
        repository: &task.repository,
        title: &task.title,
        description: &task.description,
        keywords: &task.keywords,
    }
}

export!(ApiContractRule);
