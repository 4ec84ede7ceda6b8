//! The actor of one plugin version: a worker thread that owns the live
//! instance, an inbox of jobs, and the watchdog that gives up a worker
//! stuck past its deadline.
//!
//! Calls to a plugin are serialised through the inbox, so a plugin never
//! sees two calls at once while different plugins run in parallel on their
//! own threads. Sync wasmtime on a dedicated thread is cheaper per call
//! than async fibers. After a trap the instance cannot be re-entered, so
//! the worker drops it and the next call instantiates afresh from the
//! `InstancePre` (~10 µs for a Rust guest).
//!
//! Every job is a batch (a single call is a batch of one): items are taken
//! one at a time from state shared with the caller. Epoch interruption
//! ends a guest running wasm code and the deadline-aware WASI functions end
//! one waiting in `wasi:io`; anything else that blocks (a FIFO in a granted
//! folder, a slow host import) is the watchdog's: the epoch ticker asks
//! each actor on every tick, and an item still running at its deadline plus
//! [`WATCHDOG_GRACE`] is given up. Under the batch's lock the watchdog
//! records the item as `deadline`, retires the worker (its later result is
//! discarded and its host imports trap) and answers the caller with what
//! was done; the caller sends the rest of the batch again, and a fresh
//! worker with a fresh store, started by the watchdog, takes over the
//! inbox. The stuck thread is left to finish or die on its own.
//!
//! Each item's duration is measured here, on the worker, from taking it up
//! to its answer ([`Timed`]), so a batch reports one figure per item and
//! the time a job waited in the inbox is not counted.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;
use wasmtime::Store;

use super::engine::{InFlight, PluginEngine, Watched, nanos_since_base};
use super::error::{CallFailure, PluginError};
use super::instance::{Compiled, Exports, classify, deadline_ticks};
use super::sandbox::StoreState;
use super::services::HostServices;
use super::state::StateHandle;

/// How long past a call's deadline the watchdog waits before giving up
/// its thread. Longer than an epoch tick and the timer's 1 ms granularity,
/// so that an interrupt or a deadline-aware WASI wait normally ends the call
/// first and the watchdog only meets calls nothing else can end; short, so
/// that those end within a few ms of their deadline too (with 5 ms the
/// worst of 55 blocked calls ended 12.6 ms late on a loaded machine).
pub(crate) const WATCHDOG_GRACE: Duration = Duration::from_millis(2);

/// A job for a worker: runs on its thread with the live instance.
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// What a call does with one item: a wasmtime error traps (the instance is
/// replaced), an inner error is the plugin's answer.
type ItemFn<I, R> = dyn Fn(&mut Store<StoreState>, &Exports, I) -> wasmtime::Result<Result<R, CallFailure>>
    + Send
    + Sync;

/// Decides after each item whether the batch goes on (the slot's failure
/// budget); `false` leaves the rest unattempted.
pub(crate) type KeepGoing<R> = Box<dyn FnMut(&Result<R, CallFailure>) -> bool + Send>;

/// One item's outcome and how long it took on the worker: from taking the
/// item up (instantiation included, when the item needed a fresh instance)
/// to its answer, or to the watchdog giving it up. `took` is `None` only for
/// an item whose worker died under it, which never answered.
pub(crate) struct Timed<R> {
    /// What the call returned, or how it failed.
    pub(crate) outcome: Result<R, CallFailure>,
    /// How long it ran.
    pub(crate) took: Option<Duration>,
    /// When it failed: what the guest wrote to stderr during the call
    /// (`logpipe::StderrTail`), its own words for what went wrong.
    pub(crate) guest_message: Option<String>,
}

impl<R> Timed<R> {
    /// An item that never answered: its worker died under it.
    pub(crate) fn lost(why: &str) -> Self {
        Self {
            outcome: Err(CallFailure::Trap(why.into())),
            took: None,
            guest_message: None,
        }
    }
}

