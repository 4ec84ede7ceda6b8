//! What a plugin writes to the host's log: stdout/stderr lines and the
//! `log` import, each bounded.
//!
//! A guest that prints (Python's `print`, Rust's `println!`) should not
//! write to the host's terminal unannounced, nor be silenced: each complete
//! line becomes a tracing event tagged with the plugin and the stream.
//!
//! Nor may a guest flood the host's log. Lines are cut at [`MAX_LINE`]
//! bytes with a marker saying how much was cut, and every line a plugin
//! writes (stdout, stderr, `log`) spends a token of its [`LogBudget`], a
//! token bucket ([`BURST_LINES`], refilled at [`LINES_PER_SEC`]). Lines
//! past the budget are dropped and counted; the count is logged at most
//! once per [`REPORT_EVERY`] and kept in the plugin's health.
//!
//! What a guest writes to stderr is also kept, the last [`TAIL_BYTES`] of
//! the call in hand ([`StderrTail`]): when the call fails, those are the
//! guest's own words (a Rust panic message, a Python traceback, a JS
//! conversion error), which a wasm trap and its backtrace are not. They go
//! into `plugin.failed` / `plugin.error` as `guest_message`. Kept before
//! the log budget is spent: a call that floods and fails still says why.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::bindings::MAX_TEXT;

/// Longest line kept, in bytes; the rest of a longer line is cut.
pub(crate) const MAX_LINE: usize = MAX_TEXT;
/// A line with no end in sight is logged once this much of it was cut.
const CUT_BEFORE_LOGGING: usize = 64 * 1024;
/// Lines a plugin may log at once after a quiet spell.
pub(crate) const BURST_LINES: f64 = 200.0;
/// Lines per second a plugin may log in the long run.
pub(crate) const LINES_PER_SEC: f64 = 100.0;
/// Suppressed lines are reported at most this often.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Most bytes of a failing call's stderr kept as its `guest_message`.
pub(crate) const TAIL_BYTES: usize = 4096;
/// Most lines of it kept (the last ones: a traceback ends with the error).
pub(crate) const TAIL_LINES: usize = 40;

/// The last [`TAIL_BYTES`] a version's guest wrote to stderr since the
/// worker last cleared it, which it does before each call.
#[derive(Default)]
pub(crate) struct StderrTail {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    bytes: VecDeque<u8>,
    /// Whether earlier bytes of this call were dropped.
    cut: bool,
}

impl StderrTail {
    /// Forget what was written: a new call starts.
    pub(crate) fn clear(&self) {
        *self.kept.lock() = Kept::default();
    }

    fn push(&self, bytes: &[u8]) {
        let mut kept = self.kept.lock();
        let bytes = if bytes.len() > TAIL_BYTES {
            kept.cut = true;
            &bytes[bytes.len() - TAIL_BYTES..]
        } else {
            bytes
        };
        let over = (kept.bytes.len() + bytes.len()).saturating_sub(TAIL_BYTES);
        if over > 0 {
            kept.cut = true;
            kept.bytes.drain(..over);
        }
        kept.bytes.extend(bytes);
    }

    /// What was written since the last [`StderrTail::clear`], its last
    /// [`TAIL_LINES`] lines, marked when cut; `None` when nothing but
    /// blanks was written. Clears it.
    pub(crate) fn take(&self) -> Option<String> {
        let Kept { bytes, mut cut } = std::mem::take(&mut *self.kept.lock());
        let bytes: Vec<u8> = bytes.into();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_end();
        if text.trim().is_empty() {
            return None;
        }
        let lines: Vec<&str> = text.lines().collect();
        // A first line cut at its start by the byte bound stays: the mark
        // says it is cut, and for one long line (a JSON error, a minified
        // stack) it is most of what there is to read.
        let from = lines.len().saturating_sub(TAIL_LINES);
        cut |= from > 0;
        let kept = lines[from..].join("\n");
        Some(if cut { format!("[…]\n{kept}") } else { kept })
    }
}

