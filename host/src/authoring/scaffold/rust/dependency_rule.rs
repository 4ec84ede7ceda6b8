//! {{name}}: a dependency rule. When a task is registered, the host asks
//! the rule whether it depends on each task already known (`check_batch`,
//! up to 1,024 candidates per call; `check` for one pair), but only for
//! pairs where both tasks mention one of the rule's keywords.
//!
//! The glue below stays thin; the decision lives in `depends`, which calls
//! no host function, so `cargo test` checks it natively.

use exports::host::plugin::dependency_rule::Guest;
use host::plugin::types::{Dependency, RuleInfo, Task};

wit_bindgen::generate!({ world: "dependency-rule-plugin", path: "wit" });

/// The host only pairs tasks that both mention one of these; an empty list
/// sees every pair. Change them to your rule's words.
const KEYWORDS: &[&str] = &["api", "schema"];

struct Plugin;

impl Guest for Plugin {
    fn describe() -> RuleInfo {
        RuleInfo {
            name: "{{name}}".to_string(),
            description: "What this rule links (say it in a line)".to_string(),
            keywords: KEYWORDS.iter().map(|k| k.to_string()).collect(),
        }
    }

    fn check(a: Task, b: Task) -> Option<Dependency> {
        depends(&a, &b)
    }

    fn check_batch(task: Task, candidates: Vec<Task>) -> Vec<(u32, Dependency)> {
        candidates
            .iter()
            .enumerate()
            .filter_map(|(i, b)| depends(&task, b).map(|d| (i as u32, d)))
            .collect()
    }
}

/// Whether `a` (the task being registered) depends on `b`: never, yet. A
/// rule that links a task changing an API to one consuming it might say:
///
/// ```text
/// Some(Dependency {
///     relationship: "api-contract".into(),
///     reason: format!("{} changes the API {} uses", a.title, b.title),
///     confidence: 0.8,
/// })
/// ```
fn depends(a: &Task, b: &Task) -> Option<Dependency> {
    let _ = (a, b);
    None
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, title: &str) -> Task {
        Task {
            id: id.into(),
            repository: "shop".into(),
            title: title.into(),
            description: String::new(),
            keywords: vec!["api".into()],
            agent: None,
        }
    }

    #[test]
    fn it_names_itself_and_asks_for_keywords() {
        let info = Plugin::describe();
        assert_eq!(info.name, "{{name}}");
        assert!(!info.keywords.is_empty());
    }

    #[test]
    fn two_tasks_on_the_same_api_are_not_linked_yet() {
        let a = task("a", "Change the orders API");
        let b = task("b", "Use the orders API in the app");
        assert!(Plugin::check(a.clone(), b.clone()).is_none());
        assert!(Plugin::check_batch(a, vec![b]).is_empty());
    }
}
