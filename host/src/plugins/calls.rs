//! [`PluginRef`]: typed calls into a plugin, for the rooms that drive
//! plugins (dispatchers here, the agent scheduler, coordination).
//!
//! Every call goes to whichever version serves the slot at that moment,
//! with failure accounting. Values coming back from the guest are
//! validated and bounded here: a malformed action is reported as
//! `plugin.error` and dropped while the plugin's valid actions still run;
//! past [`MAX_ACTIONS`] actions, and the guest's error strings past 4 KiB,
//! are cut the same way.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::sync::Arc;

use wasmtime::AsContextMut;

use crate::bus::Event;
use crate::coordination::{Dependency, NumberedTask, Task};
use crate::supervisor::{ProcessInfo, StatusUpdate};

use super::action::{Action, Cause};
use super::bindings::{
    MAX_LABEL, MAX_TEXT, action_from_wit, event_to_wit, grouped_memory, numbered_to_wit,
    process_to_wit, task_memory, task_to_wit, truncate, update_from_wit, wit,
};
use super::error::{CallFailure, PluginError};
use super::instance::Kind;
use super::slot::{Health, Slot};
use super::version::Description;

/// Event types a status mapper is fed: a process's output lines...
pub(crate) const OUTPUT: &str = "process.output";
/// ...and a status reported by the process's own system (`{"status": "..."}`).
pub(crate) const REPORTED: &str = "process.reported";

/// What the host asks a status mapper about one event.
#[derive(Debug, Clone, PartialEq)]
pub enum MapperQuestion {
    /// The lines of a `process.output` event.
    Output(Vec<String>),
    /// The status of a `process.reported` event.
    Reported(String),
}

impl MapperQuestion {
    /// What a mapper serving `kinds` (`*` = all) is asked about `event`,
    /// for a process of `kind`; `None` when the host does not ask it (an
    /// event of another type, a process of another kind, no lines, no
    /// status). The dispatcher and `host plugin test` both ask this.
    pub fn of(event: &Event, kinds: &[String], kind: &str) -> Option<Self> {
        if !kinds.iter().any(|k| k == "*" || k == kind) {
            return None;
        }
        match event.ty.as_str() {
            OUTPUT => {
                let lines: Vec<String> = event.data["lines"]
                    .as_array()?
                    .iter()
                    .filter_map(|l| l.as_str().map(str::to_string))
                    .collect();
                (!lines.is_empty()).then_some(Self::Output(lines))
            }
            REPORTED => Some(Self::Reported(event.data["status"].as_str()?.to_string())),
            _ => None,
        }
    }
}

/// Most actions one call may ask for; the rest are refused and reported.
pub const MAX_ACTIONS: usize = 256;

/// Candidates in one `check-batch` call: ~7 µs each in a shipped rule,
/// so a full chunk stays far inside the default 100 ms deadline.
const CHECK_CHUNK: usize = 1024;

/// Pairs asked one `check` at a time within one trip to the plugin (a 0.1
/// rule): each is a whole guest call, so fewer fit under the deadline.
const PAIR_CHUNK: usize = 128;

/// What one agent tick produced.
#[derive(Debug, Clone)]
pub struct TickOutcome {
    /// What the agent says it is doing.
    pub activity: String,
    /// Actions it asks for.
    pub actions: Vec<Action>,
}

/// A handle to a loaded plugin (whichever version is current).
#[derive(Clone)]
pub struct PluginRef {
    slot: Arc<Slot>,
}

impl PluginRef {
    pub(crate) fn new(slot: Arc<Slot>) -> Self {
        Self { slot }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// Whether the plugin is still loaded.
    pub fn is_loaded(&self) -> bool {
        !self.slot.is_removed() && self.slot.current().is_some()
    }

    /// Whether the current version exports `kind`.
    pub fn has_kind(&self, kind: Kind) -> bool {
        self.slot
            .current()
            .is_some_and(|v| v.compiled.kinds.contains(&kind))
    }

    /// Whether the current version is a dependency rule that remembers
    /// tasks (`task-memory`), so [`PluginRef::check_numbered`] asks it by
    /// numbers.
    pub fn remembers_tasks(&self) -> bool {
        self.slot
            .current()
            .is_some_and(|v| v.compiled.remembers_tasks())
    }

    /// The call [`PluginRef::check_numbered`] asks the current version
    /// with: `check-grouped` for a rule exporting `grouped-memory`,
    /// `check-remembered` for one remembering tasks without it, `None` for
    /// any other.
    pub fn numbered_call(&self) -> Option<&'static str> {
        let version = self.slot.current()?;
        version
            .compiled
            .remembers_tasks()
            .then(|| memory_call(version.compiled.answers_grouped()))
    }

