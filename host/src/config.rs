//! `host.toml`: what a user writes to describe a host.
//!
//! Parsed with serde (unknown keys rejected, so a typo is an error, not a
//! silently ignored setting); every error names the file, the line and
//! column, and the field. Relative paths are resolved against the folder
//! of the config file, so a config works from any working directory.
//!
//! ```toml
//! [host]
//! state_dir = ".state"
//!
//! [plugins]
//! dir = "plugins"
//! deadline_ms = 100
//!
//! [process.web]
//! command = "python3 -m http.server 8000"
//! restart = "on-failure"
//!
//! [[task]]
//! id = "login-api"
//! repository = "backend"
//! title = "Add /login endpoint"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::coordination::{CoordinationConfig, Task};
use crate::plugins::{Ceilings, LimitDefaults};
use crate::runtime::RateLimits;
use crate::supervisor::ProcessSpec;

/// A whole `host.toml`, with defaults applied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// `[host]`: where state lives.
    #[serde(default)]
    pub host: HostSection,
    /// `[plugins]`: the plugin folder and sandbox defaults.
    #[serde(default)]
    pub plugins: PluginsSection,
    /// `[bus]`: event log sizes.
    #[serde(default)]
    pub bus: BusSection,
    /// `[supervisor]`: output capture sizes.
    #[serde(default)]
    pub supervisor: SupervisorSection,
    /// `[coordination]`: dependency detection settings.
    #[serde(default)]
    pub coordination: CoordinationConfig,
    /// `[api]`: the HTTP API, MCP endpoint and metrics of the running host.
    #[serde(default)]
    pub api: crate::api::ApiConfig,
    /// `[process.NAME]` tables: the processes to supervise.
    #[serde(default)]
    pub process: BTreeMap<String, ProcessSpec>,
    /// `[[task]]` entries: tasks registered at start.
    #[serde(default, rename = "task")]
    pub tasks: Vec<Task>,
}

/// `[host]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostSection {
    /// Journal, logs, compile cache and plugin state.
    /// Example: `state_dir = ".state"`
    pub state_dir: Option<PathBuf>,
    /// How long a stop (Ctrl-C, SIGTERM) may take before every process
    /// tree still running is killed. Example: `shutdown_timeout = "10s"`
    #[serde(with = "crate::supervisor::duration::required")]
    pub shutdown_timeout: std::time::Duration,
    /// Run each process in a PID namespace of its own, so nothing it
    /// starts outlives it or a `kill -9` of the host (needs root, or a host
    /// started under `unshare --user --map-root-user`; falls back by itself
    /// otherwise). `false` forces the fallback: process groups, the child
    /// subreaper and `/proc` walks. Example: `pid_namespaces = false`
    pub pid_namespaces: bool,
}

impl Default for HostSection {
    fn default() -> Self {
        Self {
            state_dir: None,
            shutdown_timeout: std::time::Duration::from_secs(10),
            pid_namespaces: true,
        }
    }
}

/// `[plugins]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsSection {
    /// Folder of plugins (overridden by `--plugins`).
    /// Example: `dir = "plugins"`
    pub dir: Option<PathBuf>,
    /// Default deadline of one plugin call. Example: `deadline_ms = 100`
    pub deadline_ms: u64,
    /// Default memory cap of a plugin. Example: `memory_mib = 64`
    pub memory_mib: u64,
    /// Failures in a row before quarantine. Example: `max_failures = 3`
    pub max_failures: u32,
    /// Quiet time before a changed file is reloaded. Example: `debounce_ms = 100`
    pub debounce_ms: u64,
    /// Run `[build] command` of manifests whose component is missing.
    /// Example: `build_missing = false`
    pub build_missing: bool,
    /// How long such a build may run before it is killed (with everything
    /// it started). Example: `build_timeout = "20m"`
    #[serde(with = "crate::supervisor::duration::required")]
    pub build_timeout: std::time::Duration,
    /// Reload plugins when their files change. Example: `watch = false`
    pub watch: bool,
    /// Size of the compilation cache in the state folder (`cache/`); the
    /// least recently used entries are removed past it, and entries of
    /// another host build at once. Example: `cache_max_size = "256MiB"`
    #[serde(deserialize_with = "crate::supervisor::size::required::deserialize")]
    pub cache_max_size: u64,
    /// Depth of a chain of decisions (an event a plugin emitted because of
    /// an event a plugin emitted because of ...) at which the chain is cut
    /// and reported as `plugin.loop_detected`. Example: `max_chain_depth = 8`
    pub max_chain_depth: u32,
    /// The longest deadline any manifest may set. Example: `max_deadline_ms = 10000`
    pub max_deadline_ms: u64,
    /// The largest memory cap any manifest may set. Example: `max_memory_mib = 1024`
    pub max_memory_mib: u64,
    /// Folders, besides the plugins folder, manifests may grant access to
    /// (with everything under them). Example: `allowed_dirs = ["/srv/reports"]`
    pub allowed_dirs: Vec<PathBuf>,
    /// Environment variables manifests may pass through. Example:
    /// `allowed_env = ["SLACK_WEBHOOK"]`
    pub allowed_env: Vec<String>,
    /// Swap in a new version of a plugin that asks for more grants than
    /// the running one without `host plugins approve`. Example:
    /// `accept_new_grants = true`
    pub accept_new_grants: bool,
    /// Shadow on reload: a new version of an event handler first runs
    /// beside the old one on the live stream for `shadow_events` events,
    /// its actions recorded but not performed, and is swapped in only if
    /// it did not fail (`plugin.shadow_report`). Example: `shadow = true`
    pub shadow: bool,
    /// Events a shadow sees before it is judged, 1 to 1000000. Example:
    /// `shadow_events = 100`
    pub shadow_events: u64,
    /// Events each plugin may emit per second, sustained. Example: `emits_per_sec = 1000`
    pub emits_per_sec: f64,
    /// Emits each plugin may make in a burst. Example: `emit_burst = 2000`
    pub emit_burst: f64,
    /// Other actions (start, stop, restart, pause, resume, status, tasks)
    /// each plugin may take per second, sustained. Example: `actions_per_sec = 5`
    pub actions_per_sec: f64,
    /// Other actions each plugin may take in a burst. Example: `action_burst = 20`
    pub action_burst: f64,
    /// Rates of named plugins, over the ones above. Example:
    /// `[plugins.rate.metrics-relay]` with `emits_per_sec = 20000`
    pub rate: BTreeMap<String, RateOverride>,
}

