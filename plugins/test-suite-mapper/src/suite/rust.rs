//! `cargo test` (per binary: `running N tests`, `test x ... ok`, `test
//! result:`) and cargo-nextest (`Starting`, `PASS [..] (k/n)`, `Summary`).

use super::{Counts, Runner, Suite, leading_u64};

impl Suite {
    pub(super) fn cargo(&mut self, line: &str) {
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

    pub(super) fn nextest(&mut self, line: &str) {
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
}

#[cfg(test)]
mod tests {
    use crate::suite::tests::{counts, failure, run};

    #[test]
    fn cargo_test_output_sums_its_binaries_and_reads_panic_messages() {
        let s = run(include_str!("../../fixtures/cargo_test.txt"));
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
        let text = include_str!("../../fixtures/cargo_test.txt");
        let cut = text.find("test tests::slow").unwrap();
        let s = run(&text[..cut]);
        assert_eq!(s.reading().progress, Some(0.6));
        assert_eq!(s.reading().message, "2 passed, 1 failed, 0 skipped");
    }

    #[test]
    fn nextest_output_counts_once_despite_its_repeated_failure_list() {
        let text = include_str!("../../fixtures/nextest.txt");
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
}
