//! The reaper: a thread that frees what the writer is done with.
//!
//! Every event is allocated by its publisher and freed by whoever drops it
//! last. For the writer, the one thread every event goes through, those frees
//! (about ten allocations per event, across threads, which glibc makes slow)
//! were a sixth of its time. Events evicted from the ring, or never entering
//! it, go to this thread in bulk instead.

use std::thread::JoinHandle;

use crate::bus::event::Event;

/// The writer's handle on the reaper thread; dropping it stops the thread
/// once it has freed what it was given.
pub(crate) struct Reaper {
    /// Bounded: when the reaper falls behind, the writer frees inline.
    /// An `Option` only so that drop can disconnect it before joining.
    tx: Option<std::sync::mpsc::SyncSender<Vec<Event>>>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Below this many events, freeing inline is cheaper than a hand-off.
    const MIN: usize = 32;

    /// Starts the thread (or, if the OS refuses, a reaper that frees inline).
    pub(crate) fn spawn() -> Reaper {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Event>>(4);
        let thread = std::thread::Builder::new()
            .name("bus-reaper".into())
            .spawn(move || rx.into_iter().for_each(drop));
        match thread {
            Ok(thread) => Reaper {
                tx: Some(tx),
                thread: Some(thread),
            },
            // Without the thread the writer frees inline, as it would anyway.
            Err(error) => {
                tracing::warn!(%error, "cannot start the bus reaper thread; the writer frees events itself");
                Reaper {
                    tx: None,
                    thread: None,
                }
            }
        }
    }

    /// Hands `garbage` to the thread, or frees it here if it is small or the
    /// thread is behind.
    pub(crate) fn reap(&self, garbage: Vec<Event>) {
        if garbage.len() < Self::MIN {
            return;
        }
        if let Some(tx) = &self.tx {
            // Full or gone: the garbage comes back in the error and drops here.
            let _ = tx.try_send(garbage);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the bus reaper thread panicked");
        }
    }
}
