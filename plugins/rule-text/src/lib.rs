//! Words of a task as the shipped dependency rules read them: the lowercase
//! terms of title, description and keywords, plurals folded, and the filler
//! words that never show two tasks share a subject. One copy for every rule
//! (a library crate: this folder has no `plugin.toml`, so the host never
//! loads it as a plugin).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

/// The text of one task that the rule looks at.
pub struct TaskText<'a> {
    /// The task's title.
    pub title: &'a str,
    /// The task's description.
    pub description: &'a str,
    /// The task's own keywords.
    pub keywords: &'a [String],
}

/// Words too common in task titles to show that two tasks share a subject,
/// sorted (so [`is_stopword`] is a binary search; a test keeps it so).
pub const STOPWORDS: &[&str] = &[
    "add",
    "adds",
    "all",
    "also",
    "and",
    "any",
    "are",
    "build",
    "can",
    "change",
    "changes",
    "check",
    "checks",
    "create",
    "creates",
    "fix",
    "fixes",
    "for",
    "from",
    "has",
    "have",
    "implement",
    "implementation",
    "into",
    "its",
    "less",
    "make",
    "more",
    "must",
    "need",
    "needs",
    "new",
    "not",
    "onto",
    "our",
    "part",
    "per",
    "remove",
    "service",
    "should",
    "some",
    "support",
    "task",
    "than",
    "that",
    "the",
    "their",
    "then",
    "these",
    "this",
    "those",
    "update",
    "updates",
    "use",
    "uses",
    "via",
    "was",
    "were",
    "when",
    "will",
    "with",
    "work",
];

/// Whether `word` is one of the [`STOPWORDS`].
pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.binary_search(&word).is_ok()
}

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

/// A word's number in this instance's vocabulary: comparing numbers is what
/// makes checking a task against a thousand others cheap (comparing the
/// words themselves was ~40% of a `check-batch` in a guest's profile).
pub type TermId = u32;

/// A task's terms, as words (sorted) and as [`TermId`]s (sorted by number).
#[derive(Debug, PartialEq)]
pub struct Words {
    /// The words, as [`terms`] gives them.
    pub terms: BTreeSet<String>,
    /// The same words' numbers, ascending.
    pub ids: Vec<TermId>,
}

impl Words {
    /// The words of `task`, numbered.
    pub fn of(task: &TaskText) -> Self {
        let terms = terms(task);
        let mut ids: Vec<TermId> = terms.iter().map(|t| term_id(t)).collect();
        ids.sort_unstable();
        Words { terms, ids }
    }
}

impl std::ops::Deref for Words {
    type Target = BTreeSet<String>;

    fn deref(&self) -> &BTreeSet<String> {
        &self.terms
    }
}

/// At most this many tasks are remembered, and this many words numbered;
/// past either, both start over at the next batch (a guest's memory is
/// capped by its manifest).
const REMEMBERED: usize = 50_000;
const VOCABULARY: usize = 500_000;

/// A task's text as it was when its words were read, and those words.
struct Remembered {
    title: String,
    description: String,
    keywords: Vec<String>,
    words: Rc<Words>,
}

impl Remembered {
    fn describes(&self, task: &TaskText) -> bool {
        self.title == task.title
            && self.description == task.description
            && self.keywords == task.keywords
    }
}

#[derive(Default)]
struct Vocabulary {
    ids: HashMap<Rc<str>, TermId>,
    words: Vec<Rc<str>>,
    /// Whether each word is one of the [`STOPWORDS`], read once when it
    /// was numbered (a rule asks for every shared word of every hit).
    stop: Vec<bool>,
}

/// A task remembered under the number the host gave it (WIT
/// `task-memory`): what a rule reads of it.
pub struct Recalled {
    /// The task's repository.
    pub repository: String,
    /// The task's words, numbered in the vocabulary in use.
    pub words: Rc<Words>,
}

