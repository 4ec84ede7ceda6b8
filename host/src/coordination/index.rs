//! A keyword index over tasks, so a rule is only asked about pairs that
//! could interest it: with 10,000 tasks, checking every pair against every
//! rule would be 40,000 plugin calls per registration.
//!
//! Tasks live in numbered slots and posting lists hold slot numbers, so
//! selecting a thousand candidates is merging a few integer lists and
//! handing out shared [`Arc`]s: no id strings sorted, no task cloned.
//! (Cloning 1,000 tasks and their ids per rule cost 5 ms a rule.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::task::{NumberedTask, Task};

/// The tasks, by id, and word → the slots of the tasks that mention it.
#[derive(Default)]
pub(crate) struct KeywordIndex {
    /// Registered tasks by id, in id order (the order lists are shown in).
    by_id: BTreeMap<String, Slot>,
    /// Slot → task; `None` for a slot freed by a removal.
    slots: Vec<Option<NumberedTask>>,
    /// Freed slots, reused before the vector grows.
    free: Vec<u32>,
    by_word: HashMap<String, HashSet<u32>>,
}

/// A task's slot, and the words it was filed under (to unfile it).
struct Slot {
    number: u32,
    words: HashSet<String>,
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
    /// Files `task`, replacing a task of the same id.
    pub(crate) fn insert(&mut self, task: NumberedTask) {
        self.remove(&task.task.id);
        let number = match self.free.pop() {
            Some(n) => n,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).expect("fewer than 4 billion tasks")
            }
        };
        let words = words(&task.task);
        for w in &words {
            self.by_word.entry(w.clone()).or_default().insert(number);
        }
        self.by_id
            .insert(task.task.id.clone(), Slot { number, words });
        self.slots[number as usize] = Some(task);
    }

    /// Unfiles the task `id`; returns it if it was filed.
    pub(crate) fn remove(&mut self, id: &str) -> Option<NumberedTask> {
        let slot = self.by_id.remove(id)?;
        for w in &slot.words {
            if let Some(numbers) = self.by_word.get_mut(w) {
                numbers.remove(&slot.number);
                if numbers.is_empty() {
                    self.by_word.remove(w);
                }
            }
        }
        self.free.push(slot.number);
        self.slots[slot.number as usize].take()
    }

    /// The task `id`.
    pub(crate) fn get(&self, id: &str) -> Option<&Arc<Task>> {
        self.slots[self.by_id.get(id)?.number as usize]
            .as_ref()
            .map(|t| &t.task)
    }

    /// Every task, in id order.
    pub(crate) fn tasks(&self) -> impl Iterator<Item = &Arc<Task>> {
        self.by_id
            .values()
            .filter_map(|slot| self.slots[slot.number as usize].as_ref())
            .map(|t| &t.task)
    }

    /// Indexed tasks to pair with a task whose words are `own`, for a rule
    /// with `keywords` (lower-case), in registration order. Empty
    /// keywords: every task. Otherwise only tasks mentioning one of the
    /// keywords, and none at all if `own` mentions none.
    pub(crate) fn candidates(
        &self,
        own: &HashSet<String>,
        keywords: &[String],
    ) -> Vec<NumberedTask> {
        let mut numbers: Vec<u32> = if keywords.is_empty() {
            self.by_id.values().map(|slot| slot.number).collect()
        } else if !keywords.iter().any(|k| own.contains(k)) {
            return Vec::new();
        } else {
            keywords
                .iter()
                .filter_map(|k| self.by_word.get(k))
                .flatten()
                .copied()
                .collect()
        };
        numbers.sort_unstable();
        numbers.dedup();
        numbers
            .into_iter()
            .filter_map(|n| self.slots[n as usize].clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, title: &str, keywords: &[&str]) -> NumberedTask {
        NumberedTask::new(
            0,
            Task {
                id: id.into(),
                repository: "r".into(),
                title: title.into(),
                description: String::new(),
                keywords: keywords.iter().map(|k| k.to_string()).collect(),
                agent: None,
            },
        )
    }

    fn ids(tasks: Vec<NumberedTask>) -> Vec<String> {
        tasks.iter().map(|t| t.task.id.clone()).collect()
    }

    #[test]
    fn a_rule_with_keywords_only_sees_tasks_sharing_one() {
        let mut index = KeywordIndex::default();
        index.insert(task("a", "Add login API", &[]));
        index.insert(task("b", "Fix CSS", &["frontend"]));
        index.insert(task("c", "Schema change", &["api"]));
        let new = task("d", "Call the API", &[]);
        let got = index.candidates(&words(&new.task), &["api".into()]);
        assert_eq!(ids(got), ["a", "c"]);
    }

    #[test]
    fn a_task_without_the_rules_keywords_gets_no_candidates() {
        let mut index = KeywordIndex::default();
        index.insert(task("a", "Add login API", &[]));
        assert!(
            index
                .candidates(&words(&task("d", "Fix CSS", &[]).task), &["api".into()])
                .is_empty()
        );
    }

    #[test]
    fn a_rule_without_keywords_sees_every_task() {
        let mut index = KeywordIndex::default();
        index.insert(task("a", "x", &[]));
        index.insert(task("b", "y", &[]));
        assert_eq!(
            index
                .candidates(&words(&task("c", "z", &[]).task), &[])
                .len(),
            2
        );
    }

    #[test]
    fn removed_tasks_are_no_longer_candidates() {
        let mut index = KeywordIndex::default();
        index.insert(task("a", "api", &[]));
        assert!(index.remove("a").is_some());
        let d = words(&task("d", "api", &[]).task);
        assert!(index.candidates(&d, &["api".into()]).is_empty());
        assert!(index.candidates(&d, &[]).is_empty());
        assert!(index.get("a").is_none());
    }

    #[test]
    fn a_replaced_task_is_filed_under_its_new_words_only_and_its_slot_is_reused() {
        let mut index = KeywordIndex::default();
        index.insert(task("a", "api", &[]));
        index.insert(task("b", "api", &[]));
        index.insert(task("a", "database", &[]));
        let api = words(&task("d", "api", &[]).task);
        assert_eq!(ids(index.candidates(&api, &["api".into()])), ["b"]);
        let db = words(&task("d", "database", &[]).task);
        assert_eq!(ids(index.candidates(&db, &["database".into()])), ["a"]);
        assert_eq!(index.slots.len(), 2, "the freed slot was reused");
        let all: Vec<_> = index.tasks().map(|t| t.id.clone()).collect();
        assert_eq!(all, ["a", "b"]);
    }
}
