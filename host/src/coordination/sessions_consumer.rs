//! The sessions' bus consumer: what opens sessions, takes judges' verdicts
//! and planners' plans, and runs the time rules.
//!
//! It reads `dependency.detected` (opens a session over the two tasks),
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

use super::sessions::Sessions;
use super::sessions_model::{Message, Session, SessionKind, SessionStatus, Verdict};
use super::task::Dependency;
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
    let from_plugin = event.source.starts_with("plugin/");
    match event.ty.as_str() {
        "dependency.detected" if sessions.config().open_on_dependency => {
            let Ok(dep) = serde_json::from_value::<Dependency>(event.data.clone()) else {
                tracing::warn!("dependency.detected #{} is malformed", event.sequence);
                return;
            };
            let all = coordinator.tasks();
            // The earlier task first: it is the one the other depends on.
            let tasks: Vec<_> = [&dep.depends_on, &dep.task]
                .into_iter()
                .filter_map(|id| all.iter().find(|t| &t.id == id).cloned())
                .collect();
            if tasks.len() == 2 {
                sessions.open(SessionKind::Dependency, tasks, Some(dep), Some(event));
            }
        }
        "session.judged" if from_plugin => {
            match serde_json::from_value::<Judged>(event.data.clone()) {
                Ok(j) => sessions.judge(&j.session, j.message, j.verdict, event),
                Err(e) => tracing::warn!(
                    "{} sent a malformed session.judged #{}: {e}",
                    event.source,
                    event.sequence
                ),
            }
        }
        "session.plan" if from_plugin => {
            match serde_json::from_value::<Planned>(event.data.clone()) {
                Ok(p) => sessions.plan(&p.session, p.plan, &p.text, event),
                Err(e) => tracing::warn!(
                    "{} sent a malformed session.plan #{}: {e}",
                    event.source,
                    event.sequence
                ),
            }
        }
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
            if let Ok(s) = serde_json::from_value::<Session>(e.data.clone()) {
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
            if let Ok(j) = serde_json::from_value::<Judged>(e.data.clone()) {
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
