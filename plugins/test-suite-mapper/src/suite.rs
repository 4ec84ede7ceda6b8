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
//! Counts: pytest's `error` is counted as failed, `xfailed` as skipped and
//! `xpassed` as passed; cargo's `ignored` is skipped; nextest's `timed out`
//! is failed.

use serde::{Deserialize, Serialize};

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

    fn pytest(&mut self, line: &str) {
        // `collected 13 items`
        if let Some(rest) = line
            .strip_prefix("collected ")
            .or_else(|| line.strip_prefix("collecting ... collected "))
        {
            self.close_session();
            self.runner = Runner::Pytest;
            self.expected = leading_u64(rest);
            self.progress = Some(0.0);
            return;
        }
        // `FAILED test_x.py::test_b - assert 1 == 2` (short summary)
        // Counted already (by its letter or its verbose line); this adds
        // the message.
        if self.runner == Runner::Pytest
            && let Some(rest) = line
                .strip_prefix("FAILED ")
                .or_else(|| line.strip_prefix("ERROR "))
        {
            let (test, message) = match rest.split_once(" - ") {
                Some((t, m)) => (t.trim(), Some(m.trim().to_string())),
                None => (rest.trim(), None),
            };
            self.note_failure(test, message);
            return;
        }
        // `==== 3 failed, 7 passed, 1 skipped, 1 xfailed, 1 error in 0.09s ====`
        if line.starts_with('=') && line.ends_with('=') && line.contains(" in ") {
            let inner = line.trim_matches('=').trim();
            if let Some((counts, _)) = inner.rsplit_once(" in ")
                && let Some(c) = pytest_counts(counts)
            {
                self.session(Runner::Pytest);
                self.summary(c);
                self.progress = Some(1.0);
            }
            return;
        }
        // `test_x.py::test_b FAILED    [ 40%]` or `test_x.py .F.s   [ 40%]`
        let Some((body, percent)) = trailing_percent(line) else {
            return;
        };
        let body = body.trim_end();
        let mut counts = Counts::default();
        if let Some((test, outcome)) = body.rsplit_once(' ').map(verbose_outcome)
            && test.contains("::")
        {
            match outcome {
                "PASSED" | "XPASS" => counts.passed += 1,
                "FAILED" | "ERROR" => {
                    self.session(Runner::Pytest);
                    self.fail(test, None);
                }
                "SKIPPED" | "XFAIL" => counts.skipped += 1,
                _ => return,
            }
        } else {
            // The outcome letters, after the file name on its first line.
            let letters = match body.split_once(' ') {
                Some((_, letters)) => letters.trim(),
                None => body,
            };
            if letters.is_empty() || !letters.chars().all(|c| ".FEsxX".contains(c)) {
                return;
            }
            for c in letters.chars() {
                match c {
                    '.' | 'X' => counts.passed += 1,
                    'F' | 'E' => counts.failed += 1,
                    _ => counts.skipped += 1,
                }
            }
        }
        self.session(Runner::Pytest);
        self.current.add(counts);
        self.progress = Some(percent);
    }

    fn cargo(&mut self, line: &str) {
        if self.runner == Runner::Nextest {
            return;
        }
        // `running 5 tests`
        if let Some(rest) = line.strip_prefix("running ")
            && let Some(n) = leading_u64(rest)
            && rest
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .starts_with(" test")
        {
            self.close_session();
            self.runner = Runner::Cargo;
            self.expected = Some(n);
            self.progress = (n > 0).then_some(0.0);
            return;
        }
        if self.runner != Runner::Cargo {
            return;
        }
        // `test tests::adds ... ok` / `... FAILED` / `... ignored, reason`
        if let Some(rest) = line.strip_prefix("test ")
            && let Some((test, outcome)) = rest.split_once(" ... ")
        {
            let word = outcome.split([',', ' ']).next().unwrap_or("");
            match word {
                "ok" => self.current.passed += 1,
                "FAILED" => self.fail(test.trim(), None),
                "ignored" => self.current.skipped += 1,
                _ => return,
            }
            if let Some(n) = self.expected.filter(|&n| n > 0) {
                self.progress = Some((self.current.total() as f32 / n as f32).min(1.0));
            }
            return;
        }
        // `test result: FAILED. 2 passed; 2 failed; 1 ignored; 0 measured; ...`
        if let Some(rest) = line.strip_prefix("test result: ") {
            let mut c = Counts::default();
            for part in rest.split(['.', ';']) {
                let mut words = part.split_whitespace();
                if let (Some(n), Some(word)) = (words.next(), words.next())
                    && let Ok(n) = n.parse::<u64>()
                {
                    match word {
                        "passed" => c.passed = n,
                        "failed" => c.failed = n,
                        "ignored" => c.skipped = n,
                        _ => {}
                    }
                }
            }
            self.summary(c);
            self.progress = Some(1.0);
        }
    }

    fn nextest(&mut self, line: &str) {
        // `Starting 6 tests across 2 binaries (1 test skipped)`
        if let Some(rest) = line.strip_prefix("Starting ")
            && let Some(n) = leading_u64(rest)
            && rest.contains(" across ")
        {
            self.close_session();
            self.runner = Runner::Nextest;
            self.expected = Some(n);
            self.progress = (n > 0).then_some(0.0);
            return;
        }
        if self.runner != Runner::Nextest {
            return;
        }
        // `Summary [   1.076s] 6 tests run: 3 passed, 3 failed, 1 skipped`
        if let Some(rest) = line.strip_prefix("Summary [")
            && let Some((_, tail)) = rest.split_once(" run: ")
        {
            let mut c = Counts::default();
            for part in tail.split(',') {
                let part = part.trim();
                let n = leading_u64(part).unwrap_or(0);
                let word = part.trim_start_matches(|c: char| c.is_ascii_digit()).trim();
                if word.starts_with("passed") {
                    c.passed += n;
                } else if word.starts_with("failed") || word.starts_with("timed out") {
                    c.failed += n;
                } else if word.starts_with("skipped") {
                    c.skipped += n;
                }
            }
            // `Starting` counted the skipped ones out; the summary has them.
            self.summary(c);
            self.summarised = true;
            self.runner = Runner::Nextest;
            self.progress = Some(1.0);
            return;
        }
        if self.summarised {
            return;
        }
        // `PASS [   0.038s] (1/6) sample tests::adds`; older versions
        // print no `(1/6)`.
        let Some((word, rest)) = line.split_once(" [") else {
            return;
        };
        let Some((_, after)) = rest.split_once("] ") else {
            return;
        };
        let mut after = after.trim();
        if let Some(inner) = after.strip_prefix('(')
            && let Some((step, tail)) = inner.split_once(") ")
        {
            if let Some((k, n)) = step.split_once('/')
                && let (Ok(k), Ok(n)) = (k.trim().parse::<u64>(), n.trim().parse::<u64>())
                && n > 0
                && k <= n
            {
                self.progress = Some(k as f32 / n as f32);
            }
            after = tail.trim();
        }
        // `sample tests::adds`: binary id, then the test's name.
        let test = after.rsplit_once(' ').map_or(after, |(_, t)| t);
        match word {
            "PASS" => self.current.passed += 1,
            "FAIL" | "TIMEOUT" | "ABORT" => self.fail(test, None),
            "SKIP" => self.current.skipped += 1,
            w if w.starts_with("SIG") => self.fail(test, None),
            _ => {}
        }
        if self.progress.is_none()
            && let Some(n) = self.expected.filter(|&n| n > 0)
        {
            self.progress = Some((self.current.total() as f32 / n as f32).min(1.0));
        }
    }

    fn go(&mut self, line: &str) {
        // `=== RUN   TestAdds` (go test -v): a top-level test starts.
        if let Some(rest) = line.strip_prefix("=== RUN") {
            let test = rest.trim();
            if !test.contains('/') {
                self.session(Runner::Go);
                self.go_test = Some((test.to_string(), None));
            }
            return;
        }
        let Some(rest) = line.strip_prefix("--- ") else {
            return;
        };
        let Some((word, tail)) = rest.split_once(": ") else {
            return;
        };
        let test = tail.split(" (").next().unwrap_or(tail).trim();
        self.session(Runner::Go);
        match word {
            "PASS" => self.current.passed += 1,
            "SKIP" => self.current.skipped += 1,
            "FAIL" => {
                let logged = match self.go_test.take() {
                    Some((t, message)) if t == test => message,
                    _ => None,
                };
                self.fail(test, logged);
                self.capture = Capture::GoFail {
                    test: test.to_string(),
                };
            }
            _ => {}
        }
    }

    /// `go test -v` prints a test's log lines, indented, before its
    /// `--- FAIL`: keep the first as the message in waiting.
    fn go_log(&mut self, line: &str, indented: bool) {
        if !indented || self.runner != Runner::Go {
            return;
        }
        if let Some((_, message)) = self.go_test.as_mut()
            && message.is_none()
        {
            let text = line.trim();
            if !text.starts_with("--- ") && !text.starts_with("=== ") && !text.is_empty() {
                *message = Some(text.to_string());
            }
        }
    }
}

