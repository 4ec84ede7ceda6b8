//! Shadow on reload: a new version of an event handler first runs beside
//! the old one on the live stream, its decisions recorded and compared but
//! not carried out, and is swapped in only if it did not fail.
//!
//! With `[plugins] shadow = true`, a hot reload of a plugin that serves
//! events and whose new version handles events too does not swap at once:
//! the new version becomes the plugin's *shadow*. The dispatcher gives every
//! event it delivers to the old version to the shadow as well, in the same
//! batch and order ([`observe`]), until `shadow_events` events were seen.
//! The two answers of each event are compared as the actions they ask for
//! (or the error they return). Then `plugin.shadow_report` says how often
//! they disagreed, with the first few disagreements, and the new version is
//! swapped in (`plugin.reloaded`, as without a shadow). A shadow that traps,
//! runs out of time or memory is discarded at once with its report
//! (`trapped: true`) and the old version keeps serving; a later change of
//! the files starts a new shadow.
//!
//! What the shadow asks for is never done: its actions are not sent to the
//! executor and its emits are not published. What it stores with
//! `state-set` goes to a scratch copy of the plugin's state taken when the
//! trial starts, which the shadow reads back and which is dropped with
//! the trial; swapped in, it works on the plugin's own state, as the old
//! version left it. (A read-write folder grant is the exception: files it
//! writes there are written.) Its calls are not counted in the plugin's
//! health. It sees the events the old version subscribes to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::bus::{Event, NewEvent};

use super::action::{Action, Cause};
use super::bindings::{action_from_wit, event_to_wit, wit};
use super::error::{CallFailure, PluginError};
use super::manifest::PluginSpec;
use super::registry::{Inner, PluginHost};
use super::slot::{SOURCE, Slot};
use super::version::PluginVersion;

/// Events a shadow sees by default before it is judged.
pub const DEFAULT_SHADOW_EVENTS: u64 = 100;
/// Disagreements quoted in a report; the rest are counted.
pub(crate) const QUOTED_DISAGREEMENTS: usize = 5;

/// A new version on trial beside the one serving.
pub(crate) struct Shadow {
    pub(crate) version: Arc<PluginVersion>,
    /// How long it took to load, for its `plugin.reloaded`.
    took: Duration,
    trial: Mutex<Trial>,
}

#[derive(Default)]
struct Trial {
    seen: u64,
    disagreements: u64,
    quoted: Vec<Value>,
    /// Set once judged: later batches leave it alone.
    over: bool,
}

/// The shadows on trial, by plugin name, and the last one each plugin had
/// discarded (its manifest and digest), so a rescan of unchanged files
/// does not put it on trial again.
#[derive(Default)]
pub(crate) struct Shadows {
    by_plugin: Mutex<HashMap<String, Arc<Shadow>>>,
    discarded: Mutex<HashMap<String, (PluginSpec, String)>>,
}

impl Shadows {
    /// Put `version` on trial for `plugin`, replacing any shadow it had.
    pub(crate) fn start(&self, plugin: &str, version: Arc<PluginVersion>, took: Duration) {
        self.discarded.lock().remove(plugin);
        // What the shadow stores is not done either: it reads the plugin's
        // state as it is now and writes to a copy.
        version.use_scratch_state(true);
        let shadow = Arc::new(Shadow {
            version,
            took,
            trial: Mutex::default(),
        });
        if self
            .by_plugin
            .lock()
            .insert(plugin.to_string(), shadow)
            .is_some()
        {
            tracing::info!(
                plugin,
                "a newer version replaces the shadow on trial; its trial starts over"
            );
        }
    }

    /// The shadow on trial for `plugin`, if any.
    pub(crate) fn get(&self, plugin: &str) -> Option<Arc<Shadow>> {
        self.by_plugin.lock().get(plugin).cloned()
    }

    /// Stop the trial of `plugin` (unloaded, or an operator swapped a
    /// version in without one).
    pub(crate) fn forget(&self, plugin: &str) {
        self.by_plugin.lock().remove(plugin);
        self.discarded.lock().remove(plugin);
    }

    /// Whether `plugin` has a shadow on trial or one discarded.
    pub(crate) fn has_any(&self, plugin: &str) -> bool {
        self.by_plugin.lock().contains_key(plugin) || self.discarded.lock().contains_key(plugin)
    }

    /// Whether `spec` with a component of `digest` is on trial, or was
    /// discarded: either way, not a new version to try.
    pub(crate) fn knows(&self, spec: &PluginSpec, digest: &str) -> bool {
        let same = |s: &PluginSpec, d: &str| s == spec && d == digest;
        self.get(&spec.name)
            .is_some_and(|t| same(&t.version.compiled.spec, &t.version.compiled.digest))
            || self
                .discarded
                .lock()
                .get(&spec.name)
                .is_some_and(|(s, d)| same(s, d))
    }

    /// Remove `shadow` if it is still the one on trial for `plugin`.
    fn end(&self, plugin: &str, shadow: &Arc<Shadow>) -> bool {
        let mut by_plugin = self.by_plugin.lock();
        match by_plugin.get(plugin) {
            Some(s) if Arc::ptr_eq(s, shadow) => {
                by_plugin.remove(plugin);
                true
            }
            _ => false,
        }
    }
}

