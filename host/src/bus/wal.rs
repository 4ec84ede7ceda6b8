//! Keeping the journal's WAL bounded, from the writer thread.
//!
//! The checkpoint thread (`checkpoint`) copies WAL frames into the database
//! with passive checkpoints, which never block the writer but cannot restart
//! the WAL while it keeps appending. So after every commit the writer looks at
//! the `-wal` file: past `max_wal_bytes` it runs a RESTART checkpoint (cheap:
//! the frames are mostly copied already), the next commit writes the WAL from
//! its start, and SQLite cuts the file back to `journal_size_limit` (the same
//! bound). RESTART rather than TRUNCATE under load: the file keeps its blocks
//! and the next commits overwrite them, where a truncated file would be grown,
//! and its blocks allocated, again. After a second without commits, and at
//! close, it truncates the WAL to nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::bus::checkpoint::Checkpointer;
use crate::bus::log::Core;

/// How long a checkpoint waits for readers before trying later.
const WAIT: Duration = Duration::from_millis(250);
/// How long after a checkpoint a reader held up the next one is tried.
const RETRY: Duration = Duration::from_secs(1);
/// How soon an idle writer looks again at a WAL still over its bound.
const RECHECK: Duration = Duration::from_millis(50);
/// How long without commits before the WAL is truncated to nothing.
const IDLE: Duration = Duration::from_secs(1);

/// The WAL file and what the writer knows of it.
pub(crate) struct Wal {
    path: PathBuf,
    max: u64,
    /// After a checkpoint a reader held up, not before this.
    retry_at: Option<Instant>,
    /// The WAL was over its bound at the last look: check again soon even if
    /// nothing is published, so it shrinks after a storm.
    over: bool,
    /// Something was committed since the WAL was last truncated.
    dirty: bool,
}

impl Wal {
    /// The WAL at `path`, bounded to `max` bytes.
    pub(crate) fn new(path: PathBuf, max: u64) -> Wal {
        Wal {
            path,
            max,
            retry_at: None,
            over: false,
            dirty: false,
        }
    }

    /// How long the writer may wait for work before it has WAL upkeep to do.
    pub(crate) fn idle_timeout(&self) -> Option<Duration> {
        if self.over {
            Some(RECHECK)
        } else if self.dirty {
            Some(IDLE)
        } else {
            None
        }
    }

    /// Notes a commit (or an attempt at one).
    pub(crate) fn written(&mut self) {
        self.dirty = true;
    }

    /// After a commit: restarts the WAL once it passes its bound.
    pub(crate) fn bound(&mut self, core: &Core, checkpointer: Option<&Checkpointer>) {
        let size = self.size();
        self.over = size > self.max;
        if self.over && self.retry_at.is_none_or(|at| Instant::now() >= at) {
            self.checkpoint(core, checkpointer, "RESTART", size);
        }
    }

    /// After a quiet second: truncates the WAL to nothing, so an idle host
    /// leaves no WAL behind.
    pub(crate) fn quiet(&mut self, core: &Core, checkpointer: Option<&Checkpointer>) {
        if !self.dirty || self.over {
            return;
        }
        match self.size() {
            0 => self.dirty = false,
            size => self.checkpoint(core, checkpointer, "TRUNCATE", size),
        }
    }

    /// At close, after the checkpoint thread has stopped: an empty WAL.
    pub(crate) fn close(&mut self, core: &Core) {
        match core
            .journal
            .lock()
            .checkpoint("TRUNCATE", Duration::from_secs(5))
        {
            Ok(done) if !done.busy => {}
            Ok(_) => tracing::warn!("the WAL could not be truncated at close: a reader holds it"),
            Err(error) => tracing::warn!(%error, "the WAL could not be truncated at close"),
        }
    }

    fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn checkpoint(
        &mut self,
        core: &Core,
        checkpointer: Option<&Checkpointer>,
        mode: &str,
        size: u64,
    ) {
        // Wait out a passive pass in progress (at most one; none starts while
        // the WAL is over its bound), so the checkpoint is not refused.
        let _turn = checkpointer.map(Checkpointer::hold);
        match core.journal.lock().checkpoint(mode, WAIT) {
            Ok(done) if !done.busy => {
                self.retry_at = None;
                self.over = false;
                self.dirty = mode != "TRUNCATE";
                tracing::debug!(
                    mode,
                    wal_bytes = size,
                    frames = done.wal_frames,
                    copied = done.copied,
                    "WAL checkpointed"
                );
            }
            Ok(done) if done.wal_frames < 0 => {
                // Another checkpoint holds the lock (SQLite does not wait for it):
                // try again after the next commit.
                tracing::trace!(mode, wal_bytes = size, "WAL checkpoint met another");
            }
            Ok(_) => {
                // A reader holds an old snapshot; the WAL grows until it lets go.
                self.retry_at = Some(Instant::now() + RETRY);
                tracing::debug!(mode, wal_bytes = size, "WAL checkpoint waits for a reader");
            }
            Err(error) => {
                self.retry_at = Some(Instant::now() + RETRY);
                tracing::warn!(%error, mode, wal_bytes = size, "WAL checkpoint failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::bus::{Bus, BusConfig, NewEvent, journal_path};
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    fn ev(n: u64) -> NewEvent {
        NewEvent::new(
            "host/test",
            "storm.event",
            json!({ "n": n, "pad": "x".repeat(200) }),
        )
    }

    #[test]
    fn a_publish_storm_keeps_the_wal_under_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let bound: u64 = 256 << 10;
        let config = BusConfig {
            max_wal_bytes: bound,
            max_journal_events: 0,
            ..BusConfig::default()
        };
        let bus = Bus::open(dir.path(), config).unwrap();
        let mut wal = journal_path(dir.path()).into_os_string();
        wal.push("-wal");
        let wal = std::path::PathBuf::from(wal);
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (stop, peak, wal) = (stop.clone(), peak.clone(), wal.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
                    peak.fetch_max(size, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        let storm_until = Instant::now() + Duration::from_secs(3);
        let publishers: Vec<_> = (0..4)
            .map(|_| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    while Instant::now() < storm_until {
                        bus.submit((0..50).map(ev).collect()).unwrap();
                    }
                })
            })
            .collect();
        for p in publishers {
            p.join().unwrap();
        }
        bus.flush().unwrap();
        stop.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
        let deadline = Instant::now() + Duration::from_secs(20);
        while wal_size() > 0 {
            assert!(
                Instant::now() < deadline,
                "an idle bus never truncated its WAL"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bus.publish(ev(0)).unwrap();
        let written = bus.head() * 250;
        assert!(
            written > 8 * bound,
            "the storm wrote only {written} bytes of events; it must exceed the bound many times"
        );
        let peak = peak.load(Ordering::Relaxed);
        assert!(
            peak <= 2 * bound,
            "the WAL reached {peak} bytes; the bound is {bound}"
        );
        assert!(wal_size() > 0);
        drop(bus);
        assert_eq!(wal_size(), 0, "the WAL is truncated at close");
    }
}
