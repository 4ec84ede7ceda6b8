//! Compiler error lines — rustc, gcc/clang, tsc — read into a structured
//! list (file, line, column, message), without any host call so it is
//! tested natively against captured real outputs (`fixtures/`).
//!
//! Formats:
//! - rustc: `error[E0308]: mismatched types` and, on a following line,
//!   ` --> src/main.rs:3:5`. A header with no location (`error: could not
//!   compile ...`, a linker failure) is a summary, not an error of the code,
//!   and is not listed.
//! - gcc and clang: `file.c:3:5: error: ...` and `fatal error:` (the column
//!   may be missing).
//! - tsc: `file.ts(3,5): error TS2322: ...` (`--pretty false`) and
//!   `file.ts:3:5 - error TS2322: ...` (pretty).
//!
//! Warnings are not errors and are left out.

use serde::{Deserialize, Serialize};

/// Longest message or file name kept, in characters.
pub const TEXT_CHARS: usize = 500;

/// One compiler error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildError {
    pub file: String,
    pub line: u32,
    /// Absent when the compiler printed none.
    pub column: Option<u32>,
    pub message: String,
}

/// Everything read so far of one process's run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Build {
    /// Every error seen, counted even past `max_errors`.
    seen: u64,
    errors: Vec<BuildError>,
    max_errors: usize,
    /// A rustc header waiting for its ` --> ` line.
    pending: Option<String>,
    /// Lines read since `pending` was set (rustc prints the location on
    /// the next line; a header whose location does not come soon has none).
    pending_age: u8,
    /// 0.0 ..= 1.0, from `[3/10]` or `[ 40%]` step counters.
    progress: Option<f32>,
}

/// What the process's status shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub progress: Option<f32>,
    pub message: Option<String>,
}

impl Build {
    /// A build keeping at most `max_errors` errors (the count stays exact).
    pub fn new(max_errors: usize) -> Self {
        Build {
            max_errors,
            ..Build::default()
        }
    }

    /// Errors seen so far, all of them.
    pub fn count(&self) -> u64 {
        self.seen
    }

    /// The first errors, in the order they were printed.
    pub fn errors(&self) -> &[BuildError] {
        &self.errors
    }

    /// Errors seen but not kept.
    pub fn left_out(&self) -> u64 {
        self.seen - self.errors.len() as u64
    }

    /// `2 errors (src/main.rs:3)`, and the progress.
    pub fn reading(&self) -> Reading {
        let message = (self.seen > 0).then(|| {
            let noun = if self.seen == 1 { "error" } else { "errors" };
            match self.errors.first() {
                Some(e) => format!("{} {noun} ({}:{})", self.seen, e.file, e.line),
                None => format!("{} {noun}", self.seen),
            }
        });
        Reading {
            progress: self.progress,
            message,
        }
    }

    /// Reads one line; true if it added an error or moved the progress.
    pub fn feed(&mut self, raw: &str) -> bool {
        let cleaned = crate::runlog::strip_ansi(raw);
        let line = cleaned.trim_end();
        let before = (self.seen, self.progress);
        if let Some(header) = self.pending.take() {
            if let Some((file, line_no, column)) = rust_location(line) {
                self.push(file, line_no, column, &header);
                return true;
            }
            self.pending_age += 1;
            if self.pending_age < 3 {
                self.pending = Some(header);
            }
        }
        if let Some(header) = rust_header(line) {
            self.pending = Some(header);
            self.pending_age = 0;
        } else if let Some((file, line_no, column, message)) =
            gcc_error(line).or_else(|| tsc_error(line))
        {
            self.push(file, line_no, column, message);
        } else if let Some(p) = step_progress(line) {
            self.progress = Some(p);
        }
        before != (self.seen, self.progress)
    }

    fn push(&mut self, file: &str, line: u32, column: Option<u32>, message: &str) {
        self.seen += 1;
        if self.errors.len() < self.max_errors {
            self.errors.push(BuildError {
                file: shorten(file),
                line,
                column,
                message: shorten(message),
            });
        }
    }
}

