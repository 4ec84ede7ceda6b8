//! What the operations take and give: the `/v1` shapes, shared by HTTP,
//! MCP and the CLI.
//!
//! These are the API's own types, not the rooms' internals: a field added
//! inside the supervisor does not change `/v1` by accident, and every type
//! here is `Deserialize` (the CLI and `host mcp` read them back) and
//! `JsonSchema` (MCP tools describe them).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::coordination::tidy_f32;
use crate::supervisor::{OutputLine, ProcessInfo, ProcessState, RestartMode, Stream};

/// Output lines included in a single process's status.
pub const STATUS_OUTPUT_LINES: usize = 20;

/// A process as every face shows it (seed 004's status, and more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessStatus {
    /// Unique id: the `[process.NAME]` name, or the generated id of a
    /// process created at runtime (`build_7f3a9c`).
    pub process_id: String,
    /// Human-readable name (the label given at creation, else the id).
    pub name: String,
    /// Its kind, which picks the status mappers that serve it.
    pub process_type: String,
    /// Lifecycle state: pending, starting, running, paused, stopping,
    /// completed, failed, timeout, cancelled, backoff.
    pub state: ProcessState,
    /// The state a status mapper last reported, if any.
    pub reported_state: Option<ProcessState>,
    /// `config` (host.toml) or `runtime` (created through the API).
    pub origin: String,
    /// The shell command (or program) it runs.
    pub command: String,
    /// PID of the current or last run.
    pub pid: Option<u32>,
    /// When the current or last run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished for good (no restart follows).
    pub completed_at: Option<DateTime<Utc>>,
    /// Seconds from start to completion, or to now while it runs.
    pub duration: Option<f64>,
    /// Exit code of the last run.
    pub exit_code: Option<i32>,
    /// Signal that ended the last run.
    pub signal: Option<i32>,
    /// Restarts since the last explicit start.
    pub restarts: u32,
    /// Timeout in seconds, if any.
    pub timeout: Option<f64>,
    /// Progress 0..1 from status mappers.
    pub progress: Option<f64>,
    /// Status message from status mappers.
    pub message: Option<String>,
    /// Resident memory of the whole tree at the last sample.
    pub memory_bytes: Option<u64>,
    /// CPU use of the tree at the last sample, percent of one core.
    pub cpu_percent: Option<f64>,
    /// When it last printed a line.
    pub last_output_at: Option<DateTime<Utc>>,
    /// Context given at creation.
    pub metadata: Map<String, Value>,
    /// Whether the current run's readiness probe passes (`process.ready`
    /// / `process.unready`); null for a process without one.
    #[serde(default)]
    pub ready: Option<bool>,
    /// The dependencies it waits for before it can spawn (state
    /// `starting`); empty otherwise. A start answers as soon as the wait
    /// begins rather than when it ends.
    #[serde(default)]
    pub waiting_for: Vec<String>,
    /// The last output lines (both streams), in a single status only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Vec<String>>,
}

impl ProcessStatus {
    /// The view of `info`, with `output` lines if given.
    pub fn from_info(info: ProcessInfo, output: Option<Vec<String>>) -> Self {
        ProcessStatus {
            name: info.label.clone().unwrap_or_else(|| info.name.clone()),
            process_id: info.name,
            process_type: info.kind,
            state: info.state,
            reported_state: info.reported_state,
            origin: serde_json::to_value(info.origin)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            command: info.command,
            pid: info.pid,
            started_at: info.started_at,
            completed_at: info.completed_at,
            duration: info.duration_ms.map(|ms| ms as f64 / 1000.0),
            exit_code: info.exit_code,
            signal: info.signal,
            restarts: info.restarts,
            timeout: info.timeout_ms.map(|ms| ms as f64 / 1000.0),
            progress: info.progress.map(tidy_f32),
            message: info.message,
            memory_bytes: info.memory_bytes,
            cpu_percent: info.cpu_percent.map(tidy_f32),
            last_output_at: info.last_output_at,
            metadata: info.metadata,
            ready: info.ready,
            waiting_for: info.waiting_for,
            output,
        }
    }
}