/// Where lines go: tracing in the host, a vector in tests. Arguments:
/// plugin, stream (`stdout`, `stderr`, or `host` for the budget's own
/// reports), text.
type Sink = Arc<dyn Fn(&str, &'static str, &str) + Send + Sync>;

/// The time, replaceable in tests.
type Now = Arc<dyn Fn() -> Instant + Send + Sync>;

/// How many lines one plugin may still log: shared by its streams, its
/// `log` import and every instance of one version.
pub(crate) struct LogBudget {
    plugin: Arc<str>,
    bucket: Mutex<Bucket>,
    /// Suppressed and not reported yet: a lock-free look after each call.
    unreported: AtomicU64,
    /// Suppressed so far, for the plugin's health.
    suppressed: AtomicU64,
    sink: Sink,
    now: Now,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    reported: Instant,
}

impl LogBudget {
    pub(crate) fn new(plugin: &str) -> Arc<Self> {
        Self::with(
            plugin,
            Arc::new(|plugin, stream, text| {
                if stream == "host" {
                    tracing::warn!(target: "plugin", plugin, "{text}");
                } else {
                    tracing::info!(target: "plugin", plugin, stream, "{text}");
                }
            }),
            Arc::new(Instant::now),
        )
    }

    fn with(plugin: &str, sink: Sink, now: Now) -> Arc<Self> {
        let start = now();
        Arc::new(Self {
            plugin: plugin.into(),
            bucket: Mutex::new(Bucket {
                tokens: BURST_LINES,
                refilled: start,
                reported: start,
            }),
            unreported: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            sink,
            now,
        })
    }

    /// Take a token for one line; `false` (and counted) when none is left.
    pub(crate) fn admit(&self) -> bool {
        let now = (self.now)();
        let admitted = {
            let mut b = self.bucket.lock();
            let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
            b.tokens = (b.tokens + elapsed * LINES_PER_SEC).min(BURST_LINES);
            b.refilled = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                true
            } else {
                false
            }
        };
        if !admitted {
            self.unreported.fetch_add(1, Ordering::Relaxed);
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
        self.report_if_due();
        admitted
    }

    /// Log how many lines were suppressed since the last report, unless
    /// none were or the last report is less than [`REPORT_EVERY`] old.
    pub(crate) fn report_if_due(&self) {
        if self.unreported.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now = (self.now)();
        let since = {
            let mut b = self.bucket.lock();
            let since = now.saturating_duration_since(b.reported);
            if since < REPORT_EVERY {
                return;
            }
            b.reported = now;
            since
        };
        let n = self.unreported.swap(0, Ordering::Relaxed);
        if n > 0 {
            (self.sink)(
                &self.plugin,
                "host",
                &format!(
                    "{n} line(s) from this plugin suppressed in the last {:.1} s \
                     (it may log {BURST_LINES} at once, {LINES_PER_SEC} per second)",
                    since.as_secs_f64()
                ),
            );
        }
    }

    /// Lines suppressed so far.
    pub(crate) fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }
}

/// A WASI output stream that logs lines.
#[derive(Clone)]
pub(crate) struct LogPipe {
    stream: &'static str,
    pending: Arc<Mutex<Partial>>,
    budget: Arc<LogBudget>,
    /// Where stderr is also kept for a failing call's report.
    tail: Option<Arc<StderrTail>>,
}

/// The line being written: its first [`MAX_LINE`] bytes, and how many
/// bytes after those were cut.
#[derive(Default)]
struct Partial {
    kept: Vec<u8>,
    cut: usize,
}

impl Partial {
    fn take(&mut self, part: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.kept.len()).min(part.len());
        self.kept.extend_from_slice(&part[..room]);
        self.cut += part.len() - room;
    }
}

impl LogPipe {
    pub(crate) fn new(stream: &'static str, budget: Arc<LogBudget>) -> Self {
        Self {
            stream,
            pending: Arc::default(),
            budget,
            tail: None,
        }
    }

    /// Also keep what is written in `tail`.
    pub(crate) fn keeping(mut self, tail: Arc<StderrTail>) -> Self {
        self.tail = Some(tail);
        self
    }

