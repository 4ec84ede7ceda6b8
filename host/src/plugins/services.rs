//! What the host lends every plugin instance: the bus (for queries), a
//! read-only view of processes, per-plugin state and a clock.
//!
//! The plugin room never holds the supervisor itself: [`ProcessView`] is
//! the narrow read-only window it needs, so plugins can be tested with a
//! fake and the dependency points one way.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use rusqlite::Connection;

use crate::bus::Bus;
use crate::supervisor::ProcessInfo;

use super::error::PluginError;

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

/// Per-plugin key/value state. Kept by the host, keyed by plugin name, so
/// it survives hot reloads (a new version sees what the old one stored)
/// and, when backed by a file, host restarts too.
pub(crate) struct StateStore {
    inner: Mutex<StateInner>,
}

#[derive(Default)]
struct StateInner {
    values: HashMap<String, HashMap<String, Vec<u8>>>,
    db: Option<Connection>,
}

impl StateStore {
    /// State held in memory only.
    pub(crate) fn in_memory() -> Self {
        Self {
            inner: Mutex::new(StateInner::default()),
        }
    }

    /// State persisted in the SQLite file at `path` (created if missing).
    pub(crate) fn open(path: &Path) -> Result<Self, PluginError> {
        let io = |e: rusqlite::Error| PluginError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        };
        let db = Connection::open(path).map_err(io)?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS plugin_state (
                 plugin TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                 PRIMARY KEY (plugin, key));",
        )
        .map_err(io)?;
        let mut values: HashMap<String, HashMap<String, Vec<u8>>> = HashMap::new();
        {
            let mut stmt = db
                .prepare("SELECT plugin, key, value FROM plugin_state")
                .map_err(io)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })
                .map_err(io)?;
            for row in rows {
                let (plugin, key, value) = row.map_err(io)?;
                values.entry(plugin).or_default().insert(key, value);
            }
        }
        Ok(Self {
            inner: Mutex::new(StateInner {
                values,
                db: Some(db),
            }),
        })
    }

    pub(crate) fn get(&self, plugin: &str, key: &str) -> Option<Vec<u8>> {
        let inner = self.inner.lock();
        inner.values.get(plugin)?.get(key).cloned()
    }

    /// Bytes `plugin` would hold without its current value for `key`.
    pub(crate) fn usage(&self, plugin: &str, key: &str) -> usize {
        let inner = self.inner.lock();
        inner.values.get(plugin).map_or(0, |m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != key)
                .map(|(k, v)| k.len() + v.len())
                .sum()
        })
    }

    pub(crate) fn set(&self, plugin: &str, key: String, value: Vec<u8>) {
        let mut inner = self.inner.lock();
        if let Some(db) = &inner.db {
            let written = db
                .prepare_cached(
                    "INSERT INTO plugin_state (plugin, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
                )
                .and_then(|mut s| s.execute(rusqlite::params![plugin, key, value]));
            if let Err(e) = written {
                // The in-memory copy still serves this run; say that the
                // file copy is behind rather than failing the plugin.
                tracing::warn!(plugin, key, "could not persist plugin state: {e}");
            }
        }
        inner
            .values
            .entry(plugin.to_string())
            .or_default()
            .insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_kept_per_plugin_and_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = StateStore::open(&path).unwrap();
        store.set("a", "k".into(), b"1".to_vec());
        store.set("b", "k".into(), b"2".to_vec());
        store.set("a", "k".into(), b"3".to_vec());
        assert_eq!(store.get("a", "k"), Some(b"3".to_vec()));
        assert_eq!(store.get("b", "k"), Some(b"2".to_vec()));
        assert_eq!(store.get("c", "k"), None);
        drop(store);
        let reopened = StateStore::open(&path).unwrap();
        assert_eq!(reopened.get("a", "k"), Some(b"3".to_vec()));
    }

    #[test]
    fn usage_excludes_the_value_being_replaced() {
        let store = StateStore::in_memory();
        store.set("a", "k".into(), vec![0; 10]);
        store.set("a", "j".into(), vec![0; 5]);
        assert_eq!(store.usage("a", "k"), 6);
        assert_eq!(store.usage("a", "new"), 17);
    }
}
