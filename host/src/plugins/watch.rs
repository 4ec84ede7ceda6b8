//! Watching the plugins folder: file events, debounced, trigger a
//! reconcile of the [`PluginHost`].
//!
//! We watch only what can change a plugin, each folder non-recursively:
//! the plugins folder (bare `.wasm` files, new plugin folders), each
//! plugin folder (its `plugin.toml`) and the folder of each component
//! (where a build writes the `.wasm`, often `target/.../release`). A
//! recursive watch of a plugins workspace would also follow every file a
//! build touches under `target/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher};

use super::PluginHost;
use super::error::PluginError;
use super::manifest::{MANIFEST_FILE, discover};

/// Build the watcher task for `host`.
pub(crate) fn watcher(
    host: PluginHost,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, PluginError> {
    let dir = host.inner.config.plugins_dir.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let _ = tx.send(res);
    })
    .map_err(|e| PluginError::Io {
        path: dir.clone(),
        source: std::io::Error::other(e),
    })?;
    let mut watched = BTreeSet::new();
    rewatch(&mut watcher, &mut watched, &host);
    if !watched.contains(&dir) {
        return Err(PluginError::Io {
            path: dir,
            source: std::io::Error::other("cannot watch the plugins folder"),
        });
    }
    let debounce = host.inner.config.debounce;
    Ok(async move {
        let mut shutdown = host.inner.shutdown.subscribe();
        loop {
            tokio::select! {
                _ = crate::shutdown::requested(&mut shutdown) => break,
                event = rx.recv() => {
                    let Some(event) = event else { break };
                    if !relevant(&event, &dir) {
                        continue;
                    }
                    // Debounce: wait for a quiet spell, so a file written
                    // in several steps is read once, complete.
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(debounce) => break,
                            more = rx.recv() => if more.is_none() { break },
                        }
                    }
                    if let Err(e) = host.reconcile().await {
                        tracing::error!("plugin reload failed: {e}");
                    }
                    rewatch(&mut watcher, &mut watched, &host);
                }
            }
        }
        drop(watcher);
    })
}

fn relevant(event: &notify::Result<notify::Event>, dir: &Path) -> bool {
    let Ok(event) = event else { return true };
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    event.paths.iter().any(|p| {
        p.extension().is_some_and(|e| e == "wasm")
            || p.file_name().is_some_and(|n| n == MANIFEST_FILE)
            || p.parent() == Some(dir)
    })
}

/// Point the watcher at the folders that matter now.
fn rewatch(
    watcher: &mut notify::RecommendedWatcher,
    watched: &mut BTreeSet<PathBuf>,
    host: &PluginHost,
) {
    let dir = &host.inner.config.plugins_dir;
    let mut wanted = BTreeSet::new();
    wanted.insert(dir.clone());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join(MANIFEST_FILE).is_file() {
                wanted.insert(path);
            }
        }
    }
    if let Ok(found) = discover(dir, host.inner.config.limits) {
        for spec in found.specs {
            if let Some(parent) = spec.component_path.parent()
                && parent.is_dir()
            {
                wanted.insert(normalize(parent));
            }
        }
    }
    for gone in watched.difference(&wanted).cloned().collect::<Vec<_>>() {
        let _ = watcher.unwatch(&gone);
        watched.remove(&gone);
    }
    for path in wanted {
        if watched.contains(&path) {
            continue;
        }
        match watcher.watch(&path, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watched.insert(path);
            }
            Err(e) => tracing::warn!(path = %path.display(), "cannot watch: {e}"),
        }
    }
}

fn normalize(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
