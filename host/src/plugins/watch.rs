//! Watching the plugins folder: file events, debounced, trigger a
//! reconcile of the [`PluginHost`]; with `host run --watch`, a change to a
//! plugin's sources (`[build] watch`) first runs its `[build] command`.
//!
//! We watch only what can change a plugin, each folder non-recursively:
//! the plugins folder (bare `.wasm` files, new plugin folders), every
//! folder in it (its `plugin.toml`, even before it has one: `mkdir` comes
//! before `npm install` and the build), the folder of each component (where
//! a build writes the `.wasm`, often `target/.../release`) or, while that
//! does not exist yet, its nearest existing ancestor, and with `--watch`
//! the source folders the globs reach (`sources.rs`). A recursive watch of
//! a plugins workspace would also follow every file a build touches under
//! `target/`.
//!
//! Folders are (re)watched *before* each reconcile reads them, so a file
//! written in between raises an event rather than going unseen, and a
//! folder deleted and made again (`rm -rf target`, a clean build) is
//! watched again: the kernel drops the watch of a deleted folder, so we
//! keep each folder's inode and watch anew when it changes.
//!
//! A rebuild never loops: events are ignored while the build runs and
//! for the quiet spell after it, and a source counts as changed only when
//! its content's digest does, so a build that rewrites (or touches) its
//! own inputs does not start another.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use super::PluginHost;
use super::error::PluginError;
use super::manifest::{MANIFEST_FILE, discover};
use super::slot::SOURCE;
use super::sources::{Snapshot, Sources};
use crate::bus::NewEvent;

type Events = UnboundedReceiver<notify::Result<notify::Event>>;

/// Build the watcher task for `host`.
pub(crate) fn watcher(
    host: PluginHost,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, PluginError> {
    let given = host.inner.config.plugins_dir.clone();
    let dir = std::fs::canonicalize(&given).map_err(|source| PluginError::Io {
        path: given.clone(),
        source,
    })?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let _ = tx.send(res);
    })
    .map_err(|e| PluginError::Io {
        path: given.clone(),
        source: std::io::Error::other(e),
    })?;
    let mut state = State {
        watcher,
        dir: dir.clone(),
        rebuild: host.inner.config.rebuild_on_change,
        watched: BTreeMap::new(),
        components: BTreeSet::new(),
        sources: Vec::new(),
        snapshots: HashMap::new(),
    };
    state.rewatch(&host);
    if !state.watched.contains_key(&dir) {
        return Err(PluginError::Io {
            path: given,
            source: std::io::Error::other("cannot watch the plugins folder"),
        });
    }
    let debounce = host.inner.config.debounce;
    Ok(async move {
        let mut shutdown = host.inner.shutdown.subscribe();
        'events: loop {
            let event = tokio::select! {
                _ = crate::shutdown::requested(&mut shutdown) => break,
                event = rx.recv() => event,
            };
            let Some(event) = event else { break };
            let mut batch = Batch::default();
            state.sort(&event, &mut batch);
            if !batch.reload && batch.dirty.is_empty() {
                continue;
            }
            // Debounce: wait for a quiet spell, so a file written in
            // several steps is read once, complete, and a burst of saves
            // is one build.
            if !quiet(&mut rx, debounce, |e| state.sort(&e, &mut batch)).await {
                break;
            }
            for name in std::mem::take(&mut batch.dirty) {
                if state
                    .rebuild_if_changed(&host, &name, &mut rx, debounce)
                    .await
                {
                    break 'events;
                }
            }
            state.rewatch(&host);
            if let Err(e) = host.reconcile().await {
                tracing::error!("plugin reload failed: {e}");
            }
        }
        drop(state);
    })
}

/// What a run of events asks for.
#[derive(Debug, Default)]
struct Batch {
    /// A plugin file (manifest, component, plugin folder) changed.
    reload: bool,
    /// Plugins whose sources changed (with `--watch`).
    dirty: BTreeSet<String>,
}

/// Take events until none arrives for `debounce`, giving each to `take`.
/// False when the channel closed (the watcher is gone).
async fn quiet(
    rx: &mut Events,
    debounce: Duration,
    mut take: impl FnMut(notify::Result<notify::Event>),
) -> bool {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(debounce) => return true,
            more = rx.recv() => match more {
                Some(event) => take(event),
                None => return false,
            },
        }
    }
}

