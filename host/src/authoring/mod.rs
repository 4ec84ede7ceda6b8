//! Tools for plugin authors that work without a running host: a project
//! scaffold (`host plugin new`), replay of recorded events through a plugin
//! (`host plugin test`), and the kind-level contract check
//! (`host plugin check --conformance`).
//!
//! A client of the `plugins` room's public handles, like `api`; no other
//! room imports it except `cli`.

mod conformance;
pub mod replay;
mod replay_input;
pub mod replay_render;
pub mod scaffold;

pub use conformance::{ConformanceCheck, ConformanceError, ConformanceReport, conformance};
