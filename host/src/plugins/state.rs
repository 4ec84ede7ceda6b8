//! Per-plugin key/value state (`state-get`/`state-set`).
//!
//! Kept by the host, keyed by plugin name, so it survives hot reloads (a
//! new version sees what the old one stored) and, when backed by a file,
//! host restarts too.
//!
//! Every operation costs the same however many keys a plugin holds: each
//! plugin has its own lock and a running byte total for its quota, so one
//! plugin's state never waits on another's and no call sums over all keys
//! (that made 400 sets at 1.3% of the quota miss a 100 ms deadline).
//! Writes go to memory at once and to the file in batches: keys set since
//! the last flush are written in one transaction by the plugin's worker
//! after each call ([`StateStore::flush`]), by shutdown, and on drop.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use rusqlite::Connection;

use super::error::PluginError;

/// Most bytes (keys plus values) the host keeps for one plugin.
pub(crate) const STATE_QUOTA_BYTES: usize = 16 << 20;

/// Every plugin's state, and the file it is persisted in.
pub(crate) struct StateStore {
    /// Plugin name → its state. Locked only to find or add a plugin.
    plugins: Mutex<HashMap<String, Arc<PluginState>>>,
    db: Option<(PathBuf, Mutex<Connection>)>,
    /// Keys read, written, loaded or flushed so far: the work done, so a
    /// test can tell constant cost per key from cost growing with the
    /// number of keys.
    key_visits: AtomicU64,
}

/// One plugin's state, behind its own lock.
pub(crate) struct PluginState {
    name: String,
    values: Mutex<Values>,
    /// Whether some key was set since the last flush (a lock-free look).
    dirty: AtomicBool,
    /// A shadow's copy ([`StateStore::scratch_copy`]): its sets stay in
    /// memory and are never written to the file.
    scratch: bool,
}

/// The state one plugin version's host imports read and write: the
/// plugin's own, or, while the version is a shadow on trial, a scratch
/// copy of it, so that what the shadow stores is not done (see
/// `shadow.rs`). Swapped back to the plugin's own when the shadow is
/// swapped in: from then on it sees what the old version stored.
pub(crate) struct StateHandle {
    current: RwLock<Arc<PluginState>>,
}

impl StateHandle {
    /// A handle on `state`.
    pub(crate) fn new(state: Arc<PluginState>) -> Self {
        Self {
            current: RwLock::new(state),
        }
    }

    /// The state the version works on now.
    pub(crate) fn current(&self) -> Arc<PluginState> {
        self.current.read().clone()
    }

    /// Work on `state` from the next host call on.
    pub(crate) fn switch_to(&self, state: Arc<PluginState>) {
        *self.current.write() = state;
    }
}

#[derive(Default)]
struct Values {
    map: HashMap<String, Vec<u8>>,
    /// Bytes of all keys and values in `map`.
    bytes: usize,
    /// Keys set since the last flush.
    changed: HashSet<String>,
}

/// `state-set` would take the plugin past [`STATE_QUOTA_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}` exceeded its state quota of {} MiB", STATE_QUOTA_BYTES >> 20)]
pub(crate) struct QuotaExceeded {
    plugin: String,
}

impl StateStore {
    /// State held in memory only.
    pub(crate) fn in_memory() -> Self {
        Self {
            plugins: Mutex::new(HashMap::new()),
            db: None,
            key_visits: AtomicU64::new(0),
        }
    }

