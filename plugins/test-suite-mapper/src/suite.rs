//! Reading test runners' output — pytest, `cargo test`, cargo-nextest and
//! `go test` — into counts, progress and the first failures. No host call
//! here, so it is tested natively against captured real outputs
//! (`fixtures/`).
//!
//! A [`Suite`] is fed one line at a time and is serialisable, so the
//! mapper can keep one per process in plugin state across calls and
//! reloads. One process may run several sessions (cargo runs one test
//! binary after another; a script may call pytest twice): each session's
//! own summary line, when it prints one, replaces the per-test counts of
//! that session, so the totals are the runner's own numbers where it gives
//! them and counted lines where it does not (`go test`, an interrupted
//! run).
//!
//! This file holds the suite and what the runners share (sessions,
//! failures and their messages, Rust panics); each runner's lines are read
//! in its own file: `suite/pytest.rs`, `suite/rust.rs` (cargo test and
//! nextest), `suite/go.rs`.
//!
//! Counts: pytest's `error` is counted as failed, `xfailed` as skipped and
//! `xpassed` as passed; cargo's `ignored` is skipped; nextest's `timed out`
//! is failed.

use serde::{Deserialize, Serialize};

mod go;
mod pytest;
mod rust;

/// Longest failure message kept, in characters.
pub const MESSAGE_CHARS: usize = 500;

/// Passed, failed and skipped tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }

    /// Every test counted.
    pub fn total(&self) -> u64 {
        self.passed + self.failed + self.skipped
    }
}

/// One failed test and what it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub test: String,
    /// Empty when the runner printed none that could be found.
    pub message: String,
}

/// Which runner printed the session being read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Runner {
    #[default]
    Unknown,
    Pytest,
    Cargo,
    Nextest,
    Go,
}

/// Where a failure's message is being read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Capture {
    #[default]
    None,
    /// Lines after a Rust panic of test `test`, until a blank line.
    Panic { test: String },
    /// Indented lines after `go test`'s `--- FAIL: test`.
    GoFail { test: String },
}

/// Everything read so far of one process's run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Suite {
    /// Counts of sessions that ended with a summary line.
    done: Counts,
    /// Counts of the session being read, line by line.
    current: Counts,
    runner: Runner,
    /// Tests the current session announced (`running 5 tests`).
    expected: Option<u64>,
    /// Whether nextest printed its summary (its failure list follows,
    /// which must not be counted again).
    summarised: bool,
    /// 0.0 ..= 1.0, the runner's own figure where it prints one.
    progress: Option<f32>,
    /// Every failure seen, counted even past `max_failures`.
    failures_seen: u64,
    failures: Vec<Failure>,
    max_failures: usize,
    capture: Capture,
    /// `go test -v`: the top-level test running and its first log line.
    go_test: Option<(String, Option<String>)>,
}

/// The summary a process's status shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub progress: Option<f32>,
    pub message: String,
}

impl Suite {
    /// A suite keeping at most `max_failures` failures (counts stay exact).
    pub fn new(max_failures: usize) -> Self {
        Suite {
            max_failures,
            ..Suite::default()
        }
    }

    /// Passed, failed and skipped over every session so far.
    pub fn counts(&self) -> Counts {
        let mut c = self.done;
        c.add(self.current);
        c
    }

    /// The first failures, in the order they were seen.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Failures seen but not kept (past `max_failures`).
    pub fn failures_left_out(&self) -> u64 {
        self.failures_seen - self.failures.len() as u64
    }

    /// The progress and a one-line summary, e.g. `7 passed, 3 failed, 1 skipped`.
    pub fn reading(&self) -> Reading {
        let c = self.counts();
        Reading {
            progress: self.progress,
            message: format!(
                "{} passed, {} failed, {} skipped",
                c.passed, c.failed, c.skipped
            ),
        }
    }

    /// Reads one line; true if it changed the counts or the progress.
    pub fn feed(&mut self, raw: &str) -> bool {
        let cleaned = crate::runlog::strip_ansi(raw);
        let line = cleaned.trim_end();
        let before = (self.counts(), self.progress);
        self.capture_message(line);
        let trimmed = line.trim_start();
        let indented = trimmed.len() != line.len();
        if !indented {
            self.pytest(trimmed);
            self.cargo(trimmed);
            self.go(trimmed);
        }
        self.nextest(trimmed);
        self.go_log(line, indented);
        before != (self.counts(), self.progress)
    }

    /// Starts a session of `runner` if another one was being read.
    fn session(&mut self, runner: Runner) {
        if self.runner != runner {
            self.close_session();
            self.runner = runner;
        }
    }

    /// Moves the current session's counts to the done ones.
    fn close_session(&mut self) {
        let current = std::mem::take(&mut self.current);
        self.done.add(current);
        self.expected = None;
        self.summarised = false;
    }

    /// A session's summary replaces its counted lines.
    fn summary(&mut self, counts: Counts) {
        self.current = counts;
        self.close_session();
    }

    fn fail(&mut self, test: &str, message: Option<String>) {
        self.current.failed += 1;
        self.note_failure(test, message);
    }

