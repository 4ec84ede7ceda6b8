//! A scan of a folder that resumes across ticks: each call does a bounded
//! amount of work (directory entries, bytes read, events, time) and keeps
//! its place (the directories still to list, the directory being listed,
//! the file being read and its offset), so a folder of 100k files or a
//! 1 GB file is covered over many ticks, each within the call's deadline.
//!
//! Only `std::fs`, which inside the sandbox sees just the folders the
//! manifest grants; natively the tests run it on temporary folders.

use std::fs::{File, ReadDir};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::tags::{Finding, MAX_PER_FILE, find_tag};

/// Bytes read from a file at a time.
const CHUNK: usize = 64 * 1024;
/// Longest line looked at; the rest of a longer line is skipped.
const MAX_LINE: usize = 4096;
/// A NUL in a file's first bytes makes it binary: skipped.
const SNIFF: usize = 8000;

/// What one call may do.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Directory entries looked at.
    pub entries: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Files handed to the caller that it published (`on_file` true).
    pub events: usize,
    /// The clock reading (ms) at which to stop.
    pub until_ms: u64,
}

/// Settings of a scan.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of one file read at most; the rest is not scanned (`partial`).
    pub max_file_bytes: u64,
    /// Directory names not entered (`.git`, `target`, ...).
    pub skip: Vec<String>,
}

/// A file read to its end (or to `max_file_bytes`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileDone {
    /// Its path as the plugin sees it (under the granted folder).
    pub path: String,
    /// The first [`MAX_PER_FILE`] findings.
    pub findings: Vec<Finding>,
    /// All findings.
    pub total: u64,
    /// Whether only its first `max_file_bytes` were read.
    pub partial: bool,
}

/// Counts of a scan, for its summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Files read (binary ones included).
    pub files: u64,
    /// Binary files skipped after their first bytes.
    pub binary: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Entries that could not be read (permissions, vanished).
    pub unreadable: u64,
    /// Findings in all files.
    pub findings: u64,
}

struct Reading {
    path: String,
    file: File,
    offset: u64,
    line: u64,
    carry: Vec<u8>,
    overflow: bool,
    findings: Vec<Finding>,
    total: u64,
}

/// A scan in progress.
pub struct Scan {
    dirs: Vec<PathBuf>,
    listing: Option<ReadDir>,
    reading: Option<Reading>,
    /// Counts so far.
    pub stats: Stats,
    /// When it started (ms), for its summary.
    pub started_ms: u64,
}

impl Scan {
    /// Starts a scan of `root`. An error names the folder and the likely
    /// cause: without a grant the folder does not exist in the sandbox.
    pub fn start(root: &str, now_ms: u64) -> Result<Scan, String> {
        let listing = std::fs::read_dir(root).map_err(|e| {
            format!(
                "cannot read {root}: {e}; the folder must be granted in plugin.toml [permissions] dirs (guest = {root:?})"
            )
        })?;
        Ok(Scan {
            dirs: Vec::new(),
            listing: Some(listing),
            reading: None,
            stats: Stats::default(),
            started_ms: now_ms,
        })
    }

    /// Works until the scan ends or `budget` is spent; `on_file` is given
    /// every file read to its end and says whether it published something
    /// (which counts against `budget.events`). Returns true once the whole
    /// folder has been scanned.
    pub fn advance(
        &mut self,
        budget: Budget,
        limits: &Limits,
        clock: &mut dyn FnMut() -> u64,
        on_file: &mut dyn FnMut(FileDone) -> bool,
    ) -> bool {
        let mut entries = 0usize;
        let mut bytes = 0u64;
        let mut events = 0usize;
        loop {
            if entries >= budget.entries
                || bytes >= budget.bytes
                || events >= budget.events
                || clock() >= budget.until_ms
            {
                return false;
            }
            if let Some(reading) = &mut self.reading {
                match read_chunk(reading, limits, &mut self.stats) {
                    Chunk::More(n) => bytes += n,
                    Chunk::Done(done) => {
                        self.reading = None;
                        if let Some(done) = done {
                            self.stats.findings += done.total;
                            if on_file(done) {
                                events += 1;
                            }
                        }
                    }
                }
                continue;
            }
            let Some(listing) = &mut self.listing else {
                match self.dirs.pop() {
                    Some(dir) => match std::fs::read_dir(&dir) {
                        Ok(l) => self.listing = Some(l),
                        Err(_) => self.stats.unreadable += 1,
                    },
                    None => return true,
                }
                continue;
            };
            entries += 1;
            let Some(entry) = listing.next() else {
                self.listing = None;
                continue;
            };
            let Ok(entry) = entry else {
                self.stats.unreadable += 1;
                continue;
            };
            let Ok(kind) = entry.file_type() else {
                self.stats.unreadable += 1;
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                let name = entry.file_name();
                if !limits
                    .skip
                    .iter()
                    .any(|s| name.to_str() == Some(s.as_str()))
                {
                    self.dirs.push(path);
                }
            } else if kind.is_file() {
                match File::open(&path) {
                    Ok(file) => {
                        self.stats.files += 1;
                        self.reading = Some(Reading {
                            path: display(&path),
                            file,
                            offset: 0,
                            line: 0,
                            carry: Vec::new(),
                            overflow: false,
                            findings: Vec::new(),
                            total: 0,
                        });
                    }
                    Err(_) => self.stats.unreadable += 1,
                }
            }
            // Symbolic links and other kinds are not followed.
        }
    }
}

fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

enum Chunk {
    /// Read this many bytes; the file goes on.
    More(u64),
    /// The file ended; `None` when it was binary or unreadable.
    Done(Option<FileDone>),
}

fn read_chunk(r: &mut Reading, limits: &Limits, stats: &mut Stats) -> Chunk {
    let room = limits.max_file_bytes.saturating_sub(r.offset);
    if room == 0 {
        return Chunk::Done(Some(finish(r, true)));
    }
    let mut buf = vec![0u8; CHUNK.min(room as usize)];
    let n = match r.file.read(&mut buf) {
        Ok(n) => n,
        Err(_) => {
            stats.unreadable += 1;
            return Chunk::Done(None);
        }
    };
    if n == 0 {
        return Chunk::Done(Some(finish(r, false)));
    }
    let buf = &buf[..n];
    if r.offset == 0 && buf[..n.min(SNIFF)].contains(&0) {
        stats.binary += 1;
        stats.bytes += n as u64;
        return Chunk::Done(None);
    }
    r.offset += n as u64;
    stats.bytes += n as u64;
    for part in buf.split_inclusive(|&b| b == b'\n') {
        let (body, ended) = match part.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (part, false),
        };
        if !r.overflow {
            let room = MAX_LINE - r.carry.len();
            if body.len() > room {
                r.carry.extend_from_slice(&body[..room]);
                r.overflow = true;
            } else {
                r.carry.extend_from_slice(body);
            }
        }
        if ended {
            end_line(r);
        }
    }
    Chunk::More(n as u64)
}

fn end_line(r: &mut Reading) {
    r.line += 1;
    let text = String::from_utf8_lossy(&r.carry);
    if let Some(f) = find_tag(&text, r.line) {
        r.total += 1;
        if r.findings.len() < MAX_PER_FILE {
            r.findings.push(f);
        }
    }
    r.carry.clear();
    r.overflow = false;
}

