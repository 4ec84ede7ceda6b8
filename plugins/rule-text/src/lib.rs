//! Words of a task as the shipped dependency rules read them: the lowercase
//! terms of title, description and keywords, plurals folded, and the filler
//! words that never show two tasks share a subject. One copy for every rule
//! (a library crate: this folder has no `plugin.toml`, so the host never
//! loads it as a plugin).

use std::collections::BTreeSet;

/// The text of one task that the rule looks at.
pub struct TaskText<'a> {
    /// The task's title.
    pub title: &'a str,
    /// The task's description.
    pub description: &'a str,
    /// The task's own keywords.
    pub keywords: &'a [String],
}

/// Words too common in task titles to show that two tasks share a subject.
pub const STOPWORDS: &[&str] = &[
    "the",
    "and",
    "for",
    "with",
    "from",
    "into",
    "onto",
    "that",
    "this",
    "these",
    "those",
    "are",
    "was",
    "were",
    "has",
    "have",
    "not",
    "all",
    "any",
    "new",
    "our",
    "its",
    "their",
    "via",
    "per",
    "add",
    "adds",
    "update",
    "updates",
    "fix",
    "fixes",
    "make",
    "use",
    "uses",
    "create",
    "creates",
    "remove",
    "change",
    "changes",
    "support",
    "task",
    "work",
    "need",
    "needs",
    "should",
    "must",
    "will",
    "can",
    "also",
    "when",
    "then",
    "than",
    "more",
    "less",
    "some",
    "implement",
    "implementation",
    "build",
    "check",
    "checks",
    "service",
    "new",
    "part",
];

/// Lowercase words of three or more characters from title, description and
/// keywords, with a plural `s` dropped so `tables` meets `table`.
pub fn terms(task: &TaskText) -> BTreeSet<String> {
    let keywords = task.keywords.join(" ");
    [task.title, task.description, keywords.as_str()]
        .iter()
        .flat_map(|text| text.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.chars().count() >= 3)
        .map(|w| singular(&w.to_lowercase()))
        .collect()
}

/// Drops a plural `s`, but not from words like `status`, `analysis`, `class`.
pub fn singular(word: &str) -> String {
    let keep = ["ss", "us", "is"].iter().any(|end| word.ends_with(end));
    match word.strip_suffix('s') {
        Some(stem) if !keep && stem.len() >= 3 => stem.to_string(),
        _ => word.to_string(),
    }
}

/// Splits a comma-separated `keywords` config value, lowercased; unset or
/// blank gives `defaults`.
pub fn parse_keywords(raw: Option<&str>, defaults: &[&str]) -> Vec<String> {
    let keywords: Vec<String> = raw
        .unwrap_or("")
        .split(',')
        .map(|k| k.trim().to_lowercase())
        .filter(|k| !k.is_empty())
        .collect();
    if keywords.is_empty() {
        defaults.iter().map(|k| k.to_string()).collect()
    } else {
        keywords
    }
}

/// Whether `terms` holds any of `words` (compared in singular form).
pub fn mentions(terms: &BTreeSet<String>, words: &[String]) -> bool {
    words.iter().any(|w| terms.contains(&singular(w)))
}

/// The terms both sets hold that are neither filler nor in `exclude`.
pub fn shared<'a>(
    a: &'a BTreeSet<String>,
    b: &'a BTreeSet<String>,
    exclude: &[String],
) -> Vec<&'a str> {
    a.intersection(b)
        .filter(|t| !STOPWORDS.contains(&t.as_str()))
        .filter(|t| !exclude.iter().any(|e| singular(e) == **t))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_meet_singulars_but_status_stays_whole() {
        assert_eq!(singular("tables"), "table");
        assert_eq!(singular("status"), "status");
    }

    #[test]
    fn configured_keywords_replace_the_defaults() {
        assert_eq!(parse_keywords(Some(" A , b "), &["x"]), ["a", "b"]);
        assert_eq!(parse_keywords(Some(" "), &["x"]), ["x"]);
    }
}
