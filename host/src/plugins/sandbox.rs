//! What a plugin's `Store` holds: a WASI context that grants only what the
//! manifest lists, a memory cap, and the host-import implementation.
//!
//! Deny by default: `WasiCtx::builder().build()` gives no preopened folders,
//! no environment, no arguments, no sockets. Guests built with
//! componentize-py or wit-bindgen still import WASI interfaces; this
//! satisfies them without granting anything. Plugin stdout/stderr and `log`
//! become tracing lines tagged with the plugin's name, bounded (`logpipe`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::actor::Life;
use super::bindings::{MAX_TEXT, host_api, process_to_wit, truncate, v01, wit};
use super::error::{DeadlineExceeded, PluginError};
use super::guarded_io::GuardedIo;
use super::logpipe::{LogBudget, LogPipe, StderrTail};
use super::manifest::PluginSpec;
use super::recent;
use super::services::HostServices;
use super::state::StateHandle;

/// Everything one plugin instance's `Store` owns.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) host: HostCtx,
    /// When the call in flight must end, set by the actor before each
    /// call; blocking WASI calls give up then ([`super::guarded_io`]).
    pub(crate) deadline: Option<Instant>,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StoreState {
    /// The view the deadline-aware `wasi:io` functions work on.
    pub(crate) fn guarded_io(&mut self) -> GuardedIo<'_> {
        GuardedIo {
            table: &mut self.table,
            deadline: self.deadline,
        }
    }

    /// Build the sandbox for `spec`: only its grants, its memory cap.
    pub(crate) fn new(
        spec: &PluginSpec,
        services: Arc<HostServices>,
        life: Arc<Life>,
        log_budget: Arc<LogBudget>,
        stderr_tail: Arc<StderrTail>,
        state: Arc<StateHandle>,
    ) -> Result<Self, PluginError> {
        let mut builder = WasiCtx::builder();
        builder.stdout(LogPipe::new("stdout", log_budget.clone()));
        builder.stderr(LogPipe::new("stderr", log_budget.clone()).keeping(stderr_tail));
        for grant in &spec.permissions.dirs {
            let perms = if grant.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            builder
                .preopened_dir(&grant.host, &grant.guest, perms)
                .map_err(|e| PluginError::Permission {
                    plugin: spec.name.clone(),
                    field: "permissions.dirs".into(),
                    reason: format!("cannot open {}: {e:#}", grant.host.display()),
                })?;
        }
        for name in &spec.permissions.env {
            if let Ok(value) = std::env::var(name) {
                builder.env(name, value);
            }
        }
        if let Some(clock) = services.wasi_clock() {
            // Replay: the guest's clocks read the time of the event being
            // replayed and its randomness is fixed, so a decision that
            // depends on either comes out the same on every run.
            builder.wall_clock(VirtualWall(clock.clone()));
            builder.monotonic_clock(VirtualMonotonic(clock));
            builder.secure_random(wasmtime_wasi::Deterministic::new(vec![7, 3, 1, 9]));
            builder.insecure_random(wasmtime_wasi::Deterministic::new(vec![5, 2, 8, 4]));
            builder.insecure_random_seed(0x5eed);
        }
        Ok(Self {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: MemoryCap::new(spec.memory_bytes),
            host: HostCtx {
                plugin: spec.name.clone(),
                config: Arc::new(spec.config.clone()),
                services,
                life,
                log_budget,
                state,
            },
            deadline: None,
        })
    }
}

/// A WASI wall clock that reads the host clock (milliseconds).
struct VirtualWall(super::services::Clock);

impl wasmtime_wasi::HostWallClock for VirtualWall {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::from_millis((self.0)())
    }
}

/// A WASI monotonic clock that reads the host clock, in nanoseconds: it
/// stands still within one replayed event and moves with the next.
struct VirtualMonotonic(super::services::Clock);

impl wasmtime_wasi::HostMonotonicClock for VirtualMonotonic {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        (self.0)().saturating_mul(1_000_000)
    }
}

/// The memory cap. Our own limiter rather than `StoreLimits` so that the
/// host can tell "ran out of its memory budget" from any other trap.
pub(crate) struct MemoryCap {
    max_bytes: usize,
    /// Set when a growth was refused; read and cleared after each call.
    pub(crate) exceeded: bool,
}

impl MemoryCap {
    fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            exceeded: false,
        }
    }

    /// The cap in MiB, for messages.
    pub(crate) fn limit_mib(&self) -> u64 {
        (self.max_bytes >> 20) as u64
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            // An error, not `Ok(false)`: a guest that checks for a failed
            // `memory.grow` would otherwise carry on at its cap forever.
            wasmtime::bail!(
                "memory limit of {} MiB exceeded (asked for {} MiB)",
                self.max_bytes >> 20,
                desired >> 20
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any
        // real plugin and keeps a hostile one from growing them unbounded.
        Ok(desired <= 1_000_000)
    }
}

/// The slice of store state the `host` import interface works on.
pub(crate) struct HostCtx {
    plugin: String,
    config: Arc<BTreeMap<String, String>>,
    services: Arc<HostServices>,
    /// The worker this store belongs to: once the watchdog has given it
    /// up, a call still running in it must not touch the host any more.
    life: Arc<Life>,
    /// Shared with its stdout and stderr: lines it may still log.
    log_budget: Arc<LogBudget>,
    /// The plugin's key/value state, shared with its other instances (a
    /// scratch copy while the version is a shadow).
    state: Arc<StateHandle>,
}