/// `[plugins.rate.NAME]`: a plugin's own rates; what is left out is the
/// host-wide figure.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateOverride {
    /// Emits per second, sustained.
    pub emits_per_sec: Option<f64>,
    /// Emits in a burst.
    pub emit_burst: Option<f64>,
    /// Other actions per second, sustained.
    pub actions_per_sec: Option<f64>,
    /// Other actions in a burst.
    pub action_burst: Option<f64>,
}

impl PluginsSection {
    /// The rates of every plugin without an override.
    pub fn rates(&self) -> RateLimits {
        RateLimits {
            emits_per_sec: self.emits_per_sec,
            emit_burst: self.emit_burst,
            actions_per_sec: self.actions_per_sec,
            action_burst: self.action_burst,
        }
    }

    /// The rates of each plugin named under `[plugins.rate]`.
    pub fn rate_overrides(&self) -> BTreeMap<String, RateLimits> {
        let base = self.rates();
        self.rate
            .iter()
            .map(|(name, o)| {
                let limits = RateLimits {
                    emits_per_sec: o.emits_per_sec.unwrap_or(base.emits_per_sec),
                    emit_burst: o.emit_burst.unwrap_or(base.emit_burst),
                    actions_per_sec: o.actions_per_sec.unwrap_or(base.actions_per_sec),
                    action_burst: o.action_burst.unwrap_or(base.action_burst),
                };
                (name.clone(), limits)
            })
            .collect()
    }

    /// The most any manifest may ask for.
    pub fn ceilings(&self) -> Ceilings {
        Ceilings {
            max_deadline: std::time::Duration::from_millis(self.max_deadline_ms),
            max_memory_bytes: self.max_memory_mib << 20,
            allowed_dirs: self.allowed_dirs.clone(),
            allowed_env: self.allowed_env.clone(),
        }
    }

    /// The defaults of plugins whose manifest sets no limits.
    pub fn limit_defaults(&self) -> LimitDefaults {
        LimitDefaults {
            deadline: std::time::Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_mib << 20,
        }
    }
}

impl Default for PluginsSection {
    fn default() -> Self {
        Self {
            dir: None,
            deadline_ms: 100,
            memory_mib: 64,
            max_failures: 3,
            debounce_ms: 100,
            build_missing: true,
            build_timeout: std::time::Duration::from_secs(600),
            watch: true,
            cache_max_size: crate::plugins::DEFAULT_CACHE_MAX_BYTES,
            max_chain_depth: crate::plugins::DEFAULT_MAX_CHAIN_DEPTH,
            max_deadline_ms: crate::plugins::DEFAULT_MAX_DEADLINE_MS,
            max_memory_mib: crate::plugins::DEFAULT_MAX_MEMORY_MIB,
            allowed_dirs: Vec::new(),
            allowed_env: Vec::new(),
            accept_new_grants: false,
            shadow: false,
            shadow_events: crate::plugins::DEFAULT_SHADOW_EVENTS,
            emits_per_sec: RateLimits::default().emits_per_sec,
            emit_burst: RateLimits::default().emit_burst,
            actions_per_sec: RateLimits::default().actions_per_sec,
            action_burst: RateLimits::default().action_burst,
            rate: BTreeMap::new(),
        }
    }
}

