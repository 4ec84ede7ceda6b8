//! Feeding plugins from the event log: one task per (plugin, kind) for the
//! kinds driven by events (event handlers and status mappers).
//!
//! Each task is a consumer with a cursor over the log. It holds the plugin
//! *slot*, not a version: when a new version is swapped in, the task
//! notices between two deliveries, rebuilds its consumer with the new
//! version's subscriptions from the same cursor, and carries on — so no
//! event is lost or handled twice across a reload. Beyond that:
//!
//! - **Durable cursors.** The cursor is saved in the journal after each
//!   batch, so after a host restart a plugin resumes after the last event it
//!   was given (at least once: a batch in flight at a crash comes again).
//! - **No feeding on oneself.** A handler is never given its own events,
//!   nor the host's reports about its own decisions (`plugin.*` and
//!   `agent.*` events about it): one that errs on every event it sees would
//!   otherwise feed itself its errors forever.
//! - **Loops are cut.** Every event records how deep in a chain of causes it
//!   is; an event at depth [`PluginHostConfig::max_chain_depth`] or more is
//!   given to no plugin, and the first such event of each chain is announced
//!   once as `plugin.loop_detected`, naming the plugins in the chain.
//! - **Losses are events.** Deliveries skipped while the plugin is
//!   quarantined, and deliveries whose call failed, are counted and
//!   published as `plugin.deliveries_skipped` at most once a second.
//! - **Reports are caused too.** `plugin.loop_detected` is one level deeper
//!   than the event it cut, and `plugin.deliveries_skipped` one level deeper
//!   than the deepest delivery it counts. A report with no cause would start
//!   a fresh chain: two handlers erring on every event would then err on
//!   each other's reports of the loop they are in, forever.
//!
//! [`PluginHostConfig::max_chain_depth`]: super::PluginHostConfig::max_chain_depth

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;

use crate::bus::{Consumer, Event, NewEvent, Pattern, StartAt};

use super::PluginRef;
use super::action::{Action, ActionRequest, Cause};
use super::calls::{MapperQuestion, OUTPUT, REPORTED};
use super::error::PluginError;
use super::instance::Kind;
use super::registry::Inner;
use super::slot::{SOURCE, Slot};

/// Most events handed to a plugin in one trip.
const BATCH: usize = 64;
/// How often skipped deliveries are reported, at most.
const SKIP_REPORT_EVERY: Duration = Duration::from_secs(1);

/// The durable name of a plugin's cursor for `kind`.
pub(crate) fn cursor_name(plugin: &str, kind: Kind) -> String {
    format!("plugin/{plugin}/{kind}")
}

/// How one batch went, for the skip report.
#[derive(Default)]
struct Delivered {
    /// Refused because the plugin is quarantined.
    quarantined: u64,
    /// Calls that failed (trap, deadline, guest error).
    failed: u64,
    /// The deepest of the events counted: what the report is caused by.
    deepest: Option<Cause>,
}

