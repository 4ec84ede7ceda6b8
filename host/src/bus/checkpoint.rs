//! Checkpointing the journal's WAL on a background thread.
//!
//! By default SQLite checkpoints inside whichever commit pushes the WAL past
//! 1000 pages, so every few hundred publishes one of them pays for copying pages
//! into the database and two fsyncs. On a busy disk that stall dominated publish
//! time (measured: roughly twice the single-event publish rate without it). Here
//! the writer turns automatic checkpoints off and this thread runs passive ones,
//! which never block the writer or readers, from its own connection.
//!
//! Passive checkpoints copy frames but cannot restart the WAL while the writer
//! keeps appending, so on their own they leave the file growing under a storm.
//! The writer thread therefore truncates the WAL when it passes its bound
//! (`writer`); by then this thread has copied almost every frame, so that
//! truncation costs little more than a sync. SQLite does not wait for the
//! checkpoint lock, so the two take turns through a gate: each pass holds it,
//! the writer takes it before truncating (waiting out at most one pass), and
//! once the WAL is past its bound this thread starts no new pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use rusqlite::Connection;

/// Appended events between explicit nudges; at a few pages per event this keeps
/// the WAL in the low tens of megabytes under a sustained burst.
const NUDGE_EVERY: u64 = 1000;
/// Checkpoint at least this often while the bus is open.
const IDLE: Duration = Duration::from_secs(1);

/// The writer's handle on the checkpoint thread. Dropping it (when the writer
/// closes) disconnects the channel; the thread runs a last checkpoint and exits,
/// and the drop waits for that so the writer's final truncation follows it.
pub(crate) struct Checkpointer {
    /// Capacity 1: a nudge while one is pending is redundant, never blocking.
    /// An `Option` only so that drop can disconnect it before joining.
    nudge: Option<SyncSender<()>>,
    /// Events appended since the last nudge.
    since_nudge: u64,
    /// Held by the thread during each pass; see the module doc.
    gate: Arc<Mutex<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a second writable connection to `path` and starts the thread,
    /// which leaves a WAL (`wal`) larger than `wal_bound` to the writer.
    ///
    /// `None` (with a warning) if either fails: the caller then keeps SQLite's
    /// automatic checkpoints, slower but just as safe.
    pub(crate) fn spawn(path: &Path, wal: PathBuf, wal_bound: u64) -> Option<Checkpointer> {
        let conn = Connection::open(path).and_then(|conn| {
            conn.busy_timeout(Duration::from_secs(5))?;
            Ok(conn)
        });
        let conn = match conn {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(journal = %path.display(), %error, "cannot open the journal checkpointer; using automatic checkpoints");
                return None;
            }
        };
        let (nudge, nudged) = mpsc::sync_channel(1);
        let label = path.display().to_string();
        let gate = Arc::new(Mutex::new(()));
        let pass_gate = gate.clone();
        let spawned = std::thread::Builder::new()
            .name("bus-checkpoint".into())
            .spawn(move || {
                loop {
                    let last = match nudged.recv_timeout(IDLE) {
                        Ok(()) | Err(RecvTimeoutError::Timeout) => false,
                        Err(RecvTimeoutError::Disconnected) => true,
                    };
                    if last {
                        break;
                    }
                    let _pass = pass_gate.lock();
                    let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
                    if wal_bytes <= wal_bound {
                        checkpoint(&conn, &label);
                    }
                }
            });
        let thread = match spawned {
            Ok(thread) => thread,
            Err(error) => {
                tracing::warn!(journal = %path.display(), %error, "cannot start the journal checkpointer; using automatic checkpoints");
                return None;
            }
        };
        Some(Checkpointer {
            nudge: Some(nudge),
            since_nudge: 0,
            gate,
            thread: Some(thread),
        })
    }

    /// Waits for a pass in progress to end and keeps the next from starting
    /// while the guard lives: the writer holds it while truncating the WAL.
    pub(crate) fn hold(&self) -> MutexGuard<'_, ()> {
        self.gate.lock()
    }

    /// Notes `n` appended events, nudging the thread once enough have piled up.
    pub(crate) fn appended(&mut self, n: u64) {
        self.since_nudge += n;
        if self.since_nudge >= NUDGE_EVERY {
            self.since_nudge = 0;
            match self.nudge.as_ref().map(|n| n.try_send(())) {
                // Full: a checkpoint is already due. Disconnected: the thread is gone
                // and the writer's truncations still bound the WAL; neither is
                // worth stalling a commit.
                None
                | Some(Ok(()))
                | Some(Err(TrySendError::Full(())))
                | Some(Err(TrySendError::Disconnected(()))) => {}
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.nudge.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the journal checkpoint thread panicked");
        }
    }
}

fn checkpoint(conn: &Connection, label: &str) {
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match result {
        Ok((wal_frames, copied)) => {
            tracing::trace!(journal = label, wal_frames, copied, "journal checkpoint");
        }
        // The WAL only grows until the next successful pass; data is never at risk.
        Err(error) => tracing::warn!(journal = label, %error, "journal checkpoint failed"),
    }
}

#[cfg(test)]
mod tests {
    use crate::bus::{Bus, BusConfig, NewEvent, journal_path};
    use std::time::{Duration, Instant};

    #[test]
    fn the_checkpointer_moves_the_wal_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        let db = journal_path(dir.path());
        let initial = std::fs::metadata(&db).unwrap().len();
        // With automatic checkpoints off, only the thread writes the main file.
        for n in 0..2000 {
            let data = serde_json::json!({ "n": n, "pad": "x".repeat(100) });
            bus.publish(NewEvent::new("host/test", "a.b", data))
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&db).unwrap().len() <= initial {
            assert!(
                Instant::now() < deadline,
                "no checkpoint reached the database file"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
