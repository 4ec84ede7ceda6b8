//! The api room: a running host, driven from outside — by a person at a
//! terminal (the CLI verbs), by scripts and dashboards (HTTP JSON, SSE,
//! Prometheus), and by AI coding agents (MCP).
//!
//! The room is a client of the runtime's public handles (supervisor, bus,
//! plugin host, scheduler, coordinator) and owns no behaviour those rooms
//! already own; no other room imports it. HTTP, MCP and the CLI are three
//! faces of one set of operations, each written once in [`Control`].
//!
//! Layout:
//! - `control` ([`Control`]): process operations; `events`: query, publish,
//!   follow; `plugins`: plugins, agents, tasks, health; `wait`: `wait_for`;
//! - `ops` ([`Operations`]): the operations as a trait, answered by
//!   [`Control`] in-process and [`ApiClient`] over HTTP;
//! - `model`: the `/v1` request and answer shapes; `error`: [`ApiError`];
//! - `http`: axum routes and the SSE stream; `auth`: token, address files,
//!   the origin and token guard; `metrics`: `/metrics`;
//! - `sessions`: coordination sessions (list, read, post, escalate);
//! - `stats`: counts of a window of the log by type, source and minute;
//! - `mcp`: the MCP tools (rmcp), over HTTP and stdio;
//! - `server` ([`ApiServer`], [`ApiConfig`]): the listener;
//! - `client` ([`ApiClient`]): another process's way in.

mod auth;
mod client;
mod control;
mod error;
mod events;
mod http;
mod mcp;
mod metrics;
mod model;
mod ops;
mod plugins;
mod server;
mod sessions;
mod stats;
mod wait;

pub use auth::{ADDR_FILE, TOKEN_FILE};
pub use client::{ApiClient, ClientError};
pub use control::Control;
pub use error::ApiError;
pub use events::when;
pub use mcp::{HostTools, McpFactory, serve_stdio};
pub use model::*;
pub use ops::Operations;
pub use server::{ApiConfig, ApiServer};
pub use sessions::{
    EscalateSession, PostMessage, SessionEscalation, SessionPost, SessionRef, SessionsQuery,
};
pub use stats::{EventStats, MAX_STATS_SCAN, StatsQuery};