/// The inbox of a plugin version and the shared state of its workers.
pub(crate) struct Actor {
    inbox: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

/// What every worker of one version shares, and what the watchdog sees.
struct Shared {
    me: Weak<Shared>,
    compiled: Arc<Compiled>,
    engine: PluginEngine,
    services: Arc<HostServices>,
    /// The plugin's key/value state (or a shadow's scratch copy of it),
    /// flushed after each job.
    state: Arc<StateHandle>,
    /// The inbox's receiving end, handed from a given-up worker to its
    /// replacement. A worker holds the lock only while it waits for a job.
    jobs: Mutex<mpsc::Receiver<Job>>,
    /// The worker serving the inbox now.
    current: Mutex<Arc<Life>>,
    /// Workers given up so far.
    abandoned: AtomicU64,
    /// Set when a replacement worker could not be started; the watchdog
    /// tries again on every tick.
    needs_worker: AtomicBool,
}

/// One worker thread's standing, shared with the watchdog and with the
/// stores the worker builds.
#[derive(Default)]
pub(crate) struct Life {
    /// Set when the watchdog gave this worker up. From then on its result
    /// is discarded and its host imports trap.
    retired: AtomicBool,
    /// Its share of the epoch ticker's in-flight count.
    pub(crate) in_flight: InFlight,
    /// Deadline plus grace of the item in flight (see
    /// [`nanos_since_base`]), 0 between items: the watchdog's lock-free
    /// first look. The decision is made under the batch's lock.
    due: AtomicU64,
    /// The batch this worker is running, for the watchdog.
    job: Mutex<Option<Arc<dyn Abandon>>>,
}

impl Life {
    /// Whether the watchdog gave this worker up.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }
}

/// A batch as the watchdog sees it, whatever its item and result types.
trait Abandon: Send + Sync {
    /// If the item in flight is past due at `now`, give it up: record it
    /// as a deadline failure, retire `life`, answer the caller. Whether it
    /// did.
    fn abandon_if_due(&self, now: Instant, life: &Life, engine: &PluginEngine) -> bool;
}

/// One call's items and results, shared by the caller, the worker running
/// it and (through [`Abandon`]) the watchdog.
struct Batch<I, R> {
    f: Box<ItemFn<I, R>>,
    /// The plugin's deadline, for the failure the watchdog records.
    deadline_ms: u64,
    /// The version's stderr tail, for the failure the watchdog records.
    stderr_tail: Arc<super::logpipe::StderrTail>,
    state: Mutex<BatchState<I, R>>,
}

struct BatchState<I, R> {
    /// Items not started yet.
    pending: VecDeque<I>,
    /// Results so far, in item order.
    done: Vec<Timed<R>>,
    keep_going: KeepGoing<R>,
    /// Set when `keep_going` said no.
    stopped: bool,
    /// When the item in flight is given up; `None` between items.
    due: Option<Instant>,
    /// When the item in flight was taken up; `None` between items.
    began: Option<Instant>,
    /// Wakes the caller when the batch ends or is given up.
    reply: Option<oneshot::Sender<()>>,
}

impl<I: Send + 'static, R: Send + 'static> Abandon for Batch<I, R> {
    fn abandon_if_due(&self, now: Instant, life: &Life, engine: &PluginEngine) -> bool {
        let reply = {
            let mut st = self.state.lock();
            if st.due.is_none_or(|due| now < due) {
                return false;
            }
            // Retire under the lock: the worker checks `retired` under it
            // before it records anything, so exactly one side records
            // this item.
            life.retired.store(true, Ordering::Release);
            life.due.store(0, Ordering::Release);
            engine.release(&life.in_flight);
            st.due = None;
            let took = st
                .began
                .take()
                .map(|began| now.saturating_duration_since(began));
            let failure = Err(CallFailure::Deadline {
                deadline_ms: self.deadline_ms,
            });
            if !(st.keep_going)(&failure) {
                st.stopped = true;
            }
            st.done.push(Timed {
                outcome: failure,
                took,
                // The stuck call's words so far; it may still be writing.
                guest_message: self.stderr_tail.take(),
            });
            st.reply.take()
        };
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
        true
    }
}

/// If the worker unwinds mid-batch: drops the caller's wake-up, so the
/// caller sees the batch end instead of waiting forever, and clears the
/// item's due time, so the watchdog does not give up a worker that lives on.
struct ReplyOnUnwind<'a, I, R>(&'a Batch<I, R>, Arc<Life>);

impl<I, R> Drop for ReplyOnUnwind<'_, I, R> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut st = self.0.state.lock();
            st.reply.take();
            st.due = None;
            st.began = None;
            self.1.due.store(0, Ordering::Release);
        }
    }
}

