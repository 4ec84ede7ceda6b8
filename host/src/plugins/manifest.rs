//! `plugin.toml` manifests and discovery of plugins in a folder.
//!
//! Two stages, as in Spin: [`RawManifest`] is what the user typed (serde,
//! unknown keys rejected), [`PluginSpec`] is the resolved form the runtime
//! uses (absolute paths, defaults applied, config flattened to strings).
//!
//! Discovery rules for a plugins folder:
//! - `NAME.wasm` directly in the folder: a bare plugin named `NAME`, with no
//!   grants and empty config;
//! - `SUBDIR/plugin.toml`: a plugin described by its manifest, whose
//!   `component` path is relative to the manifest.
//!
//! Anything else (sources, `target/`, READMEs) is ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::PluginError;
pub use super::limits::LimitDefaults;
use super::limits::{check_deadline_ms, check_memory_mib};
use super::permissions::Permissions;

/// Name of the manifest file looked for in each plugin folder.
pub const MANIFEST_FILE: &str = "plugin.toml";

/// A `plugin.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    /// Plugin name. Example: `name = "failure-alert"`
    name: Option<String>,
    /// Version shown in listings. Example: `version = "0.1.0"`
    version: Option<String>,
    /// One line on what it does.
    description: Option<String>,
    /// Path of the component, relative to the manifest.
    /// Example: `component = "../target/wasm32-wasip2/release/x.wasm"`
    component: PathBuf,
    /// Values the plugin reads with `host.config(key)`.
    /// Example: `[config] threshold = 3`
    #[serde(default)]
    config: toml::Table,
    /// What the plugin may touch; nothing unless listed.
    #[serde(default)]
    permissions: Permissions,
    /// Overrides of the host's per-call deadline and memory cap.
    #[serde(default)]
    limits: Limits,
    /// How to (re)build the component.
    build: Option<BuildSpec>,
}

/// Per-plugin overrides of the host's defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Per-call deadline in milliseconds, 1 to 60000. Example: `deadline_ms = 250`
    pub deadline_ms: Option<u64>,
    /// Memory cap in MiB, 1 to 4096. Example: `memory_mib = 128`
    pub memory_mib: Option<u64>,
}

/// How to rebuild a plugin from source, in the manner of `spin.toml`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// Shell command, run in the manifest's folder.
    /// Example: `command = "cargo build --release --target wasm32-wasip2"`
    pub command: String,
    /// Source globs, relative to the plugin folder: with `host run
    /// --watch`, a change to a matching file runs `command` and the rebuilt
    /// component is reloaded. `*` stays within a folder, `**` crosses
    /// folders. Example: `watch = ["src/**/*.rs", "Cargo.toml"]`
    #[serde(default)]
    pub watch: Vec<String>,
}

impl BuildSpec {
    /// The `watch` globs, compiled.
    ///
    /// # Errors
    ///
    /// The field (`build.watch[N]`) and why, when a glob is empty,
    /// malformed or absolute. A glob that climbs out of the plugin folder
    /// with `..` (a source shared with another plugin) is accepted, so the
    /// plugin loads, but `host run --watch` does not watch it yet
    /// (`Sources` says so in the log).
    pub fn patterns(&self) -> Result<Vec<glob::Pattern>, String> {
        self.watch
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let field = format!("field `build.watch[{i}]`");
                let path = Path::new(text);
                if text.is_empty() {
                    return Err(format!("{field}: an empty glob matches nothing"));
                }
                if path.is_absolute() {
                    return Err(format!(
                        "{field}: `{text}` is absolute; globs are relative to the plugin folder"
                    ));
                }
                glob::Pattern::new(text).map_err(|e| format!("{field}: `{text}`: {e}"))
            })
            .collect()
    }
}

/// A plugin ready to load: resolved paths, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    /// Unique name within the host.
    pub name: String,
    /// Version from the manifest, if any.
    pub version: Option<String>,
    /// Description from the manifest, if any.
    pub description: Option<String>,
    /// The manifest, if the plugin has one.
    pub manifest_path: Option<PathBuf>,
    /// The component file.
    pub component_path: PathBuf,
    /// Config values as the plugin sees them.
    pub config: BTreeMap<String, String>,
    /// Grants, with host paths resolved against the manifest folder.
    pub permissions: Permissions,
    /// Deadline of one call.
    pub deadline: Duration,
    /// Memory cap in bytes.
    pub memory_bytes: u64,
    /// How to build the component, if known.
    pub build: Option<BuildSpec>,
}

