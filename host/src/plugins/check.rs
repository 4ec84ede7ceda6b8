//! `host plugin check`: load one component the way the host would, without
//! running a host, and say what it is and what it would be granted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::bus::{Bus, BusConfig};

use super::engine::PluginEngine;
use super::error::PluginError;
use super::instance::{Kind, linker};
use super::load::load_version;
use super::manifest::{LimitDefaults, MANIFEST_FILE, PluginSpec};
use super::permissions::{Ceilings, Permissions};
use super::services::{HostServices, NoProcesses, StateStore, system_clock};
use super::version::Description;

/// What `host plugin check` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Plugin name.
    pub name: String,
    /// The component file.
    pub component: PathBuf,
    /// The manifest, if one was used.
    pub manifest: Option<PathBuf>,
    /// SHA-256 of the component.
    pub digest: String,
    /// Kinds it exports.
    pub kinds: Vec<Kind>,
    /// Everything it imports (WASI interfaces it imports are satisfied
    /// but grant nothing beyond `grants`).
    pub imports: Vec<String>,
    /// Everything it exports.
    pub exports: Vec<String>,
    /// What it said about itself.
    pub description: Description,
    /// What it would be granted.
    pub grants: Permissions,
    /// The grants in words, one per line (what `plugin.reload_refused`
    /// and `host plugins` name).
    pub grants_described: Vec<String>,
    /// Per-call deadline in milliseconds.
    pub deadline_ms: u64,
    /// Memory cap in MiB.
    pub memory_mib: u64,
}

/// What a check holds the plugin to: a host's limits and ceilings.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Limits of a manifest that sets none.
    pub defaults: LimitDefaults,
    /// The most a manifest may ask for.
    pub ceilings: Ceilings,
    /// The plugins folder the plugin would be loaded from (grants inside
    /// it need no ceiling); by default the folder holding the plugin.
    pub plugins_dir: Option<PathBuf>,
}

/// Check `path`: a component file, a `plugin.toml`, or a folder holding one.
///
/// # Errors
///
/// The same errors loading would give, naming the file: unreadable,
/// not a component, a manifest past the ceilings, missing imports, no
/// known kind, or a failing `describe`/`subscriptions` call.
pub async fn check(path: &Path, options: &CheckOptions) -> Result<CheckReport, PluginError> {
    let spec = resolve(path, options)?;
    let engine = PluginEngine::new(None)?;
    let linker = linker(&engine)?;
    let bus = Bus::open_in_memory(BusConfig::default())
        .map_err(|e| PluginError::Engine(e.to_string()))?;
    let services = Arc::new(HostServices::new(
        bus,
        Arc::new(NoProcesses),
        StateStore::in_memory(),
        system_clock(),
    ));
    // Never build here: `check` says what is, it does not make it.
    let version = load_version(&engine, &linker, &services, spec.clone(), None).await?;
    let compiled = &version.compiled;
    Ok(CheckReport {
        name: spec.name.clone(),
        component: spec.component_path.clone(),
        manifest: spec.manifest_path.clone(),
        digest: compiled.digest.clone(),
        kinds: compiled.kinds.clone(),
        imports: compiled.imports.clone(),
        exports: compiled.exports.clone(),
        description: version.description.clone(),
        grants: spec.permissions.clone(),
        grants_described: spec.permissions.describe(),
        deadline_ms: spec.deadline.as_millis() as u64,
        memory_mib: spec.memory_bytes >> 20,
    })
}

/// The spec of `path` (a component file, a `plugin.toml`, or a folder
/// holding one), held to `options`' ceilings: what `check` and the
/// standalone loader of `host plugin test` load.
///
/// # Errors
///
/// An unreadable or invalid manifest, or one past the ceilings.
pub(crate) fn resolve(path: &Path, options: &CheckOptions) -> Result<PluginSpec, PluginError> {
    let defaults = options.defaults;
    let spec = if path.is_dir() {
        PluginSpec::from_manifest(&path.join(MANIFEST_FILE), defaults)?
    } else if path.file_name().is_some_and(|n| n == MANIFEST_FILE) {
        PluginSpec::from_manifest(path, defaults)?
    } else {
        PluginSpec::bare(path, defaults)?
    };
    let plugins_dir = match &options.plugins_dir {
        Some(dir) => dir.clone(),
        None => folder_holding(&spec),
    };
    spec.check_ceilings(&options.ceilings, &plugins_dir)?;
    Ok(spec)
}

/// The plugins folder a plugin would sit in: the parent of its own folder
/// (`plugins/NAME/plugin.toml`), or of a bare component (`plugins/x.wasm`).
fn folder_holding(spec: &PluginSpec) -> PathBuf {
    let own = match &spec.manifest_path {
        Some(manifest) => manifest.parent().and_then(Path::parent),
        None => spec.component_path.parent(),
    };
    let own = own.unwrap_or(Path::new("."));
    std::fs::canonicalize(own).unwrap_or_else(|_| own.to_path_buf())
}
