//! The kind-level contract check any component must pass
//! (`host plugin check --conformance`), whatever language it was written in.
//!
//! It loads the plugin into a real [`PluginHost`] of its own (a scratch
//! folder, an in-memory bus, the caller's limits and ceilings), so every
//! check goes through the code a running host uses: linking, the `describe`
//! calls under the plugin's deadline, the pattern parser, the conversion
//! and validation of what a call returns, and the grants the executor
//! applies. Then it feeds the plugin a few synthetic inputs of the kinds it
//! exports (an event of each type it subscribes to, a tick, a task and
//! candidates that mention its keywords) and judges what comes back.
//!
//! Each check says, in one sentence, what passed or what failed; the
//! report fails when any check does. Nothing is performed: actions are
//! judged, never executed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::bus::{Bus, BusConfig, Event, EventQuery, NewEvent, Pattern};
use crate::coordination::{NumberedTask, Task};
use crate::plugins::{
    Action, CallFailure, CheckOptions, Kind, MANIFEST_FILE, NoProcesses, Permissions, PluginError,
    PluginHost, PluginHostConfig, PluginRef, Verb, system_clock,
};

/// What a conformance check could not even start on (the plugin's own
/// faults are failed checks, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// The component or manifest cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not TOML.
    #[error("{}: {reason}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong, with line and column.
        reason: String,
    },
    /// The scratch plugin host could not be set up.
    #[error("cannot set up a plugin host for the check: {0}")]
    Host(String),
}

/// One check and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct ConformanceCheck {
    /// Short name, e.g. `describe`, `actions`, `grants`.
    pub check: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What was found, in a sentence.
    pub detail: String,
}

/// What `host plugin check --conformance` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ConformanceReport {
    /// The plugin's name (from its manifest, or its file).
    pub plugin: String,
    /// The component, manifest or folder checked.
    pub path: PathBuf,
    /// The kinds it exports (empty when it did not load).
    pub kinds: Vec<Kind>,
    /// Every check, in the order they ran.
    pub checks: Vec<ConformanceCheck>,
}

impl ConformanceReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    fn record(&mut self, check: &'static str, passed: bool, detail: impl Into<String>) {
        self.checks.push(ConformanceCheck {
            check,
            passed,
            detail: detail.into(),
        });
    }
}

/// Runs the kind-level contract check on `path`: a component, a
/// `plugin.toml`, or a folder holding one, held to `options`' limits and
/// ceilings.
///
/// # Errors
///
/// Only when the check cannot start (an unreadable file, a scratch folder
/// or bus that cannot be made); everything the plugin does wrong is a
/// failed check in the report.
pub async fn conformance(
    path: &Path,
    options: &CheckOptions,
) -> Result<ConformanceReport, ConformanceError> {
    let (manifest, text) = manifest_of(path)?;
    let scratch = tempfile::tempdir().map_err(|e| ConformanceError::Host(e.to_string()))?;
    let plugins_dir = scratch.path().join("plugins");
    let name = plugin_name(path, manifest.as_deref(), text.as_deref());
    let folder = plugins_dir.join(&name);
    std::fs::create_dir_all(&folder).map_err(|source| ConformanceError::Io {
        path: folder.clone(),
        source,
    })?;
    let scratch_manifest = rebase_manifest(path, manifest.as_deref(), text.as_deref(), &name)?;
    std::fs::write(folder.join(MANIFEST_FILE), scratch_manifest).map_err(|source| {
        ConformanceError::Io {
            path: folder.join(MANIFEST_FILE),
            source,
        }
    })?;

    let bus = Bus::open_in_memory(BusConfig::default())
        .map_err(|e| ConformanceError::Host(e.to_string()))?;
    let mut config = PluginHostConfig::new(&plugins_dir);
    config.limits = options.defaults;
    config.ceilings = options.ceilings.clone();
    // Grants of folders are judged where the plugin would really load from.
    let home = options
        .plugins_dir
        .clone()
        .unwrap_or_else(|| home_folder(path, manifest.as_deref()));
    config.ceilings.allowed_dirs.push(home);
    config.build_missing = false;
    // The first failure is the verdict; no quarantine dance on repeats.
    config.max_failures = u32::MAX;
    let (tx, mut actions) = mpsc::channel(64);
    // Nothing is published on this bus but the host's own reports, so no
    // dispatcher calls the plugin; drain whatever would be executed.
    tokio::spawn(async move { while actions.recv().await.is_some() {} });
    let mut report = ConformanceReport {
        plugin: name.clone(),
        path: path.to_path_buf(),
        kinds: Vec::new(),
        checks: Vec::new(),
    };
    let started = Instant::now();
    let host = PluginHost::start_with_clock(
        config,
        bus.clone(),
        Arc::new(NoProcesses),
        tx,
        system_clock(),
    )
    .await
    .map_err(|e| ConformanceError::Host(e.to_string()))?;
    let loaded_in = started.elapsed();
    let Some(plugin) = host.get(&name) else {
        judge_load_failure(&mut report, path, options).await;
        host.shutdown().await;
        return Ok(report);
    };
    run_checks(&mut report, &plugin, &bus, loaded_in).await;
    host.shutdown().await;
    Ok(report)
}

