//! A plugin slot: one plugin name, whichever version currently serves it,
//! and its health (failures, quarantine).
//!
//! The slot outlives versions. Dispatchers hold the slot, not a version,
//! and look up the current version for every call, so a hot swap takes
//! effect between two deliveries; the dispatcher's cursor and the plugin's
//! state live outside the version and carry over.
//!
//! The slot is the one place calls are counted ([`Slot::account`]), so it
//! also keeps the call-latency histogram, fed with the duration the worker
//! measured for each call (each item of a batch on its own).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use chrono::{DateTime, Utc};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use crate::bus::{Bus, NewEvent};

use super::action::Cause;
use super::actor::Timed;
use super::bindings::{MAX_TEXT, truncate};
use super::error::{CallFailure, PluginError};
use super::instance::{Exports, Kind};
use super::sandbox::StoreState;
use super::version::PluginVersion;

/// Source of the events the plugin room publishes about plugins.
pub(crate) const SOURCE: &str = "host/plugins";

/// Counters and flags of one plugin, kept across versions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// Calls made to this plugin (all versions).
    pub calls: u64,
    /// Calls that trapped or ran out of time or memory.
    pub failures: u64,
    /// Calls where the plugin returned an error of its own, plus values it
    /// returned that the host rejected (bad JSON, progress out of range).
    pub errors: u64,
    /// Failures in a row; reset by a successful call or a new version.
    pub consecutive_failures: u32,
    /// Whether calls are refused until the plugin's file changes.
    pub quarantined: bool,
    /// Deliveries skipped while quarantined.
    pub skipped_while_quarantined: u64,
    /// Worker threads given up because a call stayed stuck outside wasm
    /// code past its deadline; each is left to finish or die on its own.
    pub abandoned_threads: u64,
    /// Lines the plugin wrote (stdout, stderr, `log`) beyond its log rate
    /// limit, dropped.
    pub log_lines_suppressed: u64,
    /// The most recent failure or error.
    pub last_error: Option<String>,
    /// How many versions have been loaded under this name.
    pub versions_loaded: u64,
    /// When the current version was loaded.
    pub loaded_at: Option<DateTime<Utc>>,
}

/// The one rule for failures in a row, used both to count them and to
/// stop a batch early: a success (`None`) ends a streak, a fatal failure
/// extends it, a guest error or invalid value leaves it as it is.
fn streak_after(streak: u32, failure: Option<&CallFailure>) -> u32 {
    match failure {
        None => 0,
        Some(f) if f.is_fatal() => streak.saturating_add(1),
        Some(_) => streak,
    }
}

/// A histogram for call durations in seconds: 25 buckets doubling from
/// 1 µs, the last at about 16.8 s, so every call from a cached answer to
/// one that runs into a deadline of several seconds lands in a bucket of
/// its own order of magnitude.
pub(crate) fn call_latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-6, 2.0, 25))
}

/// One plugin name and its current version.
pub(crate) struct Slot {
    pub(crate) name: String,
    version: RwLock<Option<Arc<PluginVersion>>>,
    health: Mutex<Health>,
    /// Bumped on every swap or unload; dispatchers wait on it.
    generation: watch::Sender<u64>,
    /// Kinds for which a dispatcher task is running.
    pub(crate) dispatching: Mutex<HashSet<Kind>>,
    /// Each dispatcher's cursor (last sequence delivered or passed over),
    /// so listings can show how far behind the log a plugin is. Superseded,
    /// kind by kind, by `positions`.
    pub(crate) cursors: Mutex<BTreeMap<Kind, u64>>,
    /// Each dispatcher's consumer position (`bus::Consumer::position`),
    /// which also moves while the consumer passes over events it does not
    /// want. Weak: a position whose consumer is gone no longer counts.
    positions: Mutex<BTreeMap<Kind, Weak<AtomicU64>>>,
    /// Durations of the calls counted in `account`, in seconds.
    latency: Histogram,
    removed: AtomicBool,
    bus: Bus,
    max_failures: u32,
}

