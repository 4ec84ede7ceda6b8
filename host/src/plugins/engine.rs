//! The one wasmtime [`Engine`] of a host, its epoch ticker, and the
//! compilation cache.
//!
//! Why a ticker that sleeps when idle: deadlines use epoch interruption, which
//! needs something to bump the epoch. A thread ticking every millisecond
//! forever would cost idle CPU on a host that mostly waits, so the ticker
//! parks while no plugin call is in flight and wakes when one starts.
//!
//! The ticker is also the watchdog: on every tick it asks each plugin
//! actor ([`Watched`]) to give up calls stuck past their deadline in the
//! host, where epoch interruption cannot reach them.
//!
//! Why our own `.cwasm` cache rather than wasmtime's: `Component::serialize`
//! plus `deserialize_file` is roughly 30× faster than a hit in wasmtime's own
//! cache, and a host restart with ten plugins should cost milliseconds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use super::cache::CompileCache;
use super::error::PluginError;

/// How often the epoch advances while calls are in flight. A deadline of N
/// milliseconds is N ticks, so a runaway guest is cut off within about one
/// tick of its deadline.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Idle ticks (milliseconds) before the ticker parks.
const IDLE_TICKS_BEFORE_PARKING: u32 = 50;

/// Something the ticker looks at on every tick while calls are in flight:
/// a plugin actor giving up calls stuck past their deadline.
pub(crate) trait Watched: Send + Sync {
    /// Give up whatever is past due at `now`.
    fn check(&self, now: Instant);
}

/// A fixed point in time for deadlines stored as integers
/// ([`nanos_since_base`]).
static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

/// `at` as nanoseconds since [`BASE`], plus one so that 0 can mean "none".
pub(crate) fn nanos_since_base(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*BASE).as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// The shared engine plus the machinery every plugin call relies on.
#[derive(Clone)]
pub(crate) struct PluginEngine {
    engine: Engine,
    ticker: Arc<EpochTicker>,
    cache: Option<CompileCache>,
}

