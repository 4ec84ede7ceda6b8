//! The API-contract decision (seed 003's `API_Contract` rule), free of any
//! host call so it can be unit-tested natively.
//!
//! The seed only asked "does one text say `api` and the other `implement`".
//! This version asks for evidence both tasks are about the *same* interface:
//! both mention an API keyword, and they share at least one meaningful term
//! (an API keyword both use, or a subject such as `authentication`).

use std::collections::BTreeSet;

use rule_text::{STOPWORDS, singular};

/// Keywords that mark a task as touching an API; config `keywords` replaces them.
pub const DEFAULT_KEYWORDS: &[&str] = &[
    "api",
    "endpoint",
    "contract",
    "interface",
    "schema",
    "openapi",
    "graphql",
    "rest",
];

/// Verbs of a task that defines an interface (seed: "Define ... API").
const DEFINES: &[&str] = &[
    "define",
    "design",
    "spec",
    "specify",
    "specification",
    "draft",
];
/// Verbs of a task that builds against one (seed: "Implement ... endpoint").
const IMPLEMENTS: &[&str] = &[
    "implement",
    "implementation",
    "build",
    "integrate",
    "consume",
    "client",
];

/// The text of one task that the rule looks at.
pub struct TaskText<'a> {
    pub repository: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub keywords: &'a [String],
}

/// A found dependency, before it becomes the WIT record.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub reason: String,
    /// 0.0 ..= 1.0, growing with the number of shared terms.
    pub confidence: f32,
}

/// A task's repository and terms, computed once (once for the new task of a
/// batch, however many candidates it is checked against).
pub struct Prepared<'a> {
    repository: &'a str,
    terms: BTreeSet<String>,
}

impl<'a> Prepared<'a> {
    /// The terms of `task`.
    pub fn new(task: &TaskText<'a>) -> Self {
        Prepared {
            repository: task.repository,
            terms: terms(task),
        }
    }
}

/// Whether `a` and `b` depend on each other through an API contract.
///
/// Tasks in the same repository are left to other rules (the seed's
/// detection is cross-repository). `api_keywords` must be lowercase.
pub fn check(a: &TaskText, b: &TaskText, api_keywords: &[String]) -> Option<Finding> {
    check_prepared(&Prepared::new(a), &Prepared::new(b), api_keywords)
}

/// [`check`] of two prepared tasks.
pub fn check_prepared(a: &Prepared, b: &Prepared, api_keywords: &[String]) -> Option<Finding> {
    if a.repository == b.repository {
        return None;
    }
    decide(a, b.terms.iter().map(String::as_str), api_keywords)
}

/// [`check`] of a prepared task against a candidate read in one pass, with
/// no set of the candidate's terms built: what `check-batch` runs for each
/// of up to thousands of candidates. Answers exactly as [`check_prepared`].
pub fn check_candidate(a: &Prepared, b: &TaskText, api_keywords: &[String]) -> Option<Finding> {
    if a.repository == b.repository {
        return None;
    }
    let keywords = b.keywords.join(" ");
    let words = [b.title, b.description, keywords.as_str()]
        .into_iter()
        .flat_map(|text| text.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.chars().count() >= 3)
        .map(|w| singular(&w.to_lowercase()));
    // `decide` takes borrowed terms; a candidate's are made on the fly.
    let owned: Vec<String> = words.collect();
    decide(a, owned.iter().map(String::as_str), api_keywords)
}

/// The decision over `a` and the terms of `b` (in any order, repeats allowed).
fn decide<'b>(
    a: &Prepared,
    terms_b: impl Iterator<Item = &'b str>,
    api_keywords: &[String],
) -> Option<Finding> {
    let is_api = |t: &str| api_keywords.iter().any(|k| k == t);
    if !a.terms.iter().any(|t| is_api(t)) {
        return None;
    }
    let (mut b_api, mut b_defines, mut b_implements) = (false, false, false);
    let mut shared: BTreeSet<&str> = BTreeSet::new();
    for t in terms_b {
        b_api |= is_api(t);
        b_defines |= DEFINES.contains(&t);
        b_implements |= IMPLEMENTS.contains(&t);
        if let Some(common) = a.terms.get(t)
            && !STOPWORDS.contains(&t)
        {
            shared.insert(common.as_str());
        }
    }
    if !b_api || shared.is_empty() {
        return None;
    }
    let shared_api = shared.iter().filter(|t| is_api(t)).count();
    let shared_subject = shared.len() - shared_api;
    let has = |verbs: &[&str]| verbs.iter().any(|v| a.terms.contains(*v));
    let defines_and_implements = (has(DEFINES) && b_implements) || (b_defines && has(IMPLEMENTS));

    // A shared subject says more than a shared API word (two tasks can both
    // say "api" about unrelated APIs), and a define/implement pair is the
    // seed's own signal. Capped below 1: this is a heuristic.
    let confidence = 0.25
        + 0.2 * shared_subject as f32
        + 0.1 * shared_api as f32
        + if defines_and_implements { 0.2 } else { 0.0 };
    let names: Vec<&str> = shared.into_iter().collect();
    let mut reason = format!("both tasks touch an API and share: {}", names.join(", "));
    if defines_and_implements {
        reason.push_str("; one defines the contract, the other implements it");
    }
    Some(Finding {
        reason,
        confidence: confidence.min(0.95),
    })
}