/// The checks of a plugin that loaded.
async fn run_checks(
    report: &mut ConformanceReport,
    plugin: &PluginRef,
    bus: &Bus,
    loaded_in: Duration,
) {
    report.kinds = [
        Kind::EventHandler,
        Kind::StatusMapper,
        Kind::DependencyRule,
        Kind::BackgroundAgent,
    ]
    .into_iter()
    .filter(|k| plugin.has_kind(*k))
    .collect();
    let kinds: Vec<String> = report.kinds.iter().map(|k| k.to_string()).collect();
    report.record(
        "exports",
        true,
        format!(
            "exports every function of {} (host:plugin, linked against this host's WIT)",
            kinds.join(", ")
        ),
    );
    let description = plugin.description().unwrap_or_default();
    let grants = plugin.grants().unwrap_or_default();
    report.record(
        "describe",
        true,
        format!(
            "answered its describe calls within the deadline (loaded, compile included, in {} ms)",
            loaded_in.as_millis()
        ),
    );
    if plugin.has_kind(Kind::EventHandler) {
        let bad: Vec<String> = description
            .subscriptions
            .iter()
            .filter_map(|s| Pattern::parse(s).err().map(|e| format!("`{s}`: {e}")))
            .collect();
        report.record(
            "subscriptions",
            bad.is_empty() && !description.subscriptions.is_empty(),
            if !bad.is_empty() {
                format!("malformed patterns: {}", bad.join("; "))
            } else if description.subscriptions.is_empty() {
                "subscribes to nothing, so it is never called".to_string()
            } else {
                format!(
                    "{} well-formed: {}",
                    description.subscriptions.len(),
                    description.subscriptions.join(", ")
                )
            },
        );
    }

    let mut decided: Vec<(String, Vec<Action>)> = Vec::new();
    let mut broken: Vec<String> = Vec::new();
    let mut answered_errors = 0usize;
    let mut judge = |what: String, result: Result<Vec<Action>, PluginError>| match result {
        Ok(actions) => decided.push((what, actions)),
        Err(PluginError::Call {
            failure: CallFailure::GuestError(_),
            ..
        }) => answered_errors += 1,
        Err(e) => broken.push(format!("{what}: {e}")),
    };
    if plugin.has_kind(Kind::EventHandler) {
        for event in synthetic_events(&description.subscriptions) {
            let what = format!("handle of a synthetic `{}` event", event.ty);
            judge(what, plugin.handle(&event).await);
        }
    }
    if plugin.has_kind(Kind::BackgroundAgent) {
        judge("tick".into(), plugin.tick().await.map(|o| o.actions));
    }
    let mut rule_calls = 0;
    // `(agrees, what it answered)` of a rule that remembers tasks.
    let mut memory: Option<(bool, String)> = None;
    if plugin.has_kind(Kind::DependencyRule) {
        let keywords = description
            .rule
            .as_ref()
            .map(|r| r.keywords.clone())
            .unwrap_or_default();
        let (task, candidates) = synthetic_tasks(&keywords);
        rule_calls = candidates.len();
        match plugin.check_many(&task, &candidates).await {
            Err(e) => broken.push(format!(
                "check-batch of {} synthetic candidates: {e}",
                candidates.len()
            )),
            Ok(batch) if plugin.remembers_tasks() => {
                memory = Some(ask_by_numbers(plugin, task, candidates, &batch).await);
            }
            Ok(_) => {}
        }
    }
    // The host reports actions and batch answers it rejected as
    // `plugin.error` with failure `invalid`, naming the call. Reports are
    // handed to the bus without waiting for their commit, so the check
    // waits for it: under load a query right away could miss them and pass
    // a plugin that broke the contract.
    if let Err(e) = bus.flush_async().await {
        broken.push(format!("the reports of its calls could not be read: {e}"));
    }
    let invalid = invalid_reports(bus);
    let (rule_invalid, action_invalid): (Vec<_>, Vec<_>) =
        invalid.into_iter().partition(|(call, _)| {
            ["check-batch", "check-remembered", "check-grouped"].contains(&call.as_str())
        });
    let (batch_invalid, memory_invalid): (Vec<_>, Vec<_>) = rule_invalid
        .into_iter()
        .partition(|(call, _)| call == "check-batch");
    let calls = decided.len() + answered_errors + broken.len();
    if calls > 0 {
        let mut problems = broken.clone();
        problems.extend(
            action_invalid
                .iter()
                .map(|(call, error)| format!("{call}: {error}")),
        );
        let count: usize = decided.iter().map(|(_, a)| a.len()).sum();
        report.record(
            "actions",
            problems.is_empty(),
            if problems.is_empty() {
                format!(
                    "{calls} synthetic calls answered: {count} valid actions{}",
                    if answered_errors > 0 {
                        format!(", {answered_errors} answered with an error of its own (recorded as plugin.error, not a fault)")
                    } else {
                        String::new()
                    }
                )
            } else {
                format!("{} of {calls} synthetic calls went wrong: {}", problems.len(), problems.join("; "))
            },
        );
        // Actions are the grants a call can overstep, so they are what is
        // judged. Folders and environment variables are not: the sandbox
        // holds only those granted, so a guest cannot reach another one
        // (its attempt fails inside the guest, unseen by the host).
        let mut denied: Vec<String> = Vec::new();
        for (what, actions) in &decided {
            for action in actions {
                if let Some(why) = not_granted(&grants, action) {
                    denied.push(format!("{what}: {why}"));
                }
            }
        }
        report.record(
            "grants",
            denied.is_empty(),
            if denied.is_empty() {
                format!(
                    "asks only for what it was granted ({}); folders and environment variables are \
                     not judged: the sandbox holds only those granted",
                    described(&grants)
                )
            } else {
                format!("uses grants it did not ask for: {}", denied.join("; "))
            },
        );
    }
    if plugin.has_kind(Kind::DependencyRule) {
        report.record(
            "batch",
            batch_invalid.is_empty() && !broken.iter().any(|b| b.starts_with("check-batch")),
            if batch_invalid.is_empty() {
                format!("check-batch over {rule_calls} candidates named only candidates in range, each once")
            } else {
                batch_invalid.into_iter().map(|(_, e)| e).collect::<Vec<_>>().join("; ")
            },
        );
    }
    if let Some((agrees, detail)) = memory {
        let forgot: Vec<String> = memory_invalid.into_iter().map(|(_, e)| e).collect();
        report.record(
            "memory",
            agrees && forgot.is_empty(),
            if forgot.is_empty() {
                detail
            } else {
                format!("{detail}; {}", forgot.join("; "))
            },
        );
    }
    if plugin.has_kind(Kind::StatusMapper) {
        let kinds = &description.mapper_kinds;
        report.record(
            "mapper",
            !kinds.is_empty(),
            if kinds.is_empty() {
                "serves no process kind, so it is never called".to_string()
            } else {
                format!("serves process kinds {}", kinds.join(", "))
            },
        );
    }
}

