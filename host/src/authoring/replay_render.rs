//! A replay for people and for snapshot files: the text of a [`Replay`],
//! two versions side by side where they decide differently (`--against`),
//! and a replay checked against a snapshot (`--expect`).
//!
//! The text is the snapshot: one block per input (a header line, then its
//! decisions indented), nothing in it about when or where the replay ran,
//! so a snapshot written today passes tomorrow on another machine.
//! Comparisons go block by block, so a difference is named by its event.

use std::collections::BTreeMap;

use serde::Serialize;

use super::replay::{Replay, Step};

/// What a step with no decision shows.
const NOTHING: &str = "nothing";
/// Widest a column of the side-by-side view gets before lines wrap.
const COLUMN: usize = 60;

/// The replay as text, ending in a newline.
pub fn render(replay: &Replay) -> String {
    let kinds: Vec<String> = replay.kinds.iter().map(|k| k.to_string()).collect();
    let mut out = format!(
        "plugin {} ({}), clock {}\n",
        replay.plugin,
        kinds.join(", "),
        match replay.clock {
            super::replay::ClockMode::Virtual => "virtual",
            super::replay::ClockMode::Real => "real",
        }
    );
    for step in &replay.steps {
        out.push_str(&step.input);
        out.push('\n');
        for line in decisions(step) {
            out.push_str("    ");
            out.push_str(&line);
            out.push('\n');
        }
    }
    let decided = replay
        .steps
        .iter()
        .filter(|s| !s.decisions.is_empty())
        .count();
    let failed = replay
        .steps
        .iter()
        .filter(|s| s.decisions.iter().any(|d| d.starts_with("failed")))
        .count();
    out.push_str(&format!(
        "{} of {} inputs given to the plugin ({} passed over); {decided} with a decision, {failed} failed\n",
        replay.steps.len(),
        replay.inputs,
        replay.passed_over(),
    ));
    out
}

fn decisions(step: &Step) -> Vec<String> {
    if step.decisions.is_empty() {
        vec![NOTHING.to_string()]
    } else {
        step.decisions.clone()
    }
}

/// Two versions on the same input: the steps where they decided
/// differently, and how many they decided alike.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The new version's name (`PLUGIN`).
    pub new: String,
    /// The old version's name (`--against`).
    pub old: String,
    /// Inputs either version was given on which they decided alike.
    pub same: usize,
    /// Where they differ, in input order.
    pub differences: Vec<Difference>,
}

/// One input on which two versions decided differently.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The input, as in [`Step::input`].
    pub input: String,
    /// What the new version decided (`None`: it was not given the input).
    pub new: Option<Vec<String>>,
    /// What the old version decided.
    pub old: Option<Vec<String>>,
}

/// An input's name and the two versions' steps for it.
type Pair<'a> = (&'a str, Option<&'a Step>, Option<&'a Step>);

/// Compare two replays of the same input, step by step.
pub fn compare(new: &Replay, old: &Replay) -> Comparison {
    let mut by_input: BTreeMap<(u64, usize), Pair> = BTreeMap::new();
    // Events are keyed by sequence (the two versions may be given different
    // ones), tasks by their place in the file (both are given every task).
    let key = |i: usize, s: &Step| s.sequence.map_or((0, i), |seq| (seq, 0));
    for (i, s) in new.steps.iter().enumerate() {
        by_input
            .entry(key(i, s))
            .or_insert((&s.input, None, None))
            .1 = Some(s);
    }
    for (i, s) in old.steps.iter().enumerate() {
        by_input
            .entry(key(i, s))
            .or_insert((&s.input, None, None))
            .2 = Some(s);
    }
    let mut same = 0;
    let mut differences = Vec::new();
    for (input, a, b) in by_input.into_values() {
        if a.map(|s| &s.decisions) == b.map(|s| &s.decisions) {
            same += 1;
            continue;
        }
        differences.push(Difference {
            input: input.to_string(),
            new: a.map(decisions),
            old: b.map(decisions),
        });
    }
    Comparison {
        new: new.plugin.clone(),
        old: old.plugin.clone(),
        same,
        differences,
    }
}