    /// What the current version said about itself.
    pub fn description(&self) -> Option<Description> {
        self.slot.current().map(|v| v.description.clone())
    }

    /// What the current version is granted (its manifest's
    /// `[permissions]`); `None` once unloaded.
    pub fn grants(&self) -> Option<super::Permissions> {
        self.slot
            .current()
            .map(|v| v.compiled.spec.permissions.clone())
    }

    /// Counters and quarantine state.
    pub fn health(&self) -> Health {
        self.slot.health()
    }

    /// For each kind fed from the log (handler, mapper), the sequence its
    /// dispatcher has read up to: delivered, or passed over as not wanted
    /// (so an idle handler with a narrow filter is not "behind").
    pub fn cursors(&self) -> std::collections::BTreeMap<Kind, u64> {
        self.slot.positions()
    }

    /// How long this plugin's calls took on its worker, in seconds: one
    /// observation per counted call (each item of a batch on its own). The
    /// histogram shares its counts with the plugin's slot.
    pub fn call_latency(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.slot.latency()
    }

    /// Deliver one event to an event handler.
    pub async fn handle(&self, event: &Event) -> Result<Vec<Action>, PluginError> {
        let wit_event = event_to_wit(event);
        let actions = self
            .slot
            .invoke("handle", Some(Cause::of(event)), move |store, x| {
                let Some(h) = &x.handler else {
                    return Ok(Err(not_exported("event-handler")));
                };
                Ok(h.call_handle(store, &wit_event)?.map_err(guest_error))
            })
            .await?;
        Ok(self.convert_actions("handle", Some(Cause::of(event)), actions))
    }

    /// Deliver several events in one trip to the plugin; one result per
    /// event, in order, each accounted as its own call.
    pub async fn handle_each(&self, events: &[Event]) -> Vec<Result<Vec<Action>, PluginError>> {
        let items = events
            .iter()
            .map(|e| (Some(Cause::of(e)), event_to_wit(e)))
            .collect();
        let results = self
            .slot
            .invoke_each("handle", items, |store, x, event: wit::Event| {
                let Some(h) = &x.handler else {
                    return Ok(Err(not_exported("event-handler")));
                };
                Ok(h.call_handle(store, &event)?.map_err(guest_error))
            })
            .await;
        events
            .iter()
            .zip(results)
            .map(|(e, r)| {
                r.map(|actions| self.convert_actions("handle", Some(Cause::of(e)), actions))
            })
            .collect()
    }

    /// Map a batch of output lines of `process`; the updates the mapper
    /// returns are merged in order (later fields win) into one.
    pub async fn map_output(
        &self,
        process: &ProcessInfo,
        lines: Vec<String>,
        cause: Option<Cause>,
    ) -> Result<Option<StatusUpdate>, PluginError> {
        let info = process_to_wit(process);
        let updates = self
            .slot
            .invoke("map-output", cause, move |store, x| {
                let Some(m) = &x.mapper else {
                    return Ok(Err(not_exported("status-mapper")));
                };
                let mut out = Vec::new();
                for line in &lines {
                    if let Some(u) = m.call_map_output(&mut *store, &info, line)? {
                        out.push(u);
                    }
                }
                Ok(Ok(out))
            })
            .await?;
        self.merge_updates("map-output", cause, updates)
    }

    /// Map a status reported by the process's own system.
    pub async fn map_status(
        &self,
        process: &ProcessInfo,
        reported: String,
        cause: Option<Cause>,
    ) -> Result<Option<StatusUpdate>, PluginError> {
        let info = process_to_wit(process);
        let update = self
            .slot
            .invoke("map-status", cause, move |store, x| {
                let Some(m) = &x.mapper else {
                    return Ok(Err(not_exported("status-mapper")));
                };
                Ok(Ok(m.call_map_status(store, &info, &reported)?))
            })
            .await?;
        self.merge_updates("map-status", cause, update.into_iter().collect())
    }