/// `[bus]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusSection {
    /// Events kept in memory for fast reads. Example: `ring_capacity = 10000`
    pub ring_capacity: usize,
    /// Bytes the in-memory ring may hold; the oldest events leave first
    /// when either bound is reached. Example: `ring_max_bytes = "8MiB"`
    #[serde(deserialize_with = "crate::supervisor::size::required::deserialize")]
    pub ring_max_bytes: u64,
    /// Events kept in the journal; older ones are pruned (0 keeps all).
    /// Example: `max_journal_events = 1000000`
    pub max_journal_events: u64,
    /// Bytes of events kept in the journal; the oldest are pruned first
    /// (0: no byte limit). Example: `max_journal_bytes = "1GiB"`
    #[serde(deserialize_with = "crate::supervisor::size::required::deserialize")]
    pub max_journal_bytes: u64,
    /// Largest event any publisher (plugin, API, process) may publish.
    /// Example: `max_event_bytes = "1MiB"`
    #[serde(deserialize_with = "crate::supervisor::size::required::deserialize")]
    pub max_event_bytes: u64,
    /// Size of the journal's write-ahead log that triggers a checkpoint
    /// truncating it back. Example: `max_wal_bytes = "64MiB"`
    #[serde(deserialize_with = "crate::supervisor::size::required::deserialize")]
    pub max_wal_bytes: u64,
}

impl Default for BusSection {
    fn default() -> Self {
        let d = crate::bus::BusConfig::default();
        Self {
            ring_capacity: d.ring_capacity,
            ring_max_bytes: d.ring_max_bytes as u64,
            max_journal_events: d.max_journal_events,
            max_journal_bytes: d.max_journal_bytes,
            max_event_bytes: d.max_event_bytes as u64,
            max_wal_bytes: d.max_wal_bytes,
        }
    }
}

impl BusSection {
    /// The bus's configuration.
    pub fn bus_config(&self) -> crate::bus::BusConfig {
        crate::bus::BusConfig {
            ring_capacity: self.ring_capacity,
            ring_max_bytes: self.ring_max_bytes as usize,
            max_journal_events: self.max_journal_events,
            max_journal_bytes: self.max_journal_bytes,
            max_event_bytes: self.max_event_bytes as usize,
            max_wal_bytes: self.max_wal_bytes,
        }
    }
}

/// `[supervisor]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorSection {
    /// Output lines kept in memory per process. Example: `ring_lines = 1000`
    pub ring_lines: usize,
    /// Size at which a process log file is rotated (at least 4 KiB).
    /// Example: `log_max_bytes = "10MiB"`
    #[serde(deserialize_with = "crate::supervisor::size::required::deserialize")]
    pub log_max_bytes: u64,
    /// Rotated generations of a process log kept (`.1` newest to `.N`;
    /// 0 keeps only the live file; at most 1000). Example: `log_generations = 5`
    pub log_generations: u32,
    /// Gzip rotated generations (`.N.gz`, on a thread of their own); `host
    /// logs --file` and the API read them back. Example: `log_compress = true`
    pub log_compress: bool,
    /// How often to sample memory, CPU and disk I/O of running process
    /// trees (`process.resource` events, `memory_limit`): at least 100 ms;
    /// `"0s"` turns sampling and limits off. Example: `resource_interval = "30s"`
    #[serde(with = "crate::supervisor::duration::required")]
    pub resource_interval: std::time::Duration,
    /// Finished processes created at runtime (API, MCP, CLI) that stay
    /// queryable; the oldest beyond this are removed.
    /// Example: `retain_finished = 1000`
    pub retain_finished: usize,
}

impl Default for SupervisorSection {
    fn default() -> Self {
        Self {
            ring_lines: 1000,
            log_max_bytes: 10 << 20,
            log_generations: 3,
            log_compress: false,
            resource_interval: std::time::Duration::from_secs(10),
            retain_finished: 1000,
        }
    }
}

