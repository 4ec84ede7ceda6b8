//! What to run: the `[process.NAME]` table of `host.toml`, checked.
//!
//! The spec is plain data with serde defaults so the config loader can
//! deserialize it straight from TOML; [`ProcessSpec::validate`] holds the
//! rules serde cannot express (names, ranges).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::deps::DependsOn;
use super::error::SupervisorError;
use super::probes::Probe;
use super::{duration, size};
use crate::name::ensure_valid_name;

/// How to run one supervised process.
///
/// `[process.NAME]` in `host.toml` deserializes straight into this; unknown
/// keys are rejected and `name` is filled from the table key. Durations are
/// strings such as `"500ms"`, `"10s"`, `"1m30s"` (or whole seconds); sizes
/// are strings such as `"512MiB"`, `"2GB"` (or whole bytes).
///
/// # Examples
///
/// ```
/// use host::supervisor::{ProcessSpec, RestartMode};
/// let mut spec: ProcessSpec = toml::from_str(
///     r#"
///     command = "npm run dev"
///     restart = "on-failure"
///     stop_timeout = "5s"
///     "#,
/// )?;
/// spec.name = "web".into(); // from the table key
/// spec.validate()?;
/// assert_eq!(spec.restart, RestartMode::OnFailure);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// Unique name, `[A-Za-z0-9._-]+`; taken from the table key. For a
    /// process created at runtime this is its generated id (`build_7f3a9c`).
    #[serde(skip)]
    pub name: String,
    /// A human-readable name shown beside the id (seed 004's `name`), any
    /// text up to 256 characters without control characters.
    ///
    /// Example: `label = "Implement login feature"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Shell command (run with `/bin/sh -c`) or, when `args` is given, the program.
    pub command: String,
    /// Program arguments; when present `command` is executed directly, without a shell.
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// Working directory. In `host.toml`, relative paths resolve against
    /// the config file's folder, and an absent `cwd` means that folder;
    /// a spec built in code without one runs in the host's own.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables on top of the host's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Kind of process, used to pick status mappers; `"default"` by default.
    /// The same characters as a name: seed 004's types (`jules_session`,
    /// `test_suite`, `build`, `server`, `analysis`, `custom`) and any other.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Start with the host; `true` by default.
    #[serde(default = "default_true")]
    pub autostart: bool,
    /// When to restart after an exit; `never` by default.
    #[serde(default)]
    pub restart: RestartMode,
    /// Most automatic restarts allowed within `restart_window` (default 5).
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// Sliding window for `max_restarts` (default `"60s"`).
    #[serde(default = "default_restart_window", with = "duration::required")]
    pub restart_window: Duration,
    /// First restart delay, doubled per restart (default `"500ms"`).
    #[serde(default = "default_backoff", with = "duration::required")]
    pub backoff: Duration,
    /// Largest restart delay (default `"30s"`).
    #[serde(default = "default_backoff_max", with = "duration::required")]
    pub backoff_max: Duration,
    /// Uptime after which a run counts as stable: when it ends, the next
    /// restart backs off from `backoff` again instead of doubling on. The
    /// restart limit still counts it. Unset by default: only restarts
    /// leaving `restart_window` lower the backoff.
    ///
    /// Example: `stable_after = "30s"`
    #[serde(
        default,
        with = "duration::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub stable_after: Option<Duration>,
    /// Longest a run may take before it is stopped and marked `timeout`.
    #[serde(default, with = "duration::optional")]
    pub timeout: Option<Duration>,
    /// Signal asking the process tree to stop (default `TERM`).
    #[serde(default)]
    pub stop_signal: StopSignal,
    /// Grace between `stop_signal` and `SIGKILL` (default `"10s"`).
    #[serde(default = "default_stop_timeout", with = "duration::required")]
    pub stop_timeout: Duration,
    /// Most resident memory (RSS, summed over the whole tree) the process may
    /// use, e.g. `"512MiB"`, `"2GB"` or a number of bytes; no limit when absent.
    ///
    /// Checked at each resource sample (see
    /// [`SupervisorConfig::resource_interval`](super::SupervisorConfig::resource_interval)),
    /// so a fast allocation can overshoot until the next one. Going over
    /// publishes `process.resource_limit` and stops the tree, which then ends
    /// `failed` ("memory limit exceeded") and restarts as `restart` says.
    #[serde(default, with = "size::optional")]
    pub memory_limit: Option<u64>,
    /// Free-form context carried into [`ProcessInfo`](super::ProcessInfo)
    /// (seed 004's `metadata`: session id, test file, ...); any JSON object,
    /// at most [`MAX_METADATA_BYTES`] once serialized.
    ///
    /// Example: `metadata = { session = "abc", attempt = 2 }`
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Watch the process's `cwd` while it runs and publish
    /// `workspace.file_created` / `_modified` / `_deleted` (see
    /// `supervisor::workspace`); `false` by default.
    #[serde(default)]
    pub watch_workspace: bool,
    /// Names of files or folders the workspace watch skips wherever they
    /// occur in a path (exact names, no globs). Setting it replaces the
    /// default list, [`DEFAULT_WORKSPACE_IGNORE`].
    ///
    /// Example: `workspace_ignore = [".git", "target", "out"]`
    #[serde(default = "default_workspace_ignore")]
    pub workspace_ignore: Vec<String>,
    /// Processes that must reach a condition before this one starts (see
    /// `supervisor::deps`): a table of name = `"started"`, `"healthy"`,
    /// `"log_ready"` or `"completed_successfully"`, or a list of names
    /// meaning `"started"`. Stops go the other way: dependants first.
    ///
    /// Example: `depends_on = { db = "healthy", migrate = "completed_successfully" }`
    #[serde(default, skip_serializing_if = "DependsOn::is_empty")]
    pub depends_on: DependsOn,
    /// When a run is ready to serve (`process.ready` / `process.unready`,
    /// and `depends_on = { x = "healthy" }`); a run without one has no
    /// readiness.
    ///
    /// Example: `readiness_probe = { http_get = "http://127.0.0.1:8080/health" }`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ///
    /// Boxed, as the other two: a probe is ~150 bytes, a spec is held by
    /// every process, and most have none.
    pub readiness_probe: Option<Box<Probe>>,
    /// When a run is broken: `failure_threshold` failures in a row stop it
    /// as `failed`, and `restart` decides what follows.
    ///
    /// Example: `liveness_probe = { exec = "test -S /tmp/app.sock", period = "5s" }`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Box<Probe>>,
    /// Checked first, alone: readiness and liveness wait until it passes,
    /// and a run that never passes it fails as a liveness failure does.
    ///
    /// Example: `startup_probe = { tcp = "127.0.0.1:5432", failure_threshold = 30 }`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Box<Probe>>,
}