/// Why a plugin did not load, as the check it failed: a `describe` (or
/// `subscriptions`, `kinds`) past its deadline, a malformed subscription,
/// or anything else loading refuses.
async fn judge_load_failure(report: &mut ConformanceReport, path: &Path, options: &CheckOptions) {
    match crate::plugins::check(path, options).await {
        Ok(_) => report.record(
            "load",
            false,
            "loads on its own but not into a plugin host (see the host's log)",
        ),
        Err(PluginError::Call { call, failure, .. }) => {
            let (check, detail) = match &failure {
                CallFailure::Deadline { deadline_ms } => (
                    "describe",
                    format!(
                        "`{call}` did not answer within its deadline of {deadline_ms} ms; the host would never load it"
                    ),
                ),
                CallFailure::Invalid(why) if call == "subscriptions" => (
                    "subscriptions",
                    format!("a subscription pattern is malformed: {why}"),
                ),
                other => ("describe", format!("`{call}` failed: {other}")),
            };
            report.record("exports", true, "exports a known plugin kind");
            report.record(check, false, detail);
        }
        Err(e @ (PluginError::NoKnownKind { .. } | PluginError::Link { .. })) => {
            report.record("exports", false, e.to_string());
        }
        Err(e) => report.record("load", false, e.to_string()),
    }
}