impl Slot {
    pub(crate) fn new(name: String, bus: Bus, max_failures: u32) -> Arc<Self> {
        Arc::new(Self {
            name,
            version: RwLock::new(None),
            health: Mutex::new(Health::default()),
            generation: watch::Sender::new(0),
            dispatching: Mutex::new(HashSet::new()),
            cursors: Mutex::default(),
            positions: Mutex::default(),
            latency: call_latency_histogram(),
            removed: AtomicBool::new(false),
            bus,
            max_failures: max_failures.max(1),
        })
    }

    /// The version serving now, if any.
    pub(crate) fn current(&self) -> Option<Arc<PluginVersion>> {
        self.version.read().clone()
    }

    /// Swap in a new version: the old one finishes any call in flight and
    /// its actor ends when the last reference goes. A new version lifts a
    /// quarantine and resets the failure streak.
    pub(crate) fn install(&self, version: Arc<PluginVersion>) -> Option<Arc<PluginVersion>> {
        let old = self.version.write().replace(version);
        {
            let mut h = self.health.lock();
            // These counts live in the version while it serves; keep them.
            if let Some(old) = &old {
                old.add_counts(&mut h);
            }
            h.consecutive_failures = 0;
            h.quarantined = false;
            h.versions_loaded += 1;
            h.loaded_at = Some(Utc::now());
        }
        self.generation.send_modify(|g| *g += 1);
        old
    }

    /// Take the plugin out of service for good.
    pub(crate) fn remove(&self) {
        self.removed.store(true, Ordering::Release);
        self.version.write().take();
        self.generation.send_modify(|g| *g += 1);
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub(crate) fn health(&self) -> Health {
        let mut health = self.health.lock().clone();
        if let Some(version) = self.current() {
            version.add_counts(&mut health);
        }
        health
    }

    /// Follows the consumer position of the dispatcher of `kind` (from
    /// `bus::Consumer::position`) instead of the cursor it records after
    /// each delivery; replaces the position of an earlier consumer. Only a
    /// weak reference is kept: once that consumer is dropped, `kind` is no
    /// longer reported (unless its dispatcher records a cursor).
    pub(crate) fn set_position(&self, kind: Kind, position: Arc<AtomicU64>) {
        self.positions
            .lock()
            .insert(kind, Arc::downgrade(&position));
    }

    /// How far each dispatcher has read the log, by kind: its consumer's
    /// position where one was set and its consumer lives, else the cursor
    /// it recorded after its last delivery.
    pub(crate) fn positions(&self) -> BTreeMap<Kind, u64> {
        let mut read = self.cursors.lock().clone();
        self.positions.lock().retain(|kind, position| {
            let Some(position) = position.upgrade() else {
                return false;
            };
            read.insert(*kind, position.load(Ordering::Acquire));
            true
        });
        read
    }

    /// The call-latency histogram (shares its counts with the slot's).
    pub(crate) fn latency(&self) -> Histogram {
        self.latency.clone()
    }

    pub(crate) fn note_skipped(&self) {
        self.health.lock().skipped_while_quarantined += 1;
    }

    /// Call the current version, with failure accounting: traps and
    /// deadlines publish `plugin.failed` (and `plugin.quarantined` after
    /// too many in a row); guest errors publish `plugin.error`.
    ///
    /// `cause` is the event being handled, if any.
    pub(crate) async fn invoke<R: Send + 'static>(
        &self,
        call: &'static str,
        cause: Option<Cause>,
        f: impl FnOnce(
            &mut wasmtime::Store<StoreState>,
            &Exports,
        ) -> wasmtime::Result<Result<R, CallFailure>>
        + Send
        + 'static,
    ) -> Result<R, PluginError> {
        if self.health.lock().quarantined {
            self.note_skipped();
            return Err(PluginError::Quarantined(self.name.clone()));
        }
        let Some(version) = self.current() else {
            return Err(PluginError::Gone(self.name.clone()));
        };
        let timed = version.call_timed(f).await;
        self.account(call, cause, timed)
    }

    /// Count one finished call, record its duration, and report its
    /// failure, if any.
    fn account<R>(
        &self,
        call: &'static str,
        cause: Option<Cause>,
        timed: Timed<R>,
    ) -> Result<R, PluginError> {
        let Timed {
            outcome,
            took,
            guest_message,
        } = timed;
        if let Some(took) = took {
            self.latency.observe(took.as_secs_f64());
        }
        {
            let mut h = self.health.lock();
            h.calls += 1;
            if outcome.is_ok() {
                h.consecutive_failures = streak_after(h.consecutive_failures, None);
            }
        }
        outcome.map_err(|failure| {
            self.report_said(call, cause, &failure, guest_message.as_deref());
            PluginError::Call {
                plugin: self.name.clone(),
                call,
                failure,
            }
        })
    }