impl Actor {
    /// Start the first worker for `compiled` and register with the
    /// watchdog.
    pub(crate) fn start(
        compiled: Arc<Compiled>,
        engine: PluginEngine,
        services: Arc<HostServices>,
    ) -> Result<Self, PluginError> {
        let (inbox, jobs) = mpsc::channel::<Job>();
        let state = Arc::new(StateHandle::new(services.state.plugin(&compiled.spec.name)));
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            compiled,
            engine,
            services,
            state,
            jobs: Mutex::new(jobs),
            current: Mutex::new(Arc::default()),
            abandoned: AtomicU64::new(0),
            needs_worker: AtomicBool::new(false),
        });
        let life = shared.current.lock().clone();
        shared
            .spawn_worker(life)
            .map_err(|source| PluginError::Io {
                path: shared.compiled.spec.component_path.clone(),
                source,
            })?;
        let watched: Weak<dyn Watched> = Arc::downgrade(&shared) as Weak<dyn Watched>;
        shared.engine.watch(watched);
        Ok(Self { inbox, shared })
    }

    /// Workers given up by the watchdog so far.
    pub(crate) fn abandoned(&self) -> u64 {
        self.shared.abandoned.load(Ordering::Relaxed)
    }

    /// From the next host call on, read and write a scratch copy of the
    /// plugin's state (a shadow on trial), or, with `scratch` false, the
    /// plugin's own again (the shadow swapped in).
    pub(crate) fn use_scratch_state(&self, scratch: bool) {
        let services = &self.shared.services;
        let own = services.state.plugin(&self.shared.compiled.spec.name);
        let state = if scratch {
            services.state.scratch_copy(&own)
        } else {
            own
        };
        self.shared.state.switch_to(state);
    }

    /// Run `f` on each item, in order, on the plugin's worker: one trip to
    /// the worker for the whole batch when nothing gets stuck.
    ///
    /// Items are independent: a trap replaces the instance and the next
    /// item runs on a fresh one. Once `keep_going` says no, the rest are
    /// not attempted (`None`). An item given up by the watchdog is a
    /// `deadline` failure and the rest are sent again, to the worker that
    /// replaced the stuck one. Each result says how long its item ran.
    pub(crate) async fn run<I: Send + 'static, R: Send + 'static>(
        &self,
        items: Vec<I>,
        keep_going: KeepGoing<R>,
        f: impl Fn(&mut Store<StoreState>, &Exports, I) -> wasmtime::Result<Result<R, CallFailure>>
        + Send
        + Sync
        + 'static,
    ) -> Vec<Option<Timed<R>>> {
        let n = items.len();
        let batch = Arc::new(Batch {
            f: Box::new(f),
            deadline_ms: u64::try_from(self.shared.compiled.spec.deadline.as_millis())
                .unwrap_or(u64::MAX),
            stderr_tail: self.shared.compiled.stderr_tail.clone(),
            state: Mutex::new(BatchState {
                pending: items.into(),
                done: Vec::with_capacity(n),
                keep_going,
                stopped: false,
                due: None,
                began: None,
                reply: None,
            }),
        });
        loop {
            let (tx, rx) = oneshot::channel();
            batch.state.lock().reply = Some(tx);
            let mine = batch.clone();
            let job: Job = Box::new(move |worker: &mut Worker| worker.run_batch(&mine));
            if self.inbox.send(job).is_err() || rx.await.is_err() {
                break;
            }
            let st = batch.state.lock();
            if st.stopped || st.pending.is_empty() {
                break;
            }
            // Given up mid-batch: the rest goes to the fresh worker.
        }
        let mut st = batch.state.lock();
        let gone = || Some(Timed::lost("the plugin's actor thread has stopped"));
        let stopped = st.stopped;
        let rest = st.pending.len();
        let mut out: Vec<_> = st.done.drain(..).map(Some).collect();
        // An item in flight when a worker panicked has no result: it
        // failed with its thread. Items stay in their places.
        let lost = n - out.len() - rest;
        out.extend((0..lost).map(|_| gone()));
        out.extend((0..rest).map(|_| if stopped { None } else { gone() }));
        out
    }
}

impl Shared {
    /// Start a worker thread with a fresh store for `life`.
    fn spawn_worker(&self, life: Arc<Life>) -> std::io::Result<()> {
        let Some(shared) = self.me.upgrade() else {
            return Ok(());
        };
        let worker = Worker {
            shared,
            life,
            live: None,
        };
        std::thread::Builder::new()
            .name(format!("plugin-{}", self.compiled.spec.name))
            .spawn(move || worker.serve())
            .map(|_| ())
    }

    /// Put a fresh worker in place of the current one.
    fn replace_worker(&self) {
        let life = Arc::new(Life::default());
        *self.current.lock() = life.clone();
        match self.spawn_worker(life) {
            Ok(()) => self.needs_worker.store(false, Ordering::Release),
            Err(e) => {
                self.needs_worker.store(true, Ordering::Release);
                tracing::error!(
                    plugin = %self.compiled.spec.name,
                    "could not start a worker thread (will retry): {e}"
                );
            }
        }
    }
}

impl Watched for Shared {
    fn check(&self, now: Instant) {
        if self.needs_worker.load(Ordering::Acquire) {
            self.replace_worker();
        }
        let life = self.current.lock().clone();
        let due = life.due.load(Ordering::Acquire);
        if due == 0 || nanos_since_base(now) < due {
            return;
        }
        let Some(job) = life.job.lock().clone() else {
            return;
        };
        if job.abandon_if_due(now, &life, &self.engine) {
            self.abandoned.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                plugin = %self.compiled.spec.name,
                "a call stayed stuck outside wasm code past its deadline; \
                 its thread is given up and a fresh one takes over"
            );
            self.replace_worker();
        }
    }
}