/// Splits the `keywords` config value (a comma list), lowercased; unset or
/// blank gives [`DEFAULT_KEYWORDS`].
pub fn parse_keywords(raw: Option<&str>) -> Vec<String> {
    rule_text::parse_keywords(raw, DEFAULT_KEYWORDS)
}

/// The task's terms as every shipped rule reads them ([`rule_text::terms`]).
fn terms(task: &TaskText) -> BTreeSet<String> {
    rule_text::terms(&rule_text::TaskText {
        title: task.title,
        description: task.description,
        keywords: task.keywords,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task<'a>(repository: &'a str, title: &'a str, description: &'a str) -> TaskText<'a> {
        TaskText {
            repository,
            title,
            description,
            keywords: &[],
        }
    }

    fn defaults() -> Vec<String> {
        parse_keywords(None)
    }

    #[test]
    fn the_seed_example_is_detected_with_good_confidence() {
        let a = task(
            "backend-api",
            "Define user authentication API",
            "Create OpenAPI spec for user auth endpoints",
        );
        let b = task("frontend-app", "Implement authentication endpoint", "");
        let found = check(&a, &b, &defaults()).unwrap();
        assert!(found.reason.contains("authentication"), "{}", found.reason);
        assert!(found.reason.contains("endpoint"), "{}", found.reason);
        assert!(found.reason.contains("implements"), "{}", found.reason);
        assert!(found.confidence > 0.7, "{}", found.confidence);
    }

    #[test]
    fn a_candidate_read_in_one_pass_gets_the_answer_of_two_prepared_tasks() {
        let tasks = [
            task(
                "backend-api",
                "Define user authentication API",
                "OpenAPI spec for auth endpoints",
            ),
            task("frontend-app", "Implement authentication endpoint", ""),
            task("two", "Invoice export API client", ""),
            task("one", "Invoice API", ""),
            task("three", "Billing report layout", ""),
            task("backend-api", "Implement the auth endpoints", ""),
        ];
        for a in &tasks {
            let prepared = Prepared::new(a);
            for b in &tasks {
                assert_eq!(
                    check_candidate(&prepared, b, &defaults()),
                    check(a, b, &defaults()),
                    "{} / {}",
                    a.title,
                    b.title
                );
            }
        }
    }

    #[test]
    fn tasks_in_the_same_repository_are_left_alone() {
        let a = task("api", "Define billing API", "");
        let b = task("api", "Implement billing API", "");
        assert_eq!(check(&a, &b, &defaults()), None);
    }

    #[test]
    fn both_tasks_must_touch_an_api() {
        let a = task("one", "Define billing API", "");
        let b = task("two", "Billing report layout", "");
        assert_eq!(check(&a, &b, &defaults()), None);
    }

    #[test]
    fn api_tasks_sharing_nothing_do_not_depend() {
        let a = task("one", "Billing endpoint", "");
        let b = task("two", "Search API", "");
        assert_eq!(check(&a, &b, &defaults()), None);
    }

    #[test]
    fn sharing_only_an_api_word_is_a_weak_hit() {
        let a = task("one", "Billing endpoint", "");
        let b = task("two", "Search endpoint", "");
        let weak = check(&a, &b, &defaults()).unwrap();
        assert!(weak.confidence < 0.4, "{}", weak.confidence);
    }

    #[test]
    fn more_shared_terms_give_more_confidence() {
        let a = task("one", "Invoice export API", "");
        let b = task("two", "Invoice API client", "");
        let c = task("two", "Invoice export API client", "");
        let fewer = check(&a, &b, &defaults()).unwrap().confidence;
        let more = check(&a, &c, &defaults()).unwrap().confidence;
        assert!(more > fewer, "{more} <= {fewer}");
    }

    #[test]
    fn common_verbs_are_not_shared_subjects() {
        let a = task("one", "Add API for users", "");
        let b = task("two", "Add endpoint for orders", "");
        assert_eq!(check(&a, &b, &defaults()), None);
    }

    #[test]
    fn task_keywords_count_as_terms() {
        let keywords = vec!["GraphQL".to_string(), "inventory".to_string()];
        let a = TaskText {
            repository: "one",
            title: "Stock levels",
            description: "",
            keywords: &keywords,
        };
        let b = task("two", "Inventory graphql resolver", "");
        let found = check(&a, &b, &defaults()).unwrap();
        assert!(
            found.reason.contains("graphql, inventory"),
            "{}",
            found.reason
        );
    }

    #[test]
    fn configured_keywords_replace_the_defaults() {
        let keywords = parse_keywords(Some(" gRPC , Proto "));
        assert_eq!(keywords, vec!["grpc", "proto"]);
        let a = task("one", "Ledger gRPC service", "");
        let b = task("two", "Ledger proto client", "");
        assert!(check(&a, &b, &keywords).is_some());
        assert_eq!(check(&a, &b, &defaults()), None);
    }

    #[test]
    fn plurals_meet_singulars_but_status_stays_whole() {
        assert_eq!(singular("endpoints"), "endpoint");
        assert_eq!(singular("status"), "status");
        assert_eq!(singular("class"), "class");
    }

    #[test]
    fn confidence_never_reaches_certainty() {
        let a = task(
            "one",
            "Define invoice order customer payment refund API",
            "",
        );
        let b = task(
            "two",
            "Implement invoice order customer payment refund API",
            "",
        );
        assert!(check(&a, &b, &defaults()).unwrap().confidence <= 0.95);
    }
}