    /// [`Slot::invoke`] for a batch: one trip to the plugin, with the same
    /// accounting per item as if each had been its own call. Items after
    /// the plugin is quarantined are skipped and counted.
    pub(crate) async fn invoke_each<I: Send + 'static, R: Send + 'static>(
        &self,
        call: &'static str,
        items: Vec<(Option<Cause>, I)>,
        f: impl Fn(
            &mut wasmtime::Store<StoreState>,
            &Exports,
            I,
        ) -> wasmtime::Result<Result<R, CallFailure>>
        + Send
        + Sync
        + 'static,
    ) -> Vec<Result<R, PluginError>> {
        let quarantined = || PluginError::Quarantined(self.name.clone());
        let (mut streak, stopped) = {
            let h = self.health.lock();
            (h.consecutive_failures, h.quarantined)
        };
        if stopped {
            return items
                .iter()
                .map(|_| {
                    self.note_skipped();
                    Err(quarantined())
                })
                .collect();
        }
        let Some(version) = self.current() else {
            return items
                .iter()
                .map(|_| Err(PluginError::Gone(self.name.clone())))
                .collect();
        };
        let causes: Vec<Option<Cause>> = items.iter().map(|(c, _)| *c).collect();
        let inputs = items.into_iter().map(|(_, i)| i).collect();
        // The batch stops where the quarantine will: the same rule as the
        // accounting below, applied on the plugin's thread as items finish.
        let max_failures = self.max_failures;
        let keep_going = Box::new(move |outcome: &Result<R, CallFailure>| {
            streak = streak_after(streak, outcome.as_ref().err());
            streak < max_failures
        });
        let outcomes = version.call_each(inputs, keep_going, f).await;
        causes
            .into_iter()
            .zip(outcomes)
            .map(|(cause, outcome)| match outcome {
                None => {
                    self.note_skipped();
                    Err(quarantined())
                }
                Some(outcome) => self.account(call, cause, outcome),
            })
            .collect()
    }

    /// Record a failure and publish what happened.
    pub(crate) fn report(&self, call: &'static str, cause: Option<Cause>, failure: &CallFailure) {
        self.report_said(call, cause, failure, None);
    }