    /// Ask this status mapper `question` about `process`: its output lines
    /// or its reported status.
    pub async fn ask_mapper(
        &self,
        process: &ProcessInfo,
        question: MapperQuestion,
        cause: Option<Cause>,
    ) -> Result<Option<StatusUpdate>, PluginError> {
        match question {
            MapperQuestion::Output(lines) => self.map_output(process, lines, cause).await,
            MapperQuestion::Reported(status) => self.map_status(process, status, cause).await,
        }
    }

    /// Ask a dependency rule about `task` against each of `others`, in one
    /// trip to the plugin: one `check-batch` call for a 0.2 rule, a `check`
    /// per pair for a 0.1 rule. A batch answer naming a candidate out of
    /// range, or one already named, is reported as `plugin.error` and
    /// dropped; the rest of the answer stands.
    pub async fn check_many(
        &self,
        task: &Task,
        others: &[impl Borrow<Task>],
    ) -> Result<Vec<Dependency>, PluginError> {
        self.check(task, others, Asking::Batch).await
    }

    /// As [`PluginRef::check_many`], but a rule that remembers tasks
    /// (`task-memory`) is asked by numbers only: `task` is handed to it
    /// first, then `check-remembered` with the candidates' numbers; the
    /// candidates it says it does not remember are handed over and it is
    /// asked once more. A rule that forgets them again is asked with
    /// `check-batch` instead, and that is reported as `plugin.error`.
    /// Numbers must come from one numbering (the coordinator's) for the
    /// life of the plugin: a number always means the same text.
    pub async fn check_numbered(
        &self,
        task: &NumberedTask,
        others: &[NumberedTask],
    ) -> Result<Vec<Dependency>, PluginError> {
        self.check(&task.task, others, Asking::Remembered { task, others })
            .await
    }

    /// As [`PluginRef::check_many`], but one `check` call per pair even
    /// for a 0.2 rule: what a 0.1 rule costs, and the seed's detector did
    /// (`host bench` compares the two).
    pub async fn check_pairs(
        &self,
        task: &Task,
        others: &[impl Borrow<Task>],
    ) -> Result<Vec<Dependency>, PluginError> {
        self.check(task, others, Asking::Pairs).await
    }

