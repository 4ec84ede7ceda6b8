//! End-to-end tests: the real `host` binary, run as a user runs it.
//!
//! Each module is one scenario. Every test gets its own temporary plugins
//! folder, config and state folder; nothing is written into the repository.
//! Waits are generous timeouts that only keep a broken host from hanging the
//! suite; no assertion depends on how fast something happens.
//!
//! Run with `cargo test -p host-tests --test e2e` after `cargo build -p host`
//! (the tests need the `host` binary of the same target folder; `cargo test
//! --workspace` builds it as part of the run). The first run also builds the
//! guest plugins (`plugins/`, `tests/plugins/`), which takes a few minutes.
//!
//! Scenarios that need a steady event source install the `pinger` fixture
//! (a background agent emitting a configured event type on an interval);
//! others publish through the API (`POST /v1/events`).

mod ai_coder;
mod api;
mod authoring;
mod cli_verbs;
mod compile_cache;
mod config_errors;
mod conformance;
mod crash_loops;
mod events_cli;
mod failure_alert;
mod hot_reload;
mod languages;
mod mcp;
mod orphans;
mod output_capture;
mod plugin_check;
mod plugin_new;
mod plugin_test;
mod probes;
mod process_trees;
mod recovery;
mod resources;
mod rules;
mod runaway_plugin;
mod seed_handlers;
mod sessions;
mod shutdown;
mod sse;
mod storms;
mod test_suite;
mod top;
mod wit;
mod workspace;

use std::time::Duration;

/// Longest wait for anything a healthy host does in well under a second;
/// only there so a broken host fails the test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(60);