/// What a worker thread owns: its standing and the live instance.
pub(crate) struct Worker {
    shared: Arc<Shared>,
    life: Arc<Life>,
    live: Option<(Store<StoreState>, Exports)>,
}

impl Worker {
    /// Take jobs until every sender is gone (the version was swapped out
    /// and its last call ended) or the watchdog gives this worker up.
    fn serve(mut self) {
        while !self.life.is_retired() {
            let job = self.shared.jobs.lock().recv();
            let Ok(job) = job else { break };
            if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut self))).is_err() {
                // The store may be mid-call; never enter it again.
                self.live = None;
                tracing::error!(plugin = %self.shared.compiled.spec.name, "a plugin call panicked in the host");
            }
            // After the caller has its answer: state set by the job goes to
            // the file in one transaction, and a flood of lines that ended
            // with the call is still reported.
            self.shared
                .services
                .state
                .flush(&self.shared.state.current());
            self.shared.compiled.log_budget.report_if_due();
        }
    }

    fn run_batch<I, R>(&mut self, batch: &Arc<Batch<I, R>>)
    where
        I: Send + 'static,
        R: Send + 'static,
    {
        let _unwind = ReplyOnUnwind(batch, self.life.clone());
        *self.life.job.lock() = Some(batch.clone());
        let deadline = self.shared.compiled.spec.deadline;
        loop {
            let started = Instant::now();
            let item = {
                let mut st = batch.state.lock();
                if st.stopped {
                    break;
                }
                let Some(item) = st.pending.pop_front() else {
                    break;
                };
                // Instantiation may run guest initialisers; it has ten
                // deadlines, the call its own after that.
                let allowance = if self.live.is_some() {
                    deadline
                } else {
                    deadline * 11
                };
                self.set_due(&mut st, started + allowance + WATCHDOG_GRACE);
                st.began = Some(started);
                item
            };
            let result = self.run_item(batch, item, started);
            let took = started.elapsed();
            let mut st = batch.state.lock();
            if self.life.is_retired() {
                // Given up by the watchdog, which recorded this item.
                return;
            }
            st.due = None;
            st.began = None;
            self.life.due.store(0, Ordering::Release);
            if !(st.keep_going)(&result) {
                st.stopped = true;
            }
            let guest_message = result
                .is_err()
                .then(|| self.shared.compiled.stderr_tail.take())
                .flatten();
            st.done.push(Timed {
                outcome: result,
                took: Some(took),
                guest_message,
            });
        }
        *self.life.job.lock() = None;
        let reply = batch.state.lock().reply.take();
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
    }

    fn set_due<I, R>(&self, st: &mut BatchState<I, R>, due: Instant) {
        st.due = Some(due);
        self.life
            .due
            .store(nanos_since_base(due), Ordering::Release);
    }

    /// One item: instantiate if needed, then call under the deadline.
    fn run_item<I, R>(
        &mut self,
        batch: &Batch<I, R>,
        item: I,
        started: Instant,
    ) -> Result<R, CallFailure> {
        let shared = &self.shared;
        // What the guest writes to stderr from here on is this item's.
        shared.compiled.stderr_tail.clear();
        let deadline = shared.compiled.spec.deadline;
        let mut start = started;
        if self.live.is_none() {
            let live = shared.compiled.instantiate(
                &shared.engine,
                &shared.services,
                &self.life,
                &shared.state,
                started + deadline * 10,
            )?;
            self.live = Some(live);
            start = Instant::now();
            let mut st = batch.state.lock();
            if self.life.is_retired() {
                return Err(CallFailure::Deadline {
                    deadline_ms: batch.deadline_ms,
                });
            }
            self.set_due(&mut st, start + deadline + WATCHDOG_GRACE);
        }
        let Some((store, exports)) = self.live.as_mut() else {
            unreachable!("instantiated just above")
        };
        store.set_epoch_deadline(deadline_ticks(deadline));
        store.data_mut().deadline = Some(start + deadline);
        let result = {
            let _guard = shared.engine.call_guard(&self.life.in_flight);
            (batch.f)(store, exports, item)
        };
        match result {
            Ok(answer) => answer,
            Err(e) => {
                let failure = classify(e, store, deadline);
                // A trapped store cannot be re-entered: drop it; the next
                // call builds a fresh one.
                self.live = None;
                Err(failure)
            }
        }
    }
}
