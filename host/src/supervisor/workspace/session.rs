//! One run's watch at work: the folders it watches, and the end of each
//! window, when the paths noted are looked at again and published.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use parking_lot::Mutex;
use serde_json::json;

use super::window::{Pending, change, ignored};
use super::{Limits, SOURCE, Target, failed, submit};
use crate::bus::{Bus, NewEvent};

/// The state of one run's watch, owned by its thread.
pub(super) struct Session {
    pub(super) bus: Bus,
    pub(super) target: Target,
    pub(super) limits: Limits,
    pub(super) pending: Arc<Mutex<Pending>>,
    pub(super) watcher: RecommendedWatcher,
    /// Folders with an inotify watch, relative to the root.
    pub(super) dirs: HashSet<PathBuf>,
    /// Folders left unwatched because of `max_dirs`, announced once.
    pub(super) unwatched: u64,
}

impl Session {
    /// Watches folder `rel` and every folder under it that is not skipped.
    /// With `found`, also reports every entry under `rel` as created (a
    /// folder that appeared with contents: they were never seen by a watch).
    pub(super) fn watch_tree(
        &mut self,
        rel: PathBuf,
        mut found: Option<&mut Vec<(PathBuf, &'static str)>>,
    ) {
        let mut stack = vec![rel];
        while let Some(rel) = stack.pop() {
            let full = self.target.root.join(&rel);
            if self.skipped_dir(&full) || self.dirs.contains(&rel) {
                continue;
            }
            if self.dirs.len() >= self.limits.max_dirs {
                self.unwatched += 1;
                continue;
            }
            // Watch before listing: an entry created in between is then
            // both listed and noted, never neither.
            match self.watcher.watch(&full, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.dirs.insert(rel.clone());
                }
                Err(e) => {
                    failed(&self.bus, &self.target.process, &full, &e.to_string());
                    continue;
                }
            }
            let Ok(entries) = std::fs::read_dir(&full) else {
                continue;
            };
            for entry in entries.flatten() {
                let child = rel.join(entry.file_name());
                if ignored(&child, &self.target.ignore) {
                    continue;
                }
                let Ok(ty) = entry.file_type() else { continue };
                if let Some(found) = found.as_deref_mut() {
                    found.push((child.clone(), kind_of(&ty)));
                }
                if ty.is_dir() {
                    stack.push(child);
                }
            }
        }
    }

    /// A folder the watch never enters: the supervisor's logs, or a host's
    /// state folder (it holds `host.lock`).
    fn skipped_dir(&self, full: &Path) -> bool {
        self.target.exclude.iter().any(|e| e == full) || full.join("host.lock").exists()
    }

    /// Forgets the watches of folder `rel` and everything under it.
    fn unwatch_tree(&mut self, rel: &Path) {
        let gone: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter(|d| d.starts_with(rel))
            .cloned()
            .collect();
        for dir in gone {
            // The kernel already dropped the watch of a deleted folder.
            let _ = self.watcher.unwatch(&self.target.root.join(&dir));
            self.dirs.remove(&dir);
        }
    }

    /// Publishes the window that just ended.
    pub(super) fn flush(&mut self) {
        let Pending {
            noted,
            order,
            dropped,
        } = std::mem::take(&mut *self.pending.lock());
        let mut dropped = dropped;
        let mut changes: Vec<(PathBuf, &'static str, &'static str)> = Vec::new();
        let mut reported: HashSet<PathBuf> = HashSet::new();
        for rel in order {
            let seen = noted[&rel];
            let meta = std::fs::symlink_metadata(self.target.root.join(&rel)).ok();
            let Some(ty) = change(seen.existed, meta.is_some()) else {
                continue;
            };
            let kind = match &meta {
                Some(m) => kind_of(&m.file_type()),
                None if seen.dir || self.dirs.contains(&rel) => "dir",
                None => "file",
            };
            // A folder's own "modified" is only its entries changing; they
            // are reported themselves.
            if kind == "dir" && ty == "workspace.file_modified" {
                continue;
            }
            if kind == "dir" && ty == "workspace.file_deleted" {
                self.unwatch_tree(&rel);
            }
            reported.insert(rel.clone());
            changes.push((rel.clone(), ty, kind));
            if kind == "dir" && ty == "workspace.file_created" {
                let mut found = Vec::new();
                self.watch_tree(rel, Some(&mut found));
                for (child, kind) in found {
                    if !noted.contains_key(&child) && reported.insert(child.clone()) {
                        changes.push((child, "workspace.file_created", kind));
                    }
                }
            }
        }
        // A new folder's contents count against the same cap.
        if changes.len() > self.limits.max_per_window {
            dropped += (changes.len() - self.limits.max_per_window) as u64;
            changes.truncate(self.limits.max_per_window);
        }
        let process = &self.target.process;
        let mut events: Vec<NewEvent> = changes
            .into_iter()
            .map(|(rel, ty, kind)| {
                let path = rel.to_string_lossy().replace('\\', "/");
                NewEvent::new(
                    SOURCE,
                    ty,
                    json!({ "process": process, "path": path, "kind": kind }),
                )
                .with_subject(process.as_str())
            })
            .collect();
        if dropped > 0 {
            events.push(
                NewEvent::new(
                    SOURCE,
                    "workspace.overflow",
                    json!({ "process": process, "dropped": dropped }),
                )
                .with_subject(process.as_str()),
            );
        }
        if std::mem::take(&mut self.unwatched) > 0 {
            let error = format!(
                "more than {} folders: the rest are not watched",
                self.limits.max_dirs
            );
            failed(&self.bus, process, &self.target.root, &error);
        }
        submit(&self.bus, events);
    }
}

pub(super) fn kind_of(ty: &std::fs::FileType) -> &'static str {
    if ty.is_dir() {
        "dir"
    } else if ty.is_symlink() {
        "symlink"
    } else {
        "file"
    }
}
