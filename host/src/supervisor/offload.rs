//! Keeping `/proc` work off the async workers.
//!
//! Walking `/proc` reads a file per process, and reading a process's
//! `/proc` files can wait on that process's memory map lock; with
//! thousands of processes a scan takes milliseconds. The orphan reaper's
//! registry lock is held across such a scan (see `reaper`), so taking it
//! can wait as long. None of that may run on a tokio worker, where it would
//! stall every task scheduled there: async code hands it to the blocking
//! pool with [`offload`], and the few sync verbs that must answer in place
//! (pause, resume) use [`in_place`].
//!
//! Both run the work to completion before the caller goes on, so the order
//! of scans, signals and reaps is exactly what it would be inline: the
//! rules in `stop` and `reaper` that keep signals from recycled pids hold.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f` on tokio's blocking pool and returns what it returned; a panic
/// in `f` carries on in the caller.
///
/// If the runtime is shutting down and refuses the job, `f` runs here
/// instead: the work (a stop's cleanup, say) is never silently skipped.
pub(crate) async fn offload<R, F>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    // Shared so that a job the pool cancelled before it ran can be run here.
    let job = Arc::new(Mutex::new(Some(f)));
    let remote = job.clone();
    let ran = tokio::task::spawn_blocking(move || remote.lock().take().map(|f| f())).await;
    match ran {
        Ok(Some(result)) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled (or, impossibly, run twice): run it here if it never ran.
        Ok(None) | Err(_) => match job.lock().take() {
            Some(f) => f(),
            None => unreachable!("a blocking job that ran returned its result"),
        },
    }
}

/// Runs `f` now, on this thread, first handing this worker's other tasks
/// to another worker (`block_in_place`) when called on a multi-threaded
/// runtime's worker; on a current-thread runtime, or outside any runtime,
/// `f` simply runs.
pub(crate) fn in_place<R>(f: impl FnOnce() -> R) -> R {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offloaded_work_runs_on_a_blocking_thread_and_returns_its_value() {
        let here = std::thread::current().id();
        let (there, value) = offload(|| (std::thread::current().id(), 41 + 1)).await;
        assert_ne!(here, there, "the work ran on the calling worker");
        assert_eq!(value, 42);
    }

    #[tokio::test]
    async fn a_panic_in_offloaded_work_reaches_the_caller() {
        let caught = tokio::spawn(offload(|| -> u8 { panic!("scan failed") })).await;
        let panic = caught.unwrap_err().into_panic();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"scan failed"));
    }

    #[test]
    fn in_place_runs_inside_and_outside_a_runtime() {
        assert_eq!(in_place(|| 1), 1);
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(current.block_on(async { in_place(|| 2) }), 2);
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let on_worker = multi.block_on(async { tokio::spawn(async { in_place(|| 3) }).await });
        assert_eq!(on_worker.unwrap(), 3);
    }
}
