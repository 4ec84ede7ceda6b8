//! The configuration-dependency decision (seed 003's `Configuration_Dependency`), free of host calls so it
//! is unit-tested natively.
//!
//! Two tasks depend when both touch configuration (`config`, `environment`,
//! `setting`, `flag`, ...) and share what is configured (`feature`,
//! `timeout`, `checkout`); one introducing a setting and the other reading
//! it is the strongest signal, as in the seed's feature-flag example.

use std::rc::Rc;

use crate::text::{TaskText, Words, mentions, shared};

/// The name `describe` gives.
pub const NAME: &str = "configuration-dependency";
/// The relationship of every dependency it finds.
pub const RELATIONSHIP: &str = "configuration-dependency";
/// What `describe` says it does.
pub const DESCRIPTION: &str = "Configuration changes and the components that read them";

/// Words that mark a task as in scope; config `keywords` replaces them.
/// Every word form is listed: the host's index matches whole words.
pub const DEFAULT_KEYWORDS: &[&str] = &[
    "config",
    "configuration",
    "environment",
    "env",
    "setting",
    "settings",
    "parameter",
    "parameters",
    "flag",
    "flags",
    "variable",
    "variables",
    "toggle",
];

/// One task's terms, computed once per task (once for the new task of a batch).
pub struct Prepared {
    terms: Rc<Words>,
    /// It mentions one of the keywords.
    in_scope: bool,
}

impl Prepared {
    /// The terms of `task`, and whether it mentions one of `keywords`.
    pub fn new(task: &TaskText, keywords: &[String]) -> Self {
        Self::of(Rc::new(Words::of(task)), keywords)
    }

    /// As [`Prepared::new`] for the task with id `id`, its terms remembered
    /// from an earlier call when its text is unchanged.
    pub fn remembered(id: &str, task: &TaskText, keywords: &[String]) -> Self {
        Self::of(crate::text::remembered_words(id, task), keywords)
    }

    /// As [`Prepared::new`] for words already read: a task the rule
    /// remembers by number (`task-memory`).
    pub fn of(terms: Rc<Words>, keywords: &[String]) -> Self {
        let in_scope = mentions(&terms, keywords);
        Prepared { terms, in_scope }
    }

    fn says(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.terms.contains(*w))
    }
}

/// A found dependency, before it becomes the WIT record.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub reason: String,
    /// 0.0 ..= 1.0.
    pub confidence: f32,
}

/// Words of a task that introduces or changes a setting.
const DEFINES: &[&str] = &[
    "add",
    "define",
    "introduce",
    "rename",
    "default",
    "expose",
    "new",
    "change",
];
/// Words of a task that reads one.
const READS: &[&str] = &[
    "read", "check", "use", "consume", "load", "respect", "honour", "honor", "gate",
];

/// Whether `a` and `b` depend on each other through configuration.
pub fn check(a: &Prepared, b: &Prepared, keywords: &[String]) -> Option<Finding> {
    if !a.in_scope || !b.in_scope {
        return None;
    }
    let subjects = shared(&a.terms, &b.terms, keywords);
    if subjects.is_empty() {
        return None;
    }
    let define_and_read = (a.says(DEFINES) && b.says(READS)) || (b.says(DEFINES) && a.says(READS));
    let confidence = 0.3 + 0.2 * subjects.len() as f32 + if define_and_read { 0.25 } else { 0.0 };
    let mut reason = format!(
        "both tasks touch configuration and share: {}",
        subjects.join(", ")
    );
    if define_and_read {
        reason.push_str("; one introduces the setting, the other reads it");
    }
    Some(Finding {
        reason,
        confidence: confidence.min(0.95),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse_keywords;

    fn check_titles(a: &str, b: &str) -> Option<Finding> {
        let keywords = parse_keywords(None, DEFAULT_KEYWORDS);
        let prep = |title| {
            Prepared::new(
                &TaskText {
                    title,
                    description: "",
                    keywords: &[],
                },
                &keywords,
            )
        };
        check(&prep(a), &prep(b), &keywords)
    }

    #[test]
    fn the_seed_example_is_detected() {
        let found = check_titles(
            "Add feature flag for new UI",
            "Implement feature flag checks in backend",
        )
        .unwrap();
        assert!(found.reason.contains("feature"), "{}", found.reason);
        assert!(found.reason.contains("reads it"), "{}", found.reason);
        assert!(found.confidence >= 0.7, "{}", found.confidence);
    }

    #[test]
    fn settings_of_different_things_do_not_depend() {
        assert_eq!(
            check_titles(
                "Add timeout setting for uploads",
                "Environment for the mailer"
            ),
            None
        );
    }

    #[test]
    fn a_task_without_configuration_words_is_out_of_scope() {
        assert_eq!(
            check_titles("Add feature flag", "Feature page design"),
            None
        );
    }
}