    async fn check(
        &self,
        task: &Task,
        others: &[impl Borrow<Task>],
        asking: Asking<'_>,
    ) -> Result<Vec<Dependency>, PluginError> {
        let a = task_to_wit(task);
        // One call per chunk: a rule that sees every pair (no keywords)
        // against 50,000 tasks would otherwise be one call past any
        // deadline, and a plugin quarantined for the size of the backlog.
        // What the rule said, each distinct answer once, and its hits as
        // (candidate, index into `said`): a grouped answer's hits share
        // their group's strings all the way into the published events.
        let mut said: Vec<wit::Dependency> = Vec::new();
        let mut found: Vec<(usize, usize)> = Vec::new();
        // Indices named out of range or twice, by the call that named them.
        let mut bad: Vec<(&'static str, Misnamed)> = Vec::new();
        // Calls where the rule forgot tasks right after being handed them,
        // by the memory call that said so.
        let mut forgot: Vec<&'static str> = Vec::new();
        // A 0.1 rule (or pairs asked for) answers pair by pair, so it is
        // given fewer per trip; which it is shows in the first answer.
        let mut per_call = match asking {
            Asking::Pairs => PAIR_CHUNK,
            Asking::Batch | Asking::Remembered { .. } => CHECK_CHUNK,
        };
        let mut start = 0;
        while start < others.len() {
            let chunk = &others[start..others.len().min(start + per_call)];
            let a = a.clone();
            let first = start == 0;
            // A remembering rule is handed records only for what it asks
            // for, so the chunk goes over as numbers and shared tasks; the
            // records of `check-batch` are built where they are needed.
            let numbered: Option<(NumberedTask, Vec<NumberedTask>)> = match asking {
                Asking::Remembered { task, others } => {
                    Some((task.clone(), others[start..start + chunk.len()].to_vec()))
                }
                _ => None,
            };
            let bs: Vec<wit::Task> = if numbered.is_some() {
                Vec::new()
            } else {
                chunk.iter().map(|t| task_to_wit(t.borrow())).collect()
            };
            let batch = !matches!(asking, Asking::Pairs);
            let answer = self
                .slot
                .invoke("check", None, move |store, x| {
                    let Some(r) = &x.rule else {
                        return Ok(Err(not_exported("dependency-rule")));
                    };
                    let mut forgot = None;
                    let bs = match (numbered, &x.memory) {
                        (Some((new, chunk)), Some(m)) => {
                            let grouped = x.grouped.as_ref();
                            match ask_remembered(m, grouped, &mut *store, &new, &chunk, first)? {
                                Some(answer) => {
                                    let call = answer.call();
                                    let (said, found, bad) = answer.accept(chunk.len());
                                    return Ok(Ok(Checked {
                                        said,
                                        found,
                                        bad,
                                        call,
                                        asked: chunk.len(),
                                        forgot,
                                    }));
                                }
                                None => {
                                    forgot = Some(memory_call(grouped.is_some()));
                                    chunk.iter().map(|t| task_to_wit(&t.task)).collect()
                                }
                            }
                        }
                        (Some((_, chunk)), None) => {
                            chunk.iter().map(|t| task_to_wit(&t.task)).collect()
                        }
                        (None, _) => bs,
                    };
                    if batch && let Some(answer) = r.call_check_batch(&mut *store, &a, &bs) {
                        let (said, found, bad) = Answer::Flat(answer?).accept(bs.len());
                        return Ok(Ok(Checked {
                            said,
                            found,
                            bad,
                            call: "check-batch",
                            asked: bs.len(),
                            forgot,
                        }));
                    }
                    let asked = bs.len().min(PAIR_CHUNK);
                    let (mut said, mut found) = (Vec::new(), Vec::new());
                    for (i, b) in bs[..asked].iter().enumerate() {
                        if let Some(d) = r.call_check(&mut *store, &a, b)? {
                            found.push((i, said.len()));
                            said.push(d);
                        }
                    }
                    Ok(Ok(Checked {
                        said,
                        found,
                        bad: Misnamed::default(),
                        call: "check",
                        asked,
                        forgot,
                    }))
                })
                .await?;
            if answer.asked < chunk.len() {
                per_call = PAIR_CHUNK;
            }
            let offset = said.len();
            said.extend(answer.said);
            found.extend(
                answer
                    .found
                    .into_iter()
                    .map(|(i, k)| (start + i, offset + k)),
            );
            if answer.bad.count > 0 {
                match bad.iter_mut().find(|(call, _)| *call == answer.call) {
                    Some((_, named)) => named.add(answer.bad),
                    None => bad.push((answer.call, answer.bad)),
                }
            }
            forgot.extend(answer.forgot);
            start += answer.asked.max(1);
        }
        for (call, named) in bad {
            if let Some(first) = named.first {
                self.slot.report(
                    call,
                    None,
                    &CallFailure::Invalid(format!(
                        "{call} named {} candidates out of range or twice (first: {first}, in a call of at most {CHECK_CHUNK} of {} candidates); they are ignored",
                        named.count,
                        others.len()
                    )),
                );
            }
        }
        if let Some(call) = forgot.first() {
            self.slot.report(
                call,
                None,
                &CallFailure::Invalid(format!(
                    "{call} still named tasks it does not remember right after being handed them, in {} of its calls; those candidates were asked with check-batch",
                    forgot.len()
                )),
            );
        }
        // Each distinct answer, each name, made shared text once: the hits
        // are then counted references, however many a registration finds.
        let said: Vec<(Arc<str>, Arc<str>, f32)> = said
            .into_iter()
            .map(|d| {
                (
                    truncate(d.relationship, MAX_LABEL).into(),
                    truncate(d.reason, MAX_TEXT).into(),
                    if d.confidence.is_finite() {
                        d.confidence.clamp(0.0, 1.0)
                    } else {
                        0.0
                    },
                )
            })
            .collect();
        let rule: Arc<str> = self.slot.name.as_str().into();
        let task_id: Arc<str> = task.id.as_str().into();
        Ok(found
            .into_iter()
            .map(|(i, k)| {
                let (relationship, reason, confidence) = &said[k];
                Dependency {
                    rule: rule.clone(),
                    task: task_id.clone(),
                    depends_on: match asking {
                        Asking::Remembered { others, .. } => others[i].id.clone(),
                        _ => others[i].borrow().id.as_str().into(),
                    },
                    relationship: relationship.clone(),
                    reason: reason.clone(),
                    confidence: *confidence,
                }
            })
            .collect())
    }

    /// Run one background-agent tick.
    pub async fn tick(&self) -> Result<TickOutcome, PluginError> {
        let outcome = self
            .slot
            .invoke("tick", None, move |store, x| {
                let Some(a) = &x.agent else {
                    return Ok(Err(not_exported("background-agent")));
                };
                Ok(a.call_tick(store)?.map_err(guest_error))
            })
            .await?;
        Ok(TickOutcome {
            activity: outcome.activity,
            actions: self.convert_actions("tick", None, outcome.actions),
        })
    }

    /// Validate what a call returned: at most [`MAX_ACTIONS`] actions run;
    /// the rest, and each malformed one, are reported as `plugin.error`.
    fn convert_actions(
        &self,
        call: &'static str,
        cause: Option<Cause>,
        actions: Vec<wit::Action>,
    ) -> Vec<Action> {
        if actions.len() > MAX_ACTIONS {
            let refused = actions.len() - MAX_ACTIONS;
            self.slot.report(
                call,
                cause,
                &CallFailure::Invalid(format!(
                    "returned {} actions; the first {MAX_ACTIONS} run, the other {refused} are refused",
                    actions.len()
                )),
            );
        }
        actions
            .into_iter()
            .take(MAX_ACTIONS)
            .filter_map(|a| match action_from_wit(a) {
                Ok(a) => Some(a),
                Err(reason) => {
                    let reason = truncate(reason, MAX_TEXT);
                    self.slot.report(call, cause, &CallFailure::Invalid(reason));
                    None
                }
            })
            .collect()
    }

    fn merge_updates(
        &self,
        call: &'static str,
        cause: Option<Cause>,
        updates: Vec<wit::StatusUpdate>,
    ) -> Result<Option<StatusUpdate>, PluginError> {
        let mut merged: Option<StatusUpdate> = None;
        for u in updates {
            match update_from_wit(u) {
                Ok(u) => {
                    let m = merged.get_or_insert(StatusUpdate {
                        state: None,
                        progress: None,
                        message: None,
                    });
                    if u.state.is_some() {
                        m.state = u.state;
                    }
                    if u.progress.is_some() {
                        m.progress = u.progress;
                    }
                    if u.message.is_some() {
                        m.message = u.message;
                    }
                }
                Err(reason) => self.slot.report(
                    call,
                    cause,
                    &CallFailure::Invalid(truncate(reason, MAX_TEXT)),
                ),
            }
        }
        Ok(merged)
    }
}

/// The plugin's own error, cut to [`MAX_TEXT`] bytes.
fn guest_error(text: String) -> CallFailure {
    CallFailure::GuestError(truncate(text, MAX_TEXT))
}

/// A rule's answer about one chunk of candidates, as it came.
enum Answer {
    /// `check-batch`, `check-remembered`: (candidate, dependency) per hit.
    Flat(Vec<(u32, wit::Dependency)>),
    /// `check-grouped`: each distinct dependency once, with its candidates.
    Grouped(Vec<grouped_memory::HitGroup>),
}

impl Answer {
    /// The answer checked against the `len` candidates asked about, in one
    /// pass that keeps nothing it drops (an answer can be as large as the
    /// guest's memory): what the rule said that names a kept hit (each
    /// group, or each hit, once); the hits as (candidate, index into what
    /// it said), each candidate once, ascending; and the candidates named
    /// out of range or again.
    fn accept(self, len: usize) -> (Vec<wit::Dependency>, Vec<(usize, usize)>, Misnamed) {
        let mut seen = vec![false; len];
        let mut misnamed = Misnamed::default();
        let mut first_time = |i: u32| match seen.get_mut(i as usize) {
            Some(s) if !*s => {
                *s = true;
                true
            }
            _ => {
                misnamed.note(i);
                false
            }
        };
        let mut said = Vec::new();
        let mut found = Vec::new();
        match self {
            Answer::Flat(hits) => {
                for (i, d) in hits {
                    if first_time(i) {
                        found.push((i as usize, said.len()));
                        said.push(d);
                    }
                }
            }
            Answer::Grouped(groups) => {
                for group in groups {
                    let k = said.len();
                    let before = found.len();
                    for i in group.candidates {
                        if first_time(i) {
                            found.push((i as usize, k));
                        }
                    }
                    if found.len() > before {
                        said.push(group.dependency);
                    }
                }
            }
        }
        found.sort_unstable_by_key(|(i, _)| *i);
        (said, found, misnamed)
    }