/// One event per subscription pattern, of a type it matches (`*` and `>`
/// become a `conformance` token), with a subject and JSON data shaped like
/// the host's process events.
fn synthetic_events(patterns: &[String]) -> Vec<Event> {
    let mint = match Bus::open_in_memory(BusConfig::default()) {
        Ok(bus) => bus,
        Err(_) => return Vec::new(),
    };
    patterns
        .iter()
        .filter_map(|p| {
            let ty: Vec<&str> = p
                .split('.')
                .map(|t| {
                    if t == "*" || t == ">" {
                        "conformance"
                    } else {
                        t
                    }
                })
                .collect();
            let data = serde_json::json!({
                "exit_code": 1, "signal": null, "reason": "exited with code 1",
                "line": "conformance", "conformance": true,
            });
            mint.publish(
                NewEvent::new("host/conformance", ty.join("."), data).with_subject("conformance"),
            )
            .ok()
        })
        .collect()
}

/// A task and candidates: some in other repositories mentioning the
/// rule's keywords (so a rule has something to find), one unrelated.
/// Asks a rule that remembers tasks about `task` against `candidates` by
/// numbers, twice (first remembering nothing, then everything), and says
/// whether both answers are `batch`, the answer of `check-batch`.
async fn ask_by_numbers(
    plugin: &PluginRef,
    task: Task,
    candidates: Vec<Task>,
    batch: &[crate::coordination::Dependency],
) -> (bool, String) {
    let call = plugin.numbered_call().unwrap_or("check-remembered");
    let number = |(n, task): (u32, Task)| NumberedTask::new(n, task);
    let known: Vec<NumberedTask> = (0..).zip(candidates).map(number).collect();
    let new = number((known.len() as u32, task));
    for round in ["remembering nothing", "remembering every task"] {
        match plugin.check_numbered(&new, &known).await {
            Err(e) => return (false, format!("{call}, {round}: {e}")),
            Ok(found) if found != batch => {
                return (
                    false,
                    format!(
                        "{call}, {round}, found {} dependencies where check-batch found {}: it must answer as check-batch does",
                        found.len(),
                        batch.len()
                    ),
                );
            }
            Ok(_) => {}
        }
    }
    (
        true,
        format!(
            "task-memory: {call} over {} candidates answers as check-batch ({} found), remembering nothing and remembering every task",
            known.len(),
            batch.len()
        ),
    )
}

