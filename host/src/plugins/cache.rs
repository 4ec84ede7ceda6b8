//! The compilation cache: `.cwasm` files in `<state>/cache`, one per
//! compiled component, named by the component's digest and the engine's
//! compatibility hash, and pruned so a day of rebuilding plugins does not
//! leave hundreds of megabytes behind.
//!
//! Pruning runs when the cache is opened and after each new entry: entries
//! of another engine (another wasmtime or host build: they can never be
//! loaded again) and leftover temporary files go first, then the least
//! recently used entries until the cache is under its size. A hit touches
//! its entry, so what the running plugins use is the newest. The entry
//! just written is never removed, even when it alone is over the size.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::PluginError;

/// Default size of the cache (`[plugins] cache_max_size`).
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// A folder of precompiled components for one engine.
#[derive(Clone)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    /// `-{engine key}.cwasm`: the end of every usable entry's name.
    suffix: String,
    max_bytes: u64,
}

/// What one pruning removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pruned {
    /// Files removed.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

impl CompileCache {
    /// The cache in `dir` (created if missing) for `engine`, pruned to
    /// `max_bytes`.
    pub(crate) fn open(dir: PathBuf, engine: &Engine, max_bytes: u64) -> Result<Self, PluginError> {
        std::fs::create_dir_all(&dir).map_err(|source| PluginError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let cache = Self {
            dir,
            suffix: format!("-{:016x}.cwasm", hasher.finish()),
            max_bytes,
        };
        let pruned = cache.prune(None);
        if pruned.files > 0 {
            tracing::info!(
                cache = %cache.dir.display(),
                "compilation cache pruned: {} files, {} bytes",
                pruned.files,
                pruned.bytes
            );
        }
        Ok(cache)
    }

    /// Where the component with these bytes is (or would be) cached.
    pub(crate) fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}{}", self.suffix))
    }

    /// Marks `path` as just used, so pruning keeps it over older entries.
    pub(crate) fn touch(&self, path: &Path) {
        let touched = std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        if let Err(e) = touched {
            tracing::debug!(cache = %path.display(), "could not touch a cache entry: {e}");
        }
    }

    /// Writes `component` to `path`, then prunes around it.
    pub(crate) fn store(&self, component: &Component, path: &Path) -> anyhow::Result<()> {
        let bytes = component.serialize()?;
        // Write then rename so a concurrent reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        self.prune(Some(path));
        Ok(())
    }

    /// Removes entries no engine of this build can load and leftover
    /// temporary files, then the least recently used entries until the
    /// rest fits in the size; `keep` is never removed.
    pub(crate) fn prune(&self, keep: Option<&Path>) -> Pruned {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return Pruned::default();
        };
        let mut pruned = Pruned::default();
        let mut kept: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        for entry in listing.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || Some(path.as_path()) == keep {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let usable = name.ends_with(&self.suffix);
            let ours = usable || name.ends_with(".cwasm") || name.contains(".tmp");
            if !ours {
                continue; // not something this cache wrote: leave it alone
            }
            if !usable {
                remove(&path, meta.len(), &mut pruned);
                continue;
            }
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            kept.push((used, meta.len(), path));
        }
        let keep_bytes = keep
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        let mut total: u64 = keep_bytes + kept.iter().map(|(_, len, _)| len).sum::<u64>();
        kept.sort_by_key(|(used, _, _)| *used);
        for (_, len, path) in kept {
            if total <= self.max_bytes {
                break;
            }
            remove(&path, len, &mut pruned);
            total -= len;
        }
        pruned
    }
}

fn remove(path: &Path, len: u64, pruned: &mut Pruned) {
    // A file removed while a component is mapped from it stays readable
    // for that component (Linux keeps the inode until the mapping goes).
    match std::fs::remove_file(path) {
        Ok(()) => {
            pruned.files += 1;
            pruned.bytes += len;
        }
        Err(e) => tracing::warn!(cache = %path.display(), "could not prune a cache entry: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    fn file(path: &Path, len: usize, age_secs: u64) {
        std::fs::write(path, vec![0u8; len]).unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn opening_removes_other_engines_entries_and_leftovers_but_not_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        file(&dir.path().join("aaa-0000000000000001.cwasm"), 10, 0);
        file(&dir.path().join("bbb-0000000000000002.tmp4242"), 10, 0);
        file(&dir.path().join("notes.txt"), 10, 0);
        let cache = CompileCache::open(dir.path().into(), &engine(), 1 << 20).unwrap();
        file(&cache.path("ccc"), 10, 0);
        assert_eq!(cache.prune(None), Pruned::default());
        let mut expected = vec![
            "notes.txt".to_string(),
            cache
                .path("ccc")
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        ];
        expected.sort();
        assert_eq!(names(dir.path()), expected);
    }

    #[test]
    fn the_least_recently_used_entries_go_until_the_cache_fits_and_the_new_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path().into(), &engine(), 250).unwrap();
        file(&cache.path("old"), 100, 300);
        file(&cache.path("mid"), 100, 200);
        file(&cache.path("recent"), 100, 100);
        cache.touch(&cache.path("old")); // used just now: the newest
        file(&cache.path("new"), 100, 0);
        let pruned = cache.prune(Some(&cache.path("new")));
        assert_eq!(
            pruned,
            Pruned {
                files: 2,
                bytes: 200
            }
        );
        assert!(cache.path("new").exists());
        assert!(cache.path("old").exists(), "a touched entry is kept");
        assert!(!cache.path("mid").exists() && !cache.path("recent").exists());
    }

    #[test]
    fn an_entry_larger_than_the_cache_is_still_kept_when_just_written() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path().into(), &engine(), 10).unwrap();
        file(&cache.path("big"), 100, 0);
        assert_eq!(cache.prune(Some(&cache.path("big"))), Pruned::default());
        assert!(cache.path("big").exists());
    }
}
