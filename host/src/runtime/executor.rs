//! The action executor: where plugin decisions become host actions.
//!
//! Principle: the host acts, plugins decide. Every action is checked here
//! and performed by the room that owns it (supervisor, coordination, bus):
//!
//! 1. **Reserved types.** A plugin may not emit the host's own event types
//!    (see [`reserved`](super::reserved)).
//! 2. **Grants.** An emit needs its type in the manifest's
//!    `[permissions] emit`; a lifecycle action (start, stop, restart,
//!    pause, resume) needs the process in the verb's grant; a `set-status`
//!    needs `status` (except from a status mapper about the process it was
//!    fed); a task registration needs `tasks`.
//! 3. **Stale causes.** A lifecycle action or status caused by an event
//!    from before this host run is refused: an old failure never restarts
//!    a new process.
//! 4. **Rates.** Each plugin has a token bucket for emits and one for
//!    other actions; what they refuse is dropped.
//!
//! Refusals are counted per plugin and reported as `plugin.actions_refused`
//! at most once a second, with a few examples: a plugin that tries the
//! same forbidden thing in a loop makes no storm of reports. Performed
//! lifecycle actions are recorded as `plugin.action` with their outcome;
//! an emit is recorded by the emitted event itself (source `plugin/NAME`,
//! one level deeper in the chain of causes than the event that led to it),
//! or, when the bus refuses it (too large), by a `plugin.action` saying why.
//! Every report is caused, like an emit, by the event that led to the
//! decision (a refusal report by the deepest of those it counts), so a
//! plugin reacting to reports about another one makes a chain that the
//! dispatch cuts, not a storm that starts again with each report.
//!
//! The actions of one decision run in order, in a task of their own when
//! one of them can take a while (a stop has a grace period), so a slow stop
//! never holds up other plugins' decisions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::bus::{Bus, NewEvent};
use crate::coordination::Coordinator;
use crate::plugins::{Action, ActionRequest, Cause, Kind, Permissions, PluginHost, Verb};
use crate::supervisor::Supervisor;

use super::{SOURCE, reserved};

/// The grants lookup of a running host: each plugin's current version.
pub(crate) fn grants_of(plugins: PluginHost) -> Arc<dyn Fn(&str) -> Permissions + Send + Sync> {
    Arc::new(move |name: &str| {
        plugins
            .get(name)
            .and_then(|p| p.grants())
            .unwrap_or_default()
    })
}

/// How often refusals are reported, at most, per plugin.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Examples of refusals kept per report.
const EXAMPLES: usize = 5;

/// A plugin's rate limits: token buckets refilled continuously. Set in
/// `host.toml`'s `[plugins]` (checked there: every figure positive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Emits per second, sustained. Example: `emits_per_sec = 1000`
    pub emits_per_sec: f64,
    /// Emits allowed in a burst. Example: `emit_burst = 2000`
    pub emit_burst: f64,
    /// Other actions (start, stop, restart, pause, resume, set-status,
    /// register-task) per second, sustained. Example: `actions_per_sec = 5`
    pub actions_per_sec: f64,
    /// Other actions allowed in a burst. Example: `action_burst = 20`
    pub action_burst: f64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            emits_per_sec: 1000.0,
            emit_burst: 2000.0,
            actions_per_sec: 5.0,
            action_burst: 20.0,
        }
    }
}

/// A token bucket.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    per_sec: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_sec: f64, burst: f64) -> Self {
        Bucket {
            tokens: burst,
            per_sec,
            burst,
            at: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One plugin's buckets and the refusals not yet reported.
#[derive(Debug)]
struct PluginBudget {
    emits: Bucket,
    actions: Bucket,
    refused: BTreeMap<&'static str, u64>,
    examples: Vec<String>,
    /// The deepest cause of the refused actions: the report's cause.
    deepest: Option<Cause>,
    last_report: Option<Instant>,
}

impl PluginBudget {
    fn new(limits: RateLimits) -> Self {
        PluginBudget {
            emits: Bucket::new(limits.emits_per_sec, limits.emit_burst),
            actions: Bucket::new(limits.actions_per_sec, limits.action_burst),
            refused: BTreeMap::new(),
            examples: Vec::new(),
            deepest: None,
            last_report: None,
        }
    }

    fn refuse(&mut self, why: &'static str, example: String, cause: Option<Cause>) {
        *self.refused.entry(why).or_default() += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example);
        }
        if let Some(c) = cause
            && self
                .deepest
                .is_none_or(|d| (c.depth, c.sequence) > (d.depth, d.sequence))
        {
            self.deepest = Some(c);
        }
    }

    /// The report of the refusals not yet reported, if any; resets them.
    fn take_report(&mut self, plugin: &str, now: Instant) -> Option<NewEvent> {
        if self.refused.is_empty() {
            return None;
        }
        self.last_report = Some(now);
        let refused = std::mem::take(&mut self.refused);
        let examples = std::mem::take(&mut self.examples);
        tracing::warn!(plugin, ?refused, "plugin actions refused");
        let report = NewEvent::new(
            SOURCE,
            "plugin.actions_refused",
            json!({ "plugin": plugin, "refused": refused, "examples": examples }),
        )
        .with_subject(plugin);
        Some(match self.deepest.take() {
            Some(c) => c.stamp(report),
            None => report,
        })
    }
}