/// What the workspace watch skips unless `workspace_ignore` says otherwise:
/// version control, dependency and build output folders, caches.
pub const DEFAULT_WORKSPACE_IGNORE: [&str; 11] = [
    ".git",
    ".hg",
    ".svn",
    "target",
    "node_modules",
    "__pycache__",
    ".venv",
    ".mypy_cache",
    ".pytest_cache",
    "build",
    "dist",
];

fn default_workspace_ignore() -> Vec<String> {
    DEFAULT_WORKSPACE_IGNORE
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Largest `metadata` object a process may carry, serialized.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Longest `label`, in characters.
pub const MAX_LABEL_CHARS: usize = 256;

fn default_kind() -> String {
    "default".into()
}
fn default_true() -> bool {
    true
}
fn default_max_restarts() -> u32 {
    5
}
fn default_restart_window() -> Duration {
    Duration::from_secs(60)
}
fn default_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(30)
}
fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}

impl ProcessSpec {
    /// A spec with every default, running `command` through `/bin/sh -c`.
    ///
    /// For runtime requests (API, MCP) that carry only a name and a command.
    pub fn new(name: impl Into<String>, command: impl Into<String>) -> ProcessSpec {
        ProcessSpec {
            name: name.into(),
            label: None,
            command: command.into(),
            args: None,
            cwd: None,
            env: BTreeMap::new(),
            kind: default_kind(),
            autostart: true,
            restart: RestartMode::Never,
            max_restarts: default_max_restarts(),
            restart_window: default_restart_window(),
            backoff: default_backoff(),
            backoff_max: default_backoff_max(),
            stable_after: None,
            timeout: None,
            stop_signal: StopSignal::Term,
            stop_timeout: default_stop_timeout(),
            memory_limit: None,
            metadata: serde_json::Map::new(),
            watch_workspace: false,
            workspace_ignore: default_workspace_ignore(),
            depends_on: DependsOn::default(),
            readiness_probe: None,
            liveness_probe: None,
            startup_probe: None,
        }
    }