thread_local! {
    /// Tasks by the host's number: the host hands each task over once and
    /// then asks by number, so a registration against a thousand earlier
    /// tasks moves a thousand integers instead of a thousand records.
    static NUMBERED: RefCell<HashMap<u32, Rc<Recalled>>> = RefCell::default();
    /// Words by task id. The host asks a rule about the same earlier tasks
    /// at every registration; reading their text again was most of the
    /// cost of a `check-batch` over a thousand candidates.
    static REMEMBERED_WORDS: RefCell<HashMap<String, Remembered>> = RefCell::default();
    /// Every word numbered so far.
    static VOCABULARY_IN_USE: RefCell<Vocabulary> = RefCell::default();
}

/// The number of `word`, given it now if it has none.
pub fn term_id(word: &str) -> TermId {
    VOCABULARY_IN_USE.with_borrow_mut(|v| {
        if let Some(id) = v.ids.get(word) {
            return *id;
        }
        let id = v.words.len() as TermId;
        let word: Rc<str> = Rc::from(word);
        v.stop.push(is_stopword(&word));
        v.words.push(word.clone());
        v.ids.insert(word, id);
        id
    })
}

/// The word numbered `id` (empty for a number never given).
pub fn term_word(id: TermId) -> Rc<str> {
    VOCABULARY_IN_USE.with_borrow(|v| {
        v.words
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Rc::from(""))
    })
}

/// Whether the word numbered `id` is one of the [`STOPWORDS`] (false for
/// a number never given).
pub fn term_is_stopword(id: TermId) -> bool {
    VOCABULARY_IN_USE.with_borrow(|v| v.stop.get(id as usize).copied().unwrap_or(false))
}

/// Appends the words numbered `ids` to `out` in alphabetical order,
/// separated by ", " (the list a rule's reason names).
pub fn push_words_sorted(out: &mut String, ids: &[TermId]) {
    VOCABULARY_IN_USE.with_borrow(|v| {
        let mut words: Vec<&str> = ids
            .iter()
            .filter_map(|id| v.words.get(*id as usize).map(|w| &**w))
            .collect();
        words.sort_unstable();
        for (k, word) in words.into_iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            out.push_str(word);
        }
    })
}

/// Call at the start of every call that numbers words (`check` numbers
/// two tasks' words, `check-batch` many): forgets the remembered tasks and the
/// vocabulary when either outgrew its bound. Never during a batch, whose
/// prepared tasks hold numbers of the vocabulary in use.
pub fn begin_batch() {
    let full = REMEMBERED_WORDS.with_borrow(|m| m.len()) + NUMBERED.with_borrow(|m| m.len())
        >= REMEMBERED
        || VOCABULARY_IN_USE.with_borrow(|v| v.words.len()) >= VOCABULARY;
    if full {
        // Numbered tasks hold the vocabulary's numbers, so they go with it;
        // the host hands them over again when the rule says it forgot them.
        REMEMBERED_WORDS.with_borrow_mut(HashMap::clear);
        NUMBERED.with_borrow_mut(HashMap::clear);
        VOCABULARY_IN_USE.with_borrow_mut(|v| *v = Vocabulary::default());
    }
}

/// [`Words::of`] the task with id `id`, remembered across calls while the
/// instance lives: read again only when the task's text changed (a task
/// registered again under its id). The answer is always what
/// [`Words::of`] gives for `task`.
pub fn remembered_words(id: &str, task: &TaskText) -> Rc<Words> {
    if let Some(known) = REMEMBERED_WORDS.with_borrow(|memo| {
        memo.get(id)
            .filter(|known| known.describes(task))
            .map(|known| known.words.clone())
    }) {
        return known;
    }
    let words = Rc::new(Words::of(task));
    REMEMBERED_WORDS.with_borrow_mut(|memo| {
        memo.insert(
            id.to_string(),
            Remembered {
                title: task.title.to_string(),
                description: task.description.to_string(),
                keywords: task.keywords.to_vec(),
                words: words.clone(),
            },
        )
    });
    words
}