/// An answer to one event, as compared: the actions asked for, or the
/// error returned.
fn decision(answer: &Result<Vec<Action>, String>) -> Value {
    match answer {
        Ok(actions) => serde_json::to_value(actions).unwrap_or(Value::Null),
        Err(error) => json!({ "error": error }),
    }
}

/// The old version's answer as the shadow's is written: a call failure in
/// the words of [`CallFailure`], without the plugin's name around it.
pub(crate) fn old_answer(result: &Result<Vec<Action>, PluginError>) -> Result<Vec<Action>, String> {
    match result {
        Ok(actions) => Ok(actions.clone()),
        Err(PluginError::Call { failure, .. }) => Err(failure.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Give the shadow of `slot`, if one is on trial, the events the old
/// version was just given, compare the answers, and judge it once it has
/// seen enough or failed: report, and swap it in unless it failed.
pub(crate) async fn observe(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    events: &[Event],
    old: &[Result<Vec<Action>, String>],
) {
    let Some(shadow) = inner.shadows.get(&slot.name) else {
        return;
    };
    let wanted = inner.config.shadow_events.unwrap_or(DEFAULT_SHADOW_EVENTS);
    let room = {
        let trial = shadow.trial.lock();
        if trial.over {
            return;
        }
        wanted.saturating_sub(trial.seen) as usize
    };
    let events = &events[..events.len().min(room)];
    let items: Vec<wit::Event> = events.iter().map(event_to_wit).collect();
    let answers = shadow
        .version
        .call_each(
            items,
            // A fatal failure ends the trial: nothing after it is asked.
            Box::new(|r: &Result<Vec<wit::Action>, CallFailure>| {
                !r.as_ref().is_err_and(CallFailure::is_fatal)
            }),
            |store, x, event: wit::Event| {
                let Some(h) = &x.handler else {
                    return Ok(Err(CallFailure::Invalid(
                        "the new version does not export event-handler".into(),
                    )));
                };
                Ok(h.call_handle(store, &event)?
                    .map_err(CallFailure::GuestError))
            },
        )
        .await;
    let mut trap = None;
    {
        let mut trial = shadow.trial.lock();
        for ((event, old), answer) in events.iter().zip(old).zip(answers) {
            let Some(timed) = answer else { break };
            let new = match timed.outcome {
                Err(failure) if failure.is_fatal() => {
                    trap = Some(json!({
                        "sequence": event.sequence, "failure": failure.kind(),
                        "error": failure.to_string(), "guest_message": timed.guest_message,
                    }));
                    break;
                }
                Err(failure) => Err(failure.to_string()),
                Ok(actions) => actions
                    .into_iter()
                    .map(action_from_wit)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|reason| CallFailure::Invalid(reason).to_string()),
            };
            trial.seen += 1;
            let (old, new) = (decision(old), decision(&new));
            if old != new {
                trial.disagreements += 1;
                if trial.quoted.len() < QUOTED_DISAGREEMENTS {
                    trial.quoted.push(json!({
                        "sequence": event.sequence, "type": event.ty,
                        "old": old, "new": new,
                    }));
                }
            }
        }
        if trap.is_none() && trial.seen < wanted {
            return;
        }
        trial.over = true;
    }
    if !inner.shadows.end(&slot.name, &shadow) {
        // Replaced by a newer shadow meanwhile: this one is moot.
        return;
    }
    judge(inner, slot, &shadow, trap, events.last().map(Cause::of));
}

/// Publish the report of a finished trial and swap the shadow in unless
/// it failed.
fn judge(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    shadow: &Arc<Shadow>,
    trap: Option<Value>,
    cause: Option<Cause>,
) {
    let old = slot.current();
    let new = &shadow.version.compiled;
    let trial = shadow.trial.lock();
    let trapped = trap.is_some();
    let report = json!({
        "plugin": slot.name,
        "old_version": old.as_ref().and_then(|v| v.compiled.spec.version.clone()),
        "old_digest": old.as_ref().map(|v| v.compiled.digest.clone()),
        "new_version": new.spec.version, "new_digest": new.digest,
        "events_seen": trial.seen, "disagreements": trial.disagreements,
        "first_disagreements": trial.quoted, "trapped": trapped, "trap": trap,
        "swapped": !trapped,
    });
    drop(trial);
    if trapped {
        inner
            .shadows
            .discarded
            .lock()
            .insert(slot.name.clone(), (new.spec.clone(), new.digest.clone()));
        tracing::warn!(plugin = %slot.name, "the shadow of the new version failed and is discarded; the old version keeps serving: {}", report["trap"]);
    } else {
        tracing::info!(
            plugin = %slot.name,
            "the shadow saw {} events and disagreed on {}; swapping it in",
            report["events_seen"],
            report["disagreements"]
        );
    }
    let mut event = NewEvent::new(SOURCE, "plugin.shadow_report", report).with_subject(&slot.name);
    if let Some(cause) = cause {
        event = cause.stamp(event);
    }
    if let Err(e) = inner.bus.publish(event) {
        tracing::error!(plugin = %slot.name, "could not publish a shadow report: {e}");
    }
    if !trapped {
        // Swapped in: it works on the state the old version kept.
        shadow.version.use_scratch_state(false);
        PluginHost {
            inner: inner.clone(),
        }
        .install(
            &slot.name,
            Some(slot.clone()),
            shadow.version.clone(),
            shadow.took,
        );
    }
}