/// Deliver subscribed events to an event-handler plugin and forward its
/// actions to the executor.
pub(crate) async fn event_handler(inner: Arc<Inner>, slot: Arc<Slot>, start: StartAt) {
    let plugin = PluginRef::new(slot.clone());
    let own = slot.clone();
    follow(
        inner.clone(),
        slot.clone(),
        Kind::EventHandler,
        start,
        |v| v.description.subscriptions.clone(),
        move |events: Vec<Event>| {
            let plugin = plugin.clone();
            let inner = inner.clone();
            let slot = own.clone();
            async move {
                let mut delivered = Delivered::default();
                let results = plugin.handle_each(&events).await;
                // A new version on trial answers the same events; the old
                // answers are kept for the comparison only then.
                let trial = inner.shadows.get(&slot.name).is_some();
                let old: Vec<_> = if trial {
                    results.iter().map(super::shadow::old_answer).collect()
                } else {
                    Vec::new()
                };
                for (event, result) in events.iter().zip(results) {
                    match result {
                        Ok(actions) => {
                            forward(&inner, &plugin, Kind::EventHandler, event, actions).await
                        }
                        Err(e) => delivered.note(&e, event),
                    }
                }
                if trial {
                    super::shadow::observe(&inner, &slot, &events, &old).await;
                }
                delivered
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
        move |events: Vec<Event>| {
            let plugin = plugin.clone();
            let inner = inner.clone();
            async move {
                let mut delivered = Delivered::default();
                for event in events {
                    let cause = Cause::of(&event);
                    if let Err(e) = map_one(&inner, &plugin, event).await {
                        delivered.note_cause(&e, cause);
                    }
                }
                delivered
            }
        },
    )
    .await;
}

/// One `process.output` or `process.reported` event through a mapper.
async fn map_one(inner: &Inner, plugin: &PluginRef, event: Event) -> Result<(), PluginError> {
    let Some(name) = event.subject.clone() else {
        return Ok(());
    };
    let Some(process) = inner.services.processes.get(&name) else {
        return Ok(());
    };
    let kinds = plugin
        .description()
        .map(|d| d.mapper_kinds)
        .unwrap_or_default();
    let Some(question) = MapperQuestion::of(&event, &kinds, &process.kind) else {
        return Ok(());
    };
    let update = plugin
        .ask_mapper(&process, question, Some(Cause::of(&event)))
        .await?;
    if let Some(update) = update {
        let action = Action::SetStatus { name, update };
        forward(inner, plugin, Kind::StatusMapper, &event, vec![action]).await;
    }
    Ok(())
}

impl Delivered {
    fn note(&mut self, e: &PluginError, event: &Event) {
        self.note_cause(e, Cause::of(event));
    }

    fn note_cause(&mut self, e: &PluginError, cause: Cause) {
        match e {
            PluginError::Quarantined(_) => self.quarantined += 1,
            // Already published as plugin.failed / plugin.error.
            _ => self.failed += 1,
        }
        self.deepest = deeper(self.deepest, cause);
    }
}

/// The deeper of two causes (the later one when they are as deep).
fn deeper(a: Option<Cause>, b: Cause) -> Option<Cause> {
    match a {
        Some(a) if (a.depth, a.sequence) > (b.depth, b.sequence) => Some(a),
        _ => Some(b),
    }
}

/// Skipped deliveries waiting to be reported.
struct SkipReport {
    plugin: String,
    kind: Kind,
    quarantined: u64,
    failed: u64,
    from: u64,
    to: u64,
    deepest: Option<Cause>,
    last: Option<Instant>,
}

impl SkipReport {
    fn new(plugin: &str, kind: Kind) -> Self {
        SkipReport {
            plugin: plugin.to_string(),
            kind,
            quarantined: 0,
            failed: 0,
            from: 0,
            to: 0,
            deepest: None,
            last: None,
        }
    }

    fn add(&mut self, delivered: &Delivered, from: u64, to: u64) {
        if delivered.quarantined + delivered.failed == 0 {
            return;
        }
        if self.pending() == 0 {
            self.from = from;
        }
        self.to = to;
        self.quarantined += delivered.quarantined;
        self.failed += delivered.failed;
        if let Some(cause) = delivered.deepest {
            self.deepest = deeper(self.deepest, cause);
        }
    }

    fn pending(&self) -> u64 {
        self.quarantined + self.failed
    }

    /// How long until a report may go out (zero: now).
    fn wait(&self) -> Duration {
        self.last.map_or(Duration::ZERO, |t| {
            SKIP_REPORT_EVERY.saturating_sub(t.elapsed())
        })
    }

    /// The report, if one is pending and due; resets the counts.
    fn take_due(&mut self) -> Option<NewEvent> {
        if self.pending() == 0 || !self.wait().is_zero() {
            return None;
        }
        self.last = Some(Instant::now());
        let event = NewEvent::new(
            SOURCE,
            "plugin.deliveries_skipped",
            json!({
                "plugin": self.plugin, "kind": self.kind,
                "quarantined": self.quarantined, "failed": self.failed,
                "from_sequence": self.from, "to_sequence": self.to,
            }),
        )
        .with_subject(&self.plugin);
        self.quarantined = 0;
        self.failed = 0;
        Some(match self.deepest.take() {
            Some(cause) => cause.stamp(event),
            None => event,
        })
    }
}

/// Chains already announced as loops, by the sequence of their first
/// event; bounded, oldest forgotten first.
#[derive(Default)]
pub(crate) struct LoopLog {
    seen: Mutex<(HashSet<u64>, VecDeque<u64>)>,
}

/// Chains remembered as announced.
const LOOPS_REMEMBERED: usize = 4096;

impl LoopLog {
    /// True the first time `root` is noted.
    fn first(&self, root: u64) -> bool {
        let mut guard = self.seen.lock();
        let (set, order) = &mut *guard;
        if !set.insert(root) {
            return false;
        }
        order.push_back(root);
        if order.len() > LOOPS_REMEMBERED
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }
}

/// Whether `event` is one `plugin` must not be given: its own, or a report
/// of the host about its own decisions.
fn about_itself(plugin: &str, own_source: &str, event: &Event) -> bool {
    if event.source == own_source {
        return true;
    }
    // The plugins room names the plugin in `plugin`, the agents room in
    // `agent`.
    let named = |key: &str| event.data.get(key).and_then(|p| p.as_str()) == Some(plugin);
    (event.ty.starts_with("plugin.") && named("plugin"))
        || (event.ty.starts_with("agent.") && named("agent"))
}

/// Announces the chain `event` ends, once per chain: walks its causes back
/// to the first event and names the plugins along the way.
fn announce_loop(inner: &Inner, event: &Event) {
    let (root, report) = loop_report(event, inner.config.max_chain_depth, |seq| {
        inner.bus.get(seq).ok().flatten()
    });
    if !inner.loops.first(root) {
        return;
    }
    tracing::warn!(
        plugins = %report.data["plugins"],
        depth = event.depth,
        "a chain of plugin decisions reached the depth limit and was cut"
    );
    if let Err(e) = inner.bus.submit(vec![report]) {
        tracing::error!("could not report a loop: {e}");
    }
}

/// The chain `event` ends, walked back along its causes (`get` looks one
/// up): the sequence of its first event, and the `plugin.loop_detected`
/// report naming the plugins and types along it, each once.
fn loop_report(
    event: &Event,
    max_depth: u32,
    get: impl Fn(u64) -> Option<Event>,
) -> (u64, NewEvent) {
    let mut plugins: Vec<String> = Vec::new();
    let mut types: Vec<String> = Vec::new();
    let mut root = event.sequence;
    let mut next = Some(event.clone());
    let mut steps = 0;
    while let Some(e) = next.take() {
        root = e.sequence;
        let name = e
            .source
            .strip_prefix("plugin/")
            .map(str::to_string)
            .or_else(|| {
                (e.ty.starts_with("plugin.") || e.ty.starts_with("agent."))
                    .then(|| {
                        e.data
                            .get("plugin")
                            .and_then(|p| p.as_str())
                            .map(str::to_string)
                    })
                    .flatten()
            });
        if let Some(name) = name
            && !plugins.contains(&name)
        {
            plugins.push(name);
        }
        if !types.contains(&e.ty) {
            types.push(e.ty.clone());
        }
        steps += 1;
        // Bounded: a chain is at most max depth long, plus slack for a
        // journal that pruned part of it.
        if steps > max_depth as usize + 2 {
            break;
        }
        next = e.cause.and_then(&get);
    }
    plugins.reverse();
    types.reverse();
    // Caused by the event it cuts, so it is past the limit itself: given
    // to no plugin, it cannot start a chain of its own.
    let report = NewEvent::new(
        SOURCE,
        "plugin.loop_detected",
        json!({
            "plugins": plugins, "types": types, "depth": event.depth,
            "max_depth": max_depth,
            "root_sequence": root, "cut_at_sequence": event.sequence,
        }),
    )
    .caused_by(event);
    (root, report)
}

/// The consumer loop shared by both kinds: deliver events in order, in
/// batches of what is already waiting (at most [`BATCH`]), rebuilding the
/// consumer (same cursor) whenever the slot's version changes, until the
/// plugin is unloaded, stops exporting `kind`, or the host shuts down.
async fn follow<F, Fut>(
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    kind: Kind,
    start: StartAt,
    patterns_of: impl Fn(&super::instance::PluginVersion) -> Vec<String>,
    mut deliver: F,
) where
    F: FnMut(Vec<Event>) -> Fut,
    Fut: std::future::Future<Output = Delivered>,
{
    let mut generation = slot.subscribe();
    let mut shutdown = inner.shutdown.subscribe();
    let name = cursor_name(&slot.name, kind);
    let own_source = format!("plugin/{}", slot.name);
    // A cursor saved by an earlier run wins: resume after the last event
    // this plugin was given.
    let mut start = inner.bus.load_cursor(&name).map_or(start, StartAt::After);
    let mut skips = SkipReport::new(&slot.name, kind);
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
        let mut consumer: Consumer = inner.bus.consumer(name.clone(), patterns, start);
        // Lag is read from the consumer's position, which moves past events
        // the filter skips: an idle handler with nothing to read shows none.
        slot.set_position(kind, consumer.position());
        loop {
            let report_due = skips.pending() > 0;
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
                _ = tokio::time::sleep(skips.wait()), if report_due => {}
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
                        let (from, to) = (batch[0].sequence, consumer.cursor());
                        let batch = admit(&inner, &slot.name, &own_source, kind, batch);
                        if !batch.is_empty() {
                            let delivered = deliver(batch).await;
                            skips.add(&delivered, from, to);
                        }
                        inner.bus.save_cursor(&name, consumer.cursor());
                        slot.cursors.lock().insert(kind, consumer.cursor());
                    }
                    Err(e) => {
                        tracing::error!(plugin = %slot.name, "event log read failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
            if let Some(report) = skips.take_due()
                && let Err(e) = inner.bus.submit(vec![report])
            {
                tracing::error!(plugin = %slot.name, "could not report skipped deliveries: {e}");
            }
        }
    }
    slot.dispatching.lock().remove(&kind);
    slot.cursors.lock().remove(&kind);
}

/// The events of `batch` the plugin may be given: not its own, not the
/// host's reports about it, not past the chain depth limit (those cut the
/// chain and are announced).
fn admit(
    inner: &Inner,
    plugin: &str,
    own_source: &str,
    kind: Kind,
    batch: Vec<Event>,
) -> Vec<Event> {
    let max_depth = inner.config.max_chain_depth;
    batch
        .into_iter()
        .filter(|e| kind != Kind::EventHandler || !about_itself(plugin, own_source, e))
        .filter(|e| {
            if e.depth < max_depth {
                return true;
            }
            // A loop's own report is past the limit; it was announced.
            if e.ty != "plugin.loop_detected" {
                announce_loop(inner, e);
            }
            false
        })
        .collect()
}

/// Sends a decision to the executor, with the event that caused it.
async fn forward(
    inner: &Inner,
    plugin: &PluginRef,
    kind: Kind,
    event: &Event,
    actions: Vec<Action>,
) {
    if actions.is_empty() {
        return;
    }
    let request = ActionRequest {
        plugin: plugin.name().to_string(),
        kind,
        cause: Some(Cause::of(event)),
        actions,
    };
    // A bounded channel: if the executor falls behind, dispatch waits
    // (backpressure) instead of dropping decisions.
    if inner.actions.send(request).await.is_err() {
        tracing::warn!(
            plugin = plugin.name(),
            "action executor is gone; dropping actions during shutdown"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::NewEvent;
    use chrono::Utc;

    fn event(source: &str, ty: &str, data: serde_json::Value) -> Event {
        NewEvent::new(source, ty, data).into_event(1, Utc::now(), "id".into())
    }

    #[test]
    fn a_handler_is_not_given_its_own_events_or_the_reports_about_it() {
        let own = "plugin/alert";
        let mine = event(own, "alert.fired", json!({}));
        let my_error = event("host/plugins", "plugin.error", json!({ "plugin": "alert" }));
        let my_action = event(
            "host/runtime",
            "plugin.action",
            json!({ "plugin": "alert" }),
        );
        let other_error = event("host/plugins", "plugin.error", json!({ "plugin": "other" }));
        let failed = event(
            "host/supervisor",
            "process.failed",
            json!({ "plugin": "alert" }),
        );
        assert!(about_itself("alert", own, &mine));
        assert!(about_itself("alert", own, &my_error));
        assert!(about_itself("alert", own, &my_action));
        assert!(!about_itself("alert", own, &other_error));
        let my_tick_error = event("host/agents", "agent.error", json!({ "agent": "alert" }));
        let other_tick = event("host/agents", "agent.activity", json!({ "agent": "pm" }));
        assert!(about_itself("alert", own, &my_tick_error));
        assert!(!about_itself("alert", own, &other_tick));
        assert!(
            !about_itself("alert", own, &failed),
            "only the host's plugin.* and agent.* reports count"
        );
    }

    /// Events `first..` of a chain, each caused by the one before.
    fn chain(links: &[(&str, &str, serde_json::Value)], first: u64) -> Vec<Event> {
        links
            .iter()
            .enumerate()
            .map(|(i, (source, ty, data))| {
                let seq = first + i as u64;
                let mut e = NewEvent::new(*source, *ty, data.clone());
                if i > 0 {
                    e = e.with_cause(seq - 1, i as u32);
                }
                e.into_event(seq, Utc::now(), format!("id{seq}"))
            })
            .collect()
    }

    #[test]
    fn a_loop_report_names_the_chain_and_is_caused_by_the_event_it_cuts() {
        let events = chain(
            &[
                ("host/api", "x.a", json!({})),
                ("plugin/pong", "x.b", json!({})),
                ("plugin/ping", "x.a", json!({})),
                ("host/plugins", "plugin.error", json!({ "plugin": "pong" })),
            ],
            10,
        );
        let cut = events.last().unwrap().clone();
        let get = |seq: u64| events.iter().find(|e| e.sequence == seq).cloned();
        let (root, report) = loop_report(&cut, 3, get);
        assert_eq!(root, 10);
        assert_eq!(report.data["plugins"], json!(["ping", "pong"]));
        assert_eq!(report.data["types"], json!(["x.b", "x.a", "plugin.error"]));
        assert_eq!(report.data["root_sequence"], 10);
        assert_eq!(report.data["cut_at_sequence"], 13);
        assert_eq!(report.data["depth"], 3);
        // Past the limit itself: a plugin erring on loop reports would
        // otherwise start a new chain with each one, forever.
        assert_eq!((report.cause, report.depth), (Some(13), 4));
    }

    #[test]
    fn a_skip_report_is_one_level_deeper_than_the_deepest_delivery_it_counts() {
        let mut skips = SkipReport::new("p", Kind::EventHandler);
        let at = |sequence, depth| Cause { sequence, depth };
        let mut delivered = Delivered::default();
        let error = PluginError::Gone("p".into());
        delivered.note_cause(&error, at(5, 2));
        delivered.note_cause(&error, at(6, 0));
        skips.add(&delivered, 5, 6);
        let report = skips.take_due().unwrap();
        assert_eq!((report.cause, report.depth), (Some(5), 3));
        assert_eq!(report.data["failed"], 2);
    }

    #[test]
    fn skipped_deliveries_are_reported_at_most_once_a_second() {
        let mut skips = SkipReport::new("p", Kind::EventHandler);
        assert!(skips.take_due().is_none(), "nothing to report");
        skips.add(
            &Delivered {
                quarantined: 3,
                failed: 1,
                deepest: None,
            },
            10,
            20,
        );
        let report = skips.take_due().expect("due at once the first time");
        assert_eq!(report.data["quarantined"], 3);
        assert_eq!(report.data["failed"], 1);
        assert_eq!(
            (
                report.data["from_sequence"].as_u64(),
                report.data["to_sequence"].as_u64()
            ),
            (Some(10), Some(20))
        );
        skips.add(
            &Delivered {
                quarantined: 1,
                failed: 0,
                deepest: None,
            },
            21,
            21,
        );
        assert!(skips.take_due().is_none(), "within the second");
        assert!(skips.wait() > Duration::ZERO);
    }

    #[test]
    fn a_loop_is_announced_once_per_chain() {
        let log = LoopLog::default();
        assert!(log.first(7));
        assert!(!log.first(7));
        assert!(log.first(8));
        for root in 100..(100 + LOOPS_REMEMBERED as u64) {
            log.first(root);
        }
        assert!(
            log.first(7),
            "the oldest are forgotten, so memory stays bounded"
        );
    }
}