/// What an action needs to be carried out.
#[derive(Clone)]
pub(crate) struct Executor {
    pub(crate) bus: Bus,
    pub(crate) supervisor: Supervisor,
    pub(crate) coordinator: Coordinator,
    /// The grants of a plugin by name (its current version's); nothing
    /// for a plugin that is gone.
    pub(crate) grants: Arc<dyn Fn(&str) -> Permissions + Send + Sync>,
    /// Rates of every plugin, unless overridden.
    pub(crate) rates: RateLimits,
    /// Rates of named plugins.
    pub(crate) rate_overrides: BTreeMap<String, RateLimits>,
}

/// Why an action is not performed.
enum Refusal {
    Reserved(String),
    NotGranted(String),
    Stale(u64),
    Rate,
}

impl Refusal {
    fn key(&self) -> &'static str {
        match self {
            Refusal::Reserved(_) => "reserved",
            Refusal::NotGranted(_) => "not_granted",
            Refusal::Stale(_) => "stale_cause",
            Refusal::Rate => "rate_limited",
        }
    }
}

impl Executor {
    /// Perform requests until `stop` turns true, then perform what was
    /// already queued and wait for actions still in flight. (The channel
    /// cannot be relied on to close by itself: the coordinator this
    /// executor holds also reaches the plugin host, which holds a sender.)
    pub(crate) async fn run(
        self,
        mut requests: mpsc::Receiver<ActionRequest>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut in_flight = JoinSet::new();
        let mut budgets: BTreeMap<String, PluginBudget> = BTreeMap::new();
        let mut tick = tokio::time::interval(REPORT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            let request = tokio::select! {
                r = requests.recv() => r,
                _ = crate::shutdown::requested(&mut stop), if !stopping => {
                    stopping = true;
                    requests.close();
                    continue;
                }
                _ = tick.tick() => {
                    self.report_refusals(&mut budgets, false);
                    continue;
                }
            };
            let Some(request) = request else { break };
            let budget = budgets
                .entry(request.plugin.clone())
                .or_insert_with(|| PluginBudget::new(self.rates_of(&request.plugin)));
            let allowed = self.admit(&request, budget);
            if allowed.is_empty() {
                continue;
            }
            let slow = allowed.iter().any(|a| {
                matches!(
                    a,
                    Action::Stop { .. }
                        | Action::Restart { .. }
                        | Action::Start { .. }
                        | Action::RegisterTask { .. }
                )
            });
            let me = self.clone();
            let (plugin, cause) = (request.plugin, request.cause);
            if slow {
                in_flight.spawn(async move { me.perform_all(&plugin, cause, allowed).await });
            } else {
                me.perform_all(&plugin, cause, allowed).await;
            }
            // Reap finished tasks without waiting.
            while in_flight.try_join_next().is_some() {}
        }
        while in_flight.join_next().await.is_some() {}
        self.report_refusals(&mut budgets, true);
    }

    fn rates_of(&self, plugin: &str) -> RateLimits {
        self.rate_overrides
            .get(plugin)
            .copied()
            .unwrap_or(self.rates)
    }

