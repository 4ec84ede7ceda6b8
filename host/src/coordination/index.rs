//! A keyword index over tasks, so a rule is only asked about pairs that
//! could interest it: with 10,000 tasks, checking every pair against every
//! rule would be 40,000 plugin calls per registration.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::task::Task;

/// Word → ids of the tasks that mention it.
#[derive(Default)]
pub(crate) struct KeywordIndex {
    by_word: HashMap<String, HashSet<String>>,
    all: BTreeSet<String>,
}

/// The lower-cased words of a task's title, description and keywords.
pub(crate) fn words(task: &Task) -> HashSet<String> {
    let mut out = HashSet::new();
    for text in [task.title.as_str(), task.description.as_str()]
        .into_iter()
        .chain(task.keywords.iter().map(String::as_str))
    {
        for word in text.split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-') {
            if !word.is_empty() {
                out.insert(word.to_lowercase());
            }
        }
    }
    out
}

impl KeywordIndex {
    pub(crate) fn insert(&mut self, task: &Task) {
        for w in words(task) {
            self.by_word.entry(w).or_default().insert(task.id.clone());
        }
        self.all.insert(task.id.clone());
    }

    pub(crate) fn remove(&mut self, task: &Task) {
        for w in words(task) {
            if let Some(ids) = self.by_word.get_mut(&w) {
                ids.remove(&task.id);
                if ids.is_empty() {
                    self.by_word.remove(&w);
                }
            }
        }
        self.all.remove(&task.id);
    }

    /// Ids of indexed tasks to pair with `task` for a rule with
    /// `keywords` (lower-case). Empty keywords: every task. Otherwise only
    /// tasks sharing a keyword, and none at all if `task` mentions none.
    pub(crate) fn candidates(&self, task: &Task, keywords: &[String]) -> BTreeSet<String> {
        if keywords.is_empty() {
            return self.all.clone();
        }
        let own = words(task);
        if !keywords.iter().any(|k| own.contains(k)) {
            return BTreeSet::new();
        }
        keywords
            .iter()
            .filter_map(|k| self.by_word.get(k))
            .flat_map(|ids| ids.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, title: &str, keywords: &[&str]) -> Task {
        Task {
            id: id.into(),
            repository: "r".into(),
            title: title.into(),
            description: String::new(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            agent: None,
        }
    }

    #[test]
    fn a_rule_with_keywords_only_sees_tasks_sharing_one() {
        let mut index = KeywordIndex::default();
        index.insert(&task("a", "Add login API", &[]));
        index.insert(&task("b", "Fix CSS", &["frontend"]));
        index.insert(&task("c", "Schema change", &["api"]));
        let new = task("d", "Call the API", &[]);
        let got = index.candidates(&new, &["api".into()]);
        assert_eq!(got.into_iter().collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn a_task_without_the_rules_keywords_gets_no_candidates() {
        let mut index = KeywordIndex::default();
        index.insert(&task("a", "Add login API", &[]));
        assert!(
            index
                .candidates(&task("d", "Fix CSS", &[]), &["api".into()])
                .is_empty()
        );
    }

    #[test]
    fn a_rule_without_keywords_sees_every_task() {
        let mut index = KeywordIndex::default();
        index.insert(&task("a", "x", &[]));
        index.insert(&task("b", "y", &[]));
        assert_eq!(index.candidates(&task("c", "z", &[]), &[]).len(), 2);
    }

    #[test]
    fn removed_tasks_are_no_longer_candidates() {
        let mut index = KeywordIndex::default();
        let a = task("a", "api", &[]);
        index.insert(&a);
        index.remove(&a);
        assert!(
            index
                .candidates(&task("d", "api", &[]), &["api".into()])
                .is_empty()
        );
        assert!(index.candidates(&task("d", "api", &[]), &[]).is_empty());
    }
}
