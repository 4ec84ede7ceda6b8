//! A WebAssembly-pluggable host runtime.
//!
//! The host owns process supervision and the event log; policies are
//! sandboxed WASM components behind the WIT contract in `wit/`, loaded from
//! a folder and hot-reloaded while the host runs. Plugins decide, the host
//! acts.
//!
//! # Layout
//!
//! Each module is a room with a small door (its `mod.rs`):
//!
//! - [`bus`]: the event log — CloudEvents, patterns, journal, consumers.
//!   Knows nothing of processes or plugins.
//! - [`supervisor`]: process specs, spawn, state machine, restart, stop,
//!   output. Publishes to the bus; knows nothing of plugins.
//! - [`plugins`]: engine, manifests, sandbox, per-kind dispatch, hot
//!   reload. Consumes the bus and returns actions.
//! - [`coordination`]: tasks and dependency detection over rule plugins.
//! - [`agents`]: the background-agent scheduler.
//! - [`runtime`]: wires the rooms and executes plugin actions.
//! - [`api`]: HTTP, SSE, MCP and metrics on a running host, and the client
//!   the CLI verbs use. A client of the other rooms; none imports it.
//! - [`authoring`]: tools for plugin authors without a running host
//!   (scaffold, replay, conformance).
//! - [`name`]: the one rule for process, kind and plugin names.
//! - [`config`]: `host.toml`. [`cli`]: the command line. [`bench`]:
//!   `host bench`.

#![deny(missing_docs)]

pub mod agents;
pub mod api;
pub mod authoring;
pub mod bench;
pub mod bus;
pub mod cli;
pub mod config;
pub mod coordination;
pub mod name;
pub mod plugins;
pub mod runtime;
mod shutdown;
pub mod supervisor;
