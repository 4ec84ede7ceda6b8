//! The journal read back: every lifecycle event of the supervisor, folded
//! into one [`Trail`] per process, as the last host left it.
//!
//! Apart from the decisions (`mod.rs`) so the fold can be read, and
//! tested, as what the log says and nothing else.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::bus::{Bus, BusError, Event, EventQuery, Pattern};
use crate::supervisor::events::{EventType, SOURCE};
use crate::supervisor::restart::should_restart;
use crate::supervisor::spec::ProcessSpec;
use crate::supervisor::state::{Origin, ProcessState};

/// Events read per journal query while folding.
const PAGE: usize = 10_000;
/// What recovery does not read: output, sampling, reported status and
/// readiness traffic. Everything else of [`EventType::ALL`] moves a run or
/// names its pid, so a lifecycle type added later is read without a change
/// here.
const NOT_LIFECYCLE: [EventType; 7] = [
    EventType::Status,
    EventType::Output,
    EventType::OutputDropped,
    EventType::Resource,
    EventType::ResourceLimit,
    EventType::Ready,
    EventType::Unready,
];

/// One process folded from its lifecycle events.
#[derive(Clone, Debug)]
pub(super) struct Trail {
    pub(super) origin: Origin,
    pub(super) spec: Option<ProcessSpec>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) state: ProcessState,
    pub(super) last_event: String,
    /// The `reason` of the last `process.stopping` of the current run.
    pub(super) stop_reason: Option<String>,
    pub(super) pid: Option<u32>,
    pub(super) start_time: Option<u64>,
    pub(super) started_at: Option<DateTime<Utc>>,
    pub(super) completed_at: Option<DateTime<Utc>>,
    pub(super) exit_code: Option<i32>,
    pub(super) signal: Option<i32>,
    pub(super) restarts: u32,
    pub(super) gave_up: bool,
    pub(super) removed: bool,
}

impl Trail {
    pub(super) fn created(event: &Event, name: &str) -> Trail {
        let origin = serde_json::from_value(event.data["origin"].clone()).unwrap_or(Origin::Config);
        let spec = serde_json::from_value::<ProcessSpec>(event.data["spec"].clone())
            .ok()
            .map(|mut spec| {
                spec.name = name.to_string();
                spec
            })
            .filter(|spec| spec.validate().is_ok());
        Trail {
            origin,
            spec,
            created_at: event.time,
            state: ProcessState::Pending,
            last_event: event.ty.clone(),
            stop_reason: None,
            pid: None,
            start_time: None,
            started_at: None,
            completed_at: None,
            exit_code: None,
            signal: None,
            restarts: 0,
            gave_up: false,
            removed: false,
        }
    }

    /// Applies one lifecycle event after `process.created`.
    pub(super) fn apply(&mut self, event: &Event) {
        let data = &event.data;
        let to = data["to"]
            .as_str()
            .and_then(|s| s.parse::<ProcessState>().ok());
        self.last_event = event.ty.clone();
        match event.ty.as_str() {
            "process.removed" => self.removed = true,
            "process.gave_up" => self.gave_up = true,
            "process.starting" => {
                self.restarts = data["restarts"].as_u64().unwrap_or(0) as u32;
                self.stop_reason = None;
                self.gave_up = false;
                self.completed_at = None;
            }
            "process.started" => {
                self.pid = data["pid"].as_u64().map(|p| p as u32);
                self.start_time = data["start_time"].as_u64();
                self.started_at = Some(event.time);
                self.exit_code = None;
                self.signal = None;
            }
            "process.stopping" => {
                self.stop_reason = data["reason"].as_str().map(str::to_string);
            }
            "process.exited" => {
                self.exit_code = data["exit_code"].as_i64().map(|c| c as i32);
                self.signal = data["signal"].as_i64().map(|s| s as i32);
            }
            "process.interrupted" => {
                // A run recovered earlier: its stop request still stands.
                self.stop_reason = data["stop_reason"].as_str().map(str::to_string);
            }
            _ => {}
        }
        if let Some(to) = to {
            self.state = to;
            if to.is_terminal() {
                self.completed_at = Some(event.time);
            }
        }
    }

    /// The run was under way when the last host ended.
    pub(super) fn was_active(&self) -> bool {
        self.state.is_active()
    }

    /// A person (or the host's own shutdown) had asked this run to stop.
    pub(super) fn stop_asked(&self) -> bool {
        self.stop_reason.as_deref() == Some("requested")
    }

    /// The run ended, its policy wanted another, and neither that restart
    /// nor a give-up was recorded: the host died in between.
    pub(super) fn restart_pending(&self, spec: &ProcessSpec) -> bool {
        self.state.is_terminal()
            && self.state != ProcessState::Interrupted
            && !self.gave_up
            && should_restart(spec.restart, self.state)
    }
}

