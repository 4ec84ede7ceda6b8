//! What the host lends every plugin instance: the bus (for queries), a
//! read-only view of processes, per-plugin state and a clock.
//!
//! The plugin room never holds the supervisor itself: [`ProcessView`] is
//! the narrow read-only window it needs, so plugins can be tested with a
//! fake and the dependency points one way.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::bus::{Bus, BusError, Event, EventQuery, StatsBreakdown};
use crate::supervisor::ProcessInfo;

pub(crate) use super::state::StateStore;

/// Read-only view of supervised processes, as plugins may see them.
pub trait ProcessView: Send + Sync + 'static {
    /// Every process.
    fn list(&self) -> Vec<ProcessInfo>;
    /// One process by name.
    fn get(&self, name: &str) -> Option<ProcessInfo>;
}

/// A [`ProcessView`] with no processes: for running plugins without a
/// supervisor (`host plugin check`, benchmarks, tests).
pub struct NoProcesses;

impl ProcessView for NoProcesses {
    fn list(&self) -> Vec<ProcessInfo> {
        Vec::new()
    }
    fn get(&self, _name: &str) -> Option<ProcessInfo> {
        None
    }
}

/// Where the `recent-events`, `history` and `stats` imports read: the
/// host's bus, or a fixed log when events are replayed without a host
/// (`host plugin test`).
pub trait EventLog: Send + Sync + 'static {
    /// The events matching `query`, as [`Bus::query`] answers.
    ///
    /// # Errors
    ///
    /// A failed read.
    fn query(&self, query: &EventQuery) -> Result<Vec<Event>, BusError>;
    /// Counts of a time window, as [`Bus::stats_by`] answers.
    ///
    /// # Errors
    ///
    /// A failed read.
    fn stats_by(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        max_scan: Option<usize>,
    ) -> Result<StatsBreakdown, BusError>;
}

impl EventLog for Bus {
    fn query(&self, query: &EventQuery) -> Result<Vec<Event>, BusError> {
        Bus::query(self, query)
    }

    fn stats_by(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        max_scan: Option<usize>,
    ) -> Result<StatsBreakdown, BusError> {
        Bus::stats_by(self, since, until, max_scan)
    }
}

/// A clock in milliseconds since the Unix epoch (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis().max(0) as u64)
}

/// Shared by every instance of every plugin.
pub(crate) struct HostServices {
    /// What the query imports read: the bus, unless replaced for replay.
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) processes: Arc<dyn ProcessView>,
    pub(crate) state: StateStore,
    clock: Clock,
    /// Whether the guest's WASI clocks read `clock` too (replay: the time
    /// of the event being replayed) instead of the system's.
    wasi_follows_clock: bool,
}

impl HostServices {
    pub(crate) fn new(
        bus: Bus,
        processes: Arc<dyn ProcessView>,
        state: StateStore,
        clock: Clock,
    ) -> Self {
        Self {
            log: Arc::new(bus),
            processes,
            state,
            clock,
            wasi_follows_clock: false,
        }
    }

    /// The same services reading queries from `log` instead of the bus.
    pub(crate) fn with_log(mut self, log: Arc<dyn EventLog>) -> Self {
        self.log = log;
        self
    }

    /// The same services with the guest's WASI wall and monotonic clocks
    /// reading the host clock (and WASI randomness fixed), so a replay
    /// decides the same way every time.
    pub(crate) fn with_deterministic_wasi(mut self) -> Self {
        self.wasi_follows_clock = true;
        self
    }

    /// The clock the guest's WASI clocks should read, if not the system's.
    pub(crate) fn wasi_clock(&self) -> Option<Clock> {
        self.wasi_follows_clock.then(|| self.clock.clone())
    }

    pub(crate) fn now_ms(&self) -> u64 {
        (self.clock)()
    }
}