impl PluginEngine {
    /// Build the engine (epoch interruption on) and start its ticker thread.
    ///
    /// `cache`, when given, is a folder for precompiled `.cwasm` files
    /// keyed by the component's digest and the engine's compatibility
    /// hash, and the most bytes it may keep.
    pub(crate) fn new(cache: Option<(PathBuf, u64)>) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let cache = match cache {
            Some((dir, max_bytes)) => Some(CompileCache::open(dir, &engine, max_bytes)?),
            None => None,
        };
        let ticker = EpochTicker::start(engine.clone());
        Ok(Self {
            engine,
            ticker,
            cache,
        })
    }

    /// The wasmtime engine.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Mark a call in flight for as long as the guard lives, so the epoch
    /// advances and deadlines can fire. `share` is the calling worker's
    /// share of the in-flight count, which the watchdog takes back
    /// ([`PluginEngine::release`]) if it gives the worker up mid-call.
    pub(crate) fn call_guard<'a>(&'a self, share: &'a InFlight) -> CallGuard<'a> {
        self.ticker.enter();
        share.0.store(true, Ordering::Release);
        CallGuard {
            ticker: &self.ticker,
            share,
        }
    }

    /// Give back `share`'s in-flight count now rather than when its guard
    /// drops: a worker stuck for good must not keep the ticker awake.
    pub(crate) fn release(&self, share: &InFlight) {
        if share.0.swap(false, Ordering::AcqRel) {
            self.ticker.exit();
        }
    }

    /// Have the ticker check `watched` on every tick until it is dropped.
    pub(crate) fn watch(&self, watched: Weak<dyn Watched>) {
        self.ticker.watched.lock().push(watched);
    }

    /// Compile `bytes` (from `path`, for messages), using the cache when a
    /// matching precompiled artifact exists and filling it otherwise.
    ///
    /// This is CPU-heavy: call it off the async executor
    /// (`spawn_blocking`).
    pub(crate) fn compile(&self, path: &Path, bytes: &[u8]) -> Result<Component, PluginError> {
        let cached = self.cache.as_ref().map(|c| c.path(&digest(bytes)));
        if let Some(cached) = &cached
            && cached.exists()
        {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (it is in the file
            // name) into the host's own state directory. A corrupt or
            // foreign file is rejected by wasmtime's header checks; if it
            // is, fall through and recompile.
            match unsafe { Component::deserialize_file(&self.engine, cached) } {
                Ok(component) => {
                    if let Some(cache) = &self.cache {
                        cache.touch(cached);
                    }
                    return Ok(component);
                }
                Err(e) => tracing::warn!(
                    cache = %cached.display(),
                    "ignoring unusable compilation cache entry: {e:#}"
                ),
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| PluginError::Compile {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        })?;
        if let (Some(cache), Some(cached)) = (&self.cache, cached)
            && let Err(e) = cache.store(&component, &cached)
        {
            tracing::warn!(cache = %cached.display(), "could not write compilation cache: {e:#}");
        }
        Ok(component)
    }
}

/// Hex SHA-256 of a component's bytes: its identity for reload decisions.
pub(crate) fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Keeps the epoch moving while at least one call is in flight.
pub(crate) struct EpochTicker {
    in_flight: AtomicUsize,
    /// Whether the thread waits on `cv` (so `enter` must wake it).
    parked: AtomicBool,
    wake: Mutex<()>,
    cv: Condvar,
    /// Checked on every tick; dead entries are dropped as they are met.
    watched: Mutex<Vec<Weak<dyn Watched>>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Arc<Self> {
        let ticker = Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            wake: Mutex::new(()),
            cv: Condvar::new(),
            watched: Mutex::new(Vec::new()),
        });
        // Only a weak reference in the thread: when the last engine clone
        // goes away the thread notices and ends.
        let weak = Arc::downgrade(&ticker);
        let spawned = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                // Ticks follow the clock, not a count of sleeps: every
                // sleep oversleeps a little, and a 100-tick deadline would
                // otherwise run 100 oversleeps late.
                let mut next = std::time::Instant::now();
                let mut idle_ticks = 0;
                loop {
                    let Some(ticker) = weak.upgrade() else { return };
                    if ticker.in_flight.load(Ordering::SeqCst) == 0 {
                        idle_ticks += 1;
                    } else {
                        idle_ticks = 0;
                    }
                    // Park only after a quiet spell: a steady stream of
                    // short calls then never pays for waking this thread.
                    if idle_ticks > IDLE_TICKS_BEFORE_PARKING {
                        let mut guard = ticker.wake.lock();
                        // SeqCst here and in `enter`: each side writes one
                        // flag then reads the other's, and at least one of
                        // them must see the other's write.
                        ticker.parked.store(true, Ordering::SeqCst);
                        // Re-check under the lock: `enter` notifies under it.
                        if ticker.in_flight.load(Ordering::SeqCst) == 0 {
                            ticker.cv.wait_for(&mut guard, Duration::from_millis(500));
                        }
                        ticker.parked.store(false, Ordering::SeqCst);
                        // Woken by a call: tick again. Woken by the timeout
                        // (a safety net only) with nothing in flight: park
                        // again at once, not after another 50 ticks: that
                        // was 100 wake-ups a second on an idle host.
                        if ticker.in_flight.load(Ordering::SeqCst) > 0 {
                            idle_ticks = 0;
                            next = std::time::Instant::now();
                        }
                        continue;
                    }
                    drop(ticker);
                    next += EPOCH_TICK;
                    let now = std::time::Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    // Catch up on ticks the thread slept through.
                    let now = std::time::Instant::now();
                    engine.increment_epoch();
                    while next + EPOCH_TICK <= now {
                        next += EPOCH_TICK;
                        engine.increment_epoch();
                    }
                    let Some(ticker) = weak.upgrade() else { return };
                    ticker.check_watched(now);
                }
            });
        if let Err(e) = spawned {
            // Without the ticker deadlines cannot fire; say so loudly.
            tracing::error!("could not start the epoch ticker thread: {e}");
        }
        ticker
    }

    fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) {
            let _guard = self.wake.lock();
            self.cv.notify_one();
        }
    }

    fn exit(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn check_watched(&self, now: Instant) {
        // Registration is the only other user of this lock, and it is
        // rare; checks never register.
        self.watched.lock().retain(|w| match w.upgrade() {
            Some(watched) => {
                watched.check(now);
                true
            }
            None => false,
        });
    }
}

/// One worker's share of the ticker's in-flight count: set by its call
/// guard, given back by the guard's drop or by [`PluginEngine::release`],
/// whichever comes first (an atomic swap decides).
#[derive(Default)]
pub(crate) struct InFlight(AtomicBool);

/// Returned by [`PluginEngine::call_guard`]; the epoch keeps ticking until
/// it is dropped.
pub(crate) struct CallGuard<'a> {
    ticker: &'a EpochTicker,
    share: &'a InFlight,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if self.share.0.swap(false, Ordering::AcqRel) {
            self.ticker.exit();
        }
    }
}
