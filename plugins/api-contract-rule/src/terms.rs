//! The API-contract decision (seed 003's `API_Contract` rule), free of any
//! host call so it can be unit-tested natively.
//!
//! The seed only asked "does one text say `api` and the other `implement`".
//! This version asks for evidence both tasks are about the *same* interface:
//! both mention an API keyword, and they share at least one meaningful term
//! (an API keyword both use, or a subject such as `authentication`).

use std::rc::Rc;

use rule_text::{TermId, Words, push_words_sorted, term_id, term_is_stopword};

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
    words: Rc<Words>,
}

impl<'a> Prepared<'a> {
    /// The terms of `task`.
    pub fn new(task: &TaskText<'a>) -> Self {
        Prepared {
            repository: task.repository,
            words: Rc::new(Words::of(&plain(task))),
        }
    }

    /// The terms of `task`, whose id is `id`, remembered from an earlier
    /// call when its text is unchanged ([`rule_text::remembered_terms`]):
    /// what `check-batch` uses for its candidates.
    pub fn remembered(id: &str, task: &TaskText<'a>) -> Self {
        Prepared {
            repository: task.repository,
            words: rule_text::remembered_words(id, &plain(task)),
        }
    }
}

impl<'a> Prepared<'a> {
    /// A task the rule remembers by the host's number (`task-memory`).
    pub fn recalled(task: &'a rule_text::Recalled) -> Self {
        Prepared {
            repository: &task.repository,
            words: task.words.clone(),
        }
    }
}

/// The words the decision looks for, numbered once per batch.
pub struct Vocabulary {
    api: Vec<TermId>,
    defines: Vec<TermId>,
    implements: Vec<TermId>,
}

impl Vocabulary {
    /// The numbers of `api_keywords` (lowercase) and of the define and
    /// implement verbs.
    pub fn new(api_keywords: &[String]) -> Self {
        let ids = |words: &mut dyn Iterator<Item = &str>| words.map(term_id).collect();
        Vocabulary {
            api: ids(&mut api_keywords.iter().map(String::as_str)),
            defines: ids(&mut DEFINES.iter().copied()),
            implements: ids(&mut IMPLEMENTS.iter().copied()),
        }
    }
}

/// Whether `a` and `b` depend on each other through an API contract.
///
/// Tasks in the same repository are left to other rules (the seed's
/// detection is cross-repository). `api_keywords` must be lowercase.
pub fn check(a: &TaskText, b: &TaskText, api_keywords: &[String]) -> Option<Finding> {
    check_prepared(
        &Prepared::new(a),
        &Prepared::new(b),
        &Vocabulary::new(api_keywords),
    )
}

/// [`check`] of two prepared tasks.
pub fn check_prepared(a: &Prepared, b: &Prepared, vocabulary: &Vocabulary) -> Option<Finding> {
    let mut shared = Vec::new();
    let defines_and_implements = shared_terms(a, b, vocabulary, &mut shared)?;
    Some(finding(&shared, defines_and_implements, vocabulary))
}

/// What `a` and `b` share, when they depend through an API contract:
/// their shared terms into `shared` (ascending, cleared first) and whether
/// one defines what the other implements. `None` when they do not depend.
///
/// The finding follows from these two alone ([`finding`]), so a batch
/// groups its hits by them and words each group's reason once.
pub fn shared_terms(
    a: &Prepared,
    b: &Prepared,
    vocabulary: &Vocabulary,
    shared: &mut Vec<TermId>,
) -> Option<bool> {
    shared.clear();
    if a.repository == b.repository {
        return None;
    }
    decide(&a.words.ids, &b.words.ids, vocabulary, shared)
}

/// The decision over the numbered terms of `a` and `b`.
///
/// Both lists are sorted, so the shared terms come from one merge of the
/// two, and every test is a comparison of numbers: `check-batch` runs this
/// for each of up to thousands of candidates.
fn decide(
    a: &[TermId],
    b: &[TermId],
    vocabulary: &Vocabulary,
    shared: &mut Vec<TermId>,
) -> Option<bool> {
    let is_api = |t: &TermId| vocabulary.api.contains(t);
    let says = |terms: &[TermId], verbs: &[TermId]| terms.iter().any(|t| verbs.contains(t));
    if !a.iter().any(is_api) || !b.iter().any(is_api) {
        return None;
    }
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                if !term_is_stopword(*x) {
                    shared.push(*x);
                }
                (i, j) = (i + 1, j + 1);
            }
        }
    }
    if shared.is_empty() {
        return None;
    }
    Some(
        (says(a, &vocabulary.defines) && says(b, &vocabulary.implements))
            || (says(b, &vocabulary.defines) && says(a, &vocabulary.implements)),
    )
}

/// The finding of two tasks sharing the terms `shared` (not empty), one
/// defining what the other implements or not.
pub fn finding(
    shared: &[TermId],
    defines_and_implements: bool,
    vocabulary: &Vocabulary,
) -> Finding {
    let shared_api = shared.iter().filter(|t| vocabulary.api.contains(t)).count();
    let shared_subject = shared.len() - shared_api;
    // A shared subject says more than a shared API word (two tasks can both
    // say "api" about unrelated APIs), and a define/implement pair is the
    // seed's own signal. Capped below 1: this is a heuristic.
    let confidence = 0.25
        + 0.2 * shared_subject as f32
        + 0.1 * shared_api as f32
        + if defines_and_implements { 0.2 } else { 0.0 };
    // Named in alphabetical order, whatever their numbers.
    let mut reason = String::from("both tasks touch an API and share: ");
    push_words_sorted(&mut reason, shared);
    if defines_and_implements {
        reason.push_str("; one defines the contract, the other implements it");
    }
    Finding {
        reason,
        confidence: confidence.min(0.95),
    }
}

/// Splits the `keywords` config value (a comma list), lowercased; unset or
/// blank gives [`DEFAULT_KEYWORDS`].
pub fn parse_keywords(raw: Option<&str>) -> Vec<String> {
    rule_text::parse_keywords(raw, DEFAULT_KEYWORDS)
}

/// The part of `task` the shared term reader looks at.
pub(crate) fn plain<'a>(task: &TaskText<'a>) -> rule_text::TaskText<'a> {
    rule_text::TaskText {
        title: task.title,
        description: task.description,
        keywords: task.keywords,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rule_text::singular;

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
    fn remembered_candidates_get_the_answer_of_fresh_ones() {
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
            for (i, b) in tasks.iter().enumerate() {
                let remembered = Prepared::remembered(&i.to_string(), b);
                assert_eq!(
                    check_prepared(&prepared, &remembered, &Vocabulary::new(&defaults())),
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
