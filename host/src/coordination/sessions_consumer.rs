//! The sessions' bus consumer: what opens sessions, takes judges' verdicts
//! and planners' plans, and runs the time rules.
//!
//! It reads `dependency.detected` (opens a session over the two tasks of
//! each dependency listed),
//! `session.judged` (a verdict on a message) and `session.plan` (a plan to
//! post), with a durable cursor (`coordination/sessions`) saved after each
//! event, so a restart neither misses nor repeats one. Verdicts and plans
//! are taken only from plugins (source `plugin/...`): a client publishing
//! through the API cannot forge an agreement.
//!
//! The book itself lives in memory; at start it is rebuilt from the
//! journal's `session.*` events (the bus is the log), so sessions opened by
//! an earlier run are listed, and retention then drops the old closed ones.

use std::time::Duration;

use serde::Deserialize;

use super::detected::dependencies_in;
use super::sessions::Sessions;
use super::sessions_model::{Message, Session, SessionKind, SessionStatus, Verdict};
use super::{Coordinator, SOURCE};
use crate::bus::{Consumer, Event, Pattern, StartAt};

/// The consumer's durable name.
pub const CONSUMER: &str = "coordination/sessions";

/// How often the time rules run.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Rebuilds the book from the journal, then follows the log in a task.
/// The task ends when it is aborted (the runtime's stop).
pub fn start(sessions: Sessions, coordinator: Coordinator) -> tokio::task::JoinHandle<()> {
    restore(&sessions);
    let bus = sessions.bus().clone();
    let start = bus
        .load_cursor(CONSUMER)
        .map_or(StartAt::Head, StartAt::After);
    let filter = ["dependency.detected", "session.judged", "session.plan"]
        .iter()
        .filter_map(|p| Pattern::parse(p).ok())
        .collect();
    let consumer = bus.consumer(CONSUMER, filter, start);
    tokio::spawn(follow(sessions, coordinator, consumer))
}

async fn follow(sessions: Sessions, coordinator: Coordinator, mut consumer: Consumer) {
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            next = consumer.next() => match next {
                Ok(event) => {
                    handle(&sessions, &coordinator, &event);
                    sessions.bus().save_cursor(CONSUMER, consumer.cursor());
                }
                Err(e) => {
                    tracing::error!("sessions consumer: {e}");
                    tokio::time::sleep(SWEEP_EVERY).await;
                }
            },
            _ = sweep.tick() => sessions.sweep(),
        }
    }
}

#[derive(Deserialize)]
struct Judged {
    session: String,
    message: u32,
    verdict: Verdict,
}

#[derive(Deserialize)]
struct Planned {
    session: String,
    plan: serde_json::Value,
    text: String,
}

/// Acts on one event of the consumer's filter.
pub fn handle(sessions: &Sessions, coordinator: &Coordinator, event: &Event) {
    match event.ty.as_str() {
        "dependency.detected" if sessions.config().open_on_dependency => {
            let Some(found) = dependencies_in(&event.data) else {
                tracing::warn!("dependency.detected #{} is malformed", event.sequence);
                return;
            };
            for (nth, dep) in found.into_iter().enumerate() {
                // Asked for each pair, so every pair refused is counted.
                if !sessions.room_for_one(event) {
                    continue;
                }
                // The earlier task first: it is the one the other depends on.
                let tasks: Vec<_> = [&dep.depends_on, &dep.task]
                    .into_iter()
                    .filter_map(|id| coordinator.task(id))
                    .collect();
                if tasks.len() == 2 {
                    sessions.open(
                        SessionKind::Dependency,
                        tasks,
                        Some(dep),
                        Some((event, nth)),
                    );
                }
            }
        }
        _ => answer(sessions, event),
    }
}

/// Acts on a judge's verdict or a planner's plan, from plugins only.
fn answer(sessions: &Sessions, event: &Event) {
    let from_plugin = event.source.starts_with("plugin/");
    match event.ty.as_str() {
        "session.judged" if from_plugin => {
            match serde_json::from_str::<Judged>(event.data.json()) {
                Ok(j) => sessions.judge(&j.session, j.message, j.verdict, event),
                Err(e) => tracing::warn!(
                    "{} sent a malformed session.judged #{}: {e}",
                    event.source,
                    event.sequence
                ),
            }
        }
        "session.plan" if from_plugin => match serde_json::from_str::<Planned>(event.data.json()) {
            Ok(p) => sessions.plan(&p.session, p.plan, &p.text, event),
            Err(e) => tracing::warn!(
                "{} sent a malformed session.plan #{}: {e}",
                event.source,
                event.sequence
            ),
        },
        _ => {}
    }
}