/// `error[E0308]: mismatched types` or `error: cannot find ...`: the
/// message with the code, e.g. `E0308: mismatched types`.
fn rust_header(line: &str) -> Option<String> {
    let rest = line.strip_prefix("error")?;
    let (code, message) = match rest.strip_prefix('[') {
        Some(coded) => {
            let (code, message) = coded.split_once("]: ")?;
            if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
                return None;
            }
            (Some(code), message)
        }
        None => (None, rest.strip_prefix(": ")?),
    };
    let message = message.trim();
    if message.is_empty() {
        return None;
    }
    Some(match code {
        Some(code) => format!("{code}: {message}"),
        None => message.to_string(),
    })
}

/// ` --> src/main.rs:3:5` (rustc's location line).
fn rust_location(line: &str) -> Option<(&str, u32, Option<u32>)> {
    let rest = line.trim_start().strip_prefix("--> ")?;
    let (file, line_no, column) = split_location(rest.trim())?;
    Some((file, line_no, column))
}

/// `file:3:5` or `file:3` into its parts.
fn split_location(text: &str) -> Option<(&str, u32, Option<u32>)> {
    let (head, last) = text.rsplit_once(':')?;
    let last: u32 = last.parse().ok()?;
    match head.rsplit_once(':') {
        Some((file, line_no)) if !file.is_empty() => match line_no.parse::<u32>() {
            Ok(line_no) => Some((file, line_no, Some(last))),
            Err(_) => Some((head, last, None)),
        },
        _ => (!head.is_empty()).then_some((head, last, None)),
    }
}

/// `file.c:3:5: error: message` or `file.c:3:5: fatal error: message`.
fn gcc_error(line: &str) -> Option<(&str, u32, Option<u32>, &str)> {
    let (at, message) = [": error: ", ": fatal error: "]
        .iter()
        .find_map(|marker| line.split_once(marker))?;
    // No blanks in the location: `In file included from a.c:1:` is not one.
    if at.contains(' ') {
        return None;
    }
    let (file, line_no, column) = split_location(at)?;
    Some((file, line_no, column, message.trim()))
}

/// `file.ts(3,5): error TS2322: message` or `file.ts:3:5 - error TS2322: message`.
fn tsc_error(line: &str) -> Option<(&str, u32, Option<u32>, &str)> {
    if let Some((at, message)) = line.split_once("): error ") {
        let (file, place) = at.rsplit_once('(')?;
        let (line_no, column) = place.split_once(',')?;
        return Some((
            file,
            line_no.trim().parse().ok()?,
            Some(column.trim().parse().ok()?),
            message.trim(),
        ));
    }
    let (at, message) = line.split_once(" - error ")?;
    if at.contains(' ') || !message.starts_with("TS") {
        return None;
    }
    let (file, line_no, column) = split_location(at)?;
    Some((file, line_no, column, message.trim()))
}

/// `[3/10] compiling` (ninja, the example build) or `[ 40%] Building`
/// (CMake's make): the first such counter on the line.
fn step_progress(line: &str) -> Option<f32> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let inner = line[open + 1..close].trim();
    if let Some(percent) = inner.strip_suffix('%') {
        let p: f32 = percent.trim().parse().ok()?;
        return (0.0..=100.0).contains(&p).then_some(p / 100.0);
    }
    let (done, total) = inner.split_once('/')?;
    let (done, total): (u64, u64) = (done.trim().parse().ok()?, total.trim().parse().ok()?);
    (total > 0 && done <= total).then(|| done as f32 / total as f32)
}

