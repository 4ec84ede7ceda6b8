//! The database-schema decision (seed 003's `Database_Schema`), free of host calls so it
//! is unit-tested natively.
//!
//! Two tasks depend when both touch the database (a keyword such as
//! `table`, `schema`, `migration`, `model`) and share a subject that is not
//! itself a database word (`preferences`, `invoice`): the seed only asked
//! whether both mention the database, which links every pair of database
//! tasks. A task that changes the schema paired with one that uses it is
//! the strongest signal.

use std::rc::Rc;

use crate::text::{TaskText, Words, mentions, shared};

/// The name `describe` gives.
pub const NAME: &str = "database-schema";
/// The relationship of every dependency it finds.
pub const RELATIONSHIP: &str = "database-schema";
/// What `describe` says it does.
pub const DESCRIPTION: &str = "Database schema changes and the code that depends on them";

/// Words that mark a task as in scope; config `keywords` replaces them.
/// Every word form is listed: the host's index matches whole words.
pub const DEFAULT_KEYWORDS: &[&str] = &[
    "database",
    "db",
    "schema",
    "migration",
    "table",
    "model",
    "column",
    "index",
    "sql",
    "orm",
    "query",
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

/// Words of a task that changes the schema.
const CHANGES: &[&str] = &[
    "migration",
    "migrate",
    "alter",
    "drop",
    "rename",
    "column",
    "schema",
    "table",
    "add",
];
/// Words of a task that uses the schema.
const USES: &[&str] = &[
    "query",
    "model",
    "orm",
    "read",
    "write",
    "repository",
    "service",
    "endpoint",
    "report",
];

/// Whether `a` and `b` depend on each other through the database schema.
pub fn check(a: &Prepared, b: &Prepared, keywords: &[String]) -> Option<Finding> {
    if !a.in_scope || !b.in_scope {
        return None;
    }
    let subjects = shared(&a.terms, &b.terms, keywords);
    if subjects.is_empty() {
        return None;
    }
    let change_and_use = (a.says(CHANGES) && b.says(USES)) || (b.says(CHANGES) && a.says(USES));
    let confidence = 0.3 + 0.2 * subjects.len() as f32 + if change_and_use { 0.2 } else { 0.0 };
    let mut reason = format!(
        "both tasks touch the database and share: {}",
        subjects.join(", ")
    );
    if change_and_use {
        reason.push_str("; one changes the schema, the other uses it");
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
    fn a_table_and_the_service_reading_it_depend() {
        let found = check_titles(
            "Add user preferences table",
            "Read user preferences in the profile service model",
        )
        .unwrap();
        assert!(found.reason.contains("preference"), "{}", found.reason);
        assert!(found.reason.contains("uses it"), "{}", found.reason);
        assert!(found.confidence >= 0.7, "{}", found.confidence);
    }

    #[test]
    fn database_tasks_about_different_subjects_do_not_depend() {
        assert_eq!(
            check_titles("Add invoices table", "Migration for the search index"),
            None
        );
    }

    #[test]
    fn a_task_without_database_words_is_out_of_scope() {
        assert_eq!(
            check_titles("Add user preferences table", "User preferences page layout"),
            None
        );
    }

    #[test]
    fn confidence_never_reaches_certainty() {
        let found = check_titles(
            "Add order customer invoice payment refund table",
            "Query order customer invoice payment refund model",
        )
        .unwrap();
        assert!(found.confidence <= 0.95);
    }
}
