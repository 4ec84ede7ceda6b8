//! `api-contract-rule`: a dependency rule (seed 003's `API_Contract`) that
//! links tasks in different repositories when both touch an API and share
//! terms, e.g. "Define user authentication API" and "Implement authentication
//! endpoint".
//!
//! This file is the thin WIT glue; the decision lives in [`terms`] so it runs
//! under `cargo test` natively. `check-batch` (WIT 0.2) reads the config and
//! the new task's terms once for all candidates, and remembers each
//! candidate's terms for the next registration; `task-memory` remembers
//! each task by the host's number, so a registration moves numbers only,
//! and `grouped-memory` answers each distinct reason once.

mod terms;

use exports::host::plugin::dependency_rule::Guest;
use exports::host::plugin::grouped_memory::{Guest as GroupedGuest, HitGroup};
use exports::host::plugin::task_memory::{Guest as MemoryGuest, NumberedTask};
use host::plugin::host::config;
use host::plugin::types::{Dependency, RuleInfo, Task};
use terms::{
    Prepared, TaskText, Vocabulary, check, check_prepared, finding, parse_keywords, shared_terms,
};

wit_bindgen::generate!({ world: "grouping-rule-plugin", path: "../../wit" });

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
        check(&text(&a), &text(&b), &keywords()).map(dependency)
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
                Some((i as u32, dependency(finding)))
            })
            .collect()
    }
}

impl MemoryGuest for ApiContractRule {
    fn remember(tasks: Vec<NumberedTask>) {
        rule_text::begin_batch();
        for t in &tasks {
            rule_text::remember(t.number, &t.task.repository, &terms::plain(&text(&t.task)));
        }
    }

    fn check_remembered(
        task: u32,
        candidates: Vec<u32>,
    ) -> Result<Vec<(u32, Dependency)>, Vec<u32>> {
        let (a, candidates) = rule_text::recall_batch(task, &candidates)?;
        let vocabulary = Vocabulary::new(&keywords());
        let a = Prepared::recalled(&a);
        Ok(candidates
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let finding = check_prepared(&a, &Prepared::recalled(b), &vocabulary)?;
                Some((i as u32, dependency(finding)))
            })
            .collect())
    }
}

impl GroupedGuest for ApiContractRule {
    fn check_grouped(task: u32, candidates: Vec<u32>) -> Result<Vec<HitGroup>, Vec<u32>> {
        let (a, candidates) = rule_text::recall_batch(task, &candidates)?;
        let vocabulary = Vocabulary::new(&keywords());
        let a = Prepared::recalled(&a);
        // Keyed by what the finding is worded from: the shared terms, then
        // 1 or 0 for whether one defines what the other implements (always
        // the last number, so two findings never share a key). Each
        // group's reason is worded once, not once per hit.
        let mut groups = rule_text::HitGroups::<Vec<u32>>::default();
        let mut key = Vec::new();
        for (i, b) in candidates.iter().enumerate() {
            if let Some(defines) = shared_terms(&a, &Prepared::recalled(b), &vocabulary, &mut key) {
                key.push(u32::from(defines));
                groups.add(i as u32, key.as_slice());
            }
        }
        Ok(groups
            .into_groups()
            .into_iter()
            .map(|(mut key, candidates)| {
                let defines = key.pop() == Some(1);
                HitGroup {
                    dependency: dependency(finding(&key, defines, &vocabulary)),
                    candidates,
                }
            })
            .collect())
    }
}

fn dependency(finding: terms::Finding) -> Dependency {
    Dependency {
        relationship: "api-contract".to_string(),
        reason: finding.reason,
        confidence: finding.confidence,
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