/// A config error, located.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), location(*line, *column))]
pub struct ConfigError {
    /// The config file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong, naming the field.
    pub message: String,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// A TOML error with its place and the field it is about.
pub(crate) struct LocatedError {
    /// 1-based line, when known.
    pub(crate) line: Option<usize>,
    /// 1-based column, when known.
    pub(crate) column: Option<usize>,
    /// The message, naming the field (`process.web.autostart: ...`).
    pub(crate) message: String,
}

/// Locate `err` in `text` and name the field it is about.
///
/// serde's messages say what was wrong ("invalid type: string \"yes\",
/// expected a boolean") but not where; the span does. The field is the key
/// on the span's line, qualified by the table header above it.
pub(crate) fn locate_toml_error(text: &str, err: &toml::de::Error) -> LocatedError {
    let message = err.message().trim().to_string();
    let Some(span) = err.span() else {
        return LocatedError {
            line: None,
            column: None,
            message,
        };
    };
    let (line, column) = line_col(text, span.start);
    let start = text[..span.start.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let here = text[start..end].trim();
    let header = |line: &str| {
        line.trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string()
    };
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(header);
    let message = if message.starts_with("missing field") && !here.starts_with('[') {
        // A missing top-level field spans the whole document; the line
        // under it says nothing about where the field belongs.
        message
    } else if here.starts_with('[') {
        format!("in table `{}`: {message}", header(here))
    } else if let Some((key, _)) = here.split_once('=') {
        let key = key.trim();
        let field = match &table {
            Some(t) => format!("{t}.{key}"),
            None => key.to_string(),
        };
        if message.contains(&format!("`{key}`")) {
            match table {
                Some(t) => format!("in table `{t}`: {message}"),
                None => message,
            }
        } else {
            format!("field `{field}`: {message}")
        }
    } else {
        message
    };
    LocatedError {
        line: Some(line),
        column: Some(column),
        message,
    }
}

/// The bounds of the host-wide numbers: `(table, key, check)`, each check
/// returning why the value is refused. Values are checked, never wrapped or
/// clamped: a typo of a few zeros is an error naming the field.
type RangeCheck = (
    &'static str,
    &'static str,
    Box<dyn Fn(&HostConfig) -> Option<String>>,
);

/// Why a rate is refused: it must be a positive number.
fn positive(value: f64) -> Option<String> {
    (!(value.is_finite() && value > 0.0)).then(|| "must be a positive number".to_string())
}

/// Why a burst is refused: at least one action must fit in it.
fn burst(value: f64) -> Option<String> {
    (!(value.is_finite() && value >= 1.0)).then(|| "must be a number, at least 1".to_string())
}

fn range_checks() -> Vec<RangeCheck> {
    let bound = |ok: bool, why: &str| (!ok).then(|| why.to_string());
    vec![
        (
            "plugins",
            "shadow_events",
            Box::new(move |c: &HostConfig| {
                bound(
                    (1..=1_000_000).contains(&c.plugins.shadow_events),
                    "must be from 1 to 1000000 events",
                )
            }),
        ),
        (
            "plugins",
            "deadline_ms",
            Box::new(|c: &HostConfig| {
                crate::plugins::check_deadline_ms(c.plugins.deadline_ms).err()
            }),
        ),
        (
            "plugins",
            "memory_mib",
            Box::new(|c: &HostConfig| crate::plugins::check_memory_mib(c.plugins.memory_mib).err()),
        ),
        (
            "plugins",
            "max_deadline_ms",
            Box::new(move |c: &HostConfig| {
                let p = &c.plugins;
                crate::plugins::check_deadline_ms(p.max_deadline_ms)
                    .err()
                    .or_else(|| {
                        bound(
                            p.max_deadline_ms >= p.deadline_ms,
                            "must be at least `deadline_ms`, the default it caps",
                        )
                    })
            }),
        ),
        (
            "plugins",
            "max_memory_mib",
            Box::new(move |c: &HostConfig| {
                let p = &c.plugins;
                crate::plugins::check_memory_mib(p.max_memory_mib)
                    .err()
                    .or_else(|| {
                        bound(
                            p.max_memory_mib >= p.memory_mib,
                            "must be at least `memory_mib`, the default it caps",
                        )
                    })
            }),
        ),
        (
            "plugins",
            "max_chain_depth",
            Box::new(move |c: &HostConfig| {
                bound(
                    (1..=64).contains(&c.plugins.max_chain_depth),
                    "must be between 1 and 64",
                )
            }),
        ),
        (
            "plugins",
            "emits_per_sec",
            Box::new(|c: &HostConfig| positive(c.plugins.emits_per_sec)),
        ),
        (
            "plugins",
            "emit_burst",
            Box::new(|c: &HostConfig| burst(c.plugins.emit_burst)),
        ),
        (
            "plugins",
            "actions_per_sec",
            Box::new(|c: &HostConfig| positive(c.plugins.actions_per_sec)),
        ),
        (
            "plugins",
            "action_burst",
            Box::new(|c: &HostConfig| burst(c.plugins.action_burst)),
        ),
        (
            "supervisor",
            "resource_interval",
            Box::new(move |c: &HostConfig| {
                let d = c.supervisor.resource_interval;
                bound(
                    d.is_zero() || d >= std::time::Duration::from_millis(100),
                    "must be at least 100ms (CPU figures are meaningless below), or \"0s\" to turn sampling off",
                )
            }),
        ),
        (
            "supervisor",
            "log_max_bytes",
            Box::new(move |c: &HostConfig| {
                bound(c.supervisor.log_max_bytes >= 4096, "must be at least 4KiB")
            }),
        ),
        (
            "supervisor",
            "log_generations",
            Box::new(move |c: &HostConfig| {
                bound(c.supervisor.log_generations <= 1000, "must be at most 1000")
            }),
        ),
        (
            "supervisor",
            "ring_lines",
            Box::new(move |c: &HostConfig| {
                bound(
                    c.supervisor.ring_lines <= 1_000_000,
                    "must be at most 1000000 lines per process",
                )
            }),
        ),
        (
            "supervisor",
            "retain_finished",
            Box::new(move |c: &HostConfig| {
                bound(
                    c.supervisor.retain_finished <= 1_000_000,
                    "must be at most 1000000",
                )
            }),
        ),
        (
            "host",
            "shutdown_timeout",
            Box::new(move |c: &HostConfig| {
                bound(
                    c.host.shutdown_timeout <= std::time::Duration::from_secs(3600),
                    "must be at most 1h",
                )
            }),
        ),
        (
            "bus",
            "ring_capacity",
            Box::new(move |c: &HostConfig| {
                bound(
                    c.bus.ring_capacity <= 10_000_000,
                    "must be at most 10000000 events",
                )
            }),
        ),
        (
            "bus",
            "max_event_bytes",
            Box::new(move |c: &HostConfig| {
                let b = &c.bus;
                bound(
                    (1024..=64 * MIB).contains(&b.max_event_bytes),
                    "must be between 1KiB and 64MiB",
                )
                .or_else(|| {
                    bound(
                        b.max_event_bytes <= b.ring_max_bytes,
                        "must be at most `ring_max_bytes`: the ring must hold one event",
                    )
                })
            }),
        ),
        (
            "bus",
            "ring_max_bytes",
            Box::new(move |c: &HostConfig| {
                bound(
                    (MIB..=64 * GIB).contains(&c.bus.ring_max_bytes),
                    "must be between 1MiB and 64GiB",
                )
            }),
        ),
        (
            "bus",
            "max_journal_bytes",
            Box::new(move |c: &HostConfig| {
                let b = c.bus.max_journal_bytes;
                bound(
                    b == 0 || b >= MIB,
                    "must be at least 1MiB, or 0 for no byte limit",
                )
            }),
        ),
        (
            "bus",
            "max_wal_bytes",
            Box::new(move |c: &HostConfig| {
                bound(
                    (MIB..=16 * GIB).contains(&c.bus.max_wal_bytes),
                    "must be between 1MiB and 16GiB",
                )
            }),
        ),
        (
            "plugins",
            "max_failures",
            Box::new(move |c: &HostConfig| {
                bound(
                    (1..=1000).contains(&c.plugins.max_failures),
                    "must be between 1 and 1000",
                )
            }),
        ),
        (
            "plugins",
            "debounce_ms",
            Box::new(move |c: &HostConfig| {
                bound(
                    c.plugins.debounce_ms <= 60_000,
                    "must be at most 60000 (a minute)",
                )
            }),
        ),
        (
            "plugins",
            "build_timeout",
            Box::new(move |c: &HostConfig| {
                let t = c.plugins.build_timeout;
                bound(
                    t >= std::time::Duration::from_secs(1)
                        && t <= std::time::Duration::from_secs(24 * 3600),
                    "must be between 1s and 24h",
                )
            }),
        ),
        (
            "api",
            "listen",
            Box::new(move |c: &HostConfig| {
                c.api.listen.as_deref().and_then(|text| {
                    text.parse::<std::net::SocketAddr>()
                        .err()
                        .map(|_| format!("= {text:?} is not an address like 127.0.0.1:7700"))
                })
            }),
        ),
    ]
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The 1-based line of `key` inside `[table]`, if it is written there.
fn key_line(text: &str, table: &str, key: &str) -> Option<usize> {
    let header = format!("[{table}]");
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == header;
        } else if inside && line.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
            return Some(i + 1);
        }
    }
    None
}

