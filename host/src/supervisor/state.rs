//! The public vocabulary of process lifecycles: states, snapshots, output lines.
//!
//! Kept apart from the machinery so other rooms (API, plugins) can read what a
//! process is doing without seeing how it is done.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a process is in its lifecycle (a superset of seed 004's states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    /// Added, never started.
    Pending,
    /// Being spawned.
    Starting,
    /// Running.
    Running,
    /// Stopped with `SIGSTOP`; resumes with `SIGCONT`.
    Paused,
    /// A stop was asked for; waiting for the tree to exit.
    Stopping,
    /// Exited with status 0.
    Completed,
    /// Exited non-zero, died from a signal, or could not be spawned.
    Failed,
    /// Ran longer than its `timeout` and was stopped.
    Timeout,
    /// Stopped on request.
    Cancelled,
    /// Waiting before an automatic restart.
    Backoff,
    /// The run was under way when the host itself ended without ending it
    /// (killed, crashed, lost power); found in the journal by the next host
    /// (see `recovery`). Not `failed`: the process did nothing wrong.
    Interrupted,
}

impl ProcessState {
    /// Every state, in lifecycle order.
    pub const ALL: [ProcessState; 11] = [
        ProcessState::Pending,
        ProcessState::Starting,
        ProcessState::Running,
        ProcessState::Paused,
        ProcessState::Stopping,
        ProcessState::Completed,
        ProcessState::Failed,
        ProcessState::Timeout,
        ProcessState::Cancelled,
        ProcessState::Backoff,
        ProcessState::Interrupted,
    ];

    /// True when the process has finished and nothing will restart it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ProcessState::Completed
                | ProcessState::Failed
                | ProcessState::Timeout
                | ProcessState::Cancelled
                | ProcessState::Interrupted
        )
    }

    /// True while a child exists or is about to (anything a stop would act on).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            ProcessState::Starting
                | ProcessState::Running
                | ProcessState::Paused
                | ProcessState::Stopping
                | ProcessState::Backoff
        )
    }

    /// The lowercase name used in events and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Pending => "pending",
            ProcessState::Starting => "starting",
            ProcessState::Running => "running",
            ProcessState::Paused => "paused",
            ProcessState::Stopping => "stopping",
            ProcessState::Completed => "completed",
            ProcessState::Failed => "failed",
            ProcessState::Timeout => "timeout",
            ProcessState::Cancelled => "cancelled",
            ProcessState::Backoff => "backoff",
            ProcessState::Interrupted => "interrupted",
        }
    }
}

impl std::str::FromStr for ProcessState {
    type Err = String;

    /// The lowercase name, as shown (`running`, `failed`, ...).
    fn from_str(s: &str) -> Result<Self, String> {
        ProcessState::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = ProcessState::ALL.iter().map(|s| s.as_str()).collect();
                format!("`{s}` is not a state (use one of {})", names.join(", "))
            })
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status report about a process, from a plugin or the process itself.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct StatusUpdate {
    /// The state the reporter believes the process is in; kept as `reported_state`.
    pub state: Option<ProcessState>,
    /// Progress, conventionally 0.0 to 1.0.
    pub progress: Option<f32>,
    /// A human-readable message.
    pub message: Option<String>,
}

/// Where a process came from, which decides how long it is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A `[process.NAME]` table of `host.toml`: kept for the life of the host.
    Config,
    /// Created while the host runs (API, MCP, CLI): once finished, kept
    /// until removed or until the retention limit drops the oldest.
    Runtime,
}

/// A snapshot of one supervised process.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ProcessInfo {
    /// Unique name; for a process created at runtime, its generated id.
    pub name: String,
    /// Human-readable name, if one was given.
    pub label: Option<String>,
    /// Kind (picks status mappers).
    pub kind: String,
    /// Where it came from.
    pub origin: Origin,
    /// The command line as configured.
    pub command: String,
    /// Lifecycle state, owned by the supervisor.
    pub state: ProcessState,
    /// Last state reported through [`StatusUpdate`], if any.
    pub reported_state: Option<ProcessState>,
    /// PID of the current (or last) child.
    pub pid: Option<u32>,
    /// Exit code of the last run, if it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended the last run, if any.
    pub signal: Option<i32>,
    /// Automatic restarts since the last explicit start.
    pub restarts: u32,
    /// Last reported progress.
    pub progress: Option<f32>,
    /// Last reported message.
    pub message: Option<String>,
    /// When the process was added to the table.
    pub created_at: DateTime<Utc>,
    /// When the current (or last) run was spawned.
    pub started_at: Option<DateTime<Utc>>,
    /// When the last run ended for good (a terminal state); `None` while a
    /// run is active or will be restarted.
    pub completed_at: Option<DateTime<Utc>>,
    /// Milliseconds from `started_at` to `completed_at`, or to now while it runs.
    pub duration_ms: Option<u64>,
    /// The longest a run may take before it is stopped as `timeout`.
    pub timeout_ms: Option<u64>,
    /// When the last output line arrived.
    pub last_output_at: Option<DateTime<Utc>>,
    /// Offset of the current (or last) run's first output line: lines
    /// from it on (see [`OutputLine::offset`]) are that run's.
    pub run_output_offset: u64,
    /// Resident memory of the whole tree at the last resource sample of the
    /// current run, in bytes; `None` once the run is over.
    pub memory_bytes: Option<u64>,
    /// CPU use of the whole tree at the last resource sample, in percent of
    /// one core (so above 100 on several cores), over the tree's life at the
    /// first sample; `None` until then.
    pub cpu_percent: Option<f32>,
    /// Context from the spec (any JSON object).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Whether the current run's readiness probe passes (`process.ready` /
    /// `process.unready`); `None` for a process without a readiness probe.
    #[serde(default)]
    pub ready: Option<bool>,
    /// The dependencies (`depends_on`) whose condition it waits for before
    /// it can spawn: the state is `starting` meanwhile. Empty otherwise.
    #[serde(default)]
    pub waiting_for: Vec<String>,
}

/// Which pipe a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a process's output.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct OutputLine {
    /// The pipe it came from.
    pub stream: Stream,
    /// The text, without its newline; lossily decoded, possibly truncated.
    pub line: String,
    /// When the host read it.
    pub time: DateTime<Utc>,
    /// Position among every line the process printed (across runs),
    /// counting from 0; resume with "lines after offset".
    pub offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialize_lowercase_and_display_the_same() {
        for state in ProcessState::ALL {
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json, serde_json::Value::String(state.to_string()));
            let back: ProcessState = serde_json::from_value(json).unwrap();
            assert_eq!(back, state);
        }
    }

    #[test]
    fn only_finished_states_are_terminal() {
        let terminal: Vec<_> = ProcessState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                ProcessState::Completed,
                ProcessState::Failed,
                ProcessState::Timeout,
                ProcessState::Cancelled,
                ProcessState::Interrupted
            ]
        );
        assert!(!ProcessState::Pending.is_active());
        assert!(ProcessState::Backoff.is_active());
    }
}