/// Remembers `task` of `repository` under the host's `number` (call
/// [`begin_batch`] first, once per call).
pub fn remember(number: u32, repository: &str, task: &TaskText) {
    let recalled = Rc::new(Recalled {
        repository: repository.to_string(),
        words: Rc::new(Words::of(task)),
    });
    NUMBERED.with_borrow_mut(|memo| memo.insert(number, recalled));
}

/// The task numbered `number`, if remembered.
pub fn recall(number: u32) -> Option<Rc<Recalled>> {
    NUMBERED.with_borrow(|memo| memo.get(&number).cloned())
}

/// The tasks numbered `numbers`, in order; or, when some are not
/// remembered, those numbers: what `check-remembered` answers with.
pub fn recall_all(numbers: &[u32]) -> Result<Vec<Rc<Recalled>>, Vec<u32>> {
    NUMBERED.with_borrow(|memo| {
        let found: Vec<Rc<Recalled>> = numbers
            .iter()
            .filter_map(|n| memo.get(n).cloned())
            .collect();
        if found.len() == numbers.len() {
            Ok(found)
        } else {
            Err(numbers
                .iter()
                .filter(|n| !memo.contains_key(n))
                .copied()
                .collect())
        }
    })
}

/// A task asked about and its candidates, as remembered.
pub type RecalledBatch = (Rc<Recalled>, Vec<Rc<Recalled>>);

/// The task numbered `task` and the candidates numbered `candidates`, in
/// order; or every one of those numbers not remembered: the `err` of
/// `check-remembered`.
pub fn recall_batch(task: u32, candidates: &[u32]) -> Result<RecalledBatch, Vec<u32>> {
    match (recall(task), recall_all(candidates)) {
        (Some(task), Ok(candidates)) => Ok((task, candidates)),
        (known, rest) => {
            let mut unknown: Vec<u32> = known.is_none().then_some(task).into_iter().collect();
            unknown.extend(rest.err().unwrap_or_default());
            Err(unknown)
        }
    }
}

/// A rule's hits grouped for `check-grouped`: candidates filed under a
/// key that decides what the rule says about them (its reason and
/// confidence, or what those are worded from), groups in the order of
/// their first hit. A rule that can key its hits by what it would word
/// (the shared terms) words each group's reason once instead of per hit.
#[derive(Debug)]
pub struct HitGroups<K> {
    groups: Vec<(K, Vec<u32>)>,
    index: HashMap<K, usize>,
}