    fn push(&self, bytes: &[u8]) {
        if let Some(tail) = &self.tail {
            tail.push(bytes);
        }
        let mut pending = self.pending.lock();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            pending.take(&rest[..end]);
            let line = std::mem::take(&mut *pending);
            self.emit(&line, false);
            rest = &rest[end + 1..];
        }
        pending.take(rest);
        if pending.cut >= CUT_BEFORE_LOGGING {
            let line = std::mem::take(&mut *pending);
            self.emit(&line, true);
        }
    }

    fn emit(&self, line: &Partial, goes_on: bool) {
        if !self.budget.admit() {
            return;
        }
        let mut text = String::from_utf8_lossy(&line.kept).into_owned();
        if goes_on {
            text.push_str(&format!(
                "… [{} bytes cut so far; the line goes on]",
                line.cut
            ));
        } else if line.cut > 0 {
            text.push_str(&format!("… [{} more bytes cut]", line.cut));
        }
        (self.budget.sink)(&self.budget.plugin, self.stream, &text);
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl AsyncWrite for LogPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Lines = Arc<Mutex<Vec<String>>>;

    /// A budget whose clock the test moves, logging into a vector.
    fn capture() -> (Arc<LogBudget>, Lines, Arc<Mutex<Instant>>) {
        let lines: Lines = Arc::default();
        let seen = lines.clone();
        let clock = Arc::new(Mutex::new(Instant::now()));
        let now = clock.clone();
        let budget = LogBudget::with(
            "p",
            Arc::new(move |plugin, stream, text| {
                seen.lock().push(format!("{plugin}/{stream}: {text}"));
            }),
            Arc::new(move || *now.lock()),
        );
        (budget, lines, clock)
    }

    #[test]
    fn a_failing_calls_stderr_is_kept_whole_when_short_and_as_its_last_lines_when_long() {
        let (budget, _, _) = capture();
        let tail = Arc::new(StderrTail::default());
        let pipe = LogPipe::new("stderr", budget).keeping(tail.clone());
        pipe.push(b"earlier call\n");
        tail.clear();
        assert_eq!(tail.take(), None, "nothing written since the call began");
        pipe.push(b"thread '<unnamed>' panicked at src/lib.rs:9:5:\nboom");
        assert_eq!(
            tail.take().as_deref(),
            Some("thread '<unnamed>' panicked at src/lib.rs:9:5:\nboom"),
            "a last line with no newline counts"
        );
        for i in 0..100 {
            pipe.push(format!("frame {i}\n").as_bytes());
        }
        pipe.push(b"ValueError: bad\n");
        let long = tail.take().unwrap();
        let lines: Vec<&str> = long.lines().collect();
        assert_eq!(lines.len(), TAIL_LINES + 1, "{long}");
        assert_eq!(lines[0], "[…]");
        assert_eq!(lines[TAIL_LINES], "ValueError: bad");
        pipe.push(&vec![b'z'; 3 * TAIL_BYTES]);
        pipe.push(b"\nend");
        let huge = tail.take().unwrap();
        assert!(huge.len() <= TAIL_BYTES + 8, "{}", huge.len());
        assert!(huge.starts_with("[…]\nzzz") && huge.ends_with("\nend"));
    }

    #[test]
    fn output_becomes_one_log_line_per_complete_line() {
        let (budget, lines, _) = capture();
        let pipe = LogPipe::new("stdout", budget);
        pipe.push(b"hel");
        pipe.push(b"lo\nwor");
        assert_eq!(*lines.lock(), ["p/stdout: hello"]);
        pipe.push(b"ld\n\n");
        assert_eq!(
            *lines.lock(),
            ["p/stdout: hello", "p/stdout: world", "p/stdout: "]
        );
    }

    #[test]
    fn a_long_line_is_cut_with_a_marker_saying_how_much_was_cut() {
        let (budget, lines, _) = capture();
        let pipe = LogPipe::new("stderr", budget);
        pipe.push(&vec![b'x'; MAX_LINE + 10]);
        assert!(lines.lock().is_empty(), "held until its end");
        pipe.push(b"xx\n");
        let lines = lines.lock();
        let expected = format!("p/stderr: {}… [12 more bytes cut]", "x".repeat(MAX_LINE));
        assert_eq!(*lines, [expected]);
    }

    #[test]
    fn an_endless_line_is_logged_in_cut_pieces_rather_than_held_forever() {
        let (budget, lines, _) = capture();
        let pipe = LogPipe::new("stdout", budget);
        for _ in 0..100 {
            pipe.push(&[b'y'; 1024]);
        }
        let lines = lines.lock();
        assert_eq!(lines.len(), 1, "{} lines", lines.len());
        assert!(lines[0].starts_with(&format!("p/stdout: {}…", "y".repeat(MAX_LINE))));
        assert!(
            lines[0].ends_with("bytes cut so far; the line goes on]"),
            "{}",
            &lines[0][MAX_LINE..]
        );
    }

    #[test]
    fn a_plugin_printing_in_a_loop_is_held_to_its_budget_and_told_once_a_second() {
        let (budget, lines, clock) = capture();
        let pipe = LogPipe::new("stdout", budget.clone());
        for i in 0..10_000 {
            pipe.push(format!("line {i}\n").as_bytes());
        }
        let burst = BURST_LINES as usize;
        {
            let lines = lines.lock();
            assert_eq!(lines.len(), burst, "the burst, then nothing");
            assert_eq!(lines[burst - 1], format!("p/stdout: line {}", burst - 1));
        }
        assert_eq!(budget.suppressed(), 10_000 - burst as u64);
        // Less than a second later: still no report.
        *clock.lock() += Duration::from_millis(500);
        budget.report_if_due();
        assert_eq!(lines.lock().len(), burst);
        // A second after the start: one report with the count, once.
        *clock.lock() += Duration::from_millis(500);
        budget.report_if_due();
        budget.report_if_due();
        {
            let lines = lines.lock();
            assert_eq!(lines.len(), burst + 1);
            assert!(
                lines[burst].starts_with(&format!("p/host: {} line(s)", 10_000 - burst)),
                "{}",
                lines[burst]
            );
        }
        // The bucket refilled at LINES_PER_SEC meanwhile.
        for i in 0..1000 {
            pipe.push(format!("later {i}\n").as_bytes());
        }
        let later = lines.lock().iter().filter(|l| l.contains("later")).count();
        assert_eq!(later, LINES_PER_SEC as usize);
    }
}
