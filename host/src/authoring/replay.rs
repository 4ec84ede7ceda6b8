//! `host plugin test`: replay recorded events through one plugin without a
//! running host and write down what it decided, event by event.
//!
//! The plugin is loaded as `host plugin check` loads it
//! ([`crate::plugins::load_standalone`]) with the host imports answered
//! here: `now-ms` and (with the virtual clock) the guest's WASI clocks read
//! the time of the event being replayed; `processes` lists the fixed
//! snapshot of `--snapshot`, or else the table the replayed events build
//! (`replay_input::Processes`: what the supervisor had when it published
//! each event, so no file has to be written to replay a recording);
//! `recent-events` / `history` / `stats` read the replayed events up to the
//! current one; state lives for the replay. Event handlers get the events
//! they subscribe to, status mappers `process.output` and
//! `process.reported` of processes of their kinds, dependency rules a
//! tasks file (each task checked against those before it, as the
//! coordinator does on registration). Background agents decide on a timer,
//! not on input, and are refused with a sentence.
//!
//! Decisions are kept as text lines ([`Step`]), so that a rendering, a
//! comparison of two versions (`replay_render`) and a snapshot file all
//! say the same thing, and nothing in them depends on when the replay ran.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::bus::{Event, Pattern};
use crate::coordination::Task;
use crate::plugins::{
    Action, CallFailure, CheckOptions, Clock, Kind, MapperQuestion, PluginError, PluginRef,
    Standalone, StandaloneOptions, load_standalone, system_clock,
};

pub use super::replay_input::{InputError, Processes, ReplayLog, read_events, read_tasks};

/// What the guest's clocks read during a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    /// The time of the event being replayed (and fixed randomness): the
    /// same decisions on every run.
    #[default]
    Virtual,
    /// The system's clock, as a live host gives it.
    Real,
}

/// What is replayed.
#[derive(Debug, Clone)]
pub enum Input {
    /// Recorded events (`host events --json`), for handlers and mappers.
    Events(PathBuf),
    /// Tasks, one JSON object a line, for dependency rules.
    Tasks(PathBuf),
}

/// How a replay runs.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// What the guest's clocks read.
    pub clock: ClockMode,
    /// A fixed process snapshot instead of the one the events build.
    pub snapshot: Option<PathBuf>,
    /// Limits and ceilings the plugin is held to.
    pub check: CheckOptions,
}

/// What a replay could not do, in words for the command line.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The input or snapshot file is bad.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The plugin did not load.
    #[error("{path}: {source}")]
    Load {
        /// The plugin as given.
        path: String,
        /// Why.
        #[source]
        source: PluginError,
    },
    /// The plugin is of a kind this input cannot drive.
    #[error("{0}")]
    Unsupported(String),
}

/// One input the plugin was given and what it decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The event's sequence (events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// The input in one line: `#12 process.failed flaky`, `task auth-api`.
    pub input: String,
    /// What it decided, one line each; empty when it decided nothing.
    pub decisions: Vec<String>,
}

/// The outcome of replaying one input file through one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// The plugin's name.
    pub plugin: String,
    /// The kinds that were fed.
    pub kinds: Vec<Kind>,
    /// The clock the guest read.
    pub clock: ClockMode,
    /// Inputs read from the file.
    pub inputs: usize,
    /// The inputs the plugin was given, in order, with its decisions.
    pub steps: Vec<Step>,
}

impl Replay {
    /// Inputs not for this plugin (not subscribed, not its kind).
    pub fn passed_over(&self) -> usize {
        self.inputs - self.steps.len()
    }
}

/// Replay `input` through the plugin at `path` (a component, a
/// `plugin.toml`, or a folder holding one).
///
/// # Errors
///
/// A bad input or snapshot file (named with the line and field), a plugin
/// that does not load, or one of a kind `input` cannot drive. A plugin
/// that traps, errs or runs past its deadline on an input is not an error
/// of the replay: that is its decision for that input.
pub async fn replay(
    path: &Path,
    input: &Input,
    options: &ReplayOptions,
) -> Result<Replay, ReplayError> {
    match input {
        Input::Events(file) => {
            let events = read_events(file)?;
            replay_events(path, events, options).await
        }
        Input::Tasks(file) => {
            let tasks = read_tasks(file)?;
            replay_tasks(path, tasks, options).await
        }
    }
}