/// Folds the journal's lifecycle events up to `up_to` into one trail per
/// process (by subject), oldest first.
pub(super) fn fold(bus: &Bus, up_to: u64) -> Result<BTreeMap<String, Trail>, BusError> {
    let types = EventType::ALL
        .iter()
        .filter(|t| !NOT_LIFECYCLE.contains(t))
        .map(|t| Pattern::parse(t.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut trails: BTreeMap<String, Trail> = BTreeMap::new();
    let mut after = 0;
    loop {
        let query = EventQuery {
            types: types.clone(),
            source: Some(SOURCE.to_string()),
            after_sequence: Some(after),
            limit: Some(PAGE),
            ..Default::default()
        };
        let page = bus.query(&query)?;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        for event in page.iter().filter(|e| e.sequence <= up_to) {
            let Some(name) = event.subject.as_deref() else {
                continue;
            };
            if event.ty == EventType::Created.as_str() {
                let created = Trail::created(event, name);
                match trails.get_mut(name) {
                    // A config process is created anew by every host, and
                    // before that host's recovery ends the last run: a host
                    // that died in between must not make the run vanish.
                    Some(unfinished) if unfinished.was_active() => {
                        unfinished.spec = created.spec;
                        unfinished.origin = created.origin;
                        unfinished.created_at = created.created_at;
                    }
                    _ => {
                        trails.insert(name.to_string(), created);
                    }
                }
            } else if let Some(trail) = trails.get_mut(name) {
                trail.apply(event);
            } else {
                // Its `process.created` left the journal (retention): what
                // follows still tells the state, but not the spec.
                let mut trail = Trail::created(event, name);
                trail.spec = None;
                trail.origin = guess_origin(name);
                trail.apply(event);
                trails.insert(name.to_string(), trail);
            }
        }
        if after >= up_to || page.len() < PAGE {
            break;
        }
    }
    Ok(trails)
}

/// A runtime process's id is `<kind>_<6 hex digits>`; without its
/// `process.created` that shape is all there is to go by.
fn guess_origin(name: &str) -> Origin {
    let runtime = name.rsplit_once('_').is_some_and(|(kind, hex)| {
        !kind.is_empty() && hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if runtime {
        Origin::Runtime
    } else {
        Origin::Config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_ids_are_told_from_config_names_by_their_shape() {
        assert_eq!(guess_origin("build_7f3a9c"), Origin::Runtime);
        assert_eq!(guess_origin("jules_session_00ff00"), Origin::Runtime);
        assert_eq!(guess_origin("web"), Origin::Config);
        assert_eq!(guess_origin("web_1"), Origin::Config);
        assert_eq!(guess_origin("_7f3a9c"), Origin::Config);
        assert_eq!(guess_origin("x_7f3a9g"), Origin::Config);
    }

    use crate::bus::{BusConfig, NewEvent};
    use serde_json::{Value, json};

    /// A journal holding `events` as `(subject, type, data)`, published as
    /// the supervisor does.
    fn journal(events: &[(&str, &str, Value)]) -> Bus {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        for (subject, ty, data) in events {
            bus.publish(NewEvent::new(SOURCE, *ty, data.clone()).with_subject(*subject))
                .unwrap();
        }
        bus
    }

    fn created(restart: &str, origin: &str) -> Value {
        json!({ "origin": origin, "spec": { "command": "sleep 1", "restart": restart } })
    }

    fn moved(from: &str, to: &str) -> Value {
        json!({ "from": from, "to": to, "pid": 42, "start_time": 7, "reason": "requested" })
    }

    #[test]
    fn a_run_that_failed_with_its_restart_to_come_is_pending_unless_given_up() {
        let mut events = vec![
            ("web", "process.created", created("always", "config")),
            ("web", "process.starting", moved("pending", "starting")),
            ("web", "process.started", moved("starting", "running")),
            ("web", "process.exited", moved("running", "failed")),
            ("web", "process.failed", moved("running", "failed")),
        ];
        let bus = journal(&events);
        let trails = fold(&bus, bus.head()).unwrap();
        let web = &trails["web"];
        let spec = web.spec.clone().expect("the spec from process.created");
        assert!(!web.was_active() && web.restart_pending(&spec));
        events.push(("web", "process.gave_up", json!({ "state": "failed" })));
        let bus = journal(&events);
        let trails = fold(&bus, bus.head()).unwrap();
        assert!(!trails["web"].restart_pending(&spec));
    }

    #[test]
    fn a_config_process_created_again_before_recovery_keeps_its_unfinished_run() {
        let bus = journal(&[
            ("web", "process.created", created("never", "config")),
            ("web", "process.starting", moved("pending", "starting")),
            ("web", "process.started", moved("starting", "running")),
            ("web", "process.stopping", moved("running", "stopping")),
            ("web", "process.created", created("never", "config")),
        ]);
        let web = &fold(&bus, bus.head()).unwrap()["web"];
        assert_eq!(web.state, ProcessState::Stopping);
        assert_eq!((web.pid, web.start_time), (Some(42), Some(7)));
        assert!(web.was_active() && web.stop_asked());
    }

    #[test]
    fn a_process_whose_creation_left_the_journal_is_folded_without_a_spec() {
        let bus = journal(&[
            (
                "build_7f3a9c",
                "process.starting",
                moved("pending", "starting"),
            ),
            (
                "build_7f3a9c",
                "process.started",
                moved("starting", "running"),
            ),
        ]);
        let build = &fold(&bus, bus.head()).unwrap()["build_7f3a9c"];
        assert_eq!(build.origin, Origin::Runtime);
        assert!(build.spec.is_none() && build.was_active());
    }

    #[test]
    fn removal_sticks_until_a_new_creation_and_events_past_the_bound_are_ignored() {
        let bus = journal(&[
            ("x_000001", "process.created", created("always", "runtime")),
            (
                "x_000001",
                "process.removed",
                json!({ "state": "completed" }),
            ),
            ("x_000002", "process.created", created("always", "runtime")),
            (
                "x_000002",
                "process.removed",
                json!({ "state": "completed" }),
            ),
            ("x_000002", "process.created", created("always", "runtime")),
            ("x_000003", "process.created", created("always", "runtime")),
        ]);
        let trails = fold(&bus, 5).unwrap();
        assert!(trails["x_000001"].removed);
        assert!(
            !trails["x_000002"].removed,
            "created again after its removal"
        );
        assert!(!trails.contains_key("x_000003"), "after the bound");
    }
}