/// What the watcher watches and remembers between events.
struct State {
    watcher: notify::RecommendedWatcher,
    /// The plugins folder, canonical.
    dir: PathBuf,
    /// Rebuild on source changes (`host run --watch`).
    rebuild: bool,
    /// Folders watched, with the inode each had when its watch began.
    watched: BTreeMap<PathBuf, u64>,
    /// Every component, as events name it (its nearest existing ancestor
    /// canonical): a change to the component or to any folder above it (a
    /// build making or deleting its output tree) matters.
    components: BTreeSet<PathBuf>,
    /// Plugins with `[build] watch` globs (with `--watch` only).
    sources: Vec<Sources>,
    /// Per plugin, the digest of its sources when last built or seen.
    snapshots: HashMap<String, Snapshot>,
}

impl State {
    /// Note in `batch` what `event` asks for.
    fn sort(&self, event: &notify::Result<notify::Event>, batch: &mut Batch) {
        let event = match event {
            Ok(event) => event,
            // The watcher lost track (a queue overflow): look at everything.
            Err(_) => {
                batch.reload = true;
                batch
                    .dirty
                    .extend(self.sources.iter().map(|s| s.name().to_string()));
                return;
            }
        };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for path in &event.paths {
            if path.extension().is_some_and(|e| e == "wasm")
                || path.file_name().is_some_and(|n| n == MANIFEST_FILE)
                || path.parent() == Some(self.dir.as_path())
                || self.components.iter().any(|c| c.starts_with(path))
            {
                batch.reload = true;
            }
            for sources in &self.sources {
                if sources.matches(path) || (sources.reaches(path) && path.is_dir()) {
                    batch.dirty.insert(sources.name().to_string());
                }
            }
        }
    }

    /// Point the watcher at the folders that matter now, and note the
    /// sources of plugins not seen before.
    fn rewatch(&mut self, host: &PluginHost) {
        let mut wanted = BTreeSet::new();
        let mut components = BTreeSet::new();
        wanted.insert(self.dir.clone());
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    wanted.insert(entry.path());
                }
            }
        }
        let specs = discover(&host.inner.config.plugins_dir, host.inner.config.limits)
            .map(|found| found.specs)
            .unwrap_or_default();
        for spec in &specs {
            if let Some((existing, component)) = nearest_existing(&spec.component_path) {
                wanted.insert(existing);
                components.insert(component);
            }
        }
        let mut sources = Vec::new();
        if self.rebuild {
            for s in specs.iter().filter_map(Sources::of) {
                let (folders, capped) = s.folders();
                if capped {
                    tracing::warn!(
                        plugin = %s.name(),
                        "its [build] watch globs reach more than {} folders; only the first are watched",
                        super::sources::MAX_SOURCE_FOLDERS
                    );
                }
                wanted.extend(folders);
                if !self.snapshots.contains_key(s.name()) {
                    self.snapshots.insert(s.name().to_string(), s.snapshot());
                }
                sources.push(s);
            }
            self.snapshots
                .retain(|name, _| sources.iter().any(|s| s.name() == name));
        }
        self.sources = sources;
        self.components = components;
        let current: BTreeMap<PathBuf, u64> = wanted
            .into_iter()
            .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m.ino())))
            .collect();
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(path, ino)| current.get(*path) != Some(*ino))
            .map(|(path, _)| path.clone())
            .collect();
        for path in stale {
            // The folder is gone or was made anew: its old watch (if the
            // kernel has not dropped it already) watches nothing we want.
            let _ = self.watcher.unwatch(&path);
            self.watched.remove(&path);
        }
        for (path, ino) in current {
            if self.watched.contains_key(&path) {
                continue;
            }
            match self.watcher.watch(&path, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(path, ino);
                }
                Err(e) => tracing::warn!(path = %path.display(), "cannot watch: {e}"),
            }
        }
    }

    /// Run plugin `name`'s build if its sources' content changed, ignoring
    /// the events of the build and of the quiet spell after it. True when
    /// the host is stopping (the build, if any, was stopped with it).
    async fn rebuild_if_changed(
        &mut self,
        host: &PluginHost,
        name: &str,
        rx: &mut Events,
        debounce: Duration,
    ) -> bool {
        let Some(sources) = self.sources.iter().find(|s| s.name() == name).cloned() else {
            return false;
        };
        let now = sources.snapshot();
        if self.snapshots.get(name) == Some(&now) {
            tracing::debug!(plugin = %name, "sources saved unchanged; no build");
            return false;
        }
        let started = Instant::now();
        let mut shutdown = host.inner.shutdown.subscribe();
        let stopping = host.inner.shutdown.subscribe();
        let build = super::build::execute(
            &sources.spec,
            &sources.build,
            host.inner.config.build_timeout,
            async move {
                let mut stopping = stopping;
                crate::shutdown::requested(&mut stopping).await;
            },
        );
        tokio::pin!(build);
        // The build's own writes (the component, generated files) are
        // not edits: drain them unread while it runs.
        let finished = loop {
            tokio::select! {
                finished = &mut build => break finished,
                more = rx.recv() => if more.is_none() { break build.await },
            }
        };
        if *shutdown.borrow_and_update() {
            return true;
        }
        if !quiet(rx, debounce, |_| {}).await {
            return true;
        }
        // What the sources are after the build is the new baseline, so a
        // build that rewrites its inputs does not count as an edit.
        self.snapshots.insert(name.to_string(), sources.snapshot());
        let failure = match finished {
            Ok(finished) => match finished.status {
                Some(status) if status.success() => {
                    tracing::info!(
                        plugin = %name,
                        build_ms = started.elapsed().as_millis() as u64,
                        "plugin rebuilt; reloading"
                    );
                    return false;
                }
                _ => json!({
                    "plugin": name,
                    "command": sources.build.command,
                    "status": finished.status_text(),
                    "code": finished.code(),
                    "output": finished.output,
                }),
            },
            Err(e) => json!({
                "plugin": name,
                "command": sources.build.command,
                "status": e.to_string(),
                "code": null,
                "output": "",
            }),
        };
        tracing::error!(
            plugin = %name,
            command = %sources.build.command,
            "plugin build failed ({}); the running version keeps serving; its output:\n{}",
            failure["status"].as_str().unwrap_or_default(),
            failure["output"].as_str().unwrap_or_default(),
        );
        if let Err(e) = host
            .inner
            .bus
            .publish(NewEvent::new(SOURCE, "plugin.build_failed", failure).with_subject(name))
        {
            tracing::error!("could not publish plugin.build_failed: {e}");
        }
        false
    }
}