    /// The name of the memory call that gave it.
    fn call(&self) -> &'static str {
        memory_call(matches!(self, Answer::Grouped(_)))
    }
}

/// How a dependency rule is asked about many candidates.
#[derive(Clone, Copy)]
enum Asking<'a> {
    /// One `check` per pair, whatever the rule offers.
    Pairs,
    /// `check-batch` (a 0.1 rule: `check` per pair).
    Batch,
    /// `check-remembered` where the rule has `task-memory`, else as
    /// `Batch`: the task asked about and the candidates, numbered.
    Remembered {
        task: &'a NumberedTask,
        others: &'a [NumberedTask],
    },
}

/// Candidates an answer named out of range or again: how many, and the
/// first (what the report says; the rest are not kept).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Misnamed {
    count: usize,
    first: Option<u32>,
}

impl Misnamed {
    fn note(&mut self, i: u32) {
        self.count += 1;
        self.first.get_or_insert(i);
    }

    /// Adds `other`'s, which came later.
    fn add(&mut self, other: Misnamed) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }
}

/// What one trip to a rule answered about one chunk of candidates.
struct Checked {
    /// What the rule said: each group of a grouped answer, each hit of
    /// another.
    said: Vec<wit::Dependency>,
    /// (index into the chunk, index into `said`), each chunk index once,
    /// ascending.
    found: Vec<(usize, usize)>,
    /// Indices the rule named out of range or twice...
    bad: Misnamed,
    /// ...in its answer to this call.
    call: &'static str,
    /// Candidates of the chunk it was asked about (a 0.1 rule takes fewer).
    asked: usize,
    /// The memory call that named tasks as forgotten right after they
    /// were handed over (the chunk was then asked with `check-batch`).
    forgot: Option<&'static str>,
}