    /// State persisted in the SQLite file at `path` (created if missing),
    /// read back now.
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
        let store = Self {
            plugins: Mutex::new(HashMap::new()),
            db: Some((path.to_path_buf(), Mutex::new(db))),
            key_visits: AtomicU64::new(0),
        };
        if let Some((_, db)) = &store.db {
            let db = db.lock();
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
                store.visit(1);
                let state = store.plugin(&plugin);
                let mut v = state.values.lock();
                v.bytes += key.len() + value.len();
                v.map.insert(key, value);
            }
        }
        Ok(store)
    }

    /// The state of `plugin`, created empty if it has none yet.
    pub(crate) fn plugin(&self, plugin: &str) -> Arc<PluginState> {
        self.plugins
            .lock()
            .entry(plugin.to_string())
            .or_insert_with(|| {
                Arc::new(PluginState {
                    name: plugin.to_string(),
                    values: Mutex::new(Values::default()),
                    dirty: AtomicBool::new(false),
                    scratch: false,
                })
            })
            .clone()
    }

    /// A copy of `state` as it is now, for a shadow: it reads what the
    /// plugin stored, and what it sets is kept in the copy only, within
    /// the same quota, never written to the file.
    pub(crate) fn scratch_copy(&self, state: &PluginState) -> Arc<PluginState> {
        let v = state.values.lock();
        self.visit(v.map.len() as u64);
        Arc::new(PluginState {
            name: state.name.clone(),
            values: Mutex::new(Values {
                map: v.map.clone(),
                bytes: v.bytes,
                changed: HashSet::new(),
            }),
            dirty: AtomicBool::new(false),
            scratch: true,
        })
    }

    /// The value of `key`.
    pub(crate) fn get(&self, state: &PluginState, key: &str) -> Option<Vec<u8>> {
        self.visit(1);
        state.values.lock().map.get(key).cloned()
    }

    /// Set `key`, unless that takes the plugin past its quota.
    pub(crate) fn set(
        &self,
        state: &PluginState,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), QuotaExceeded> {
        self.visit(1);
        let mut v = state.values.lock();
        let replaced = v.map.get(&key).map_or(0, |old| key.len() + old.len());
        let bytes = v.bytes - replaced + key.len() + value.len();
        if bytes > STATE_QUOTA_BYTES {
            return Err(QuotaExceeded {
                plugin: state.name.clone(),
            });
        }
        v.bytes = bytes;
        if !state.scratch {
            v.changed.insert(key.clone());
            state.dirty.store(true, Ordering::Release);
        }
        v.map.insert(key, value);
        Ok(())
    }

    /// Write the keys `state` set since the last flush to the file, in one
    /// transaction. Costs one atomic load when nothing changed.
    pub(crate) fn flush(&self, state: &PluginState) {
        if !state.dirty.load(Ordering::Acquire) {
            return;
        }
        match &self.db {
            Some((path, db)) => self.flush_into(state, path, &mut db.lock()),
            None => {
                state.dirty.store(false, Ordering::Release);
                state.values.lock().changed.clear();
            }
        }
    }

    /// [`StateStore::flush`] every plugin. Returns once every flush begun
    /// elsewhere has been written too (they hold the file's lock).
    pub(crate) fn flush_all(&self) {
        let all: Vec<Arc<PluginState>> = self.plugins.lock().values().cloned().collect();
        match &self.db {
            Some((path, db)) => {
                let mut db = db.lock();
                for state in all {
                    self.flush_into(&state, path, &mut db);
                }
            }
            None => all.iter().for_each(|s| self.flush(s)),
        }
    }

    /// Write what `state` changed, holding the file's lock: the flag is
    /// cleared under it, so whoever sees it clear knows the write is done.
    fn flush_into(&self, state: &PluginState, path: &Path, db: &mut Connection) {
        if !state.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let rows: Vec<(String, Vec<u8>)> = {
            let mut v = state.values.lock();
            let changed = std::mem::take(&mut v.changed);
            changed
                .into_iter()
                .filter_map(|k| {
                    let value = v.map.get(&k)?.clone();
                    Some((k, value))
                })
                .collect()
        };
        self.visit(rows.len() as u64);
        let written = (|| {
            let tx = db.transaction()?;
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO plugin_state (plugin, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
                )?;
                for (key, value) in &rows {
                    upsert.execute(rusqlite::params![state.name, key, value])?;
                }
            }
            tx.commit()
        })();
        if let Err(e) = written {
            // Memory still serves this run; the keys are retried at the
            // next flush rather than lost from the file.
            tracing::warn!(
                plugin = %state.name,
                file = %path.display(),
                "could not persist {} plugin state key(s): {e}",
                rows.len()
            );
            let mut v = state.values.lock();
            v.changed.extend(rows.into_iter().map(|(k, _)| k));
            state.dirty.store(true, Ordering::Release);
        }
    }

    fn visit(&self, keys: u64) {
        self.key_visits.fetch_add(keys, Ordering::Relaxed);
    }
}