impl<K> Default for HitGroups<K> {
    fn default() -> Self {
        Self {
            groups: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> HitGroups<K> {
    /// Files candidate `i` under `key`, taking a copy of the key only for
    /// a group it opens.
    pub fn add<Q>(&mut self, i: u32, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(&at) = self.index.get(key) {
            self.groups[at].1.push(i);
            return;
        }
        let key = key.to_owned();
        self.index.insert(key.clone(), self.groups.len());
        self.groups.push((key, vec![i]));
    }

    /// The groups: (key, candidates).
    pub fn into_groups(self) -> Vec<(K, Vec<u32>)> {
        self.groups
    }
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
        .filter(|t| !is_stopword(t))
        .filter(|t| !exclude.iter().any(|e| singular(e) == **t))
        .map(String::as_str)
        .collect()
}

/// The WIT glue of a shipped keyword rule: `describe`, `check`,
/// `check-batch`, `task-memory`'s `remember` and `check-remembered`, and
/// `grouped-memory`'s `check-grouped` ([`HitGroups`]),
/// over the calling crate's `rule` module, which provides `NAME`,
/// `DESCRIPTION`, `RELATIONSHIP`, `DEFAULT_KEYWORDS`, `Finding`, `check`,
/// and `Prepared` with `new`, `remembered` and `of`. One copy for every
/// rule built this way; the decisions stay in each rule's module, where
/// they are unit-tested natively.
///
/// `check-batch` reads the config and the new task's terms once for all
/// candidates, and remembers each candidate's terms for the next
/// registration ([`remembered_words`]); `check-remembered` reads only the
/// numbers ([`recall_all`]).
#[macro_export]
macro_rules! keyword_rule_plugin {
    () => {
        wit_bindgen::generate!({ world: "grouping-rule-plugin", path: "../../wit" });

        use exports::host::plugin::dependency_rule::Guest;
        use exports::host::plugin::grouped_memory::{Guest as GroupedGuest, HitGroup};
        use exports::host::plugin::task_memory::{Guest as MemoryGuest, NumberedTask};
        use host::plugin::host::config;
        use host::plugin::types::{Dependency, RuleInfo, Task};

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
                $crate::begin_batch();
                let keywords = keywords();
                let a = rule::Prepared::new(&text(&a), &keywords);
                let b = rule::Prepared::new(&text(&b), &keywords);
                found(rule::check(&a, &b, &keywords))
            }

            fn check_batch(task: Task, candidates: Vec<Task>) -> Vec<(u32, Dependency)> {
                $crate::begin_batch();
                let keywords = keywords();
                let a = rule::Prepared::new(&text(&task), &keywords);
                candidates
                    .iter()
                    .enumerate()
                    .filter_map(|(i, b)| {
                        let b = rule::Prepared::remembered(&b.id, &text(b), &keywords);
                        found(rule::check(&a, &b, &keywords)).map(|d| (i as u32, d))
                    })
                    .collect()
            }
        }

        impl MemoryGuest for Plugin {
            fn remember(tasks: Vec<NumberedTask>) {
                $crate::begin_batch();
                for t in &tasks {
                    $crate::remember(t.number, &t.task.repository, &text(&t.task));
                }
            }

            fn check_remembered(
                task: u32,
                candidates: Vec<u32>,
            ) -> Result<Vec<(u32, Dependency)>, Vec<u32>> {
                let (a, candidates) = $crate::recall_batch(task, &candidates)?;
                let keywords = keywords();
                let a = rule::Prepared::of(a.words.clone(), &keywords);
                Ok(candidates
                    .iter()
                    .enumerate()
                    .filter_map(|(i, b)| {
                        let b = rule::Prepared::of(b.words.clone(), &keywords);
                        found(rule::check(&a, &b, &keywords)).map(|d| (i as u32, d))
                    })
                    .collect())
            }
        }

        impl GroupedGuest for Plugin {
            fn check_grouped(task: u32, candidates: Vec<u32>) -> Result<Vec<HitGroup>, Vec<u32>> {
                let (a, candidates) = $crate::recall_batch(task, &candidates)?;
                let keywords = keywords();
                let a = rule::Prepared::of(a.words.clone(), &keywords);
                // Keyed by what the rule said: its reason and confidence.
                let mut groups = $crate::HitGroups::<(String, u32)>::default();
                for (i, b) in candidates.iter().enumerate() {
                    let b = rule::Prepared::of(b.words.clone(), &keywords);
                    if let Some(f) = rule::check(&a, &b, &keywords) {
                        groups.add(i as u32, &(f.reason, f.confidence.to_bits()));
                    }
                }
                Ok(groups
                    .into_groups()
                    .into_iter()
                    .map(|((reason, confidence), candidates)| HitGroup {
                        dependency: Dependency {
                            relationship: rule::RELATIONSHIP.to_string(),
                            reason,
                            confidence: f32::from_bits(confidence),
                        },
                        candidates,
                    })
                    .collect())
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
            $crate::parse_keywords(config("keywords").as_deref(), rule::DEFAULT_KEYWORDS)
        }

        fn text(task: &Task) -> $crate::TaskText<'_> {
            $crate::TaskText {
                title: &task.title,
                description: &task.description,
                keywords: &task.keywords,
            }
        }

        export!(Plugin);
    };
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
    fn stopwords_are_sorted_and_found() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(STOPWORDS.iter().all(|w| is_stopword(w)));
        assert!(!is_stopword("orders"));
    }