/// `check-remembered` of `new` against `chunk` on a rule's memory
/// (`check-grouped` where the rule answers grouped): hands it `new` first
/// on the first chunk of a registration, and what it says it does not
/// remember when it does not. `None` when it still does not remember them
/// after being handed them.
fn ask_remembered(
    memory: &task_memory::Guest,
    grouped: Option<&grouped_memory::Guest>,
    mut store: impl AsContextMut,
    new: &NumberedTask,
    chunk: &[NumberedTask],
    first: bool,
) -> wasmtime::Result<Option<Answer>> {
    if first {
        memory.call_remember(&mut store, &[numbered_to_wit(new)])?;
    }
    let numbers: Vec<u32> = chunk.iter().map(|t| t.number).collect();
    let unknown = match check_memory(memory, grouped, &mut store, new.number, &numbers)? {
        Ok(answer) => return Ok(Some(answer)),
        Err(unknown) => unknown.into_iter().collect::<HashSet<u32>>(),
    };
    // Only what was asked about is handed over: a number the rule names
    // that it was not asked about is not the host's to explain.
    let mut handed: Vec<task_memory::NumberedTask> = chunk
        .iter()
        .filter(|t| unknown.contains(&t.number))
        .map(numbered_to_wit)
        .collect();
    if unknown.contains(&new.number) {
        handed.push(numbered_to_wit(new));
    }
    memory.call_remember(&mut store, &handed)?;
    Ok(check_memory(memory, grouped, &mut store, new.number, &numbers)?.ok())
}