    /// [`Slot::report`], with what the guest wrote to stderr during the
    /// failing call: its own words, published as `guest_message` and
    /// logged with the failure.
    pub(crate) fn report_said(
        &self,
        call: &'static str,
        cause: Option<Cause>,
        failure: &CallFailure,
        guest_message: Option<&str>,
    ) {
        // Guest text is cut where it enters; this bounds the rest (a trap's
        // message and backtrace).
        let text = truncate(failure.to_string(), 2 * MAX_TEXT);
        let (consecutive, quarantine_now) = {
            // Not a call count: invalid values are reported after the call
            // that returned them was counted.
            let mut h = self.health.lock();
            h.last_error = Some(text.clone());
            h.consecutive_failures = streak_after(h.consecutive_failures, Some(failure));
            if failure.is_fatal() {
                h.failures += 1;
                let quarantine_now = !h.quarantined && h.consecutive_failures >= self.max_failures;
                if quarantine_now {
                    h.quarantined = true;
                }
                (h.consecutive_failures, quarantine_now)
            } else {
                h.errors += 1;
                (h.consecutive_failures, false)
            }
        };
        let digest = self.current().map(|v| v.compiled.digest.clone());
        let mut events = Vec::new();
        let said = guest_message
            .map(|m| format!("\nthe plugin wrote to stderr:\n{m}"))
            .unwrap_or_default();
        if failure.is_fatal() {
            tracing::warn!(plugin = %self.name, call, "plugin failed: {text}{said}");
            events.push(
                NewEvent::new(
                    SOURCE,
                    "plugin.failed",
                    json!({
                        "plugin": self.name, "call": call, "failure": failure.kind(),
                        "error": text, "consecutive_failures": consecutive,
                        "cause_sequence": cause.map(|c| c.sequence), "digest": digest,
                        "restarted": !quarantine_now, "guest_message": guest_message,
                    }),
                )
                .with_subject(&self.name),
            );
        } else {
            tracing::info!(plugin = %self.name, call, "plugin returned an error: {text}{said}");
            events.push(
                NewEvent::new(
                    SOURCE,
                    "plugin.error",
                    json!({
                        "plugin": self.name, "call": call, "failure": failure.kind(),
                        "error": text, "cause_sequence": cause.map(|c| c.sequence),
                        "guest_message": guest_message,
                    }),
                )
                .with_subject(&self.name),
            );
        }
        if quarantine_now {
            tracing::error!(plugin = %self.name, "plugin quarantined after {consecutive} failures in a row");
            events.push(
                NewEvent::new(
                    SOURCE,
                    "plugin.quarantined",
                    json!({
                        "plugin": self.name, "consecutive_failures": consecutive,
                        "last_error": text, "digest": digest,
                    }),
                )
                .with_subject(&self.name),
            );
        }
        // Reports about handling an event are one level deeper than it: two
        // plugins erring on each other's reports make a chain the dispatch
        // cuts, not a storm.
        let events = events
            .into_iter()
            .map(|e| match cause {
                Some(c) => c.stamp(e),
                None => e,
            })
            .collect();
        // Handed over without waiting for the commit: this runs on the
        // dispatcher's async task, and a plugin failing on every event must
        // not hold a worker on the journal per failure.
        if let Err(e) = self.bus.submit(events) {
            tracing::error!(plugin = %self.name, "could not record plugin failure: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusConfig;

    fn slot() -> Arc<Slot> {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        Slot::new("p".into(), bus, 3)
    }

    #[test]
    fn a_followed_position_wins_over_the_delivery_cursor_while_its_consumer_lives() {
        let slot = slot();
        slot.cursors.lock().insert(Kind::EventHandler, 5);
        slot.cursors.lock().insert(Kind::StatusMapper, 2);
        assert_eq!(slot.positions()[&Kind::EventHandler], 5);
        let position = Arc::new(AtomicU64::new(9));
        slot.set_position(Kind::EventHandler, position.clone());
        assert_eq!(slot.positions()[&Kind::EventHandler], 9);
        // The consumer moved over events it does not want: no delivery, no cursor.
        position.store(40, Ordering::Release);
        assert_eq!(slot.positions()[&Kind::EventHandler], 40);
        assert_eq!(slot.positions()[&Kind::StatusMapper], 2);
        drop(position);
        assert_eq!(
            slot.positions()[&Kind::EventHandler],
            5,
            "a dropped consumer's position no longer counts"
        );
        slot.cursors.lock().remove(&Kind::EventHandler);
        assert!(!slot.positions().contains_key(&Kind::EventHandler));
    }

    #[test]
    fn call_durations_land_in_buckets_from_a_microsecond_to_ten_seconds() {
        let slot = slot();
        let timed = |secs: f64| Timed {
            outcome: Ok::<(), CallFailure>(()),
            took: Some(std::time::Duration::from_secs_f64(secs)),
            guest_message: None,
        };
        for secs in [2e-6, 3e-3, 9.0] {
            slot.account("handle", None, timed(secs)).unwrap();
        }
        // An item whose worker died under it was never measured.
        let lost = Timed::<()>::lost("gone");
        assert!(slot.account("handle", None, lost).is_err());
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("call_seconds", "calls", slot.latency());
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let value = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        let le = |bound: &str| value(&format!("call_seconds_bucket{{le=\"{bound}\"}}"));
        assert_eq!(value("call_seconds_count").as_deref(), Some("3"));
        assert_eq!(slot.health().calls, 4);
        let sum: f64 = value("call_seconds_sum").unwrap().parse().unwrap();
        assert!((sum - 9.003002).abs() < 1e-9, "{sum}");
        assert_eq!(le("0.000001").as_deref(), Some("0"));
        assert_eq!(le("0.000002").as_deref(), Some("1"));
        assert_eq!(le("0.004096").as_deref(), Some("2"));
        assert_eq!(le("8.388608").as_deref(), Some("2"));
        assert_eq!(le("16.777216").as_deref(), Some("3"));
    }
}