    /// Checks what serde cannot: the name, the command and the numbers.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidSpec`] naming the first offending field.
    pub fn validate(&self) -> Result<(), SupervisorError> {
        let bad = |field: &str, reason: String| SupervisorError::InvalidSpec {
            name: self.name.clone(),
            field: field.into(),
            reason,
        };
        // The kind first: a runtime process's name is built from it.
        ensure_valid_name(&self.kind).map_err(|reason| bad("kind", reason))?;
        if self.kind.len() > 64 {
            return Err(bad("kind", "must be at most 64 characters".into()));
        }
        ensure_valid_name(&self.name).map_err(|reason| bad("name", reason))?;
        if self.command.trim().is_empty() {
            return Err(bad("command", "must not be empty".into()));
        }
        if self.command.contains('\0') {
            return Err(bad("command", "must not contain NUL bytes".into()));
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
                return Err(bad(
                    &format!("env.{key}"),
                    "names must be non-empty without `=`, and nothing may contain NUL".into(),
                ));
            }
        }
        if self.backoff > self.backoff_max {
            return Err(bad(
                "backoff",
                format!(
                    "({}) must not exceed backoff_max ({})",
                    duration::format(self.backoff),
                    duration::format(self.backoff_max)
                ),
            ));
        }
        if self.restart != RestartMode::Never && self.restart_window.is_zero() {
            return Err(bad("restart_window", "must be longer than 0s".into()));
        }
        if self.stable_after.is_some_and(|d| d.is_zero()) {
            return Err(bad(
                "stable_after",
                "must be longer than 0s (leave it out to never reset the backoff early)".into(),
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(bad(
                "timeout",
                "must be longer than 0s (leave it out for no timeout)".into(),
            ));
        }
        if self.memory_limit == Some(0) {
            return Err(bad(
                "memory_limit",
                "must be more than 0 bytes (leave it out for no limit)".into(),
            ));
        }
        if let Some(label) = &self.label {
            if label.chars().count() > MAX_LABEL_CHARS {
                return Err(bad(
                    "label",
                    format!("must be at most {MAX_LABEL_CHARS} characters"),
                ));
            }
            if label.chars().any(char::is_control) {
                return Err(bad("label", "must not contain control characters".into()));
            }
        }
        for entry in &self.workspace_ignore {
            if entry.is_empty() || entry == "." || entry == ".." || entry.contains(['/', '\0']) {
                return Err(bad(
                    "workspace_ignore",
                    format!(
                        "`{entry}` must be a file or folder name: not empty, `.` or `..`, without `/`"
                    ),
                ));
            }
        }
        for (field, probe) in [
            ("readiness_probe", &self.readiness_probe),
            ("liveness_probe", &self.liveness_probe),
            ("startup_probe", &self.startup_probe),
        ] {
            if let Some(probe) = probe {
                probe.validate(&self.name, field)?;
            }
        }
        for dep in self.depends_on.0.keys() {
            ensure_valid_name(dep).map_err(|reason| bad(&format!("depends_on.{dep}"), reason))?;
        }
        let metadata_bytes = serde_json::to_string(&self.metadata).map_or(0, |s| s.len());
        if metadata_bytes > MAX_METADATA_BYTES {
            return Err(bad(
                "metadata",
                format!("is {metadata_bytes} bytes as JSON; at most {MAX_METADATA_BYTES} are kept"),
            ));
        }
        Ok(())
    }
}

/// When a process is restarted after it exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// Never restart.
    #[default]
    Never,
    /// Restart after a non-zero exit, a signal, or a timeout.
    OnFailure,
    /// Restart after any exit not caused by a stop request.
    Always,
}

/// Signals that may be used to ask a process to stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StopSignal {
    /// `SIGTERM`.
    #[default]
    Term,
    /// `SIGINT`.
    Int,
    /// `SIGHUP`.
    Hup,
    /// `SIGQUIT`.
    Quit,
    /// `SIGKILL` (no grace is possible).
    Kill,
    /// `SIGUSR1`.
    Usr1,
    /// `SIGUSR2`.
    Usr2,
}

