//! A plugin's sources as its `[build] watch` globs name them: which
//! folders to watch, which changed paths are sources, and a digest of
//! every matching file (`host run --watch`).
//!
//! Globs are relative to the plugin folder, in the manner of spin.toml's
//! `[component.build] watch`: `*` stays within a folder, `**` crosses
//! folders. We watch folders one by one, non-recursively, as `watch.rs`
//! does for components: only the folders a glob can reach from its literal
//! start (`src/` for `src/**/*.rs`), and never `target/`, `node_modules/`
//! or a hidden folder unless a glob names it, so a build's output tree and
//! a package cache cost no inotify watches and send no events.
//!
//! The digest is what makes a rebuild honest: a save that changes nothing
//! (an editor's touch, a build rewriting a file with the same bytes) is
//! not a change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::engine::digest;
use super::manifest::{BuildSpec, PluginSpec};

/// Folders watched for one plugin's sources at most (each costs one
/// inotify watch of the user's quota).
pub(crate) const MAX_SOURCE_FOLDERS: usize = 512;

/// Folders never descended into unless a glob names them literally.
const SKIPPED: [&str; 2] = ["target", "node_modules"];

/// How globs match: `*` and `?` never match a `/`, `**` does.
const MATCHING: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// One plugin's watched sources and how to rebuild it.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    /// The plugin as the folder describes it now.
    pub spec: PluginSpec,
    /// Its `[build]` section.
    pub build: BuildSpec,
    /// The plugin folder, canonical (events carry canonical paths).
    pub base: PathBuf,
    patterns: Vec<glob::Pattern>,
}

/// Digest of every file the globs match, by path.
pub(crate) type Snapshot = BTreeMap<PathBuf, String>;