/// Which processes to list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessFilter {
    /// Only these states (any of them); empty means every state.
    pub state: Vec<ProcessState>,
    /// Only this kind (`process_type`).
    pub kind: Option<String>,
}

/// A process to create and start while the host runs (seed 004's
/// request, plus what a process manager's users expect).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProcess {
    /// Its kind: seed 004's `jules_session`, `test_suite`, `build`,
    /// `server`, `analysis`, `custom`, or any other name of letters,
    /// digits, `.`, `_` and `-`. The id is made from it.
    pub process_type: String,
    /// Human-readable name.
    pub name: String,
    /// Shell command, run with `/bin/sh -c`.
    pub command: String,
    /// Maximum runtime in seconds (0 = no timeout).
    #[serde(default)]
    pub timeout: u64,
    /// Additional context (session_id, test_file, ...): a JSON object.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Working directory (default: the host's).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Restart policy: never (default), on-failure, always.
    #[serde(default)]
    #[schemars(with = "String")]
    pub restart: RestartMode,
    /// Start it at once (default true); false leaves it `pending`.
    #[serde(default = "yes")]
    pub start: bool,
    /// Publish `workspace.file_*` events for changes in its cwd while it
    /// runs (default false), skipping the default `workspace_ignore` names.
    #[serde(default)]
    pub watch_workspace: bool,
}

fn yes() -> bool {
    true
}

/// The answer to a creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Created {
    /// The new process's id.
    pub process_id: String,
}

/// How to stop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StopOptions {
    /// Send SIGKILL at once instead of the stop signal and a grace period.
    pub force: bool,
}

/// Which output lines to read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OutputQuery {
    /// The last N lines (default 100 when `after` is not given).
    pub tail: Option<usize>,
    /// Lines from this offset on (see `next_offset`), oldest first.
    pub after: Option<u64>,
    /// At most this many lines (default and maximum 10,000).
    pub limit: Option<usize>,
    /// Only lines matching this regular expression.
    pub regex: Option<String>,
}

/// Output lines read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutputPage {
    /// The lines, oldest first.
    pub lines: Vec<OutputLineView>,
    /// Offset of the oldest line still in memory; older ones are in the
    /// log file only.
    pub first_offset: u64,
    /// Ask with `after = next_offset` to continue.
    pub next_offset: u64,
}

/// One output line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutputLineView {
    /// Position among every line the process printed.
    pub offset: u64,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text.
    pub line: String,
    /// When the host read it.
    pub time: DateTime<Utc>,
}

impl From<OutputLine> for OutputLineView {
    fn from(l: OutputLine) -> Self {
        OutputLineView {
            offset: l.offset,
            stream: match l.stream {
                Stream::Stdout => "stdout".into(),
                Stream::Stderr => "stderr".into(),
            },
            line: l.line,
            time: l.time,
        }
    }
}

/// A status a process's own system reports: its progress and message are
/// recorded as they are; the status word is published as
/// `process.reported` for status mappers to map to a state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// The status in the reporter's words (`running`, `paused`, ...).
    pub status: String,
    /// Progress 0..1, if known.
    #[serde(default)]
    pub progress: Option<f32>,
    /// A message, if any.
    #[serde(default)]
    pub message: Option<String>,
}

/// A question about the event log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EventsQuery {
    /// Type patterns (`process.*`, `plugin.>`); any matches. Empty: all.
    #[serde(rename = "type")]
    pub types: Vec<String>,
    /// Only this subject (usually a process id).
    pub subject: Option<String>,
    /// Only this source (`host/supervisor`, `plugin/NAME`).
    pub source: Option<String>,
    /// Only events at or after this time (RFC 3339, or `10m` / `2h` ago).
    pub since: Option<String>,
    /// Only events before this time (RFC 3339, or `10m` / `2h` ago).
    pub until: Option<String>,
    /// Only events after this sequence: pages forward from a cursor.
    pub after: Option<u64>,
    /// At most this many (default 100, maximum 10,000).
    pub limit: Option<usize>,
}

