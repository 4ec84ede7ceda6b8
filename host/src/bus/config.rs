//! [`BusConfig`]: every size the bus bounds, in one place.
//!
//! Each limit exists because something unbounded hurt under load: a ring of
//! 10,000 events whatever their size (RSS grew with every 5 MB emit), a journal
//! bounded only by count, a WAL that was never truncated. Defaults are sized for
//! a host that runs for months on a laptop.

use serde::{Deserialize, Serialize};

/// One mebibyte, for readable defaults.
const MIB: usize = 1024 * 1024;

/// How the bus sizes its memory and its journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Newest events kept in memory for consumers and queries (0 disables the ring).
    ///
    /// Example: `ring_capacity = 10000`
    pub ring_capacity: usize,
    /// Approximate bytes the ring may hold (data JSON plus attributes); the
    /// oldest events leave first when either bound is reached. The default,
    /// 8 MiB, holds the 10,000 events of ordinary traffic (a few hundred
    /// bytes each) and stops an output flood from keeping tens of MiB of
    /// lines in memory that the journal holds anyway.
    ///
    /// Example: `ring_max_bytes = 8388608`
    pub ring_max_bytes: usize,
    /// Events kept in the journal; older ones are pruned and counted as skipped by
    /// any consumer that had not read them yet. 0 keeps every event.
    ///
    /// Example: `max_journal_events = 1000000`
    pub max_journal_events: u64,
    /// Approximate bytes of events kept in the journal (the same measure as the
    /// ring); the oldest are pruned first. 0 means no byte limit.
    ///
    /// Example: `max_journal_bytes = 1073741824`
    pub max_journal_bytes: u64,
    /// Largest event accepted, data plus attributes; publishers get
    /// `InvalidEvent { field: "data" }` above it.
    ///
    /// Example: `max_event_bytes = 1048576`
    pub max_event_bytes: usize,
    /// Size of the journal's write-ahead log that triggers a checkpoint which
    /// restarts it; it is also the size the WAL file is cut back to afterwards.
    ///
    /// Example: `max_wal_bytes = 67108864`
    pub max_wal_bytes: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            ring_capacity: 10_000,
            ring_max_bytes: 8 * MIB,
            max_journal_events: 1_000_000,
            max_journal_bytes: 1024 * MIB as u64,
            max_event_bytes: MIB,
            max_wal_bytes: 64 * MIB as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_reads_from_toml_shaped_data_with_defaults() {
        let config: BusConfig = serde_json::from_value(json!({ "ring_capacity": 5 })).unwrap();
        assert_eq!(config.ring_capacity, 5);
        assert_eq!(config.max_journal_events, 1_000_000);
        assert_eq!(config.max_event_bytes, 1 << 20);
        assert_eq!(config.max_journal_bytes, 1 << 30);
        assert!(serde_json::from_value::<BusConfig>(json!({ "ring": 5 })).is_err());
    }
}
