//! The in-memory ring of a process's last output lines; the log file
//! `<log_dir>/<name>.log` and its generations are in `logfile.rs`.
//!
//! Both are kept whatever happens on the bus: the log file holds every byte,
//! the ring numbers every line and holds the newest; the ring survives
//! restarts so the last run's output is still there after a crash.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use chrono::{DateTime, Utc};

use super::state::OutputLine;

/// The last lines of a process, kept across restarts.
///
/// Every line gets an offset: its position among all lines the process
/// ever printed (across runs), so a reader can ask for "the lines after
/// offset N" and resume where it stopped; offsets of lines that fell out of
/// the ring are simply no longer served.
#[derive(Debug)]
pub(crate) struct Ring {
    lines: VecDeque<OutputLine>,
    capacity: usize,
    /// Offset the next pushed line gets.
    next_offset: u64,
    last_output_at: Option<DateTime<Utc>>,
}

/// Lines read after an offset; see [`Ring::after`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OutputPage {
    /// The lines, oldest first, each with its offset.
    pub lines: Vec<OutputLine>,
    /// Offset of the oldest line still held; lines before it are only in
    /// the log file.
    pub first_offset: u64,
    /// Offset to ask for next (one past the last line returned).
    pub next_offset: u64,
}

/// A ring shared between the readers and the supervisor.
pub(crate) type SharedRing = Arc<Mutex<Ring>>;

impl Ring {
    pub(crate) fn shared(capacity: usize) -> SharedRing {
        Arc::new(Mutex::new(Ring {
            // Grown as lines come: most processes of a thousand never fill a
            // ring, and an eager one would cost each ~50 KiB.
            lines: VecDeque::new(),
            capacity,
            next_offset: 0,
            last_output_at: None,
        }))
    }

    /// Keeps `line`, numbering it; its `offset` field is overwritten.
    pub(crate) fn push(&mut self, mut line: OutputLine) {
        line.offset = self.next_offset;
        self.next_offset += 1;
        if self.capacity == 0 {
            return;
        }
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// Numbers `n` lines without keeping them: lines that would fall out of
    /// the ring before anyone could read them (the reader skips all but the
    /// last `capacity` lines of a long burst). Older lines fall out too, so
    /// the offsets held stay contiguous.
    pub(crate) fn skip(&mut self, n: u64) {
        if n > 0 {
            self.next_offset += n;
            self.lines.clear();
        }
    }

    /// Lines kept at most.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The last `n` lines, oldest first.
    pub(crate) fn last(&self, n: usize) -> Vec<OutputLine> {
        let skip = self.lines.len().saturating_sub(n);
        self.lines.iter().skip(skip).cloned().collect()
    }

    /// Up to `max` lines with an offset of at least `offset`, oldest first.
    /// An offset older than the ring starts at its oldest line.
    pub(crate) fn after(&self, offset: u64, max: usize) -> OutputPage {
        let first_offset = self.lines.front().map_or(self.next_offset, |l| l.offset);
        let skip = usize::try_from(offset.saturating_sub(first_offset)).unwrap_or(usize::MAX);
        let lines: Vec<OutputLine> = self.lines.iter().skip(skip).take(max).cloned().collect();
        let next_offset = lines
            .last()
            .map_or(offset.max(first_offset).min(self.next_offset), |l| {
                l.offset + 1
            });
        OutputPage {
            lines,
            first_offset,
            next_offset,
        }
    }

    /// The offset the next line will get.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    pub(crate) fn last_output_at(&self) -> Option<DateTime<Utc>> {
        self.last_output_at
    }

    pub(crate) fn touch(&mut self, at: DateTime<Utc>) {
        self.last_output_at = Some(at);
    }
}

pub(crate) use super::logfile::log_generations;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::state::Stream;

    #[test]
    fn the_ring_keeps_only_the_newest_lines() {
        let ring = Ring::shared(3);
        let mut r = ring.lock();
        for i in 0..5 {
            r.push(OutputLine {
                stream: Stream::Stdout,
                line: i.to_string(),
                time: Utc::now(),
                offset: 0,
            });
        }
        let texts: Vec<_> = r.last(10).into_iter().map(|l| l.line).collect();
        assert_eq!(texts, ["2", "3", "4"]);
        assert_eq!(r.last(1)[0].line, "4");
    }

    #[test]
    fn lines_after_an_offset_resume_where_the_reader_stopped() {
        let ring = Ring::shared(3);
        let mut r = ring.lock();
        let page = r.after(0, 10);
        assert_eq!(
            (page.lines.len(), page.first_offset, page.next_offset),
            (0, 0, 0)
        );
        for i in 0..5 {
            r.push(OutputLine {
                stream: Stream::Stdout,
                line: i.to_string(),
                time: Utc::now(),
                offset: 99,
            });
        }
        // Lines 0 and 1 fell out: a reader at 0 gets what is left and learns it.
        let page = r.after(0, 10);
        let offsets: Vec<u64> = page.lines.iter().map(|l| l.offset).collect();
        assert_eq!(offsets, [2, 3, 4]);
        assert_eq!((page.first_offset, page.next_offset), (2, 5));
        let page = r.after(3, 1);
        assert_eq!(page.lines[0].line, "3");
        assert_eq!(page.next_offset, 4);
        let page = r.after(5, 10);
        assert!(page.lines.is_empty());
        assert_eq!(page.next_offset, 5);
        let page = r.after(1000, 10);
        assert_eq!(
            page.next_offset, 5,
            "a future offset is clamped to the next line"
        );
    }
}