    /// The actions of `request` that pass every check, in order; the others
    /// are counted as refused.
    fn admit(&self, request: &ActionRequest, budget: &mut PluginBudget) -> Vec<Action> {
        let grants = (self.grants)(&request.plugin);
        let now = Instant::now();
        let mut allowed = Vec::with_capacity(request.actions.len());
        for action in &request.actions {
            match self.check(request, &grants, action) {
                Err(refusal) => {
                    let example = describe_refusal(action, &refusal);
                    tracing::debug!(plugin = %request.plugin, "action refused: {example}");
                    budget.refuse(refusal.key(), example, request.cause);
                }
                Ok(()) => {
                    let bucket = match action {
                        Action::Emit { .. } => &mut budget.emits,
                        // A mapper's status updates follow the process's
                        // output, which is bounded upstream.
                        Action::SetStatus { .. } if request.kind == Kind::StatusMapper => {
                            allowed.push(action.clone());
                            continue;
                        }
                        _ => &mut budget.actions,
                    };
                    if bucket.take(now) {
                        allowed.push(action.clone());
                    } else {
                        budget.refuse(
                            Refusal::Rate.key(),
                            describe_refusal(action, &Refusal::Rate),
                            request.cause,
                        );
                    }
                }
            }
        }
        allowed
    }

    /// Whether `action` of `request` may be performed (before rates).
    fn check(
        &self,
        request: &ActionRequest,
        grants: &Permissions,
        action: &Action,
    ) -> Result<(), Refusal> {
        let stale = || match request.cause {
            Some(c) if c.sequence <= self.bus.opened_at() => Err(Refusal::Stale(c.sequence)),
            _ => Ok(()),
        };
        let granted = |verb: Verb, name: &str| {
            let kind = self
                .supervisor
                .get(name)
                .map(|p| p.kind)
                .unwrap_or_default();
            if grants.allows(verb, name, &kind) {
                Ok(())
            } else {
                Err(Refusal::NotGranted(format!(
                    "`{} {name}` is not granted (add it to [permissions] {} in plugin.toml)",
                    verb.key(),
                    verb.key()
                )))
            }
        };
        match action {
            Action::Emit { ty, .. } => {
                if let Some(why) = reserved(ty) {
                    return Err(Refusal::Reserved(why));
                }
                if !grants.allows_emit(ty) {
                    return Err(Refusal::NotGranted(format!(
                        "emitting `{ty}` is not granted (add a pattern to [permissions] emit in plugin.toml)"
                    )));
                }
                Ok(())
            }
            Action::Start { name } => stale().and_then(|()| granted(Verb::Start, name)),
            Action::Stop { name, .. } => stale().and_then(|()| granted(Verb::Stop, name)),
            Action::Restart { name } => stale().and_then(|()| granted(Verb::Restart, name)),
            Action::Pause { name } => stale().and_then(|()| granted(Verb::Pause, name)),
            Action::Resume { name } => stale().and_then(|()| granted(Verb::Resume, name)),
            Action::SetStatus { name, .. } => {
                stale()?;
                if request.kind == Kind::StatusMapper {
                    // Dispatch feeds a mapper only the processes of its kinds.
                    return Ok(());
                }
                granted(Verb::Status, name)
            }
            Action::RegisterTask { .. } => {
                if grants.tasks {
                    Ok(())
                } else {
                    Err(Refusal::NotGranted(
                        "registering tasks is not granted (set [permissions] tasks = true)".into(),
                    ))
                }
            }
        }
    }

    /// Performs one decision's admitted actions, in order.
    async fn perform_all(&self, plugin: &str, cause: Option<Cause>, actions: Vec<Action>) {
        let mut emits = Vec::new();
        for action in actions {
            if let Action::Emit { ty, subject, data } = action {
                let mut event = NewEvent::new(format!("plugin/{plugin}"), ty, data);
                if let Some(s) = subject {
                    event = event.with_subject(s);
                }
                emits.push(match cause {
                    Some(c) => c.stamp(event),
                    None => event,
                });
                continue;
            }
            // Emits decided before another action are published first.
            self.publish_emits(plugin, cause, &mut emits);
            self.perform(plugin, cause, action).await;
        }
        self.publish_emits(plugin, cause, &mut emits);
    }

