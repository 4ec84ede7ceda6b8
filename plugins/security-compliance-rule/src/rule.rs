//! The security-compliance decision (seed 003's `Security_Compliance`), free of host calls so it
//! is unit-tested natively.
//!
//! Two tasks depend when both touch security (`auth`, `token`, `permission`,
//! `encrypt`, ...): as in the seed, that alone is a dependency, because a
//! change to how callers authenticate breaks every other security task's
//! assumptions ("Implement JWT token refresh" and "Update authentication
//! middleware" share no word, and still must be coordinated). Shared terms
//! raise the confidence.

use std::rc::Rc;

use crate::text::{TaskText, Words, mentions, shared};

/// The name `describe` gives.
pub const NAME: &str = "security-compliance";
/// The relationship of every dependency it finds.
pub const RELATIONSHIP: &str = "security-compliance";
/// What `describe` says it does.
pub const DESCRIPTION: &str = "Security changes that need coordinated implementation";

/// Words that mark a task as in scope; config `keywords` replaces them.
/// Every word form is listed: the host's index matches whole words.
pub const DEFAULT_KEYWORDS: &[&str] = &[
    "security",
    "auth",
    "authentication",
    "authorization",
    "permission",
    "permissions",
    "token",
    "tokens",
    "jwt",
    "oauth",
    "encrypt",
    "encryption",
    "secret",
    "secrets",
    "credential",
    "credentials",
    "tls",
    "rbac",
    "session",
    "sessions",
    "login",
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
}

/// A found dependency, before it becomes the WIT record.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub reason: String,
    /// 0.0 ..= 1.0.
    pub confidence: f32,
}

/// Whether `a` and `b` depend on each other through security.
pub fn check(a: &Prepared, b: &Prepared, keywords: &[String]) -> Option<Finding> {
    if !a.in_scope || !b.in_scope {
        return None;
    }
    let in_a: Vec<&str> = keywords
        .iter()
        .filter(|k| a.terms.contains(k.as_str()))
        .map(String::as_str)
        .collect();
    let in_b: Vec<&str> = keywords
        .iter()
        .filter(|k| b.terms.contains(k.as_str()))
        .map(String::as_str)
        .collect();
    // Shared terms, security words included: sharing `token` says more
    // than both merely being about security.
    let common = shared(&a.terms, &b.terms, &[]);
    let confidence = 0.4 + 0.15 * common.len() as f32;
    let mut reason = format!(
        "both tasks touch security ({} / {})",
        in_a.join(", "),
        in_b.join(", ")
    );
    if !common.is_empty() {
        reason.push_str(&format!("; they share: {}", common.join(", ")));
    }
    Some(Finding {
        reason,
        confidence: confidence.min(0.9),
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
            "Implement JWT token refresh",
            "Update authentication middleware",
        )
        .unwrap();
        assert!(found.reason.contains("jwt"), "{}", found.reason);
        assert!(found.reason.contains("authentication"), "{}", found.reason);
        assert!(
            (found.confidence - 0.4).abs() < 1e-6,
            "{}",
            found.confidence
        );
    }

    #[test]
    fn shared_terms_raise_the_confidence() {
        let weak = check_titles("Rotate token keys", "Login page auth").unwrap();
        let strong = check_titles("Rotate token keys", "Token expiry on login").unwrap();
        assert!(strong.confidence > weak.confidence);
    }

    #[test]
    fn a_task_without_security_words_is_out_of_scope() {
        assert_eq!(
            check_titles("Implement JWT token refresh", "Dark mode"),
            None
        );
    }
}