/// Replay `events` (already read) through the plugin at `path`.
///
/// # Errors
///
/// As [`replay`].
pub async fn replay_events(
    path: &Path,
    events: Vec<Event>,
    options: &ReplayOptions,
) -> Result<Replay, ReplayError> {
    let processes = match &options.snapshot {
        Some(file) => Processes::from_snapshot(file)?,
        None => Processes::default(),
    };
    let log = ReplayLog::default();
    let now = Arc::new(AtomicU64::new(0));
    let loaded = load(path, options, &now, processes.clone(), log.clone()).await?;
    let handler = loaded.kinds.contains(&Kind::EventHandler);
    let mapper = loaded.kinds.contains(&Kind::StatusMapper);
    if !handler && !mapper {
        return Err(unsupported(&loaded, "events"));
    }
    let subscriptions: Vec<Pattern> = loaded
        .description
        .subscriptions
        .iter()
        .filter_map(|p| Pattern::parse(p).ok())
        .collect();
    let own_source = format!("plugin/{}", loaded.plugin.name());
    let mut steps = Vec::new();
    let inputs = events.len();
    for event in events {
        now.store(ms(&event), Ordering::Release);
        processes.apply(&event);
        log.push(event.clone());
        let mut decisions = Vec::new();
        let mut given = false;
        // As the host's dispatcher: never its own events.
        if handler
            && event.source != own_source
            && subscriptions.iter().any(|p| p.matches(&event.ty))
        {
            given = true;
            let before = loaded.plugin.health();
            match loaded.plugin.handle(&event).await {
                Ok(actions) => decisions.extend(actions.iter().map(describe_action)),
                Err(e) => decisions.push(describe_failure(&e)),
            }
            decisions.extend(rejected(&loaded.plugin, &before));
        }
        if mapper && let Some(lines) = map(&loaded, &processes, &event).await {
            given = true;
            decisions.extend(lines);
        }
        if given {
            steps.push(Step {
                sequence: Some(event.sequence),
                input: format!(
                    "#{} {} {}",
                    event.sequence,
                    event.ty,
                    event.subject.as_deref().unwrap_or("-")
                ),
                decisions,
            });
        }
    }
    let mut kinds = Vec::new();
    if handler {
        kinds.push(Kind::EventHandler);
    }
    if mapper {
        kinds.push(Kind::StatusMapper);
    }
    Ok(Replay {
        plugin: loaded.plugin.name().to_string(),
        kinds,
        clock: options.clock,
        inputs,
        steps,
    })
}

/// Replay `tasks` through the dependency rule at `path`: each task is
/// checked against every task before it in the file.
///
/// # Errors
///
/// As [`replay`].
pub async fn replay_tasks(
    path: &Path,
    tasks: Vec<Task>,
    options: &ReplayOptions,
) -> Result<Replay, ReplayError> {
    let processes = match &options.snapshot {
        Some(file) => Processes::from_snapshot(file)?,
        None => Processes::default(),
    };
    let now = Arc::new(AtomicU64::new(0));
    let loaded = load(path, options, &now, processes, ReplayLog::default()).await?;
    if !loaded.kinds.contains(&Kind::DependencyRule) {
        return Err(unsupported(&loaded, "tasks"));
    }
    let mut steps = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let before = loaded.plugin.health();
        let mut decisions = match loaded.plugin.check_many(task, &tasks[..i]).await {
            Ok(found) => found
                .iter()
                .map(|d| {
                    format!(
                        "depends on {}: {} ({:.2}) {}",
                        d.depends_on, d.relationship, d.confidence, d.reason
                    )
                })
                .collect(),
            Err(e) => vec![describe_failure(&e)],
        };
        decisions.extend(rejected(&loaded.plugin, &before));
        steps.push(Step {
            sequence: None,
            input: format!("task {}", task.id),
            decisions,
        });
    }
    Ok(Replay {
        plugin: loaded.plugin.name().to_string(),
        kinds: vec![Kind::DependencyRule],
        clock: options.clock,
        inputs: tasks.len(),
        steps,
    })
}

/// Load the plugin with the replay's clock, processes and log.
async fn load(
    path: &Path,
    options: &ReplayOptions,
    now: &Arc<AtomicU64>,
    processes: Processes,
    log: ReplayLog,
) -> Result<Standalone, ReplayError> {
    let clock: Clock = match options.clock {
        ClockMode::Virtual => {
            let now = now.clone();
            Arc::new(move || now.load(Ordering::Acquire))
        }
        ClockMode::Real => system_clock(),
    };
    load_standalone(
        path,
        StandaloneOptions {
            check: options.check.clone(),
            clock,
            deterministic: options.clock == ClockMode::Virtual,
            processes: Arc::new(processes),
            log: Arc::new(log),
        },
    )
    .await
    .map_err(|source| ReplayError::Load {
        path: path.display().to_string(),
        source,
    })
}

