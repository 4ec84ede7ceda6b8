//! One plugin loaded on its own, outside a host, with the host imports
//! answered from what the caller gives: a clock, a process view, an event
//! log. What `host plugin test` replays recorded events through.
//!
//! It is the one load pipeline (`load`) with its own engine, a slot that
//! never quarantines (a replay reports every event, also after ten traps
//! in a row) and whose reports go to a bus of their own, so nothing the
//! plugin does under test reaches a host's journal or the log it reads.

use std::path::Path;
use std::sync::Arc;

use crate::bus::{Bus, BusConfig};

use super::calls::PluginRef;
use super::check::{CheckOptions, resolve};
use super::engine::PluginEngine;
use super::error::PluginError;
use super::instance::{Kind, linker};
use super::load::load_version;
use super::services::{Clock, EventLog, HostServices, ProcessView, StateStore};
use super::slot::Slot;
use super::version::Description;

/// What a plugin loaded on its own sees of the world.
pub struct StandaloneOptions {
    /// Limits and ceilings it is held to, as `host plugin check` holds it.
    pub check: CheckOptions,
    /// What `now-ms` reads.
    pub clock: Clock,
    /// Whether the guest's WASI clocks read `clock` too and its WASI
    /// randomness is fixed (a deterministic replay), or are the system's.
    pub deterministic: bool,
    /// What `processes` lists.
    pub processes: Arc<dyn ProcessView>,
    /// What `recent-events`, `history` and `stats` read.
    pub log: Arc<dyn EventLog>,
}

/// A plugin loaded on its own: typed calls through [`PluginRef`], and what
/// it said about itself.
pub struct Standalone {
    /// Typed calls; failures are counted in its health, never quarantined.
    pub plugin: PluginRef,
    /// The kinds it exports.
    pub kinds: Vec<Kind>,
    /// What it said about itself when loaded.
    pub description: Description,
    /// SHA-256 of the component.
    pub digest: String,
    /// Its per-call deadline, in milliseconds.
    pub deadline_ms: u64,
}

/// Load `path` (a component file, a `plugin.toml`, or a folder holding
/// one) the way `host plugin check` does, never building it, with the host
/// imports answered from `options`.
///
/// # Errors
///
/// What `host plugin check` reports: unreadable, not a component, past the
/// ceilings, missing imports, no known kind, a failing `describe`.
pub async fn load_standalone(
    path: &Path,
    options: StandaloneOptions,
) -> Result<Standalone, PluginError> {
    let spec = resolve(path, &options.check)?;
    let engine = PluginEngine::new(None)?;
    let linker = linker(&engine)?;
    let reports = Bus::open_in_memory(BusConfig::default())
        .map_err(|e| PluginError::Engine(e.to_string()))?;
    let mut services = HostServices::new(
        reports.clone(),
        options.processes,
        StateStore::in_memory(),
        options.clock,
    )
    .with_log(options.log);
    if options.deterministic {
        services = services.with_deterministic_wasi();
    }
    let version = load_version(&engine, &linker, &Arc::new(services), spec.clone(), None).await?;
    let slot = Slot::new(spec.name.clone(), reports, u32::MAX);
    let out = Standalone {
        plugin: PluginRef::new(slot.clone()),
        kinds: version.compiled.kinds.clone(),
        description: version.description.clone(),
        digest: version.compiled.digest.clone(),
        deadline_ms: u64::try_from(spec.deadline.as_millis()).unwrap_or(u64::MAX),
    };
    slot.install(version);
    Ok(out)
}