/// The call a rule with `task-memory` is asked by numbers with:
/// `check-grouped` where it also exports `grouped-memory`.
fn memory_call(grouped: bool) -> &'static str {
    if grouped {
        "check-grouped"
    } else {
        "check-remembered"
    }
}

/// One `check-grouped` (where the rule has it) or `check-remembered`.
fn check_memory(
    memory: &task_memory::Guest,
    grouped: Option<&grouped_memory::Guest>,
    store: impl AsContextMut,
    task: u32,
    numbers: &[u32],
) -> wasmtime::Result<Result<Answer, Vec<u32>>> {
    Ok(match grouped {
        Some(g) => g
            .call_check_grouped(store, task, numbers)?
            .map(Answer::Grouped),
        None => memory
            .call_check_remembered(store, task, numbers)?
            .map(Answer::Flat),
    })
}

fn not_exported(kind: &str) -> CallFailure {
    CallFailure::Invalid(format!("the current version no longer exports {kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapper_is_asked_about_output_and_reports_of_its_kinds_only() {
        use crate::bus::NewEvent;
        use serde_json::json;
        let event = |ty: &str, data| {
            NewEvent::new("host/supervisor", ty, data).into_event(1, chrono::Utc::now(), "i".into())
        };
        let kinds = vec!["build".to_string()];
        let output = event(OUTPUT, json!({ "lines": ["a", 7, "b"] }));
        assert_eq!(
            MapperQuestion::of(&output, &kinds, "build"),
            Some(MapperQuestion::Output(vec!["a".into(), "b".into()]))
        );
        assert_eq!(MapperQuestion::of(&output, &kinds, "web"), None);
        assert!(MapperQuestion::of(&output, &["*".into()], "web").is_some());
        let empty = event(OUTPUT, json!({ "lines": [] }));
        assert_eq!(MapperQuestion::of(&empty, &kinds, "build"), None);
        let reported = event(REPORTED, json!({ "status": "paused" }));
        assert_eq!(
            MapperQuestion::of(&reported, &kinds, "build"),
            Some(MapperQuestion::Reported("paused".into()))
        );
        let bare = event(REPORTED, json!({}));
        assert_eq!(MapperQuestion::of(&bare, &kinds, "build"), None);
        let other = event("process.exited", json!({ "lines": ["a"] }));
        assert_eq!(MapperQuestion::of(&other, &kinds, "build"), None);
    }

    fn dep(reason: &str) -> wit::Dependency {
        wit::Dependency {
            relationship: "r".into(),
            reason: reason.into(),
            confidence: 0.5,
        }
    }

    #[test]
    fn a_batch_answer_keeps_the_first_of_repeats_and_drops_indices_out_of_range() {
        let (said, found, bad) = Answer::Flat(vec![
            (2, dep("c")),
            (0, dep("a")),
            (2, dep("again")),
            (7, dep("x")),
        ])
        .accept(3);
        assert_eq!(said.len(), 2, "dropped hits are not kept");
        let kept: Vec<_> = found
            .iter()
            .map(|(i, k)| (*i, said[*k].reason.as_str()))
            .collect();
        assert_eq!(kept, [(0, "a"), (2, "c")]);
        assert_eq!(
            bad,
            Misnamed {
                count: 2,
                first: Some(2)
            }
        );
    }

    #[test]
    fn a_grouped_answer_shares_each_group_and_keeps_a_candidates_first_group() {
        let group = |reason: &str, candidates: &[u32]| grouped_memory::HitGroup {
            dependency: dep(reason),
            candidates: candidates.to_vec(),
        };
        let (said, found, bad) =
            Answer::Grouped(vec![group("x", &[3, 0, 9]), group("y", &[1, 3, 1])]).accept(4);
        let kept: Vec<_> = found
            .iter()
            .map(|(i, k)| (*i, said[*k].reason.as_str()))
            .collect();
        assert_eq!(kept, [(0, "x"), (1, "y"), (3, "x")]);
        assert_eq!(
            bad,
            Misnamed {
                count: 3,
                first: Some(9)
            }
        );
        // What the rule said is kept only where it names a kept hit.
        let (said, found, _) =
            Answer::Grouped(vec![group("x", &[0]), group("dropped", &[0, 7])]).accept(1);
        assert_eq!((said.len(), found), (1, vec![(0, 0)]));
    }
}
