//! What the host lends every plugin instance: the bus (for queries), a
//! read-only view of processes, per-plugin state and a clock.
//!
//! The plugin room never holds the supervisor itself: [`ProcessView`] is
//! the narrow read-only window it needs, so plugins can be tested with a
//! fake and the dependency points one way.

use std::sync::Arc;

use crate::bus::Bus;
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

/// A clock in milliseconds since the Unix epoch (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis().max(0) as u64)
}

/// Shared by every instance of every plugin.
pub(crate) struct HostServices {
    pub(crate) bus: Bus,
    pub(crate) processes: Arc<dyn ProcessView>,
    pub(crate) state: StateStore,
    clock: Clock,
}

impl HostServices {
    pub(crate) fn new(
        bus: Bus,
        processes: Arc<dyn ProcessView>,
        state: StateStore,
        clock: Clock,
    ) -> Self {
        Self {
            bus,
            processes,
            state,
            clock,
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        (self.clock)()
    }
}