impl HostConfig {
    fn validate_ranges(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        for (table, key, check) in range_checks() {
            if let Some(why) = check(self) {
                return Err(ConfigError {
                    path: path.to_path_buf(),
                    line: key_line(text, table, key),
                    column: None,
                    message: format!("field `{table}.{key}` {why}"),
                });
            }
        }
        Ok(())
    }

    /// Read and check `path`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file, line, column and field.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            column: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parse `text` as if read from `path` (relative paths resolve
    /// against the folder of `path`).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file, line, column and field.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: HostConfig = toml::from_str(text).map_err(|e| {
            let located = locate_toml_error(text, &e);
            ConfigError {
                path: path.to_path_buf(),
                line: located.line,
                column: located.column,
                message: located.message,
            }
        })?;
        // `Path::new("host.toml").parent()` is `""`, not `.`.
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        config.resolve(base);
        config.validate(text, path)?;
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = &mut self.host.state_dir {
            fix(p);
        }
        if let Some(p) = &mut self.plugins.dir {
            fix(p);
        }
        self.plugins.allowed_dirs.iter_mut().for_each(fix);
        for (name, spec) in &mut self.process {
            spec.name = name.clone();
            match &mut spec.cwd {
                Some(cwd) => fix(cwd),
                // A process without `cwd` runs where its config lives.
                None => spec.cwd = Some(base.to_path_buf()),
            }
        }
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        self.validate_ranges(text, path)?;
        if let Some((key, why)) = self.coordination.sessions.check() {
            let table = "coordination.sessions";
            return Err(ConfigError {
                path: path.to_path_buf(),
                line: key_line(text, table, key),
                column: None,
                message: format!("field `{table}.{key}` {why}"),
            });
        }
        for (name, o) in &self.plugins.rate {
            let table = format!("plugins.rate.{name}");
            let checks = [
                ("emits_per_sec", o.emits_per_sec.and_then(positive)),
                ("emit_burst", o.emit_burst.and_then(burst)),
                ("actions_per_sec", o.actions_per_sec.and_then(positive)),
                ("action_burst", o.action_burst.and_then(burst)),
            ];
            if let Some((key, why)) = checks
                .into_iter()
                .find_map(|(key, why)| why.map(|w| (key, w)))
            {
                return Err(ConfigError {
                    path: path.to_path_buf(),
                    line: key_line(text, &table, key),
                    column: None,
                    message: format!("field `{table}.{key}` {why}"),
                });
            }
        }
        for (name, spec) in &self.process {
            if let Err(e) = spec.validate() {
                let header = format!("[process.{name}]");
                let line = text.find(&header).map(|o| line_col(text, o).0);
                return Err(ConfigError {
                    path: path.to_path_buf(),
                    line,
                    column: None,
                    message: e.to_string(),
                });
            }
        }
        if let Err(e) = crate::supervisor::check_dependencies(&self.process) {
            let table = format!("process.{}", e.process);
            let line = key_line(text, &table, "depends_on").or_else(|| {
                let header = format!("[{table}]");
                text.find(&header).map(|o| line_col(text, o).0)
            });
            return Err(ConfigError {
                path: path.to_path_buf(),
                line,
                column: None,
                message: e.message,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for (i, task) in self.tasks.iter().enumerate() {
            let problem = if task.id.trim().is_empty() {
                Some("field `id` must not be empty".to_string())
            } else if task.title.trim().is_empty() {
                Some("field `title` must not be empty".to_string())
            } else if !seen.insert(task.id.as_str()) {
                Some(format!("task id `{}` is used twice", task.id))
            } else {
                None
            };
            if let Some(problem) = problem {
                let line = text
                    .match_indices("[[task]]")
                    .nth(i)
                    .map(|(o, _)| line_col(text, o).0);
                return Err(ConfigError {
                    path: path.to_path_buf(),
                    line,
                    column: None,
                    message: format!("task #{}: {problem}", i + 1),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HostConfig, ConfigError> {
        HostConfig::parse(text, Path::new("/etc/demo/host.toml"))
    }

    #[test]
    fn an_empty_config_is_valid_and_takes_the_defaults() {
        let c = parse("").unwrap();
        assert!(c.process.is_empty());
        assert_eq!(c.plugins.deadline_ms, 100);
        assert_eq!(c.plugins.memory_mib, 64);
        assert!(c.plugins.watch);
        assert_eq!(
            c.supervisor.resource_interval,
            std::time::Duration::from_secs(10)
        );
        let c = parse("[supervisor]\nresource_interval = \"0s\"\n").unwrap();
        assert!(c.supervisor.resource_interval.is_zero());
    }

    #[test]
    fn processes_get_their_names_and_paths_resolve_against_the_config_folder() {
        let c = parse(
            "[host]\nstate_dir = \"state\"\n[process.web]\ncommand = \"sleep 1\"\n\
             [process.job]\ncommand = \"true\"\ncwd = \"work\"\n",
        )
        .unwrap();
        assert_eq!(c.host.state_dir.unwrap(), Path::new("/etc/demo/state"));
        assert_eq!(c.process["web"].name, "web");
        assert_eq!(
            c.process["web"].cwd.as_deref(),
            Some(Path::new("/etc/demo"))
        );
        assert_eq!(
            c.process["job"].cwd.as_deref(),
            Some(Path::new("/etc/demo/work"))
        );
    }

    #[test]
    fn values_out_of_range_are_refused_naming_the_field_and_line() {
        let cases = [
            (
                "[supervisor]\nresource_interval = \"50ms\"\n",
                "supervisor.resource_interval",
                2,
            ),
            (
                "[supervisor]\nlog_max_bytes = \"1KiB\"\n",
                "supervisor.log_max_bytes",
                2,
            ),
            (
                "[host]\n\nshutdown_timeout = \"2h\"\n",
                "host.shutdown_timeout",
                3,
            ),
            ("[bus]\nring_capacity = 100000000\n", "bus.ring_capacity", 2),
            (
                "[bus]\nmax_event_bytes = \"100MiB\"\n",
                "bus.max_event_bytes",
                2,
            ),
            (
                "[bus]\nring_max_bytes = \"2MiB\"\nmax_event_bytes = \"4MiB\"\n",
                "bus.max_event_bytes",
                3,
            ),
            ("[bus]\nmax_wal_bytes = 1000\n", "bus.max_wal_bytes", 2),
            (
                "[bus]\nmax_journal_bytes = \"1KiB\"\n",
                "bus.max_journal_bytes",
                2,
            ),
            ("[plugins]\nmax_failures = 0\n", "plugins.max_failures", 2),
            (
                "[plugins]\nbuild_timeout = \"0s\"\n",
                "plugins.build_timeout",
                2,
            ),
            (
                "[plugins]\ndebounce_ms = 99999999\n",
                "plugins.debounce_ms",
                2,
            ),
            ("[api]\nlisten = \"localhost\"\n", "api.listen", 2),
        ];
        for (text, field, line) in cases {
            let err = HostConfig::parse(text, Path::new("h.toml")).unwrap_err();
            assert!(err.message.contains(field), "{text}: {err}");
            assert_eq!(err.line, Some(line), "{text}: {err}");
        }
        let err = HostConfig::parse(
            "[supervisor]\nresource_interval = \"99999999999999999999d\"\n",
            Path::new("h.toml"),
        )
        .unwrap_err();
        assert!(err.message.contains("resource_interval"), "{err}");
    }

    #[test]
    fn sizes_are_written_the_same_everywhere() {
        let c = HostConfig::parse(
            "[supervisor]\nlog_max_bytes = \"10MiB\"\n",
            Path::new("h.toml"),
        )
        .unwrap();
        assert_eq!(c.supervisor.log_max_bytes, 10 << 20);
        let c = HostConfig::parse("[supervisor]\nlog_max_bytes = 65536\n", Path::new("h.toml"))
            .unwrap();
        assert_eq!(c.supervisor.log_max_bytes, 65536);
        let c = HostConfig::parse(
            "[supervisor]\nresource_interval = \"0s\"\n",
            Path::new("h.toml"),
        )
        .unwrap();
        assert!(
            c.supervisor.resource_interval.is_zero(),
            "0s still turns sampling off"
        );
    }

    #[test]
    fn a_misspelt_field_is_reported_with_file_line_and_name() {
        let err = parse("[process.web]\ncommand = \"x\"\nrestrat = \"always\"\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("/etc/demo/host.toml:3:"), "{text}");
        assert!(text.contains("restrat"), "{text}");
    }

    #[test]
    fn plugin_limits_out_of_bounds_are_errors_naming_field_and_bound() {
        let err = parse("[plugins]\ndir = \"p\"\nmemory_mib = 17592186044416\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        let text = err.to_string();
        assert!(text.contains("field `plugins.memory_mib`"), "{text}");
        assert!(text.contains("4096"), "{text}");
        for deadline in ["0", "18446744073709551615"] {
            let err = parse(&format!("[plugins]\ndeadline_ms = {deadline}\n")).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("field `plugins.deadline_ms`"), "{text}");
            assert!(text.contains("60000"), "{text}");
        }
        assert!(
            parse(
                "[plugins]\ndeadline_ms = 60000\nmemory_mib = 4096\n\
                 max_deadline_ms = 60000\nmax_memory_mib = 4096\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn ceilings_below_the_defaults_they_cap_are_errors() {
        let err = parse("[plugins]\ndeadline_ms = 500\nmax_deadline_ms = 200\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        assert!(
            err.to_string().contains("`plugins.max_deadline_ms`"),
            "{err}"
        );
        let err = parse("[plugins]\nmax_memory_mib = 5000\n").unwrap_err();
        assert!(
            err.to_string().contains("`plugins.max_memory_mib`"),
            "{err}"
        );
        let err = parse("[plugins]\nmax_chain_depth = 0\n").unwrap_err();
        assert!(
            err.to_string().contains("`plugins.max_chain_depth`"),
            "{err}"
        );
    }

    #[test]
    fn shadow_is_off_by_default_and_a_trial_of_no_events_is_refused_naming_the_line() {
        let config = parse("[plugins]\n").unwrap();
        assert!(!config.plugins.shadow);
        assert_eq!(config.plugins.shadow_events, 100);
        let config = parse("[plugins]\nshadow = true\nshadow_events = 20\n").unwrap();
        assert!(config.plugins.shadow);
        assert_eq!(config.plugins.shadow_events, 20);
        let err = parse("[plugins]\nshadow = true\nshadow_events = 0\n").unwrap_err();
        assert!(err.to_string().contains("`plugins.shadow_events`"), "{err}");
        assert_eq!(err.line, Some(3), "{err}");
    }

    #[test]
    fn rates_must_be_positive_and_an_override_keeps_what_it_leaves_out() {
        let err = parse("[plugins]\nemits_per_sec = -1\n").unwrap_err();
        assert!(err.to_string().contains("`plugins.emits_per_sec`"), "{err}");
        let err = parse("[plugins]\naction_burst = 0.5\n").unwrap_err();
        assert!(err.to_string().contains("`plugins.action_burst`"), "{err}");
        let err = parse("[plugins.rate.noisy]\n\nemit_burst = 0\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        assert!(
            err.to_string().contains("`plugins.rate.noisy.emit_burst`"),
            "{err}"
        );
        let c = parse("[plugins]\nactions_per_sec = 2\n[plugins.rate.noisy]\nemits_per_sec = 50\n")
            .unwrap();
        let noisy = c.plugins.rate_overrides()["noisy"];
        assert_eq!(noisy.emits_per_sec, 50.0);
        assert_eq!(noisy.actions_per_sec, 2.0, "left out: the host-wide figure");
        let err = parse("[plugins.rate.noisy]\nemits_per_second = 5\n").unwrap_err();
        assert!(err.to_string().contains("emits_per_second"), "{err}");
    }

    #[test]
    fn allowed_dirs_resolve_against_the_config_folder() {
        let c = HostConfig::parse(
            "[plugins]\nallowed_dirs = [\"reports\", \"/srv/x\"]\n",
            Path::new("/etc/host/host.toml"),
        )
        .unwrap();
        assert_eq!(
            c.plugins.ceilings().allowed_dirs,
            vec![PathBuf::from("/etc/host/reports"), PathBuf::from("/srv/x")]
        );
    }

    #[test]
    fn a_bad_value_is_reported_with_its_line_and_field() {
        let err = parse("[plugins]\n\ndeadline_ms = \"soon\"\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        let text = err.to_string();
        assert!(text.contains("invalid type"), "{text}");
        assert!(text.contains("field `plugins.deadline_ms`"), "{text}");
        let err =
            parse("[process.web]\ncommand = \"sleep 1\"\n\nautostart = \"yes\"\n").unwrap_err();
        assert!(
            err.to_string().contains("field `process.web.autostart`"),
            "{err}"
        );
    }

    #[test]
    fn top_level_mistakes_are_not_blamed_on_another_field() {
        let err = parse("foo = 1\n").unwrap_err().to_string();
        assert!(
            err.contains("unknown field `foo`") && !err.contains("in table"),
            "{err}"
        );
    }

    #[test]
    fn a_bare_file_name_resolves_against_the_working_directory() {
        let c =
            HostConfig::parse("[process.a]\ncommand = \"true\"\n", Path::new("host.toml")).unwrap();
        assert_eq!(c.process["a"].cwd.as_deref(), Some(Path::new(".")));
    }

    #[test]
    fn a_missing_required_field_names_its_table() {
        let err = parse("[process.web]\nkind = \"x\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("process.web") && text.contains("command"),
            "{text}"
        );
    }

    #[test]
    fn broken_toml_syntax_is_reported_with_its_line() {
        let err = parse("[process.web]\ncommand = \"x\n").unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn tasks_parse_and_duplicates_are_rejected_with_the_line() {
        let ok = parse("[[task]]\nid = \"a\"\ntitle = \"A\"\nkeywords = [\"api\"]\n").unwrap();
        assert_eq!(ok.tasks[0].keywords, vec!["api".to_string()]);
        let err =
            parse("[[task]]\nid = \"a\"\ntitle = \"A\"\n\n[[task]]\nid = \"a\"\ntitle = \"B\"\n")
                .unwrap_err();
        assert_eq!(err.line, Some(5), "{err}");
        assert!(err.to_string().contains("used twice"), "{err}");
    }

    #[test]
    fn session_thresholds_parse_and_a_bad_one_is_named_with_its_line() {
        let ok = parse(
            "[coordination.sessions]\nmax_messages = 4\nmax_age = \"5m\"\nidle_timeout = \"1h\"\n",
        )
        .unwrap();
        let s = &ok.coordination.sessions;
        assert_eq!(s.max_messages, 4);
        assert_eq!(s.max_age, std::time::Duration::from_secs(300));
        assert_eq!(s.idle_timeout, std::time::Duration::from_secs(3600));
        let err =
            parse("[coordination]\n\n[coordination.sessions]\nmax_messages = 0\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("field `coordination.sessions.max_messages`"),
            "{err}"
        );
        assert_eq!(err.line, Some(4), "{err}");
        let err = parse("[coordination.sessions]\nmax_age = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("max_age"), "{err}");
    }
}