    async fn perform(&self, plugin: &str, cause: Option<Cause>, action: Action) {
        let verb = action.verb();
        let (target, result): (Option<String>, Result<(), String>) = match action {
            Action::Emit { .. } => unreachable!("emits are published by perform_all"),
            Action::Start { name } => {
                // Through the restart accounting: a plugin starting a
                // failed process is a restart, whatever it calls it.
                let r = self
                    .supervisor
                    .start_counted(&name)
                    .await
                    .map_err(|e| e.to_string());
                (Some(name), r)
            }
            Action::Stop { name, force } => {
                let r = self
                    .supervisor
                    .stop(&name, force)
                    .await
                    .map_err(|e| e.to_string());
                (Some(name), r)
            }
            Action::Restart { name } => {
                let r = self
                    .supervisor
                    .restart(&name)
                    .await
                    .map_err(|e| e.to_string());
                (Some(name), r)
            }
            Action::Pause { name } => {
                let r = self.supervisor.pause(&name).map_err(|e| e.to_string());
                (Some(name), r)
            }
            Action::Resume { name } => {
                let r = self.supervisor.resume(&name).map_err(|e| e.to_string());
                (Some(name), r)
            }
            Action::SetStatus { name, update } => {
                let caused = cause.map(|c| (c.sequence, c.depth));
                match self.supervisor.set_status(&name, update, caused) {
                    Ok(()) => return,
                    Err(e) => (Some(name), Err(e.to_string())),
                }
            }
            Action::RegisterTask { task } => {
                let id = task.id.clone();
                let r = self
                    .coordinator
                    .register(task, &format!("plugin/{plugin}"))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                (Some(id), r)
            }
        };
        self.record(plugin, verb, target, cause, result);
    }

    /// Publishes emitted events in one journal commit (queued, not
    /// awaited). If the batch is refused (one bad event refuses them all),
    /// they go one by one so only the bad ones fail, each recorded as
    /// caused by `cause`, as the emit would have been.
    fn publish_emits(&self, plugin: &str, cause: Option<Cause>, emits: &mut Vec<NewEvent>) {
        if emits.is_empty() {
            return;
        }
        let pending = std::mem::take(emits);
        if self.bus.submit(pending.clone()).is_ok() {
            return;
        }
        for event in pending {
            let ty = event.ty.clone();
            if let Err(e) = self.bus.submit(vec![event]) {
                self.record(plugin, "emit", Some(ty), cause, Err(e.to_string()));
            }
        }
    }

    /// Record an action's outcome as `plugin.action`, one level deeper than
    /// its cause.
    fn record(
        &self,
        plugin: &str,
        verb: &str,
        target: Option<String>,
        cause: Option<Cause>,
        result: Result<(), String>,
    ) {
        if let Err(e) = &result {
            tracing::warn!(plugin, action = verb, target = ?target, "plugin action failed: {e}");
        }
        let data = json!({
            "plugin": plugin,
            "action": verb,
            "target": target,
            "cause_sequence": cause.map(|c| c.sequence),
            "ok": result.is_ok(),
            "error": result.err(),
        });
        let mut event = NewEvent::new(SOURCE, "plugin.action", data);
        if let Some(t) = target {
            event = event.with_subject(t);
        }
        if let Some(c) = cause {
            event = c.stamp(event);
        }
        if let Err(e) = self.bus.submit(vec![event]) {
            tracing::error!("could not record a plugin action: {e}");
        }
    }

    /// Publishes `plugin.actions_refused` for each plugin with refusals
    /// whose last report is a second old (or all of them at the end).
    fn report_refusals(&self, budgets: &mut BTreeMap<String, PluginBudget>, all: bool) {
        let now = Instant::now();
        let mut events = Vec::new();
        for (plugin, budget) in budgets.iter_mut() {
            let due = budget
                .last_report
                .is_none_or(|t| now.duration_since(t) >= REPORT_EVERY);
            if !(due || all) {
                continue;
            }
            events.extend(budget.take_report(plugin, now));
        }
        if !events.is_empty()
            && let Err(e) = self.bus.submit(events)
        {
            tracing::error!("could not report refused actions: {e}");
        }
    }
}

/// "restart web: not granted ..." for a report's examples.
fn describe_refusal(action: &Action, refusal: &Refusal) -> String {
    let target = match action {
        Action::Emit { ty, .. } => ty.clone(),
        Action::Start { name }
        | Action::Stop { name, .. }
        | Action::Restart { name }
        | Action::Pause { name }
        | Action::Resume { name }
        | Action::SetStatus { name, .. } => name.clone(),
        Action::RegisterTask { task } => task.id.clone(),
    };
    let why = match refusal {
        Refusal::Reserved(why) | Refusal::NotGranted(why) => why.clone(),
        Refusal::Stale(seq) => format!(
            "its cause (event #{seq}) is from before this host run; lifecycle actions and statuses are refused for it"
        ),
        Refusal::Rate => "over the plugin's rate limit".to_string(),
    };
    format!("{} {target}: {why}", action.verb())
}

#[cfg(test)]
mod tests;