fn finish(r: &mut Reading, partial: bool) -> FileDone {
    if !r.carry.is_empty() {
        end_line(r);
    }
    FileDone {
        path: r.path.clone(),
        findings: std::mem::take(&mut r.findings),
        total: r.total,
        partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_file_bytes: 1 << 30,
            skip: vec![".git".into()],
        }
    }

    const ALL: Budget = Budget {
        entries: usize::MAX,
        bytes: u64::MAX,
        events: usize::MAX,
        until_ms: u64::MAX,
    };

    fn scan_all(root: &Path, budget: Budget, limits: &Limits) -> (Vec<FileDone>, usize, Stats) {
        let mut scan = Scan::start(root.to_str().unwrap(), 0).unwrap();
        let mut done = Vec::new();
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls < 1_000_000, "the scan never ends");
            let finished = scan.advance(budget, limits, &mut || 0, &mut |f| {
                let has = f.total > 0;
                done.push(f);
                has
            });
            if finished {
                break;
            }
        }
        done.sort_by(|a, b| a.path.cmp(&b.path));
        (done, calls, scan.stats)
    }

    #[test]
    fn a_missing_folder_is_an_error_that_names_it_and_the_grant() {
        let err = Scan::start("/no/such/folder", 0).err().unwrap();
        assert!(err.contains("/no/such/folder"), "{err}");
        assert!(err.contains("[permissions] dirs"), "{err}");
    }

    #[test]
    fn findings_come_with_their_lines_in_nested_folders_and_skipped_folders_are_not_entered() {
        let dir = tempfile_dir("nested");
        std::fs::create_dir_all(dir.join("src/deep")).unwrap();
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        std::fs::write(dir.join("src/a.rs"), "fn a() {}\n// TODO: test a\n").unwrap();
        std::fs::write(dir.join("src/deep/b.py"), "# FIXME b\nx = 1\n# HACK: c").unwrap();
        std::fs::write(dir.join(".git/c"), "TODO hidden").unwrap();
        std::fs::write(dir.join("bin"), b"TODO \0\0\0").unwrap();
        let (done, _, stats) = scan_all(&dir, ALL, &limits());
        let found: Vec<(String, u64, &str, String)> = done
            .iter()
            .flat_map(|f| {
                f.findings.iter().map(|x| {
                    (
                        f.path.rsplit('/').next().unwrap().to_string(),
                        x.line,
                        x.tag,
                        x.text.clone(),
                    )
                })
            })
            .collect();
        assert_eq!(
            found,
            vec![
                ("a.rs".into(), 2, "TODO", "test a".into()),
                ("b.py".into(), 1, "FIXME", "b".into()),
                ("b.py".into(), 3, "HACK", "c".into()),
            ]
        );
        assert_eq!(stats.binary, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_large_file_is_read_across_many_calls_within_the_byte_budget_and_lines_span_chunks() {
        let dir = tempfile_dir("large");
        // 8 MiB of lines, a TODO every 100,000 lines, lines straddling
        // chunk boundaries.
        let mut text = String::new();
        let mut line = 0;
        while text.len() < 8 << 20 {
            line += 1;
            if line % 100_000 == 0 {
                text.push_str(&format!("// TODO number {line}\n"));
            } else {
                text.push_str("let x = some_code(1, 2, 3);\n");
            }
        }
        std::fs::write(dir.join("big.rs"), &text).unwrap();
        let budget = Budget {
            bytes: 256 * 1024,
            ..ALL
        };
        let (done, calls, stats) = scan_all(&dir, budget, &limits());
        assert!(calls >= 32, "8 MiB in 256 KiB steps: {calls} calls");
        assert_eq!(done[0].total, (line / 100_000) as u64);
        assert_eq!(done[0].findings[0].line, 100_000);
        assert_eq!(done[0].findings[0].text, "number 100000");
        assert_eq!(stats.bytes, text.len() as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_past_the_size_limit_is_read_only_to_the_limit() {
        let dir = tempfile_dir("limit");
        let mut text = "TODO first\n".to_string();
        text.push_str(&"x\n".repeat(100_000));
        text.push_str("TODO never seen\n");
        std::fs::write(dir.join("f"), &text).unwrap();
        let limits = Limits {
            max_file_bytes: 1000,
            ..limits()
        };
        let (done, _, stats) = scan_all(&dir, ALL, &limits);
        assert_eq!((done[0].total, done[0].partial), (1, true));
        assert_eq!(stats.bytes, 1000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_very_long_line_is_cut_and_the_next_line_still_counts() {
        let dir = tempfile_dir("longline");
        let text = format!("{} TODO lost\nTODO kept\n", "x".repeat(1 << 20));
        std::fs::write(dir.join("f"), &text).unwrap();
        let (done, _, _) = scan_all(&dir, ALL, &limits());
        assert_eq!(done[0].findings.len(), 1);
        assert_eq!(
            (done[0].findings[0].line, done[0].findings[0].text.as_str()),
            (2, "kept")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn many_files_are_covered_over_calls_within_the_entry_and_event_budgets() {
        let dir = tempfile_dir("many");
        for i in 0..2_000 {
            let body = if i % 10 == 0 { "TODO x\n" } else { "nothing\n" };
            std::fs::write(dir.join(format!("f{i}")), body).unwrap();
        }
        let budget = Budget {
            entries: 100,
            events: 5,
            ..ALL
        };
        let (done, calls, stats) = scan_all(&dir, budget, &limits());
        assert_eq!(done.len(), 2_000);
        assert_eq!(stats.findings, 200);
        assert!(calls >= 40, "200 findings, 5 per call: {calls}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_clock_stops_a_call() {
        let dir = tempfile_dir("clock");
        for i in 0..10 {
            std::fs::write(dir.join(format!("f{i}")), "x\n").unwrap();
        }
        let mut scan = Scan::start(dir.to_str().unwrap(), 0).unwrap();
        let budget = Budget { until_ms: 5, ..ALL };
        let mut t = 0;
        let finished = scan.advance(
            budget,
            &limits(),
            &mut || {
                t += 1;
                t
            },
            &mut |_| false,
        );
        assert!(!finished);
        assert!(scan.stats.files < 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_folder_of_100k_files_is_listed_over_many_bounded_calls() {
        let dir = tempfile_dir("100k");
        for i in 0..100_000 {
            std::fs::File::create(dir.join(format!("f{i}"))).unwrap();
        }
        std::fs::write(dir.join("f99999"), "TODO last\n").unwrap();
        let budget = Budget {
            entries: 2_000,
            ..ALL
        };
        let (done, calls, stats) = scan_all(&dir, budget, &limits());
        assert_eq!(stats.files, 100_000);
        assert!(calls >= 50, "2,000 entries a call: {calls}");
        assert_eq!(done.iter().filter(|f| f.total > 0).count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_one_gigabyte_file_of_zeros_is_skipped_as_binary_after_its_first_chunk() {
        let dir = tempfile_dir("gigabyte");
        // Sparse: a gigabyte to read, almost nothing on disk.
        std::fs::File::create(dir.join("zeros"))
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        let (done, calls, stats) = scan_all(&dir, ALL, &limits());
        assert!(done.is_empty());
        assert_eq!(stats.binary, 1);
        assert_eq!(stats.bytes, CHUNK as u64, "one chunk read, not a gigabyte");
        assert_eq!(calls, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gatherer-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