/// Rebuilds the book from the `session.*` events in the journal, without
/// publishing anything.
fn restore(sessions: &Sessions) {
    let bus = sessions.bus().clone();
    let filter = vec![Pattern::parse("session.>").expect("a valid pattern")];
    let mut consumer = bus.consumer("coordination/sessions-restore", filter, StartAt::Beginning);
    let head = bus.head();
    let mut restored = 0usize;
    loop {
        let event = match consumer.try_next() {
            Ok(Some(e)) if e.sequence <= head => e,
            Ok(_) => break,
            Err(e) => {
                tracing::error!("cannot rebuild the sessions from the journal: {e}");
                break;
            }
        };
        restored += usize::from(replay(sessions, &event));
    }
    if restored > 0 {
        tracing::info!("rebuilt {restored} coordination sessions from the journal");
    }
}

/// Applies one recorded event; true when it opened a session.
fn replay(sessions: &Sessions, e: &Event) -> bool {
    let id = e.data["session"].as_str().unwrap_or_default().to_string();
    let ours = e.source == SOURCE;
    let text = |k: &str| e.data[k].as_str().map(str::to_string);
    match e.ty.as_str() {
        "session.opened" if ours => {
            if let Ok(s) = serde_json::from_str::<Session>(e.data.json()) {
                sessions.restore_opened(s);
                return true;
            }
        }
        "session.message" if ours => {
            let Ok(m) = serde_json::from_value::<Message>(e.data["message"].clone()) else {
                return false;
            };
            let plan = Some(e.data["plan"].clone()).filter(|p| !p.is_null());
            sessions.restore_with(&id, |s, _| {
                if m.id as usize == s.messages.len() + 1 {
                    s.last_activity = m.at;
                    s.messages.push(m);
                }
                if plan.is_some() {
                    s.plan = plan;
                }
            });
        }
        "session.judged" if e.source.starts_with("plugin/") => {
            if let Ok(j) = serde_json::from_str::<Judged>(e.data.json()) {
                sessions.restore_with(&j.session, |s, c| {
                    s.judge(j.message, j.verdict, e.time, c);
                });
            }
        }
        "session.resolved" if ours => sessions.restore_with(&id, |s, _| {
            s.status = SessionStatus::Resolved;
            s.resolution = text("resolution");
            s.closed_at.get_or_insert(e.time);
        }),
        "session.escalated" if ours => sessions.restore_with(&id, |s, _| {
            s.status = SessionStatus::Escalated;
            s.escalation_reason = text("reason");
            s.closed_at.get_or_insert(e.time);
        }),
        "session.closed" if ours => sessions.restore_with(&id, |s, _| {
            if s.status == SessionStatus::Active {
                s.status = SessionStatus::Closed;
            }
            s.closed_reason = text("reason");
            s.closed_at.get_or_insert(e.time);
        }),
        _ => {}
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use serde_json::json;

    use super::*;
    use crate::bus::{Bus, BusConfig, EventQuery, NewEvent};
    use crate::coordination::sessions_model::{MessageKind, SessionConfig};
    use crate::coordination::task::Task;

    fn task(id: &str, repo: &str, agent: &str) -> Task {
        Task {
            id: id.into(),
            repository: repo.into(),
            title: id.into(),
            description: String::new(),
            keywords: vec![],
            agent: Some(agent.into()),
        }
    }

    fn book(bus: &Bus, now: &Arc<AtomicU64>, config: SessionConfig) -> Sessions {
        let now = now.clone();
        Sessions::new(
            bus.clone(),
            config,
            Arc::new(move || now.load(Ordering::SeqCst)),
        )
    }

    fn count(bus: &Bus, ty: &str) -> usize {
        bus.query(&EventQuery {
            types: vec![Pattern::parse(ty).unwrap()],
            after_sequence: Some(0),
            ..Default::default()
        })
        .unwrap()
        .len()
    }

    fn pair(sessions: &Sessions, a: &str, b: &str) -> String {
        sessions
            .open(
                SessionKind::Dependency,
                vec![task(a, "r1", "alice"), task(b, "r2", "bob")],
                None,
                None,
            )
            .unwrap()
            .id
    }

    const T0: u64 = 1_800_000_000_000;
    const MINUTE: u64 = 60_000;

    #[test]
    fn the_sweep_escalates_an_old_session_by_the_injected_clock_and_publishes_each_step() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let now = Arc::new(AtomicU64::new(T0));
        let sessions = book(&bus, &now, SessionConfig::default());
        let id = pair(&sessions, "a", "b");
        now.store(T0 + 29 * MINUTE, Ordering::SeqCst);
        sessions.sweep();
        assert_eq!(sessions.get(&id).unwrap().status, SessionStatus::Active);
        now.store(T0 + 30 * MINUTE, Ordering::SeqCst);
        sessions.sweep();
        sessions.sweep();
        assert_eq!(sessions.get(&id).unwrap().status, SessionStatus::Escalated);
        assert_eq!(count(&bus, "session.opened"), 1);
        assert_eq!(count(&bus, "session.escalated"), 1, "escalated once");
        assert_eq!(count(&bus, "session.closed"), 1);
    }

    #[test]
    fn closed_sessions_are_kept_for_a_bounded_count_and_time() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let now = Arc::new(AtomicU64::new(T0));
        let config = SessionConfig {
            keep_closed: 2,
            ..SessionConfig::default()
        };
        let sessions = book(&bus, &now, config);
        let ids: Vec<String> = (0..3)
            .map(|i| pair(&sessions, &format!("a{i}"), &format!("b{i}")))
            .collect();
        for id in &ids {
            sessions.escalate(id, "by hand").unwrap();
        }
        let open = pair(&sessions, "c", "d");
        sessions.sweep();
        assert!(
            sessions.get(&ids[0]).is_err(),
            "the oldest closed goes first"
        );
        assert!(sessions.get(&ids[1]).is_ok() && sessions.get(&ids[2]).is_ok());
        // A day later the closed ones go; the open one has been closed for
        // inactivity meanwhile, and stays until its own day is over.
        now.store(T0 + 24 * 60 * MINUTE, Ordering::SeqCst);
        sessions.sweep();
        assert!(sessions.get(&ids[1]).is_err() && sessions.get(&ids[2]).is_err());
        assert_eq!(sessions.get(&open).unwrap().status, SessionStatus::Closed);
        assert_eq!(sessions.list(None).len(), 1);
    }

    #[test]
    fn a_cause_delivered_twice_and_a_second_rule_on_the_same_pair_open_one_session() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let now = Arc::new(AtomicU64::new(T0));
        let sessions = book(&bus, &now, SessionConfig::default());
        let cause = bus
            .publish(NewEvent::new("test", "dependency.detected", json!({})))
            .unwrap();
        let tasks = || vec![task("a", "r1", "alice"), task("b", "r2", "bob")];
        let s = sessions.open(SessionKind::Dependency, tasks(), None, Some((&cause, 0)));
        assert_eq!(s.unwrap().id, format!("s{}", cause.sequence));
        assert!(
            sessions
                .open(SessionKind::Dependency, tasks(), None, Some((&cause, 0)))
                .is_none()
        );
        let mut reversed = tasks();
        reversed.reverse();
        assert!(
            sessions
                .open(SessionKind::Conflict, reversed, None, None)
                .is_none()
        );
        assert_eq!(sessions.list(None).len(), 1);
    }

    #[test]
    fn a_storm_of_dependencies_opens_at_most_max_open_sessions_and_says_so_once_per_crossing() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let now = Arc::new(AtomicU64::new(T0));
        let config = SessionConfig {
            max_open: 2,
            ..SessionConfig::default()
        };
        let sessions = book(&bus, &now, config);
        let mut opened = Vec::new();
        for i in 0..1000 {
            let cause = bus
                .publish(NewEvent::new("test", "dependency.detected", json!({})))
                .unwrap();
            if sessions.room_for_one(&cause) {
                opened.push(pair(&sessions, &format!("a{i}"), &format!("b{i}")));
            }
        }
        assert_eq!(opened.len(), 2);
        assert_eq!(count(&bus, "session.limit_reached"), 1, "once per crossing");
        sessions.escalate(&opened[0], "by hand").unwrap();
        let cause = bus
            .publish(NewEvent::new("test", "dependency.detected", json!({})))
            .unwrap();
        assert!(sessions.room_for_one(&cause), "room again once one closed");
        // The closed session's tasks may talk again (in either order).
        pair(&sessions, "b0", "a0");
        assert!(!sessions.room_for_one(&cause));
        let limits = bus
            .query(&EventQuery {
                types: vec![Pattern::parse("session.limit_reached").unwrap()],
                after_sequence: Some(0),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(limits.len(), 2);
        assert_eq!(limits[0].data["skipped"], 1);
        assert_eq!(
            limits[1].data["skipped"], 999,
            "the count covers the whole storm"
        );
    }

    #[test]
    fn verdicts_count_only_from_plugins_not_from_api_clients() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let now = Arc::new(AtomicU64::new(T0));
        let sessions = book(&bus, &now, SessionConfig::default());
        let id = pair(&sessions, "a", "b");
        sessions
            .post(&id, "bob", MessageKind::Proposal, "hmm")
            .unwrap();
        let verdict = json!({ "session": id, "message": 1, "verdict": "agreement" });
        let forged = bus
            .publish(NewEvent::new("api", "session.judged", verdict.clone()))
            .unwrap();
        answer(&sessions, &forged);
        assert_eq!(sessions.get(&id).unwrap().status, SessionStatus::Active);
        let judged = bus
            .publish(NewEvent::new("plugin/judge", "session.judged", verdict))
            .unwrap();
        answer(&sessions, &judged);
        assert_eq!(sessions.get(&id).unwrap().status, SessionStatus::Resolved);
        assert!(
            sessions
                .post(&id, "planner", MessageKind::Proposal, "x")
                .is_err(),
            "nobody posts as the planner through the API"
        );
    }

    #[test]
    fn a_restart_rebuilds_the_book_from_the_journal_without_publishing() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicU64::new(T0));
        let (resolved, active, plan_text) = {
            let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
            let sessions = book(&bus, &now, SessionConfig::default());
            let resolved = pair(&sessions, "a", "b");
            let active = pair(&sessions, "c", "d");
            let plan = bus
                .publish(NewEvent::new(
                    "plugin/planner",
                    "session.plan",
                    json!({ "session": active, "plan": { "sequence": ["c first"] }, "text": "PLAN" }),
                ))
                .unwrap();
            answer(&sessions, &plan);
            sessions
                .post(&resolved, "alice", MessageKind::Proposal, "ok")
                .unwrap();
            let judged = bus
                .publish(NewEvent::new(
                    "plugin/judge",
                    "session.judged",
                    json!({ "session": resolved, "message": 1, "verdict": "agreement" }),
                ))
                .unwrap();
            answer(&sessions, &judged);
            sessions
                .post(&active, "bob", MessageKind::Question, "when?")
                .unwrap();
            bus.flush().unwrap();
            (resolved, active, "PLAN")
        };
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        let before = bus.head();
        let sessions = book(&bus, &now, SessionConfig::default());
        restore(&sessions);
        assert_eq!(bus.head(), before, "a rebuild publishes nothing");
        let r = sessions.get(&resolved).unwrap();
        assert_eq!(r.status, SessionStatus::Resolved);
        assert_eq!(r.agreements, ["alice"]);
        assert!(r.resolution.is_some() && r.closed_at.is_some());
        let a = sessions.get(&active).unwrap();
        assert_eq!(a.status, SessionStatus::Active);
        assert_eq!(a.messages.len(), 2);
        assert_eq!(a.messages[0].text, plan_text);
        assert_eq!(a.plan.as_ref().unwrap()["sequence"][0], "c first");
        // The rebuilt book goes on: the active session still takes messages.
        sessions
            .post(&active, "bob", MessageKind::Agreement, "fine")
            .unwrap();
        assert_eq!(
            sessions.get(&active).unwrap().status,
            SessionStatus::Resolved
        );
    }
}