/// The nearest existing folder above `path` (canonical), and `path` as
/// events will name it: that folder followed by the rest of `path`.
fn nearest_existing(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut rest = Vec::new();
    let mut here = path;
    loop {
        rest.push(here.file_name()?);
        here = here.parent()?;
        let folder = if here.as_os_str().is_empty() {
            Path::new(".")
        } else {
            here
        };
        if let Ok(existing) = std::fs::canonicalize(folder)
            && existing.is_dir()
        {
            let mut full = existing.clone();
            full.extend(rest.iter().rev());
            return Some((existing, full));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_under_missing_folders_waits_on_its_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let component = dir.path().join("x/target/wasm32-wasip2/release/x.wasm");
        let named = base.join("x/target/wasm32-wasip2/release/x.wasm");
        std::fs::create_dir(dir.path().join("x")).unwrap();
        assert_eq!(
            nearest_existing(&component),
            Some((base.join("x"), named.clone()))
        );
        std::fs::create_dir_all(dir.path().join("x/target/wasm32-wasip2/release")).unwrap();
        assert_eq!(
            nearest_existing(&component),
            Some((base.join("x/target/wasm32-wasip2/release"), named.clone()))
        );
        // A relative path resolves against the working folder.
        let relative = Path::new("no-such-folder-here/x.wasm");
        let cwd = std::fs::canonicalize(".").unwrap();
        assert_eq!(
            nearest_existing(relative),
            Some((cwd.clone(), cwd.join("no-such-folder-here/x.wasm")))
        );
    }

    #[tokio::test]
    async fn a_burst_of_saves_is_one_quiet_spell_and_a_later_save_another() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let save = || Ok(notify::Event::new(EventKind::Any));
        // Generous: the saves below come far inside it on any machine.
        let debounce = Duration::from_millis(500);
        // A burst: four saves at once, and a fifth while the spell runs,
        // which must extend it rather than start a batch of its own.
        for _ in 0..4 {
            tx.send(save()).unwrap();
        }
        let late = {
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.send(save()).unwrap();
            })
        };
        let first = rx.recv().await;
        assert!(first.is_some());
        let mut taken = 1;
        assert!(quiet(&mut rx, debounce, |_| taken += 1).await);
        assert_eq!(taken, 5, "the burst is one batch");
        late.await.unwrap();
        // Nothing is left over for a second build.
        assert!(rx.try_recv().is_err());
        // A save after the spell is a batch of its own.
        tx.send(save()).unwrap();
        assert!(rx.recv().await.is_some());
        let mut later = 0;
        assert!(quiet(&mut rx, debounce, |_| later += 1).await);
        assert_eq!(later, 0);
        drop(tx);
        assert!(
            !quiet(&mut rx, debounce, |_| {}).await,
            "a closed channel ends it"
        );
    }
}
