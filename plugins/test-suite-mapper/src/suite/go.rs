//! `go test`, with `-v` or without: top-level `--- PASS/FAIL/SKIP:` lines
//! and each failure's first log line.

use super::{Capture, Runner, Suite};

impl Suite {
    pub(super) fn go(&mut self, line: &str) {
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
    pub(super) fn go_log(&mut self, line: &str, indented: bool) {
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

#[cfg(test)]
mod tests {
    use crate::suite::tests::{counts, failure, run};

    #[test]
    fn go_test_output_without_v_reports_failures_with_their_first_log_line() {
        let s = run(include_str!("../../fixtures/go_test.txt"));
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
        let s = run(include_str!("../../fixtures/go_test_verbose.txt"));
        assert_eq!(s.counts(), counts(2, 2, 1));
        assert_eq!(
            s.failures(),
            &[
                failure("TestCompares", "sample_test.go:13: expected 5, got 4"),
                failure("TestTable", "sample_test.go:25: n was 2"),
            ]
        );
    }
}