impl Drop for StateStore {
    fn drop(&mut self) {
        self.flush_all();
    }
}

impl PluginState {
    /// Bytes of keys and values held.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.values.lock().bytes
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
        let (a, b) = (store.plugin("a"), store.plugin("b"));
        store.set(&a, "k".into(), b"1".to_vec()).unwrap();
        store.set(&b, "k".into(), b"2".to_vec()).unwrap();
        store.set(&a, "k".into(), b"3".to_vec()).unwrap();
        assert_eq!(store.get(&a, "k"), Some(b"3".to_vec()));
        assert_eq!(store.get(&b, "k"), Some(b"2".to_vec()));
        assert_eq!(store.get(&store.plugin("c"), "k"), None);
        store.flush(&a);
        store.set(&a, "late".into(), b"4".to_vec()).unwrap();
        // Not flushed by hand: dropping the store writes it.
        drop(store);
        let reopened = StateStore::open(&path).unwrap();
        let a = reopened.plugin("a");
        assert_eq!(reopened.get(&a, "k"), Some(b"3".to_vec()));
        assert_eq!(reopened.get(&a, "late"), Some(b"4".to_vec()));
        assert_eq!(
            reopened.get(&reopened.plugin("b"), "k"),
            Some(b"2".to_vec())
        );
        assert_eq!(a.bytes(), "k3late4".len(), "the quota total is read back");
    }

    #[test]
    fn setting_a_key_costs_the_same_however_many_keys_there_are() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.sqlite")).unwrap();
        let p = store.plugin("p");
        let visits = || store.key_visits.load(Ordering::Relaxed);
        for round in 1..=4u64 {
            let before = visits();
            for i in 0..5_000 {
                store.set(&p, format!("r{round}k{i}"), vec![0; 10]).unwrap();
            }
            // One key touched per set, in the first round as in the last.
            assert_eq!(visits() - before, 5_000, "round {round}");
            let before = visits();
            store.flush(&p);
            assert_eq!(visits() - before, 5_000, "a flush writes only what changed");
        }
        let expected: usize = (1..=4)
            .flat_map(|r| (0..5_000).map(move |i| format!("r{r}k{i}").len() + 10))
            .sum();
        assert_eq!(p.bytes(), expected, "the running total is exact");
    }

    #[test]
    fn a_scratch_copy_reads_the_state_and_keeps_its_sets_to_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = StateStore::open(&path).unwrap();
        let real = store.plugin("p");
        store.set(&real, "k".into(), b"1".to_vec()).unwrap();
        let scratch = store.scratch_copy(&real);
        assert_eq!(store.get(&scratch, "k"), Some(b"1".to_vec()));
        store.set(&scratch, "k".into(), b"2".to_vec()).unwrap();
        store.set(&scratch, "new".into(), b"3".to_vec()).unwrap();
        store.flush(&scratch);
        assert_eq!(store.get(&real, "k"), Some(b"1".to_vec()));
        assert_eq!(store.get(&real, "new"), None);
        assert_eq!(scratch.bytes(), "k2new3".len());
        // A handle switched back works on the real state again.
        let handle = StateHandle::new(scratch);
        handle.switch_to(real.clone());
        assert!(Arc::ptr_eq(&handle.current(), &real));
        drop(store);
        let reopened = StateStore::open(&path).unwrap();
        let p = reopened.plugin("p");
        assert_eq!(reopened.get(&p, "k"), Some(b"1".to_vec()));
        assert_eq!(
            reopened.get(&p, "new"),
            None,
            "nothing of the copy reached the file"
        );
    }

    #[test]
    fn the_quota_counts_a_replaced_value_once() {
        let store = StateStore::in_memory();
        let p = store.plugin("p");
        let half = vec![0; STATE_QUOTA_BYTES / 2];
        store.set(&p, "a".into(), half.clone()).unwrap();
        // Replacing `a` with the same size again fits; a second half does not.
        store.set(&p, "a".into(), half.clone()).unwrap();
        let err = store.set(&p, "b".into(), half).unwrap_err();
        assert!(err.to_string().contains("quota of 16 MiB"), "{err}");
        assert_eq!(p.bytes(), 1 + STATE_QUOTA_BYTES / 2);
        assert_eq!(store.get(&p, "b"), None);
    }
}