impl StopSignal {
    /// The short name, as written in `host.toml` (`"TERM"`).
    pub fn as_str(self) -> &'static str {
        match self {
            StopSignal::Term => "TERM",
            StopSignal::Int => "INT",
            StopSignal::Hup => "HUP",
            StopSignal::Quit => "QUIT",
            StopSignal::Kill => "KILL",
            StopSignal::Usr1 => "USR1",
            StopSignal::Usr2 => "USR2",
        }
    }

    pub(crate) fn signal(self) -> Signal {
        match self {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Int => Signal::SIGINT,
            StopSignal::Hup => Signal::SIGHUP,
            StopSignal::Quit => Signal::SIGQUIT,
            StopSignal::Kill => Signal::SIGKILL,
            StopSignal::Usr1 => Signal::SIGUSR1,
            StopSignal::Usr2 => Signal::SIGUSR2,
        }
    }
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.as_str())
    }
}

impl FromStr for StopSignal {
    type Err = String;

    /// Accepts `TERM`, `SIGTERM`, `term`, ... for the supported signals.
    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.trim().to_ascii_uppercase();
        let short = upper.strip_prefix("SIG").unwrap_or(&upper);
        [
            StopSignal::Term,
            StopSignal::Int,
            StopSignal::Hup,
            StopSignal::Quit,
            StopSignal::Kill,
            StopSignal::Usr1,
            StopSignal::Usr2,
        ]
        .into_iter()
        .find(|sig| sig.as_str() == short)
        .ok_or_else(|| {
            format!("unknown stop signal `{s}` (use TERM, INT, HUP, QUIT, KILL, USR1 or USR2)")
        })
    }
}

impl Serialize for StopSignal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StopSignal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<ProcessSpec, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn a_spec_with_only_a_command_gets_every_default() {
        let spec = from_toml(r#"command = "echo hi""#).unwrap();
        assert_eq!(spec.command, "echo hi");
        assert_eq!(spec.args, None);
        assert_eq!(spec.kind, "default");
        assert!(spec.autostart);
        assert_eq!(spec.restart, RestartMode::Never);
        assert_eq!(spec.max_restarts, 5);
        assert_eq!(spec.restart_window, Duration::from_secs(60));
        assert_eq!(spec.backoff, Duration::from_millis(500));
        assert_eq!(spec.backoff_max, Duration::from_secs(30));
        assert_eq!(spec.timeout, None);
        assert_eq!(spec.stop_signal, StopSignal::Term);
        assert_eq!(spec.stop_timeout, Duration::from_secs(10));
        assert_eq!(spec.memory_limit, None);
        assert!(spec.env.is_empty() && spec.metadata.is_empty());
        assert!(!spec.watch_workspace);
        assert_eq!(spec.workspace_ignore, DEFAULT_WORKSPACE_IGNORE);
    }

    #[test]
    fn every_field_deserializes_from_toml() {
        let spec = from_toml(
            r#"
            command = "/usr/bin/env"
            args = ["-i"]
            cwd = "/tmp"
            env = { A = "1" }
            kind = "test_suite"
            autostart = false
            restart = "on-failure"
            max_restarts = 2
            restart_window = "5m"
            backoff = "100ms"
            backoff_max = "2s"
            stable_after = "30s"
            timeout = "1h"
            stop_signal = "SIGINT"
            stop_timeout = "3s"
            memory_limit = "512MiB"
            metadata = { session = "abc", attempt = 2 }
            label = "Run the tests"
            watch_workspace = true
            workspace_ignore = ["out"]
            "#,
        )
        .unwrap();
        assert!(spec.watch_workspace);
        assert_eq!(spec.workspace_ignore, ["out"]);
        assert_eq!(spec.args.as_deref(), Some(&["-i".to_string()][..]));
        assert_eq!(spec.restart, RestartMode::OnFailure);
        assert_eq!(spec.restart_window, Duration::from_secs(300));
        assert_eq!(spec.stable_after, Some(Duration::from_secs(30)));
        assert_eq!(spec.timeout, Some(Duration::from_secs(3600)));
        assert_eq!(spec.stop_signal, StopSignal::Int);
        assert_eq!(spec.memory_limit, Some(512 << 20));
        assert_eq!(spec.metadata["session"], "abc");
        assert_eq!(spec.metadata["attempt"], 2);
        assert!(!spec.autostart);
    }