    /// Records a failure (counted elsewhere), or adds a message to the one
    /// already recorded under that name.
    fn note_failure(&mut self, test: &str, message: Option<String>) {
        let message = message.map(|m| shorten(&m));
        if let Some(f) = self.failures.iter_mut().find(|f| f.test == test) {
            if f.message.is_empty()
                && let Some(m) = message
            {
                f.message = m;
            }
            return;
        }
        self.failures_seen += 1;
        if self.failures.len() < self.max_failures {
            self.failures.push(Failure {
                test: shorten(test),
                message: message.unwrap_or_default(),
            });
        }
    }

    /// Adds `text` to the message of failure `test`, if it has none yet or
    /// is still being read.
    fn extend_message(&mut self, test: &str, text: &str) {
        if let Some(f) = self.failures.iter_mut().find(|f| f.test == test)
            && f.message.chars().count() < MESSAGE_CHARS
        {
            if !f.message.is_empty() {
                f.message.push(' ');
            }
            f.message.push_str(text);
            f.message = shorten(&f.message);
        }
    }

    fn capture_message(&mut self, line: &str) {
        let text = line.trim();
        match std::mem::take(&mut self.capture) {
            Capture::None => {}
            Capture::Panic { test } => {
                if !(text.is_empty()
                    || text.starts_with("stack backtrace:")
                    || text.starts_with("note:"))
                {
                    self.extend_message(&test, text);
                    self.capture = Capture::Panic { test };
                }
            }
            Capture::GoFail { test } => {
                let indented = line.starts_with([' ', '\t']);
                if indented && !text.starts_with("--- ") {
                    if self
                        .failures
                        .iter()
                        .any(|f| f.test == test && f.message.is_empty())
                    {
                        self.extend_message(&test, text);
                    }
                } else if !(indented && text.starts_with("--- ")) {
                    return;
                }
                self.capture = Capture::GoFail { test };
            }
        }
        // `thread 'tests::x' (123) panicked at src/lib.rs:9:21:` — cargo
        // and nextest both print it; the thread is named after the test.
        if let Some(rest) = text.strip_prefix("thread '")
            && let Some((thread, after)) = rest.split_once('\'')
            && let Some(at) = after.find("panicked at ")
        {
            let place = after[at + "panicked at ".len()..].trim_end_matches(':');
            if self.failures.iter().any(|f| f.test == thread) {
                let test = thread.to_string();
                if let Some(f) = self.failures.iter_mut().find(|f| f.test == test)
                    && f.message.is_empty()
                {
                    f.message = shorten(&format!("panicked at {place}:"));
                    self.capture = Capture::Panic { test };
                }
            }
        }
    }
}

/// The number a text starts with.
fn leading_u64(text: &str) -> Option<u64> {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text[..end].parse().ok()
}

/// At most [`MESSAGE_CHARS`] characters of `text`.
fn shorten(text: &str) -> String {
    text.chars().take(MESSAGE_CHARS).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn run(text: &str) -> Suite {
        let mut s = Suite::new(20);
        for line in text.lines() {
            s.feed(line);
        }
        s
    }

    pub(crate) fn counts(passed: u64, failed: u64, skipped: u64) -> Counts {
        Counts {
            passed,
            failed,
            skipped,
        }
    }

    pub(crate) fn failure(test: &str, message: &str) -> Failure {
        Failure {
            test: test.into(),
            message: message.into(),
        }
    }

    #[test]
    fn thousands_of_failures_keep_exact_counts_and_only_the_first_few() {
        let mut s = Suite::new(5);
        s.feed("running 5000 tests");
        for i in 0..5000 {
            s.feed(&format!("test t{i} ... FAILED"));
        }
        assert_eq!(s.counts(), counts(0, 5000, 0));
        assert_eq!(s.failures().len(), 5);
        assert_eq!(s.failures()[4].test, "t4");
        assert_eq!(s.failures_left_out(), 4995);
    }

    #[test]
    fn a_line_of_a_megabyte_counts_nothing_and_keeps_no_megabyte() {
        let mut s = Suite::new(5);
        s.feed("running 1 test");
        let huge = format!("test {} ... FAILED", "x".repeat(1 << 20));
        assert!(s.feed(&huge));
        assert_eq!(s.counts(), counts(0, 1, 0));
        assert_eq!(s.failures()[0].test.chars().count(), MESSAGE_CHARS);
        assert!(!s.feed(&"y".repeat(1 << 20)));
        assert!(!s.feed(&format!("{} [ 50%]", "?".repeat(1 << 20))));
    }

    #[test]
    fn garbage_and_near_misses_change_nothing() {
        let s = run(
            "[ 50%]\nabc [ 150%]\nrunning many tests\n=== 1 exploded in 2s ===\n\
                     test x ... ok\n--- FAIL\nSummary [ 1s] 3 tests run: 3 passed\n\u{1b}[",
        );
        assert_eq!(s.counts(), Counts::default());
        assert_eq!(s.failures(), &[]);
    }

    #[test]
    fn a_suite_survives_a_trip_through_state() {
        let mut s = Suite::new(3);
        s.feed("running 2 tests");
        s.feed("test a ... FAILED");
        let mut back: Suite = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        back.feed("test b ... ok");
        assert_eq!(back.counts(), counts(1, 1, 0));
        assert_eq!(back.reading().progress, Some(1.0));
    }

    #[test]
    fn colours_forced_on_are_ignored() {
        let s = run("running 1 test\ntest a ... \u{1b}[32mok\u{1b}[0m");
        assert_eq!(s.counts(), counts(1, 0, 0));
    }
}