impl Sources {
    /// The sources of `spec`, if it has a `[build]` with `watch` globs and
    /// its folder exists.
    pub fn of(spec: &PluginSpec) -> Option<Self> {
        let build = spec.build.clone()?;
        // Malformed globs were refused when the manifest was read. Globs
        // that leave the folder are matched against paths inside it, so
        // they could never match: say so instead of watching in silence.
        let patterns = build.patterns().ok()?;
        let (inside, outside): (Vec<_>, Vec<_>) = patterns.into_iter().partition(|p| {
            !Path::new(p.as_str())
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        });
        if !outside.is_empty() {
            let globs: Vec<&str> = outside.iter().map(glob::Pattern::as_str).collect();
            tracing::warn!(plugin = %spec.name, ?globs,
                "watch globs outside the plugin folder are not watched; an edit there needs a rebuild by hand");
        }
        let patterns = inside;
        if patterns.is_empty() {
            return None;
        }
        let base = std::fs::canonicalize(spec.base_dir()).ok()?;
        Some(Self {
            spec: spec.clone(),
            build,
            base,
            patterns,
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether `path` (canonical) is one of the sources.
    pub fn matches(&self, path: &Path) -> bool {
        path.strip_prefix(&self.base).is_ok_and(|relative| {
            self.patterns
                .iter()
                .any(|p| p.matches_path_with(relative, MATCHING))
        })
    }

    /// Whether `path` is inside a folder the globs reach (a folder made
    /// there may hold sources, and must be watched).
    pub fn reaches(&self, path: &Path) -> bool {
        self.roots()
            .iter()
            .any(|(root, depth)| path.starts_with(root) && path != root && *depth > 0)
    }

    /// The folders to watch, at most [`MAX_SOURCE_FOLDERS`]; the flag says
    /// whether some were left out.
    pub fn folders(&self) -> (BTreeSet<PathBuf>, bool) {
        let mut found = BTreeSet::new();
        let mut capped = false;
        for (root, depth) in self.roots() {
            walk(&root, depth, &mut found, &mut capped);
        }
        (found, capped)
    }

    /// The digest of every file the globs match now.
    pub fn snapshot(&self) -> Snapshot {
        let (folders, _) = self.folders();
        let mut snapshot = Snapshot::new();
        for folder in folders {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_file())
                    && self.matches(&path)
                    && let Ok(bytes) = std::fs::read(&path)
                {
                    snapshot.insert(path, digest(&bytes));
                }
            }
        }
        snapshot
    }

    /// Per glob, the folder its literal start names and how many levels
    /// below it the rest can reach (`usize::MAX` for `**`).
    fn roots(&self) -> Vec<(PathBuf, usize)> {
        self.patterns
            .iter()
            .map(|pattern| {
                let parts: Vec<&str> = pattern
                    .as_str()
                    .split('/')
                    .filter(|p| !p.is_empty())
                    .collect();
                let literal = parts
                    .iter()
                    .take_while(|p| !p.contains(['*', '?', '[']))
                    .count()
                    // The last part names files, not a folder.
                    .min(parts.len().saturating_sub(1));
                let mut root = self.base.clone();
                for part in &parts[..literal] {
                    root.push(part);
                }
                let rest = &parts[literal..];
                let depth = if rest.contains(&"**") {
                    usize::MAX
                } else {
                    rest.len().saturating_sub(1)
                };
                (root, depth)
            })
            .collect()
    }
}

/// Collect `dir` and its folders `depth` levels down, skipping build
/// output, package caches and hidden folders.
fn walk(dir: &Path, depth: usize, found: &mut BTreeSet<PathBuf>, capped: &mut bool) {
    if !dir.is_dir() || found.contains(dir) {
        return;
    }
    if found.len() >= MAX_SOURCE_FOLDERS {
        *capped = true;
        return;
    }
    found.insert(dir.to_path_buf());
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && !SKIPPED.contains(&n))
        })
        .collect();
    children.sort();
    for child in children {
        walk(&child, depth - 1, found, capped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::LimitDefaults;

    fn sources(dir: &Path, globs: &[&str]) -> Sources {
        let mut spec = PluginSpec::bare(&dir.join("p.wasm"), LimitDefaults::default()).unwrap();
        spec.manifest_path = Some(dir.join("plugin.toml"));
        spec.build = Some(BuildSpec {
            command: "true".into(),
            watch: globs.iter().map(|g| g.to_string()).collect(),
        });
        Sources::of(&spec).unwrap()
    }

    fn touch(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_star_stays_in_its_folder_and_a_double_star_crosses_folders() {
        let dir = tempfile::tempdir().unwrap();
        let s = sources(dir.path(), &["src/*.js", "lib/**/*.rs", "Cargo.toml"]);
        let base = s.base.clone();
        assert!(s.matches(&base.join("src/index.js")));
        assert!(!s.matches(&base.join("src/deep/index.js")));
        assert!(s.matches(&base.join("lib/a.rs")));
        assert!(s.matches(&base.join("lib/x/y/a.rs")));
        assert!(s.matches(&base.join("Cargo.toml")));
        assert!(!s.matches(&base.join("other/Cargo.toml")));
        assert!(!s.matches(&base.join("src/index.ts")));
        // Outside the plugin folder nothing matches, whatever its name.
        assert!(!s.matches(Path::new("/elsewhere/src/index.js")));
    }

    #[test]
    fn only_folders_a_glob_reaches_are_watched_and_never_build_output() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "src/a.rs",
            "src/m/b.rs",
            "src/m/n/c.rs",
            "src/target/x.rs",
            "src/.cache/y.rs",
            "docs/readme.md",
            "target/debug/z.rs",
            "node_modules/p/q.js",
        ] {
            touch(&dir.path().join(f), "x");
        }
        let s = sources(dir.path(), &["src/**/*.rs", "plugin.toml"]);
        let (folders, capped) = s.folders();
        let base = s.base.clone();
        let expected: BTreeSet<PathBuf> = ["", "src", "src/m", "src/m/n"]
            .iter()
            .map(|p| {
                if p.is_empty() {
                    base.clone()
                } else {
                    base.join(p)
                }
            })
            .collect();
        assert_eq!(folders, expected);
        assert!(!capped);
        // A folder made under src/ may hold sources; one under docs/ not.
        assert!(s.reaches(&base.join("src/new")));
        assert!(!s.reaches(&base.join("docs/new")));
    }

    #[test]
    fn a_folder_named_literally_is_watched_even_if_usually_skipped() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("node_modules/lib/index.js"), "x");
        let s = sources(dir.path(), &["node_modules/lib/*.js"]);
        let (folders, _) = s.folders();
        assert_eq!(
            folders.into_iter().collect::<Vec<_>>(),
            vec![s.base.join("node_modules/lib")]
        );
    }

    #[test]
    fn the_snapshot_changes_with_content_not_with_a_touch() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("src/a.rs"), "fn a() {}");
        touch(&dir.path().join("src/notes.txt"), "not a source");
        let s = sources(dir.path(), &["src/**/*.rs"]);
        let first = s.snapshot();
        assert_eq!(first.len(), 1, "{first:?}");
        // Same bytes written again: the same snapshot.
        touch(&dir.path().join("src/a.rs"), "fn a() {}");
        touch(
            &dir.path().join("src/notes.txt"),
            "changed, but not a source",
        );
        assert_eq!(s.snapshot(), first);
        touch(&dir.path().join("src/a.rs"), "fn a() { 1; }");
        assert_ne!(s.snapshot(), first);
        let second = s.snapshot();
        touch(&dir.path().join("src/new/b.rs"), "fn b() {}");
        assert_eq!(s.snapshot().len(), 2);
        assert_ne!(s.snapshot(), second);
    }

    #[test]
    fn a_tree_too_large_is_watched_up_to_the_cap_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..MAX_SOURCE_FOLDERS + 5 {
            std::fs::create_dir_all(dir.path().join(format!("src/d{i}"))).unwrap();
        }
        let s = sources(dir.path(), &["src/**/*.rs"]);
        let (folders, capped) = s.folders();
        assert_eq!(folders.len(), MAX_SOURCE_FOLDERS);
        assert!(capped);
    }
}
