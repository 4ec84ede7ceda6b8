//! Feeding plugins from the event log: one task per (plugin, kind) for the
//! kinds driven by events (event handlers and status mappers).
//!
//! Each task is a consumer with a cursor over the log. It holds the plugin
//! *slot*, not a version: when a new version is swapped in, the task
//! notices between two deliveries, rebuilds its consumer with the new
//! version's subscriptions from the same cursor, and carries on — so no
//! event is lost or handled twice across a reload.

use std::sync::Arc;

use crate::bus::{Consumer, Event, Pattern, StartAt};

use super::PluginRef;
use super::action::{Action, ActionRequest};
use super::error::PluginError;
use super::instance::Kind;
use super::registry::Inner;
use super::slot::Slot;

/// Event types a status mapper is fed.
const OUTPUT: &str = "process.output";
/// A status reported by the process's own system: data `{"status": "..."}`.
const REPORTED: &str = "process.reported";

/// Deliver subscribed events to an event-handler plugin and forward its
/// actions to the executor.
pub(crate) async fn event_handler(inner: Arc<Inner>, slot: Arc<Slot>, start: StartAt) {
    let own_source = format!("plugin/{}", slot.name);
    let plugin = PluginRef::new(slot.clone());
    follow(
        inner.clone(),
        slot.clone(),
        Kind::EventHandler,
        start,
        |v| v.description.subscriptions.clone(),
        move |batch: Vec<Event>| {
            let plugin = plugin.clone();
            let inner = inner.clone();
            let own_source = own_source.clone();
            async move {
                // A handler never receives its own events: one that subscribes
                // broadly would otherwise feed itself forever.
                let events: Vec<Event> = batch
                    .into_iter()
                    .filter(|e| e.source != own_source)
                    .collect();
                if events.is_empty() {
                    return;
                }
                let results = plugin.handle_each(&events).await;
                for (event, result) in events.iter().zip(results) {
                    match result {
                        Ok(actions) => {
                            forward(&inner, plugin.name(), Some(event.sequence), actions).await
                        }
                        Err(e) => log_call_error(&e),
                    }
                }
            }
        },
    )
    .await;
}

/// Feed output lines and reported statuses of processes of the mapper's
/// kinds to a status-mapper plugin; its updates become `set-status`.
pub(crate) async fn status_mapper(inner: Arc<Inner>, slot: Arc<Slot>, start: StartAt) {
    let plugin = PluginRef::new(slot.clone());
    follow(
        inner.clone(),
        slot.clone(),
        Kind::StatusMapper,
        start,
        |_| vec![OUTPUT.to_string(), REPORTED.to_string()],
        move |batch: Vec<Event>| {
            let plugin = plugin.clone();
            let inner = inner.clone();
            async move {
                for event in batch {
                    map_one(&inner, &plugin, event).await;
                }
            }
        },
    )
    .await;
}

/// One `process.output` or `process.reported` event through a mapper.
async fn map_one(inner: &Inner, plugin: &PluginRef, event: Event) {
    let Some(name) = event.subject.clone() else {
        return;
    };
    let Some(process) = inner.services.processes.get(&name) else {
        return;
    };
    let kinds = plugin
        .description()
        .map(|d| d.mapper_kinds)
        .unwrap_or_default();
    if !kinds.iter().any(|k| k == "*" || *k == process.kind) {
        return;
    }
    let result = if event.ty == OUTPUT {
        let lines: Vec<String> = event.data["lines"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if lines.is_empty() {
            return;
        }
        plugin
            .map_output(&process, lines, Some(event.sequence))
            .await
    } else {
        let Some(status) = event.data["status"].as_str() else {
            return;
        };
        plugin
            .map_status(&process, status.to_string(), Some(event.sequence))
            .await
    };
    match result {
        Ok(Some(update)) => {
            let action = Action::SetStatus { name, update };
            forward(inner, plugin.name(), Some(event.sequence), vec![action]).await;
        }
        Ok(None) => {}
        Err(e) => log_call_error(&e),
    }
}

/// Most events handed to a plugin in one trip.
const BATCH: usize = 64;

/// The consumer loop shared by both kinds: deliver events in order, in
/// batches of what is already waiting (at most [`BATCH`]),
/// rebuilding the consumer (same cursor) whenever the slot's version
/// changes, until the plugin is unloaded, stops exporting `kind`, or the
/// host shuts down.
async fn follow<F, Fut>(
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    kind: Kind,
    start: StartAt,
    patterns_of: impl Fn(&super::instance::PluginVersion) -> Vec<String>,
    mut deliver: F,
) where
    F: FnMut(Vec<Event>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut generation = slot.subscribe();
    let mut shutdown = inner.shutdown.subscribe();
    let mut start = start;
    'versions: loop {
        generation.borrow_and_update();
        let Some(version) = slot.current().filter(|v| v.compiled.kinds.contains(&kind)) else {
            break;
        };
        let patterns: Vec<Pattern> = patterns_of(&version)
            .iter()
            .filter_map(|p| Pattern::parse(p).ok())
            .collect();
        drop(version);
        if patterns.is_empty() {
            // Subscribed to nothing: wait for a new version.
            tokio::select! {
                _ = crate::shutdown::requested(&mut shutdown) => break,
                changed = generation.changed() => if changed.is_err() { break } else { continue },
            }
        }
        let mut consumer: Consumer =
            inner
                .bus
                .consumer(format!("plugin/{}/{kind}", slot.name), patterns, start);
        loop {
            tokio::select! {
                biased;
                _ = crate::shutdown::requested(&mut shutdown) => break 'versions,
                changed = generation.changed() => {
                    if changed.is_err() {
                        break 'versions;
                    }
                    start = StartAt::After(consumer.cursor());
                    continue 'versions;
                }
                next = consumer.next() => match next {
                    Ok(event) => {
                        // Whatever else is already waiting goes in the same
                        // trip; a swap still lands between two batches.
                        let mut batch = vec![event];
                        while batch.len() < BATCH {
                            match consumer.try_next() {
                                Ok(Some(more)) => batch.push(more),
                                _ => break,
                            }
                        }
                        deliver(batch).await;
                        slot.cursors.lock().insert(kind, consumer.cursor());
                    }
                    Err(e) => {
                        tracing::error!(plugin = %slot.name, "event log read failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }
    slot.dispatching.lock().remove(&kind);
    slot.cursors.lock().remove(&kind);
}

async fn forward(inner: &Inner, plugin: &str, cause: Option<u64>, actions: Vec<Action>) {
    if actions.is_empty() {
        return;
    }
    let request = ActionRequest {
        plugin: plugin.to_string(),
        cause,
        actions,
    };
    // A bounded channel: if the executor falls behind, dispatch waits
    // (backpressure) instead of dropping decisions.
    if inner.actions.send(request).await.is_err() {
        tracing::warn!(
            plugin,
            "action executor is gone; dropping actions during shutdown"
        );
    }
}

fn log_call_error(e: &PluginError) {
    // Failures were already published as events by the slot; quarantine
    // skips are counted there too.
    tracing::debug!("{e}");
}