/// The comparison as text: each differing input with the two versions'
/// decisions side by side, then the count of inputs decided alike.
pub fn render_comparison(c: &Comparison) -> String {
    let not_given = || vec!["(not given this input)".to_string()];
    let mut width = format!("new: {}", c.new).len();
    for d in &c.differences {
        for line in d.new.clone().unwrap_or_else(not_given) {
            width = width.max(line.chars().count());
        }
    }
    let width = width.min(COLUMN);
    let mut out = String::new();
    for d in &c.differences {
        out.push_str(&d.input);
        out.push('\n');
        let left: Vec<String> = std::iter::once(format!("new: {}", c.new))
            .chain(d.new.clone().unwrap_or_else(not_given))
            .flat_map(|l| wrap(&l, width))
            .collect();
        let right: Vec<String> = std::iter::once(format!("old: {}", c.old))
            .chain(d.old.clone().unwrap_or_else(not_given))
            .flat_map(|l| wrap(&l, width))
            .collect();
        for i in 0..left.len().max(right.len()) {
            let l = left.get(i).map_or("", String::as_str);
            let r = right.get(i).map_or("", String::as_str);
            let pad = width - l.chars().count();
            out.push_str(format!("    {l}{} | {r}", " ".repeat(pad)).trim_end());
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "{} inputs decided differently, {} decided alike\n",
        c.differences.len(),
        c.same
    ));
    out
}

/// `line` cut into pieces of at most `width` characters.
fn wrap(line: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars.chunks(width).map(|c| c.iter().collect()).collect()
}

/// How a replay's text differs from a snapshot's, block by block: each
/// block is an input (or the first or last line) with its decisions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    /// The block's first line, as in the snapshot or (if new) the replay.
    pub input: String,
    /// The block as the snapshot has it (`None`: not in it).
    pub expected: Option<String>,
    /// The block as the replay gave it (`None`: not given).
    pub actual: Option<String>,
}

/// The blocks of `expected` and `actual` text that differ, in order.
pub fn mismatches(expected: &str, actual: &str) -> Vec<Mismatch> {
    let e = blocks(expected);
    let a = blocks(actual);
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let actual_of = |head: &str| a.iter().find(|(h, _)| h == head).map(|(_, b)| b.clone());
    for (head, block) in &e {
        seen.insert(head.clone());
        let got = actual_of(head);
        if got.as_ref() != Some(block) {
            out.push(Mismatch {
                input: head.clone(),
                expected: Some(block.clone()),
                actual: got,
            });
        }
    }
    for (head, block) in &a {
        if !seen.contains(head) {
            out.push(Mismatch {
                input: head.clone(),
                expected: None,
                actual: Some(block.clone()),
            });
        }
    }
    // Inputs in the order they were replayed; the header and the summary,
    // which differ because an input did, after them.
    let place = |m: &Mismatch| {
        let general = m.input.starts_with('(');
        let at = a.iter().position(|(h, _)| *h == m.input);
        (general, at.unwrap_or(usize::MAX))
    };
    out.sort_by_key(place);
    out
}

/// Text cut into blocks: a line not indented starts one.
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if line.starts_with(' ')
            && let Some((_, block)) = out.last_mut()
        {
            block.push('\n');
            block.push_str(line);
            continue;
        }
        out.push((line.to_string(), line.to_string()));
    }
    // The summary line differs whenever anything does; it is the last block
    // and is keyed by what it is, not by its counts.
    if let Some(last) = out.last_mut()
        && last.0.contains(" inputs given to the plugin ")
    {
        last.0 = "(summary)".to_string();
    }
    if let Some(first) = out.first_mut()
        && first.0.starts_with("plugin ")
    {
        first.0 = "(header)".to_string();
    }
    out
}