    #[test]
    fn hits_are_grouped_by_key_in_the_order_of_each_groups_first_hit() {
        let mut groups = HitGroups::<Vec<u32>>::default();
        for (i, key) in [(0, [7, 1]), (1, [2, 1]), (2, [7, 1]), (5, [2, 1])] {
            groups.add(i, key.as_slice());
        }
        groups.add(9, [7].as_slice());
        assert_eq!(
            groups.into_groups(),
            [
                (vec![7, 1], vec![0, 2]),
                (vec![2, 1], vec![1, 5]),
                (vec![7], vec![9])
            ]
        );
    }

    #[test]
    fn remembered_terms_follow_a_task_whose_text_changed() {
        let old = TaskText {
            title: "Orders tables",
            description: "",
            keywords: &[],
        };
        let first = remembered_words("t1", &old);
        assert_eq!(first.terms, terms(&old));
        assert!(Rc::ptr_eq(&first, &remembered_words("t1", &old)));
        let keywords = ["Billing".to_string()];
        let new = TaskText {
            title: "Orders tables",
            description: "",
            keywords: &keywords,
        };
        let second = remembered_words("t1", &new);
        assert_eq!(*second, Words::of(&new));
        assert!(second.contains("billing"));
        // Another id with the old text reads it afresh, not the changed one.
        assert_eq!(*remembered_words("t2", &old), Words::of(&old));
    }

    #[test]
    fn a_word_keeps_its_number_and_numbers_name_their_words() {
        let table = term_id("table");
        assert_eq!(term_id("table"), table);
        assert_ne!(term_id("tables"), table);
        assert_eq!(&*term_word(table), "table");
        let words = Words::of(&TaskText {
            title: "Orders table",
            description: "",
            keywords: &[],
        });
        assert!(words.ids.windows(2).all(|w| w[0] < w[1]));
        let mut named: Vec<String> = words
            .ids
            .iter()
            .map(|i| term_word(*i).to_string())
            .collect();
        named.sort();
        assert_eq!(named, words.terms.iter().cloned().collect::<Vec<_>>());
        let mut listed = String::new();
        push_words_sorted(&mut listed, &words.ids);
        assert_eq!(listed, "order, table");
        assert!(term_is_stopword(term_id("the")));
        assert!(!term_is_stopword(table));
    }

    #[test]
    fn numbered_tasks_are_recalled_until_the_memory_starts_over() {
        let text = TaskText {
            title: "Orders tables",
            description: "",
            keywords: &[],
        };
        remember(7, "shop", &text);
        let recalled = recall(7).expect("remembered");
        assert_eq!(recalled.repository, "shop");
        assert_eq!(*recalled.words, Words::of(&text));
        assert!(recall(8).is_none());
        assert_eq!(recall_all(&[7, 8, 7, 9]).err(), Some(vec![8, 9]));
        assert_eq!(recall_all(&[7, 7]).map(|r| r.len()), Ok(2));
        assert_eq!(recall_batch(8, &[7, 9]).err(), Some(vec![8, 9]));
        assert_eq!(recall_batch(7, &[9]).err(), Some(vec![9]));
        assert_eq!(recall_batch(8, &[7]).err(), Some(vec![8]));
        assert!(recall_batch(7, &[7]).is_ok());
        // Past the bound everything goes, numbers with the vocabulary
        // their words were numbered in.
        for n in 0..REMEMBERED as u32 {
            NUMBERED.with_borrow_mut(|m| m.insert(1000 + n, recalled.clone()));
        }
        begin_batch();
        assert!(recall(7).is_none());
        assert_eq!(recall_all(&[7]).err(), Some(vec![7]));
    }

    #[test]
    fn configured_keywords_replace_the_defaults() {
        assert_eq!(parse_keywords(Some(" A , b "), &["x"]), ["a", "b"]);
        assert_eq!(parse_keywords(Some(" "), &["x"]), ["x"]);
    }
}
