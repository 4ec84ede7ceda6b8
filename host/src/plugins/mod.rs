//! The plugin room: sandboxed WASM components behind the WIT contract.
//!
//! Plugins decide, the host acts. This room loads components from a
//! folder (with optional `plugin.toml` manifests), runs each in its own
//! sandbox (no grants unless listed; a deadline and a memory cap on every
//! call), feeds event handlers and status mappers from the event log,
//! offers typed calls for rules and agents ([`PluginRef`]), hot-reloads on
//! file change, and turns what plugins return into validated [`Action`]s
//! sent to the executor. It knows the bus and the *types* of the
//! supervisor and coordination, never their handles.
//!
//! Layout: `manifest` (plugin.toml, discovery) + `limits` → `engine`
//! (compile, cache, epoch ticker and watchdog) → `instance` (link, kinds,
//! instantiate, classify failures) → `actor` (worker threads, batches,
//! giving up stuck calls) → `version` (a running version, what it says about
//! itself) → `load` (the one load pipeline) → `slot` (current version,
//! failures, quarantine) → `registry` (load, reload, unload; `labels`:
//! which version may be claimed; `shadow`: a new version on trial) with
//! `dispatch` (bus → plugin), `watch` (files → reload, and with
//! `sources` + `build`, source edits → rebuild), `calls` (typed
//! calls, bounded answers), `sandbox` + `guarded_io` + `logpipe` +
//! `services` + `state` + `recent` (what a store holds and the host
//! imports, each bounded), `bindings` (generated code, conversions,
//! truncation), `check` (`host plugin check`), `standalone` (one plugin
//! outside a host, for `host plugin test`).

mod action;
mod actor;
mod bindings;
mod build;
mod cache;
mod calls;
mod check;
mod dispatch;
mod engine;
mod error;
mod guarded_io;
mod guest;
mod instance;
mod labels;
mod limits;
mod load;
mod logpipe;
mod manifest;
mod permissions;
mod recent;
mod registry;
mod sandbox;
mod services;
mod shadow;
mod slot;
mod sources;
mod standalone;
mod state;
mod version;
mod watch;

pub use action::{Action, ActionRequest, Cause};
pub use build::{BUILD_TIMEOUT, guest_build};
pub use cache::DEFAULT_CACHE_MAX_BYTES;
pub use calls::{MAX_ACTIONS, MapperQuestion, PluginRef, TickOutcome};
pub use check::{CheckOptions, CheckReport, check};
pub use error::{CallFailure, PluginError};
pub use instance::Kind;
pub use limits::{
    LimitDefaults, MAX_DEADLINE_MS, MAX_MEMORY_MIB, check_deadline_ms, check_memory_mib,
};
pub use manifest::{BuildSpec, Limits, MANIFEST_FILE, PluginSpec};
pub use permissions::{
    Ceilings, DEFAULT_MAX_DEADLINE_MS, DEFAULT_MAX_MEMORY_MIB, DirGrant, Permissions, Selector,
    Verb,
};
pub use registry::{
    DEFAULT_MAX_CHAIN_DEPTH, PluginHost, PluginHostConfig, PluginSummary, SHUTDOWN_GRACE,
};
pub use services::{Clock, EventLog, NoProcesses, ProcessView, system_clock};
pub use shadow::DEFAULT_SHADOW_EVENTS;
pub use slot::Health;
pub use standalone::{Standalone, StandaloneOptions, load_standalone};
pub use version::{AgentInfo, Description, RuleInfo};