    #[test]
    fn an_unknown_field_is_rejected_by_name() {
        let err = from_toml("command = \"x\"\nrestarts = 3").unwrap_err();
        assert!(err.to_string().contains("restarts"), "{err}");
    }

    #[test]
    fn a_bad_duration_or_signal_is_rejected_with_the_reason() {
        let err = from_toml("command = \"x\"\nbackoff = \"fast\"").unwrap_err();
        assert!(err.to_string().contains("fast"), "{err}");
        let err = from_toml("command = \"x\"\nstop_signal = \"SEGV\"").unwrap_err();
        assert!(err.to_string().contains("unknown stop signal"), "{err}");
    }

    #[test]
    fn stop_signals_parse_with_or_without_the_sig_prefix() {
        assert_eq!("TERM".parse(), Ok(StopSignal::Term));
        assert_eq!("sigusr2".parse(), Ok(StopSignal::Usr2));
        assert_eq!("SIGKILL".parse(), Ok(StopSignal::Kill));
        assert!("SIGSEGV".parse::<StopSignal>().is_err());
        assert_eq!(StopSignal::Hup.to_string(), "SIGHUP");
    }

    #[test]
    fn restart_modes_are_kebab_case() {
        assert_eq!(
            from_toml("command = \"x\"\nrestart = \"always\"")
                .unwrap()
                .restart,
            RestartMode::Always
        );
        assert!(from_toml("command = \"x\"\nrestart = \"on_failure\"").is_err());
    }

    #[test]
    fn validation_names_the_offending_field() {
        let field_of = |spec: &ProcessSpec| match spec.validate() {
            Err(SupervisorError::InvalidSpec { field, .. }) => field,
            other => panic!("expected InvalidSpec, got {other:?}"),
        };
        assert!(ProcessSpec::new("web-1.api_x", "true").validate().is_ok());
        assert_eq!(field_of(&ProcessSpec::new("", "true")), "name");
        assert_eq!(field_of(&ProcessSpec::new("a/b", "true")), "name");
        assert_eq!(field_of(&ProcessSpec::new("..", "true")), "name");
        assert_eq!(field_of(&ProcessSpec::new("ok", "  ")), "command");
        let mut spec = ProcessSpec::new("ok", "true");
        spec.kind = "two words".into();
        assert_eq!(field_of(&spec), "kind");
        let mut spec = ProcessSpec::new("ok", "true");
        spec.backoff = Duration::from_secs(60);
        assert_eq!(field_of(&spec), "backoff");
        let mut spec = ProcessSpec::new("ok", "true");
        spec.env.insert("A=B".into(), "x".into());
        assert_eq!(field_of(&spec), "env.A=B");
        let mut spec = ProcessSpec::new("ok", "true");
        spec.memory_limit = Some(0);
        assert_eq!(field_of(&spec), "memory_limit");
        let mut spec = ProcessSpec::new("ok", "true");
        spec.workspace_ignore = vec!["src/gen".into()];
        assert_eq!(field_of(&spec), "workspace_ignore");
        let mut spec = ProcessSpec::new("ok", "true");
        spec.label = Some("two\nlines".into());
        assert_eq!(field_of(&spec), "label");
        let mut spec = ProcessSpec::new("ok", "true");
        spec.metadata
            .insert("blob".into(), "x".repeat(MAX_METADATA_BYTES).into());
        assert_eq!(field_of(&spec), "metadata");
    }

    #[test]
    fn a_spec_serializes_back_to_toml_that_parses_the_same() {
        let mut spec = ProcessSpec::new("x", "sleep 1");
        spec.timeout = Some(Duration::from_millis(1500));
        spec.memory_limit = Some(3 << 30);
        let text = toml::to_string(&spec).unwrap();
        let back = from_toml(&text).unwrap();
        assert_eq!(back.timeout, spec.timeout);
        assert_eq!(back.memory_limit, spec.memory_limit);
        assert_eq!(back.stop_signal, spec.stop_signal);
    }
}