/// `path::test SKIPPED (reason)`, split at its last blank: the test and
/// its outcome word (the word before a `(reason)`).
fn verbose_outcome<'a>((head, last): (&'a str, &'a str)) -> (&'a str, &'a str) {
    let (test, word) = match head.split_once(' ') {
        Some((t, w)) if last.ends_with(')') || w.starts_with('(') => (t, w),
        _ => (head, last),
    };
    (test, word.split(' ').next().unwrap_or(word))
}

/// pytest's summary counts: `3 failed, 7 passed, 1 skipped, 1 xfailed, 1 error`.
fn pytest_counts(text: &str) -> Option<Counts> {
    let mut c = Counts::default();
    let mut any = false;
    for part in text.split(',') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(word), None) = (words.next(), words.next(), words.next()) else {
            return None;
        };
        let n: u64 = n.parse().ok()?;
        match word {
            "passed" | "xpassed" => c.passed += n,
            "failed" | "error" | "errors" => c.failed += n,
            "skipped" | "xfailed" => c.skipped += n,
            // `deselected`, `warnings`, `rerun`: not outcomes of a test run.
            "deselected" | "warning" | "warnings" | "rerun" | "selected" => {}
            _ => return None,
        }
        any = true;
    }
    any.then_some(c)
}

/// `... [ 40%]` at the end of a line: what comes before, and 0.4.
fn trailing_percent(line: &str) -> Option<(&str, f32)> {
    let inner = line.strip_suffix("%]")?;
    let open = inner.rfind('[')?;
    let value: f32 = inner[open + 1..].trim().parse().ok()?;
    (0.0..=100.0)
        .contains(&value)
        .then(|| (&line[..open], value / 100.0))
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
mod tests {
    use super::*;

    fn run(text: &str) -> Suite {
        let mut s = Suite::new(20);
        for line in text.lines() {
            s.feed(line);
        }
        s
    }

    fn counts(passed: u64, failed: u64, skipped: u64) -> Counts {
        Counts {
            passed,
            failed,
            skipped,
        }
    }

    fn failure(test: &str, message: &str) -> Failure {
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
    fn pytest_default_output_counts_letters_and_takes_messages_from_the_summary() {
        let s = run(include_str!("../fixtures/pytest.txt"));
        assert_eq!(s.counts(), counts(7, 4, 2));
        assert_eq!(s.reading().progress, Some(1.0));
        assert_eq!(
            s.failures(),
            &[
                failure("test_other.py::test_many[5]", "assert 5 < 5"),
                failure(
                    "test_sample.py::test_compares",
                    "assert [1, 2, 3] == [1, 2, 4]"
                ),
                failure("test_sample.py::test_raises", "ValueError: bad input: 42"),
                failure(
                    "test_other.py::test_uses_broken",
                    "RuntimeError: fixture exploded"
                ),
            ]
        );
    }

    #[test]
    fn pytest_progress_comes_from_its_percentages() {
        let text = include_str!("../fixtures/pytest.txt");
        let cut = text.find("test_sample.py .").unwrap();
        let s = run(&text[..cut]);
        assert_eq!(s.reading().progress, Some(0.61));
        // `Ex.....F`: the error counts as failed, the xfail as skipped.
        assert_eq!(s.counts(), counts(5, 2, 1));
    }

    #[test]
    fn pytest_verbose_output_counts_each_test_line() {
        let text = include_str!("../fixtures/pytest_verbose.txt");
        let cut = text.find("test_sample.py::test_raises").unwrap();
        let s = run(&text[..cut]);
        assert_eq!(s.counts(), counts(6, 3, 2));
        assert_eq!(s.reading().progress, Some(0.84));
        let s = run(text);
        assert_eq!(s.counts(), counts(7, 4, 2));
        assert_eq!(s.failures().len(), 4);
        assert_eq!(
            s.failures()[0],
            failure(
                "test_other.py::test_uses_broken",
                "RuntimeError: fixture exploded"
            )
        );
    }

    #[test]
    fn cargo_test_output_sums_its_binaries_and_reads_panic_messages() {
        let s = run(include_str!("../fixtures/cargo_test.txt"));
        assert_eq!(s.counts(), counts(3, 3, 1));
        assert_eq!(
            s.failures(),
            &[
                failure(
                    "tests::compares",
                    "panicked at src/lib.rs:9:21: assertion `left == right` failed left: 4 right: 5"
                ),
                failure(
                    "tests::panics",
                    "panicked at src/lib.rs:14:19: bad input: 42"
                ),
                failure("api_breaks", "panicked at tests/api.rs:4:19: sum was 3"),
            ]
        );
    }

    #[test]
    fn cargo_test_progress_is_per_binary() {
        let text = include_str!("../fixtures/cargo_test.txt");
        let cut = text.find("test tests::slow").unwrap();
        let s = run(&text[..cut]);
        assert_eq!(s.reading().progress, Some(0.6));
        assert_eq!(s.reading().message, "2 passed, 1 failed, 0 skipped");
    }

    #[test]
    fn nextest_output_counts_once_despite_its_repeated_failure_list() {
        let text = include_str!("../fixtures/nextest.txt");
        let s = run(text);
        assert_eq!(s.counts(), counts(3, 3, 1));
        assert_eq!(s.failures().len(), 3);
        assert_eq!(
            s.failures()[0],
            failure(
                "tests::compares",
                "panicked at src/lib.rs:9:21: assertion `left == right` failed left: 4 right: 5"
            )
        );
        let cut = text.find("(4/6)").unwrap();
        let s = run(&text[..cut]);
        assert_eq!(s.reading().progress, Some(0.5));
        assert_eq!(s.counts(), counts(2, 1, 0));
    }

    #[test]
    fn go_test_output_without_v_reports_failures_with_their_first_log_line() {
        let s = run(include_str!("../fixtures/go_test.txt"));
        assert_eq!(s.counts(), counts(0, 2, 0));
        assert_eq!(
            s.failures(),
            &[
                failure("TestCompares", "sample_test.go:13: expected 5, got 4"),
                failure("TestTable", "sample_test.go:25: n was 2"),
            ]
        );
    }

    #[test]
    fn go_test_v_counts_top_level_tests_only() {
        let s = run(include_str!("../fixtures/go_test_verbose.txt"));
        assert_eq!(s.counts(), counts(2, 2, 1));
        assert_eq!(
            s.failures(),
            &[
                failure("TestCompares", "sample_test.go:13: expected 5, got 4"),
                failure("TestTable", "sample_test.go:25: n was 2"),
            ]
        );
    }

    #[test]
    fn colours_forced_on_are_ignored() {
        let s = run("running 1 test\ntest a ... \u{1b}[32mok\u{1b}[0m");
        assert_eq!(s.counts(), counts(1, 0, 0));
    }
}