impl PluginSpec {
    /// A bare component: no manifest, no grants, empty config.
    pub fn bare(component_path: &Path, defaults: LimitDefaults) -> Result<Self, PluginError> {
        let stem = component_path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let name = validate_name(stem).map_err(|reason| PluginError::Manifest {
            path: component_path.to_path_buf(),
            reason,
        })?;
        Ok(Self {
            name,
            version: None,
            description: None,
            manifest_path: None,
            component_path: component_path.to_path_buf(),
            config: BTreeMap::new(),
            permissions: Permissions::default(),
            deadline: defaults.deadline,
            memory_bytes: defaults.memory_bytes,
            build: None,
        })
    }

    /// Checks the spec's limits and grants against the host's ceilings
    /// (`plugins_dir` is the folder grants may always reach into).
    ///
    /// # Errors
    ///
    /// [`PluginError::Manifest`] naming the file and the field past its
    /// ceiling.
    pub fn check_ceilings(
        &self,
        ceilings: &super::Ceilings,
        plugins_dir: &Path,
    ) -> Result<(), PluginError> {
        ceilings
            .check(
                self.deadline,
                self.memory_bytes,
                &self.permissions,
                plugins_dir,
            )
            .map_err(|(field, why)| PluginError::Manifest {
                path: self
                    .manifest_path
                    .clone()
                    .unwrap_or_else(|| self.component_path.clone()),
                reason: format!("field `{field}`: {why}"),
            })
    }