/// Events read, and where to continue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventsPage {
    /// CloudEvents, oldest first.
    #[schemars(with = "Vec<Value>")]
    pub events: Vec<crate::bus::Event>,
    /// Pass as `after` to get the events that follow (none are skipped).
    pub next_after: u64,
    /// False when a bound on the work of one answer (rows examined, bytes)
    /// stopped it before it had seen every event that could match.
    pub complete: bool,
}

/// An event to publish (reserved types refused, as for plugins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// Dotted type, e.g. `provider.rate_limited`.
    #[serde(rename = "type")]
    pub ty: String,
    /// What it is about.
    #[serde(default)]
    pub subject: Option<String>,
    /// Payload (any JSON).
    #[serde(default)]
    pub data: Value,
    /// Who publishes it; recorded as source `api/<source>` (default `api`).
    #[serde(default)]
    pub source: Option<String>,
}

/// A plugin as listings show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PluginStatus {
    /// Name.
    pub name: String,
    /// Version from its manifest.
    pub version: Option<String>,
    /// Kinds it exports.
    pub kinds: Vec<String>,
    /// `serving` or `quarantined`.
    pub state: String,
    /// Calls made.
    pub calls: u64,
    /// Calls that trapped or ran out of time or memory.
    pub failures: u64,
    /// Calls where it returned an error or a value the host refused.
    pub errors: u64,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Whether calls are refused until it changes or is reloaded.
    pub quarantined: bool,
    /// Deliveries skipped while quarantined.
    pub skipped: u64,
    /// The most recent failure or error.
    pub last_error: Option<String>,
    /// Events behind the head of the log, per fed kind.
    pub lag: BTreeMap<String, u64>,
    /// When the current version was loaded.
    pub loaded_at: Option<DateTime<Utc>>,
    /// SHA-256 of the component.
    pub digest: String,
    /// Grants a newer version on disk asks for beyond the running one's;
    /// it was refused and waits for `approve`. Empty when nothing waits.
    #[serde(default)]
    pub awaiting_approval: Vec<String>,
}

/// A background agent as listings show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentStatusView {
    /// The plugin's name (agents are addressed by it).
    pub plugin: String,
    /// The agent's own name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Milliseconds between ticks.
    pub interval_ms: u64,
    /// idle, running, paused, error or stopped.
    pub status: String,
    /// What it last said it was doing.
    pub activity: String,
    /// When its last tick ended.
    pub last_active: Option<DateTime<Utc>>,
    /// Completed ticks.
    pub cycles: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// A task registered, and the dependencies found for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Registered {
    /// The task.
    pub task: crate::coordination::Task,
    /// What the rules found between it and the tasks already known.
    pub dependencies: Vec<crate::coordination::Dependency>,
}

/// What to wait for; the first that happens ends the wait.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WaitFor {
    /// The process the state and output conditions are about.
    pub process_id: Option<String>,
    /// Until the process is in one of these states (already being in one
    /// ends the wait at once).
    pub states: Vec<ProcessState>,
    /// Until an output line of the process matches this regular expression
    /// (lines of the current run already printed count).
    pub output_regex: Option<String>,
    /// Until an event of this type pattern is published after the call
    /// (or after `after`); with `process_id`, only events about it.
    pub event_type: Option<String>,
    /// For `event_type`: events after this sequence count too.
    pub after: Option<u64>,
    /// Give up after this many seconds (default 30, at most 600).
    pub timeout_secs: Option<u64>,
}

/// What ended a wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WaitOutcome {
    /// `state`, `output`, `event` or `timeout`.
    pub matched: String,
    /// How long it waited, in milliseconds.
    pub waited_ms: u64,
    /// The process as it is now, when the wait was about one.
    pub process: Option<ProcessStatus>,
    /// The output line that matched.
    pub line: Option<OutputLineView>,
    /// The event that matched.
    #[schemars(with = "Option<Value>")]
    pub event: Option<crate::bus::Event>,
}

/// `/readyz`: whether the host can do its job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Readiness {
    /// True when every check passes.
    pub ready: bool,
    /// Each check and whether it passed.
    pub checks: BTreeMap<String, bool>,
    /// What failed, in words.
    pub reasons: Vec<String>,
}