/// The mismatches as text for the terminal: each block as expected and as
/// replayed.
pub fn render_mismatches(file: &str, list: &[Mismatch]) -> String {
    let mut out = String::new();
    for m in list {
        out.push_str(&format!("{}\n", m.input));
        let show = |label: &str, block: &Option<String>| match block {
            Some(b) => b
                .lines()
                .map(|l| format!("  {label} {}\n", l.trim()))
                .collect::<String>(),
            None => format!("  {label} (absent)\n"),
        };
        out.push_str(&show("expected", &m.expected));
        out.push_str(&show("replayed", &m.actual));
    }
    out.push_str(&format!(
        "{} differences from {file}; run again with --bless (or BLESS=1) to accept the replay as the new snapshot\n",
        list.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authoring::replay::ClockMode;
    use crate::plugins::Kind;

    fn step(seq: u64, decisions: &[&str]) -> Step {
        Step {
            sequence: Some(seq),
            input: format!("#{seq} process.failed web"),
            decisions: decisions.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn replay(name: &str, steps: Vec<Step>) -> Replay {
        Replay {
            plugin: name.into(),
            kinds: vec![Kind::EventHandler],
            clock: ClockMode::Virtual,
            inputs: 10,
            steps,
        }
    }

    #[test]
    fn the_text_has_one_block_per_input_and_nothing_about_the_run() {
        let r = replay("alert", vec![step(3, &[]), step(7, &["emit a.b web {}"])]);
        assert_eq!(
            render(&r),
            "plugin alert (event-handler), clock virtual\n\
             #3 process.failed web\n    nothing\n\
             #7 process.failed web\n    emit a.b web {}\n\
             2 of 10 inputs given to the plugin (8 passed over); 1 with a decision, 0 failed\n"
        );
    }

    #[test]
    fn two_versions_are_compared_input_by_input_and_the_alike_ones_counted() {
        let new = replay(
            "v2",
            vec![step(1, &["x"]), step(2, &["y"]), step(4, &["z"])],
        );
        let old = replay(
            "v1",
            vec![step(1, &["x"]), step(2, &["w"]), step(3, &["q"])],
        );
        let c = compare(&new, &old);
        assert_eq!(c.same, 1);
        let inputs: Vec<&str> = c.differences.iter().map(|d| d.input.as_str()).collect();
        assert_eq!(
            inputs,
            [
                "#2 process.failed web",
                "#3 process.failed web",
                "#4 process.failed web"
            ]
        );
        assert_eq!(c.differences[1].new, None, "v2 was not given #3");
        // Given different events, the alike ones still pair up by sequence.
        let a = replay("a", vec![step(2, &["x"]), step(5, &["y"])]);
        let b = replay("b", vec![step(5, &["y"])]);
        assert_eq!(compare(&a, &b).same, 1);
        let text = render_comparison(&c);
        assert!(
            text.lines()
                .any(|l| l.starts_with("    y ") && l.ends_with(" | w")),
            "{text}"
        );
        assert!(text.contains("(not given this input)"), "{text}");
        assert!(
            text.ends_with("3 inputs decided differently, 1 decided alike\n"),
            "{text}"
        );
    }

    #[test]
    fn long_decisions_wrap_in_their_column_instead_of_pushing_the_other_one_away() {
        let long = "e".repeat(150);
        let new = replay("v2", vec![step(1, &[&long])]);
        let old = replay("v1", vec![step(1, &["short"])]);
        let text = render_comparison(&compare(&new, &old));
        for line in text.lines() {
            assert!(line.chars().count() <= 4 + COLUMN + 3 + COLUMN, "{line}");
        }
        assert!(text.contains(" | short"), "{text}");
    }

    #[test]
    fn a_snapshot_mismatch_is_named_by_the_event_that_decided_differently() {
        let blessed = render(&replay("alert", vec![step(3, &[]), step(7, &["emit a"])]));
        assert!(mismatches(&blessed, &blessed).is_empty());
        let now = render(&replay("alert", vec![step(3, &[]), step(7, &["emit b"])]));
        let found = mismatches(&blessed, &now);
        let inputs: Vec<&str> = found.iter().map(|m| m.input.as_str()).collect();
        assert_eq!(
            inputs,
            ["#7 process.failed web"],
            "the summary is alike: {found:?}"
        );
        let reordered = render(&replay(
            "alert",
            vec![step(3, &["emit c"]), step(7, &["emit b"])],
        ));
        let inputs: Vec<String> = mismatches(&blessed, &reordered)
            .into_iter()
            .map(|m| m.input)
            .collect();
        assert_eq!(
            inputs,
            [
                "#3 process.failed web",
                "#7 process.failed web",
                "(summary)"
            ]
        );
        let extra = render(&replay(
            "alert",
            vec![step(3, &[]), step(7, &["emit a"]), step(9, &[])],
        ));
        let found = mismatches(&blessed, &extra);
        assert_eq!(found[0].input, "#9 process.failed web", "{found:?}");
        assert_eq!(found[0].expected, None);
        let text = render_mismatches("snap.txt", &found);
        assert!(
            text.contains("expected (absent)") && text.contains("--bless"),
            "{text}"
        );
    }
}