/// At most [`TEXT_CHARS`] characters of `text`.
fn shorten(text: &str) -> String {
    text.chars().take(TEXT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Build {
        let mut b = Build::new(50);
        for line in text.lines() {
            b.feed(line);
        }
        b
    }

    fn error(file: &str, line: u32, column: Option<u32>, message: &str) -> BuildError {
        BuildError {
            file: file.into(),
            line,
            column,
            message: message.into(),
        }
    }

    #[test]
    fn thousands_of_errors_keep_an_exact_count_and_the_first_few() {
        let mut b = Build::new(3);
        for i in 0..10_000 {
            b.feed(&format!("a.c:{}:1: error: bad", i + 1));
        }
        assert_eq!(b.count(), 10_000);
        assert_eq!(b.errors().len(), 3);
        assert_eq!(b.left_out(), 9_997);
        assert_eq!(b.reading().message.as_deref(), Some("10000 errors (a.c:1)"));
    }

    #[test]
    fn a_line_of_a_megabyte_is_cut_in_the_list() {
        let mut b = Build::new(3);
        assert!(b.feed(&format!("a.c:1:1: error: {}", "x".repeat(1 << 20))));
        assert_eq!(b.errors()[0].message.chars().count(), TEXT_CHARS);
        assert!(!b.feed(&"y".repeat(1 << 20)));
    }

    #[test]
    fn near_misses_are_not_errors() {
        let b = run(
            "error: could not compile `bad` (bin \"bad\") due to 2 previous errors\n\
                     warning: unused variable\n\
                     In file included from a.c:1: error: x\n\
                     error[]: z\n --> \n\
                     src/a.ts(1): error TS1: no column\n\
                     Some errors have detailed explanations: E0308.",
        );
        assert_eq!(b.errors(), &[]);
        assert_eq!(b.reading().message, None);
    }

    #[test]
    fn a_rust_header_whose_location_never_comes_is_dropped() {
        let b = run("error[E0001]: lost\na\nb\nc\n --> src/late.rs:1:1");
        assert_eq!(b.count(), 0);
    }

    #[test]
    fn rustc_errors_take_their_location_from_the_arrow_line() {
        let b = run(include_str!("../fixtures/cargo_build.txt"));
        assert_eq!(
            b.errors(),
            &[
                error(
                    "src/main.rs",
                    3,
                    Some(20),
                    "E0425: cannot find value `y` in this scope"
                ),
                error("src/main.rs", 2, Some(18), "E0308: mismatched types"),
            ]
        );
        assert_eq!(
            b.reading().message.as_deref(),
            Some("2 errors (src/main.rs:3)")
        );
    }

    #[test]
    fn gcc_errors_and_fatal_errors_are_read_and_warnings_are_not() {
        let b = run(include_str!("../fixtures/gcc.txt"));
        assert_eq!(
            b.errors(),
            &[
                error(
                    "bad.c",
                    3,
                    Some(10),
                    "‘y’ undeclared (first use in this function)"
                ),
                error(
                    "fatal.c",
                    1,
                    Some(10),
                    "missing.h: No such file or directory"
                ),
            ]
        );
    }

    #[test]
    fn tsc_errors_are_read_plain_and_pretty() {
        let expected = [
            error(
                "src/app.ts",
                1,
                Some(5),
                "TS2322: Type 'string' is not assignable to type 'number'.",
            ),
            error(
                "src/app.ts",
                3,
                Some(3),
                "TS2322: Type 'string' is not assignable to type 'number'.",
            ),
            error(
                "src/app.ts",
                5,
                Some(3),
                "TS2345: Argument of type 'number' is not assignable to parameter of type 'string'.",
            ),
        ];
        assert_eq!(run(include_str!("../fixtures/tsc.txt")).errors(), &expected);
        assert_eq!(
            run(include_str!("../fixtures/tsc_pretty.txt")).errors(),
            &expected
        );
    }

    #[test]
    fn step_counters_give_progress() {
        let mut b = Build::new(1);
        assert!(b.feed("compiling step [3/10]"));
        assert_eq!(b.reading().progress, Some(0.3));
        assert!(b.feed("[ 40%] Building C object"));
        assert_eq!(b.reading().progress, Some(0.4));
        assert!(!b.feed("[11/10] what"));
        assert!(!b.feed("[ 140%] what"));
    }

    #[test]
    fn a_build_survives_a_trip_through_state() {
        let mut b = Build::new(2);
        b.feed("error[E0308]: mismatched types");
        let mut back: Build = serde_json::from_slice(&serde_json::to_vec(&b).unwrap()).unwrap();
        back.feed(" --> src/main.rs:2:18");
        assert_eq!(back.count(), 1);
    }
}