impl HostCtx {
    /// Trap if this store's worker was given up: its call already ended,
    /// as far as the host is concerned.
    fn ensure_live(&self) -> wasmtime::Result<()> {
        if self.life.is_retired() {
            return Err(DeadlineExceeded.into());
        }
        Ok(())
    }
}

impl wit::Host for HostCtx {}

impl host_api::Host for HostCtx {
    fn log(&mut self, level: wit::Level, message: String) -> wasmtime::Result<()> {
        self.ensure_live()?;
        if !self.log_budget.admit() {
            return Ok(());
        }
        let message = truncate(message, MAX_TEXT);
        let plugin = self.plugin.as_str();
        match level {
            wit::Level::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
            wit::Level::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
            wit::Level::Info => tracing::info!(target: "plugin", plugin, "{message}"),
            wit::Level::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
            wit::Level::Error => tracing::error!(target: "plugin", plugin, "{message}"),
        }
        Ok(())
    }

    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        self.ensure_live()?;
        Ok(self.services.now_ms())
    }

    fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.ensure_live()?;
        Ok(self.config.get(&key).cloned())
    }

    fn processes(&mut self) -> wasmtime::Result<Vec<wit::ProcessInfo>> {
        self.ensure_live()?;
        Ok(self
            .services
            .processes
            .list()
            .iter()
            .map(process_to_wit)
            .collect())
    }

    fn recent_events(&mut self, filter: wit::EventFilter) -> wasmtime::Result<Vec<wit::Event>> {
        self.ensure_live()?;
        let mut types = Vec::with_capacity(filter.types.len());
        for t in &filter.types {
            match crate::bus::Pattern::parse(t) {
                Ok(p) => types.push(p),
                Err(e) => {
                    // A bad pattern is the guest's mistake, not a reason to
                    // trap it: log and answer with nothing.
                    tracing::warn!(plugin = %self.plugin, "recent-events: {e}");
                    return Ok(Vec::new());
                }
            }
        }
        let query = crate::bus::EventQuery {
            types,
            subject: filter.subject,
            after_sequence: filter.after_sequence,
            limit: Some(filter.limit as usize),
            ..Default::default()
        };
        let log = &self.services.log;
        match recent::recent_events(query, recent::MAX_BYTES, |q| log.query(q)) {
            Ok(events) => Ok(events),
            Err(e) => {
                tracing::warn!(plugin = %self.plugin, "recent-events: {e}");
                Ok(Vec::new())
            }
        }
    }

    fn history(&mut self, query: wit::HistoryQuery) -> wasmtime::Result<Vec<wit::Event>> {
        self.ensure_live()?;
        let query = match recent::history_query(query) {
            Ok(q) => q,
            Err(e) => {
                // As in recent-events: the guest's mistake, logged, not a trap.
                tracing::warn!(plugin = %self.plugin, "history: {e}");
                return Ok(Vec::new());
            }
        };
        let log = &self.services.log;
        match recent::recent_events(query, recent::MAX_BYTES, |q| log.query(q)) {
            Ok(events) => Ok(events),
            Err(e) => {
                tracing::warn!(plugin = %self.plugin, "history: {e}");
                Ok(Vec::new())
            }
        }
    }

    fn stats(
        &mut self,
        since_ms: Option<u64>,
        until_ms: Option<u64>,
    ) -> wasmtime::Result<wit::StatsBreakdown> {
        self.ensure_live()?;
        let at = recent::time_of_ms;
        let answer = self.services.log.stats_by(
            since_ms.map(at),
            until_ms.map(at),
            Some(recent::MAX_STATS_SCAN),
        );
        match answer {
            Ok(b) => Ok(recent::breakdown_to_wit(b)),
            Err(e) => {
                tracing::warn!(plugin = %self.plugin, "stats: {e}");
                Ok(recent::breakdown_to_wit(Default::default()))
            }
        }
    }

    fn state_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.ensure_live()?;
        Ok(self.services.state.get(&self.state.current(), &key))
    }

    fn state_set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        self.ensure_live()?;
        // Over the quota traps: the plugin asked for more than it may hold.
        self.services.state.set(&self.state.current(), key, value)?;
        Ok(())
    }
}

/// The 0.1 `host` import: the same functions, so each is the 0.2 one.
impl v01::host_api::Host for HostCtx {
    fn log(&mut self, level: wit::Level, message: String) -> wasmtime::Result<()> {
        host_api::Host::log(self, level, message)
    }

    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        host_api::Host::now_ms(self)
    }

    fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        host_api::Host::config(self, key)
    }

    fn processes(&mut self) -> wasmtime::Result<Vec<wit::ProcessInfo>> {
        host_api::Host::processes(self)
    }

    fn recent_events(&mut self, filter: wit::EventFilter) -> wasmtime::Result<Vec<wit::Event>> {
        host_api::Host::recent_events(self, filter)
    }

    fn state_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        host_api::Host::state_get(self, key)
    }

    fn state_set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        host_api::Host::state_set(self, key, value)
    }
}
