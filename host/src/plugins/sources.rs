//! A plugin's sources as its `[build] watch` globs name them: which
//! folders to watch, which changed paths are sources, and a digest of
//! every matching file (`host run --watch`).
//!
//! Globs are relative to the plugin folder, in the manner of spin.toml's
//! `[component.build] watch`: `*` stays within a folder, `**` crosses
//! folders. A glob may leave the folder with `..` in its literal start
//! (`../shared/src/*.rs`, a source two plugins share); each glob is made
//! absolute once, its `..` resolved against the canonical plugin folder,
//! so a changed path is matched as the watcher reports it. We watch folders one by one, non-recursively, as `watch.rs`
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
    globs: Vec<Glob>,
}

/// One watch glob, absolute.
#[derive(Debug, Clone)]
struct Glob {
    /// The whole glob, under its root (the root escaped).
    pattern: glob::Pattern,
    /// The folder its literal start names.
    root: PathBuf,
    /// How many levels below `root` it reaches (`usize::MAX` for `**`).
    depth: usize,
}

impl Glob {
    /// `text` (relative, already validated) made absolute against `base`,
    /// or why it cannot be watched.
    fn resolve(base: &Path, text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let literal = parts
            .iter()
            .take_while(|p| !p.contains(['*', '?', '[']))
            .count()
            // The last part names files, not a folder.
            .min(parts.len().saturating_sub(1));
        let mut root = base.to_path_buf();
        for part in &parts[..literal] {
            if *part == ".." {
                root.pop();
            } else {
                root.push(part);
            }
        }
        let rest = &parts[literal..];
        if rest.contains(&"..") {
            return Err(
                "`..` after a wildcard: only the glob's literal start may leave a folder".into(),
            );
        }
        let depth = if rest.contains(&"**") {
            usize::MAX
        } else {
            rest.len().saturating_sub(1)
        };
        let root_text = root
            .to_str()
            .ok_or_else(|| format!("the folder {} is not UTF-8", root.display()))?;
        let whole = format!(
            "{}/{}",
            glob::Pattern::escape(root_text.trim_end_matches('/')),
            rest.join("/")
        );
        let pattern = glob::Pattern::new(&whole).map_err(|e| e.to_string())?;
        Ok(Self {
            pattern,
            root,
            depth,
        })
    }
}

/// Digest of every file the globs match, by path.
pub(crate) type Snapshot = BTreeMap<PathBuf, String>;

impl Sources {
    /// The sources of `spec`, if it has a `[build]` with `watch` globs and
    /// its folder exists.
    pub fn of(spec: &PluginSpec) -> Option<Self> {
        let build = spec.build.clone()?;
        // Malformed globs were refused when the manifest was read.
        let patterns = build.patterns().ok()?;
        let base = std::fs::canonicalize(spec.base_dir()).ok()?;
        let mut globs = Vec::new();
        for pattern in patterns {
            match Glob::resolve(&base, pattern.as_str()) {
                Ok(glob) => globs.push(glob),
                Err(why) => tracing::warn!(plugin = %spec.name, glob = pattern.as_str(),
                    "this watch glob is not watched ({why}); an edit there needs a rebuild by hand"),
            }
        }
        if globs.is_empty() {
            return None;
        }
        Some(Self {
            spec: spec.clone(),
            build,
            globs,
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether `path` (canonical) is one of the sources.
    pub fn matches(&self, path: &Path) -> bool {
        self.globs
            .iter()
            .any(|g| g.pattern.matches_path_with(path, MATCHING))
    }

    /// Whether `path` is inside a folder the globs reach (a folder made
    /// there may hold sources, and must be watched).
    pub fn reaches(&self, path: &Path) -> bool {
        self.globs
            .iter()
            .any(|g| path.starts_with(&g.root) && path != g.root && g.depth > 0)
    }

    /// The folders to watch, at most [`MAX_SOURCE_FOLDERS`]; the flag says
    /// whether some were left out.
    pub fn folders(&self) -> (BTreeSet<PathBuf>, bool) {
        let mut found = BTreeSet::new();
        let mut capped = false;
        for glob in &self.globs {
            walk(&glob.root, glob.depth, &mut found, &mut capped);
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

    /// The plugin folder, canonical, as the globs are resolved against it.
    fn base(s: &Sources) -> PathBuf {
        std::fs::canonicalize(s.spec.base_dir()).unwrap()
    }

    fn touch(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_star_stays_in_its_folder_and_a_double_star_crosses_folders() {
        let dir = tempfile::tempdir().unwrap();
        let s = sources(dir.path(), &["src/*.js", "lib/**/*.rs", "Cargo.toml"]);
        let base = base(&s);
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
    fn a_glob_may_leave_the_plugin_folder_through_its_literal_start() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("plugins/p");
        touch(&plugin.join("src/lib.rs"), "x");
        touch(&dir.path().join("plugins/shared/src/a.rs"), "x");
        touch(&dir.path().join("plugins/shared/src/m/b.rs"), "x");
        touch(&dir.path().join("plugins/other/src/c.rs"), "x");
        let s = sources(
            &plugin,
            &["src/*.rs", "../shared/src/**/*.rs", "./Cargo.toml"],
        );
        let shared = base(&s).parent().unwrap().join("shared");
        assert!(s.matches(&shared.join("src/a.rs")));
        assert!(s.matches(&shared.join("src/m/b.rs")));
        assert!(s.matches(&base(&s).join("src/lib.rs")));
        assert!(s.matches(&base(&s).join("Cargo.toml")));
        assert!(!s.matches(&base(&s).parent().unwrap().join("other/src/c.rs")));
        let (folders, _) = s.folders();
        assert!(folders.contains(&shared.join("src/m")), "{folders:?}");
        assert!(s.reaches(&shared.join("src/new")));
        assert_eq!(s.snapshot().len(), 3, "{:?}", s.snapshot());
        // `..` past a wildcard cannot be resolved: that glob is left out.
        let s = sources(&plugin, &["src/*/../x.rs", "src/*.rs"]);
        assert_eq!(s.globs.len(), 1);
        assert!(!s.matches(&base(&s).join("x.rs")));
    }

    #[test]
    fn a_folder_with_glob_characters_in_its_name_is_matched_literally() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("p[1]*");
        touch(&plugin.join("src/a.rs"), "x");
        let s = sources(&plugin, &["src/*.rs"]);
        assert!(s.matches(&base(&s).join("src/a.rs")));
        assert_eq!(s.snapshot().len(), 1);
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
        let base = base(&s);
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
            vec![base(&s).join("node_modules/lib")]
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