    /// Read and resolve a `plugin.toml`.
    ///
    /// # Errors
    ///
    /// [`PluginError::Manifest`] naming the file, and the line, column and
    /// field when the TOML is malformed or a value is invalid.
    pub fn from_manifest(path: &Path, defaults: LimitDefaults) -> Result<Self, PluginError> {
        let text = std::fs::read_to_string(path).map_err(|source| PluginError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_manifest(path, &text, defaults)
    }

    fn parse_manifest(
        path: &Path,
        text: &str,
        defaults: LimitDefaults,
    ) -> Result<Self, PluginError> {
        let bad = |reason: String| PluginError::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let located = crate::config::locate_toml_error(text, &e);
            let place = match (located.line, located.column) {
                (Some(l), Some(c)) => format!("line {l}, column {c}: "),
                _ => String::new(),
            };
            bad(format!("{place}{}", located.message))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let folder_name = dir.file_name().and_then(|s| s.to_str()).unwrap_or_default();
        let name = validate_name(raw.name.as_deref().unwrap_or(folder_name))
            .map_err(|r| bad(format!("field `name`: {r}")))?;
        let config = raw
            .config
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect();
        let mut permissions = raw.permissions;
        for grant in &mut permissions.dirs {
            grant.host = dir.join(&grant.host);
        }
        let deadline = match raw.limits.deadline_ms {
            Some(ms) => check_deadline_ms(ms)
                .map_err(|e| bad(format!("field `limits.deadline_ms`: {e}")))?,
            None => defaults.deadline,
        };
        if let Some(build) = &raw.build {
            build.patterns().map_err(bad)?;
        }
        let memory_bytes = match raw.limits.memory_mib {
            Some(mib) => {
                check_memory_mib(mib).map_err(|e| bad(format!("field `limits.memory_mib`: {e}")))?
            }
            None => defaults.memory_bytes,
        };
        Ok(Self {
            name,
            version: raw.version,
            description: raw.description,
            manifest_path: Some(path.to_path_buf()),
            component_path: normalize(&dir.join(raw.component)),
            config,
            permissions,
            deadline,
            memory_bytes,
            build: raw.build,
        })
    }

    /// The folder builds run in and relative paths resolve against.
    pub fn base_dir(&self) -> PathBuf {
        match &self.manifest_path {
            Some(m) => m.parent().unwrap_or(Path::new(".")).to_path_buf(),
            None => self
                .component_path
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        }
    }
}

/// Resolve `.` and `..` without touching the file system (the component
/// may not exist yet), so paths in events and listings read cleanly.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Plugin names: letters, digits, `.`, `_`, `-`; they appear in event
/// sources (`plugin/NAME`) and file names.
fn validate_name(name: &str) -> Result<String, String> {
    crate::name::ensure_valid_name(name)
        .map(|()| name.to_string())
        .map_err(|reason| format!("`{name}` is not a valid plugin name: it {reason}"))
}

/// What was found in a plugins folder: loadable specs and per-entry errors
/// (a broken manifest must not stop the other plugins from loading).
#[derive(Debug, Default)]
pub struct Discovery {
    /// Plugins ready to load, sorted by name.
    pub specs: Vec<PluginSpec>,
    /// Entries that could not be read, with why.
    pub errors: Vec<(PathBuf, PluginError)>,
}

/// Scan `dir` for plugins (see the module doc for the rules).
///
/// # Errors
///
/// Only when `dir` itself cannot be read; problems with single entries are
/// collected in [`Discovery::errors`].
pub fn discover(dir: &Path, defaults: LimitDefaults) -> Result<Discovery, PluginError> {
    let entries = std::fs::read_dir(dir).map_err(|source| PluginError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut found = Discovery::default();
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let result = if path.is_dir() {
            let manifest = path.join(MANIFEST_FILE);
            if !manifest.is_file() {
                continue;
            }
            PluginSpec::from_manifest(&manifest, defaults).map_err(|e| (manifest, e))
        } else if path.extension().is_some_and(|e| e == "wasm") {
            PluginSpec::bare(&path, defaults).map_err(|e| (path.clone(), e))
        } else {
            continue;
        };
        match result {
            Ok(spec) => found.specs.push(spec),
            Err(err) => found.errors.push(err),
        }
    }
    // Two entries claiming one name: keep the first, report the second.
    found.specs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut unique: Vec<PluginSpec> = Vec::with_capacity(found.specs.len());
    for spec in found.specs.drain(..) {
        if let Some(first) = unique.iter().find(|s| s.name == spec.name) {
            let path = spec
                .manifest_path
                .clone()
                .unwrap_or(spec.component_path.clone());
            let reason = format!(
                "plugin name `{}` is already used by {}",
                spec.name,
                first
                    .manifest_path
                    .as_ref()
                    .unwrap_or(&first.component_path)
                    .display()
            );
            found
                .errors
                .push((path.clone(), PluginError::Manifest { path, reason }));
        } else {
            unique.push(spec);
        }
    }
    found.specs = unique;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PluginSpec, PluginError> {
        PluginSpec::parse_manifest(
            Path::new("/p/alert/plugin.toml"),
            text,
            LimitDefaults::default(),
        )
    }

    #[test]
    fn a_minimal_manifest_takes_its_name_from_the_folder_and_grants_nothing() {
        let spec = parse("component = \"a.wasm\"").unwrap();
        assert_eq!(spec.name, "alert");
        assert_eq!(spec.component_path, Path::new("/p/alert/a.wasm"));
        let spec = parse("component = \"../target/./x.wasm\"").unwrap();
        assert_eq!(spec.component_path, Path::new("/p/target/x.wasm"));
        assert_eq!(spec.permissions, Permissions::default());
        assert_eq!(spec.deadline, Duration::from_millis(100));
        assert_eq!(spec.memory_bytes, 64 << 20);
    }

    #[test]
    fn config_values_of_any_type_reach_the_plugin_as_strings() {
        let spec = parse(
            "component = \"a.wasm\"\n[config]\nthreshold = 3\nname = \"x\"\nratio = 0.5\non = true\n",
        )
        .unwrap();
        assert_eq!(spec.config["threshold"], "3");
        assert_eq!(spec.config["name"], "x");
        assert_eq!(spec.config["ratio"], "0.5");
        assert_eq!(spec.config["on"], "true");
    }

    #[test]
    fn limits_and_grants_are_resolved_against_the_manifest_folder() {
        let spec = parse(
            "component = \"a.wasm\"\n[limits]\ndeadline_ms = 250\nmemory_mib = 8\n\
             [permissions]\ndirs = [{ host = \"data\", guest = \"/data\" }]\nenv = [\"LANG\"]\n",
        )
        .unwrap();
        assert_eq!(spec.deadline, Duration::from_millis(250));
        assert_eq!(spec.memory_bytes, 8 << 20);
        assert_eq!(spec.permissions.dirs[0].host, Path::new("/p/alert/data"));
        assert!(spec.permissions.dirs[0].read_only);
        assert_eq!(spec.permissions.env, vec!["LANG".to_string()]);
    }

    #[test]
    fn an_unknown_field_is_rejected_with_its_line_and_name() {
        let err = parse("component = \"a.wasm\"\ncomponnet = \"b\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("plugin.toml"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("componnet"), "{err}");
    }

    #[test]
    fn a_missing_component_field_is_named() {
        let err = parse("name = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("component"), "{err}");
    }

    #[test]
    fn an_invalid_name_is_rejected() {
        let err = parse("name = \"a b\"\ncomponent = \"a.wasm\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `name`"), "{err}");
    }

    #[test]
    fn watch_globs_that_are_malformed_absolute_or_leave_the_folder_are_named() {
        let build = |glob: &str| {
            parse(&format!(
                "component = \"a.wasm\"\n[build]\ncommand = \"make\"\nwatch = [\"src/*.rs\", {glob:?}]\n"
            ))
            .unwrap_err()
            .to_string()
        };
        for (glob, why) in [
            ("src/[", "build.watch[1]"),
            ("/etc/*.conf", "absolute"),
            ("", "empty"),
        ] {
            let err = build(glob);
            assert!(
                err.contains("plugin.toml") && err.contains(why),
                "{glob}: {err}"
            );
        }
        // A source shared with a sibling plugin (build-mapper's) loads.
        parse("component = \"a.wasm\"\n[build]\ncommand = \"make\"\nwatch = [\"../other/*.rs\"]\n")
            .unwrap();
        let spec = parse(
            "component = \"a.wasm\"\n[build]\ncommand = \"make\"\nwatch = [\"src/**/*.rs\"]\n",
        )
        .unwrap();
        assert_eq!(spec.build.unwrap().watch, vec!["src/**/*.rs".to_string()]);
    }

    #[test]
    fn zero_limits_are_rejected() {
        let err = parse("component = \"a.wasm\"\n[limits]\ndeadline_ms = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("deadline_ms"), "{err}");
    }

    #[test]
    fn limits_past_their_maximum_are_rejected_naming_field_and_bound_not_wrapped() {
        // 2^44 MiB used to wrap to a 0 MiB cap; u64::MAX ms failed every call.
        for (field, value, bound) in [
            ("memory_mib", "17592186044416", "4096"),
            ("memory_mib", "4097", "4096"),
            ("deadline_ms", "18446744073709551615", "60000"),
            ("deadline_ms", "60001", "60000"),
        ] {
            let err = parse(&format!(
                "component = \"a.wasm\"\n[limits]\n{field} = {value}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains(&format!("limits.{field}")), "{err}");
            assert!(err.contains(bound) && err.contains(value), "{err}");
        }
        let spec =
            parse("component = \"a.wasm\"\n[limits]\nmemory_mib = 4096\ndeadline_ms = 60000\n")
                .unwrap();
        assert_eq!(spec.memory_bytes, 4 << 30);
        assert_eq!(spec.deadline, Duration::from_secs(60));
    }

    #[test]
    fn discovery_finds_bare_components_and_manifests_and_reports_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bare.wasm"), b"x").unwrap();
        std::fs::write(dir.path().join("README.md"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("good")).unwrap();
        std::fs::write(
            dir.path().join("good/plugin.toml"),
            "component = \"g.wasm\"",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("bad")).unwrap();
        std::fs::write(dir.path().join("bad/plugin.toml"), "component = ").unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        let found = discover(dir.path(), LimitDefaults::default()).unwrap();
        let names: Vec<_> = found.specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bare", "good"]);
        assert_eq!(found.errors.len(), 1);
        assert!(found.errors[0].0.ends_with("bad/plugin.toml"));
    }

    #[test]
    fn two_plugins_with_one_name_keep_the_first_and_report_the_second() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dup.wasm"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("other")).unwrap();
        std::fs::write(
            dir.path().join("other/plugin.toml"),
            "name = \"dup\"\ncomponent = \"g.wasm\"",
        )
        .unwrap();
        let found = discover(dir.path(), LimitDefaults::default()).unwrap();
        assert_eq!(found.specs.len(), 1);
        assert_eq!(found.errors.len(), 1);
        assert!(found.errors[0].1.to_string().contains("already used"));
    }
}
