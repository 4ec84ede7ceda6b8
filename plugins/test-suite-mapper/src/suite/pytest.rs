//! pytest: outcome letters or verbose lines, `[ 40%]` progress, the
//! short summary's failure messages and the final summary line.

use super::{Counts, Runner, Suite, leading_u64};

impl Suite {
    pub(super) fn pytest(&mut self, line: &str) {
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

#[cfg(test)]
mod tests {
    use crate::suite::tests::{counts, failure, run};

    #[test]
    fn pytest_default_output_counts_letters_and_takes_messages_from_the_summary() {
        let s = run(include_str!("../../fixtures/pytest.txt"));
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
        let text = include_str!("../../fixtures/pytest.txt");
        let cut = text.find("test_sample.py .").unwrap();
        let s = run(&text[..cut]);
        assert_eq!(s.reading().progress, Some(0.61));
        // `Ex.....F`: the error counts as failed, the xfail as skipped.
        assert_eq!(s.counts(), counts(5, 2, 1));
    }

    #[test]
    fn pytest_verbose_output_counts_each_test_line() {
        let text = include_str!("../../fixtures/pytest_verbose.txt");
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
}