fn synthetic_tasks(keywords: &[String]) -> (Task, Vec<Task>) {
    let words = if keywords.is_empty() {
        "api endpoint schema".to_string()
    } else {
        keywords
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let task = |id: &str, repository: &str, title: String| Task {
        id: id.into(),
        repository: repository.into(),
        title,
        description: format!("conformance check: {words}"),
        keywords: keywords.iter().take(3).cloned().collect(),
        agent: None,
    };
    let new = task(
        "conformance-new",
        "conformance-a",
        format!("Define the {words}"),
    );
    let candidates = vec![
        task(
            "conformance-1",
            "conformance-b",
            format!("Implement the {words}"),
        ),
        task(
            "conformance-2",
            "conformance-c",
            format!("Build a client of the {words}"),
        ),
        task(
            "conformance-3",
            "conformance-a",
            format!("Refactor the {words}"),
        ),
        Task {
            keywords: Vec::new(),
            description: String::new(),
            ..task(
                "conformance-4",
                "conformance-d",
                "Proofread the release notes".into(),
            )
        },
    ];
    (new, candidates)
}

/// `(call, error)` of each `plugin.error` the host published for a value it
/// rejected.
fn invalid_reports(bus: &Bus) -> Vec<(String, String)> {
    let query = EventQuery {
        types: Pattern::parse("plugin.error").into_iter().collect(),
        after_sequence: Some(0),
        limit: Some(1000),
        ..Default::default()
    };
    bus.query(&query)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.data["failure"] == "invalid")
        .map(|e| {
            (
                e.data["call"].as_str().unwrap_or("?").to_string(),
                e.data["error"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

/// Why `action` would be refused for want of a grant, as the executor
/// words it; `None` when granted. (A process's kind is unknown here: a
/// `kind:` selector is judged as not matching.)
fn not_granted(grants: &Permissions, action: &Action) -> Option<String> {
    let verb = |verb: Verb, name: &str| {
        (!grants.allows(verb, name, "")).then(|| {
            format!(
                "`{} {name}` is not granted (add it to [permissions] {} in plugin.toml)",
                verb.key(),
                verb.key()
            )
        })
    };
    match action {
        Action::Emit { ty, .. } => {
            if let Some(why) = crate::runtime::reserved(ty) {
                return Some(why);
            }
            (!grants.allows_emit(ty)).then(|| {
                format!("emitting `{ty}` is not granted (add a pattern to [permissions] emit in plugin.toml)")
            })
        }
        Action::Start { name } => verb(Verb::Start, name),
        Action::Stop { name, .. } => verb(Verb::Stop, name),
        Action::Restart { name } => verb(Verb::Restart, name),
        Action::Pause { name } => verb(Verb::Pause, name),
        Action::Resume { name } => verb(Verb::Resume, name),
        Action::SetStatus { name, .. } => verb(Verb::Status, name),
        Action::RegisterTask { .. } => (!grants.tasks).then(|| {
            "registering tasks is not granted (set [permissions] tasks = true)".to_string()
        }),
    }
}

fn described(grants: &Permissions) -> String {
    let words = grants.describe();
    if words.is_empty() {
        "no grants".to_string()
    } else {
        words.join(", ")
    }
}

/// The manifest of `path` (a `plugin.toml`, a folder holding one, or none
/// for a bare component) and its text.
fn manifest_of(path: &Path) -> Result<(Option<PathBuf>, Option<String>), ConformanceError> {
    let manifest = if path.is_dir() {
        Some(path.join(MANIFEST_FILE))
    } else if path.file_name().is_some_and(|n| n == MANIFEST_FILE) {
        Some(path.to_path_buf())
    } else {
        if let Err(source) = std::fs::metadata(path) {
            return Err(ConformanceError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
        None
    };
    let text = match &manifest {
        Some(m) => Some(
            std::fs::read_to_string(m).map_err(|source| ConformanceError::Io {
                path: m.clone(),
                source,
            })?,
        ),
        None => None,
    };
    Ok((manifest, text))
}

/// The plugin's name: the manifest's `name`, else its folder's or file's.
fn plugin_name(path: &Path, manifest: Option<&Path>, text: Option<&str>) -> String {
    let declared = text
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("name").and_then(|n| n.as_str().map(str::to_string)));
    declared.unwrap_or_else(|| {
        let from = match manifest {
            Some(m) => m.parent().unwrap_or(path),
            None => path,
        };
        from.file_stem()
            .map(|s| s.to_string_lossy().replace('_', "-"))
            .unwrap_or_else(|| "plugin".to_string())
    })
}

/// The folder the plugin would load from: its own folder's parent, or the
/// folder of a bare component.
fn home_folder(path: &Path, manifest: Option<&Path>) -> PathBuf {
    let own = match manifest {
        Some(m) => m.parent().and_then(Path::parent),
        None => path.parent(),
    };
    let own = own.unwrap_or(Path::new("."));
    std::fs::canonicalize(own).unwrap_or_else(|_| own.to_path_buf())
}

/// The manifest for the scratch folder: the plugin's own with its
/// `component` and folder grants made absolute (they were relative to the
/// original folder) and no `[build]` (a check never builds); a bare
/// component gets one naming it.
fn rebase_manifest(
    path: &Path,
    manifest: Option<&Path>,
    text: Option<&str>,
    name: &str,
) -> Result<String, ConformanceError> {
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (Some(manifest), Some(text)) = (manifest, text) else {
        let mut table = toml::Table::new();
        table.insert("name".into(), name.into());
        table.insert(
            "component".into(),
            absolute(path).to_string_lossy().into_owned().into(),
        );
        return Ok(table.to_string());
    };
    let mut table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConformanceError::Manifest {
                path: manifest.to_path_buf(),
                reason: e.to_string(),
            })?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    if let Some(component) = table.get("component").and_then(|c| c.as_str()) {
        let full = absolute(&base.join(component));
        table.insert(
            "component".into(),
            full.to_string_lossy().into_owned().into(),
        );
    }
    table.remove("build");
    if let Some(dirs) = table
        .get_mut("permissions")
        .and_then(|p| p.get_mut("dirs"))
        .and_then(|d| d.as_array_mut())
    {
        for dir in dirs.iter_mut() {
            if let Some(host) = dir.get("host").and_then(|h| h.as_str()).map(str::to_string)
                && let Some(t) = dir.as_table_mut()
            {
                let full = absolute(&base.join(host));
                t.insert("host".into(), full.to_string_lossy().into_owned().into());
            }
        }
    }
    Ok(table.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synthetic_event_matches_the_pattern_it_was_made_for() {
        let patterns = vec![
            "process.failed".to_string(),
            "alert.*".into(),
            "test.>".into(),
        ];
        for (p, e) in patterns.iter().zip(synthetic_events(&patterns)) {
            assert!(Pattern::parse(p).unwrap().matches(&e.ty), "{p} vs {}", e.ty);
            assert_eq!(e.subject.as_deref(), Some("conformance"));
        }
    }

    #[test]
    fn an_emit_outside_the_grants_is_named_with_the_fix() {
        let grants = Permissions::default();
        let why = not_granted(
            &grants,
            &Action::Emit {
                ty: "alert.x".into(),
                subject: None,
                data: serde_json::Value::Null,
            },
        )
        .unwrap();
        assert!(
            why.contains("alert.x") && why.contains("[permissions] emit"),
            "{why}"
        );
        assert!(not_granted(&grants, &Action::Restart { name: "web".into() }).is_some());
    }

    #[test]
    fn a_relative_component_and_folder_grant_become_absolute_and_build_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("plugin.toml");
        let text = "name = \"x\"\ncomponent = \"x.wasm\"\n[permissions]\ndirs = [{ host = \"data\", guest = \"/data\" }]\n[build]\ncommand = \"make\"\n";
        let out = rebase_manifest(&manifest, Some(&manifest), Some(text), "x").unwrap();
        let table: toml::Table = out.parse().unwrap();
        let component = table["component"].as_str().unwrap();
        assert!(Path::new(component).is_absolute(), "{out}");
        let host = table["permissions"]["dirs"][0]["host"].as_str().unwrap();
        assert!(Path::new(host).is_absolute(), "{out}");
        assert!(!table.contains_key("build"), "{out}");
    }
}