fn unsupported(loaded: &Standalone, input: &str) -> ReplayError {
    let kinds: Vec<String> = loaded.kinds.iter().map(|k| k.to_string()).collect();
    let what = match input {
        "events" => {
            "events drive event handlers and status mappers; give a dependency rule a tasks file (--tasks)"
        }
        _ => {
            "tasks drive dependency rules; give event handlers and status mappers recorded events (--events)"
        }
    };
    let agent = if loaded.kinds.contains(&Kind::BackgroundAgent) {
        " (a background agent decides on a timer, not on recorded input, so it cannot be replayed)"
    } else {
        ""
    };
    ReplayError::Unsupported(format!(
        "plugin `{}` is a {}: {what}{agent}",
        loaded.plugin.name(),
        kinds.join(" and ")
    ))
}

/// The event's time in milliseconds since the epoch (0 before it).
fn ms(event: &Event) -> u64 {
    event.time.timestamp_millis().max(0) as u64
}

/// A status mapper's answer to `event`, if it is one the host would give
/// it: output lines or a reported status of a process of its kinds.
async fn map(loaded: &Standalone, processes: &Processes, event: &Event) -> Option<Vec<String>> {
    let name = event.subject.as_deref()?;
    let process = processes.get_process(name)?;
    let question = MapperQuestion::of(event, &loaded.description.mapper_kinds, &process.kind)?;
    let plugin: &PluginRef = &loaded.plugin;
    let before = plugin.health();
    let answer = plugin.ask_mapper(&process, question, None).await;
    let mut out = match answer {
        Ok(Some(update)) => vec![describe_action(&Action::SetStatus {
            name: name.to_string(),
            update,
        })],
        Ok(None) => Vec::new(),
        Err(e) => vec![describe_failure(&e)],
    };
    out.extend(rejected(plugin, &before));
    Some(out)
}

impl Processes {
    fn get_process(&self, name: &str) -> Option<crate::supervisor::ProcessInfo> {
        crate::plugins::ProcessView::get(self, name)
    }
}

/// Values the host refused since `before` (an emit whose data is not
/// JSON, progress out of range, past the action cap): the plugin's health
/// counts them and keeps the last message.
fn rejected(plugin: &PluginRef, before: &crate::plugins::Health) -> Option<String> {
    let after = plugin.health();
    let n = after.errors.saturating_sub(before.errors);
    if n == 0 || after.failures > before.failures {
        return None;
    }
    // A guest error is already its decision line; count only the rest.
    let last = after.last_error.unwrap_or_default();
    if last.starts_with("returned an error:") {
        return None;
    }
    Some(format!("rejected by the host ({n}): {}", first_line(&last)))
}

/// One action in one line: the verb, its target, its payload.
pub fn describe_action(action: &Action) -> String {
    match action {
        Action::Emit { ty, subject, data } => format!(
            "emit {ty} {} {}",
            subject.as_deref().unwrap_or("-"),
            serde_json::to_string(data).unwrap_or_default()
        ),
        Action::Start { name } => format!("start {name}"),
        Action::Stop { name, force } => {
            format!("stop {name}{}", if *force { " (force)" } else { "" })
        }
        Action::Restart { name } => format!("restart {name}"),
        Action::Pause { name } => format!("pause {name}"),
        Action::Resume { name } => format!("resume {name}"),
        Action::SetStatus { name, update } => {
            let mut parts = Vec::new();
            if let Some(s) = update.state {
                parts.push(format!(
                    "state={}",
                    serde_json::to_string(&s)
                        .unwrap_or_default()
                        .trim_matches('"')
                ));
            }
            if let Some(p) = update.progress {
                parts.push(format!("progress={p}"));
            }
            if let Some(m) = &update.message {
                parts.push(format!("message={m:?}"));
            }
            format!("set-status {name} {}", parts.join(" "))
        }
        Action::RegisterTask { task } => format!("register-task {} {:?}", task.id, task.title),
    }
}

/// A failed call in one line: its kind and the first line of its message
/// (a trap's backtrace stays out of the record).
fn describe_failure(e: &PluginError) -> String {
    match e {
        PluginError::Call { failure, call, .. } => match failure {
            CallFailure::GuestError(text) => format!("error from {call}: {}", first_line(text)),
            CallFailure::Deadline { deadline_ms } => {
                format!("failed: {call} ran past its deadline of {deadline_ms} ms")
            }
            other => format!(
                "failed: {call} {}: {}",
                other.kind(),
                first_line(&other.to_string())
            ),
        },
        other => format!("failed: {}", first_line(&other.to_string())),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim_end()
}
