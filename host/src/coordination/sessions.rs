//! [`Sessions`]: the coordination sessions of a running host (seed 003's
//! MetaCoordinator), a handle shared by the bus consumer that opens them,
//! the API that posts to them, and the sweep that applies the time rules.
//!
//! The rules themselves are in `sessions_model` (plain data, a clock passed
//! in); this file keeps the book of sessions, takes the time from an
//! injected [`Clock`], and publishes every step as an event after the lock
//! is released: `session.opened` (the whole session), `session.message`,
//! `session.resolved`, `session.escalated`, `session.closed`.
//!
//! Closed sessions stay queryable for `closed_retention` (24 h) and at most
//! `keep_closed` (1000) of them, the oldest dropped first; their events stay
//! in the journal, which is what a restart rebuilds the book from
//! (`sessions_consumer`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::SOURCE;
use super::sessions_model::{
    Message, MessageKind, PLANNER, Session, SessionConfig, SessionError, SessionKind,
    SessionStatus, Step, Verdict,
};
use super::task::{Dependency, Task};
use crate::bus::{Bus, Event, NewEvent};
use crate::plugins::Clock;

/// A session in a listing: everything but the messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionSummary {
    /// Unique id.
    pub id: String,
    /// Why it exists.
    pub kind: SessionKind,
    /// Where it is.
    pub status: SessionStatus,
    /// Who takes part.
    pub participants: Vec<String>,
    /// Ids of the tasks involved.
    pub tasks: Vec<String>,
    /// How many messages it holds.
    pub messages: usize,
    /// Participants who agree now.
    pub agreements: Vec<String>,
    /// When it opened.
    pub created_at: DateTime<Utc>,
    /// When it last took a message.
    pub last_activity: DateTime<Utc>,
    /// The resolution or escalation reason, once there is one.
    #[serde(default)]
    pub outcome: Option<String>,
    /// When it closed.
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
}

impl From<&Session> for SessionSummary {
    fn from(s: &Session) -> Self {
        SessionSummary {
            id: s.id.clone(),
            kind: s.kind,
            status: s.status,
            participants: s.participants.clone(),
            tasks: s.tasks.iter().map(|t| t.id.clone()).collect(),
            messages: s.messages.len(),
            agreements: s.agreements.clone(),
            created_at: s.created_at,
            last_activity: s.last_activity,
            outcome: s.resolution.clone().or_else(|| s.escalation_reason.clone()),
            closed_at: s.closed_at,
        }
    }
}

#[derive(Default)]
struct Book {
    sessions: BTreeMap<String, Session>,
    /// Ids of closed sessions, oldest closed first: what retention drops.
    closed: VecDeque<String>,
    /// Numbers the ids of sessions opened without a causing event.
    local: u64,
    /// Dependencies that opened no session because `max_open` were open.
    skipped: u64,
    /// Whether the crossing into the limit was announced; cleared once
    /// there is room again.
    limit_announced: bool,
    /// Open sessions by their tasks' sorted ids, and how many: whether there
    /// is room, and whether the same tasks already talk, without a scan of
    /// the book (a dense registration asks both for each of thousands of
    /// pairs, and a scan each made that quadratic).
    open_by_tasks: HashMap<Vec<String>, usize>,
    open: usize,
}

impl Book {
    /// Files `session` (replacing nothing: the caller checked the id).
    fn insert(&mut self, session: Session) {
        if session.is_open() {
            self.open += 1;
            *self
                .open_by_tasks
                .entry(task_key(&session.tasks))
                .or_default() += 1;
        }
        self.sessions.insert(session.id.clone(), session);
    }

    fn note_closed(&mut self, steps: &[Step], id: &str) {
        if steps.iter().any(|s| matches!(s, Step::Closed(_))) {
            self.closing(id);
        }
    }

    /// Session `id` has just closed: retention keeps it from now, and it
    /// no longer counts as open.
    fn closing(&mut self, id: &str) {
        self.closed.push_back(id.to_string());
        let Some(key) = self.sessions.get(id).map(|s| task_key(&s.tasks)) else {
            return;
        };
        if let Some(n) = self.open_by_tasks.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.open_by_tasks.remove(&key);
            }
            self.open -= 1;
        }
    }
}

/// The ids of `tasks`, sorted: the same tasks in any order are one key.
fn task_key(tasks: &[Task]) -> Vec<String> {
    let mut ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    ids.sort_unstable();
    ids
}

struct Inner {
    book: Mutex<Book>,
    bus: Bus,
    clock: Clock,
    config: SessionConfig,
}

/// The sessions of a host. Cheap to clone (a handle).
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

impl Sessions {
    /// An empty book publishing to `bus`, telling time by `clock` (epoch ms).
    pub fn new(bus: Bus, config: SessionConfig, clock: Clock) -> Self {
        Sessions {
            inner: Arc::new(Inner {
                book: Mutex::default(),
                bus,
                clock,
                config,
            }),
        }
    }

    /// The thresholds in force.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    pub(super) fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    fn now(&self) -> DateTime<Utc> {
        let ms = (self.inner.clock)();
        Utc.timestamp_millis_opt(ms as i64)
            .single()
            .unwrap_or_else(Utc::now)
    }

    /// Every session still kept, newest first, optionally only those in `status`.
    pub fn list(&self, status: Option<SessionStatus>) -> Vec<SessionSummary> {
        let book = self.inner.book.lock();
        let mut out: Vec<SessionSummary> = book
            .sessions
            .values()
            .filter(|s| status.is_none_or(|st| s.status == st))
            .map(SessionSummary::from)
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        out
    }

    /// One session with its messages.
    ///
    /// # Errors
    ///
    /// [`SessionError::Unknown`].
    pub fn get(&self, id: &str) -> Result<Session, SessionError> {
        self.inner
            .book
            .lock()
            .sessions
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::Unknown { id: id.to_string() })
    }

    /// Whether another session may open now. When not, the skip is
    /// counted, and the first skip since there was room is announced as
    /// `session.limit_reached` {max_open, skipped} (caused by `cause`).
    pub fn room_for_one(&self, cause: &Event) -> bool {
        let max_open = self.inner.config.max_open;
        let skipped = {
            let mut book = self.inner.book.lock();
            if book.open < max_open {
                book.limit_announced = false;
                return true;
            }
            book.skipped += 1;
            if std::mem::replace(&mut book.limit_announced, true) {
                return false;
            }
            book.skipped
        };
        let event = NewEvent::new(
            SOURCE,
            "session.limit_reached",
            json!({ "max_open": max_open, "skipped": skipped }),
        );
        self.publish(vec![event.caused_by(cause)]);
        false
    }

    /// Opens a session over `tasks` and publishes `session.opened` (with the
    /// whole session, which is what a planner reads).
    ///
    /// `cause` is the event that opened it and which of its findings (a
    /// `dependency.detected` lists one per pair, from 0). The id is
    /// `s<sequence>` of the cause for its first finding and
    /// `s<sequence>.<n>` for the n-th after, so a cause delivered twice (a
    /// restart before the cursor was saved) opens each session once; `None`
    /// when that session exists already, or when an open
    /// session already involves the same tasks (two rules finding the same
    /// pair make one conversation, not two).
    pub fn open(
        &self,
        kind: SessionKind,
        tasks: Vec<Task>,
        dependency: Option<Dependency>,
        cause: Option<(&Event, usize)>,
    ) -> Option<Session> {
        let now = self.now();
        let session = {
            let mut book = self.inner.book.lock();
            let id = match cause {
                Some((e, 0)) => format!("s{}", e.sequence),
                Some((e, nth)) => format!("s{}.{nth}", e.sequence),
                None => {
                    book.local += 1;
                    format!("local-{}", book.local)
                }
            };
            if book.sessions.contains_key(&id) || book.open_by_tasks.contains_key(&task_key(&tasks))
            {
                return None;
            }
            let session = Session::open(id, kind, tasks, dependency, now);
            book.insert(session.clone());
            session
        };
        let event = NewEvent::new(
            SOURCE,
            "session.opened",
            serde_json::to_value(&session).unwrap_or_default(),
        )
        .with_subject(&session.id);
        self.publish(vec![caused(event, cause.map(|(e, _)| e))]);
        Some(session)
    }

    /// Posts a message to session `id`; publishes it and whatever it led to.
    ///
    /// # Errors
    ///
    /// [`SessionError::Unknown`], [`SessionError::Closed`], or
    /// [`SessionError::Invalid`] naming `author` or `text`.
    pub fn post(
        &self,
        id: &str,
        author: &str,
        kind: MessageKind,
        text: &str,
    ) -> Result<Message, SessionError> {
        if author == PLANNER {
            return Err(SessionError::Invalid {
                field: "author",
                reason: format!("`{PLANNER}` is reserved for the planner plugin's plan"),
            });
        }
        let steps = self.step(id, |s, now, c| s.post(author, kind, text, now, c))?;
        let message = steps
            .iter()
            .find_map(|s| match s {
                Step::Message(m) => Some(m.clone()),
                _ => None,
            })
            .ok_or_else(|| SessionError::Unknown { id: id.to_string() })?;
        self.announce(id, steps, None, None);
        Ok(message)
    }

    /// Escalates session `id` on request.
    ///
    /// # Errors
    ///
    /// [`SessionError::Unknown`], [`SessionError::Closed`], or
    /// [`SessionError::Invalid`] naming `reason`.
    pub fn escalate(&self, id: &str, reason: &str) -> Result<Session, SessionError> {
        let steps = self.step(id, |s, now, _| s.escalate(reason, now))?;
        self.announce(id, steps, None, None);
        self.get(id)
    }

    /// A judge's verdict on message `message` of session `id`, from `cause`
    /// (a `session.judged` event). Unknown sessions and messages, and closed
    /// sessions, are passed over.
    pub fn judge(&self, id: &str, message: u32, verdict: Verdict, cause: &Event) {
        if let Ok(steps) = self.step(id, |s, now, c| Ok(s.judge(message, verdict, now, c))) {
            self.announce(id, steps, Some(cause), None);
        }
    }

    /// A planner's plan for session `id`: kept on the session and posted as
    /// a proposal from `planner`. A second plan for the same session, or a
    /// plan for a closed one, is passed over.
    pub fn plan(&self, id: &str, plan: serde_json::Value, text: &str, cause: &Event) {
        let stepped = self.step(id, |s, now, c| {
            if s.plan.is_some() {
                return Ok(Vec::new());
            }
            let steps = s.post(PLANNER, MessageKind::Proposal, text, now, c)?;
            s.plan = Some(plan.clone());
            Ok(steps)
        });
        match stepped {
            Ok(steps) => self.announce(id, steps, Some(cause), Some(&plan)),
            Err(e) => tracing::warn!("plan for session `{id}` not posted: {e}"),
        }
    }

    /// Applies the time rules to every open session and drops closed
    /// sessions past retention. Called by the consumer's timer; tests call
    /// it with a clock of their own.
    pub fn sweep(&self) {
        let now = self.now();
        let config = &self.inner.config;
        let mut stepped = Vec::new();
        {
            let mut book = self.inner.book.lock();
            let ids: Vec<String> = book
                .sessions
                .values()
                .filter(|s| s.is_open())
                .map(|s| s.id.clone())
                .collect();
            for id in ids {
                let steps = match book.sessions.get_mut(&id) {
                    Some(s) => s.tick(now, config),
                    None => continue,
                };
                book.note_closed(&steps, &id);
                if !steps.is_empty() {
                    stepped.push((id, steps));
                }
            }
            let retention = chrono::Duration::from_std(config.closed_retention)
                .unwrap_or(chrono::Duration::MAX);
            while let Some(oldest) = book.closed.front().cloned() {
                let expired = book
                    .sessions
                    .get(&oldest)
                    .and_then(|s| s.closed_at)
                    .is_none_or(|at| now - at >= retention);
                if !expired && book.closed.len() <= config.keep_closed {
                    break;
                }
                book.closed.pop_front();
                book.sessions.remove(&oldest);
            }
        }
        for (id, steps) in stepped {
            self.announce(&id, steps, None, None);
        }
    }

    /// Runs `f` on session `id` under the lock, at the clock's now.
    fn step(
        &self,
        id: &str,
        f: impl FnOnce(&mut Session, DateTime<Utc>, &SessionConfig) -> Result<Vec<Step>, SessionError>,
    ) -> Result<Vec<Step>, SessionError> {
        let now = self.now();
        let mut book = self.inner.book.lock();
        let session = book
            .sessions
            .get_mut(id)
            .ok_or_else(|| SessionError::Unknown { id: id.to_string() })?;
        let steps = f(session, now, &self.inner.config)?;
        book.note_closed(&steps, id);
        Ok(steps)
    }

    /// Publishes one event per step, after the lock is released.
    fn announce(
        &self,
        id: &str,
        steps: Vec<Step>,
        cause: Option<&Event>,
        plan: Option<&serde_json::Value>,
    ) {
        if steps.is_empty() {
            return;
        }
        let (participants, agreements, status) = match self.get(id) {
            Ok(s) => (s.participants, s.agreements, s.status),
            Err(_) => return,
        };
        let events = steps
            .into_iter()
            .map(|step| {
                let (ty, data) = match step {
                    Step::Message(m) => (
                        "session.message",
                        json!({ "session": id, "message": m, "participants": participants, "plan": plan }),
                    ),
                    Step::Resolved(why) => (
                        "session.resolved",
                        json!({ "session": id, "resolution": why, "agreements": agreements }),
                    ),
                    Step::Escalated(why) => {
                        ("session.escalated", json!({ "session": id, "reason": why }))
                    }
                    Step::Closed(why) => (
                        "session.closed",
                        json!({ "session": id, "reason": why, "status": status }),
                    ),
                };
                caused(NewEvent::new(SOURCE, ty, data).with_subject(id), cause)
            })
            .collect();
        self.publish(events);
    }

    fn publish(&self, events: Vec<NewEvent>) {
        if let Err(e) = self.inner.bus.publish_all(events) {
            tracing::error!("could not publish a session event: {e}");
        }
    }

    /// Puts a session back as a `session.opened` event described it (the
    /// rebuild after a restart); an id already present is kept as it is.
    pub(super) fn restore_opened(&self, session: Session) {
        let mut book = self.inner.book.lock();
        if !book.sessions.contains_key(&session.id) {
            book.insert(session);
        }
    }

    /// Applies a recorded step to the rebuilt book, without publishing.
    pub(super) fn restore_with(&self, id: &str, f: impl FnOnce(&mut Session, &SessionConfig)) {
        let mut book = self.inner.book.lock();
        let Some(s) = book.sessions.get_mut(id) else {
            return;
        };
        let was_open = s.is_open();
        f(s, &self.inner.config);
        if was_open && !s.is_open() {
            book.closing(id);
        }
    }
}

fn caused(event: NewEvent, cause: Option<&Event>) -> NewEvent {
    match cause {
        Some(c) => event.caused_by(c),
        None => event,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::bus::BusConfig;

    fn task(id: String) -> Task {
        Task {
            id: id.clone(),
            repository: id.clone(),
            title: id,
            description: String::new(),
            keywords: vec![],
            agent: Some("agent".into()),
        }
    }

    /// The open count and the open tasks' index agree with a scan of the
    /// book after any mix of opening, escalating, sweeping, retention and
    /// a rebuild from the journal's steps.
    #[test]
    fn the_open_index_agrees_with_a_scan_of_the_book_whatever_happens() {
        let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
        let now = Arc::new(AtomicU64::new(1_800_000_000_000));
        let clock = now.clone();
        let config = SessionConfig {
            keep_closed: 5,
            ..SessionConfig::default()
        };
        let sessions = Sessions::new(bus, config, Arc::new(move || clock.load(Ordering::SeqCst)));
        let mut rng = fastrand::Rng::with_seed(7);
        for step in 0..2_000 {
            let (a, b) = (rng.u8(..12), rng.u8(..12));
            match rng.u8(..10) {
                0..5 => {
                    let tasks = vec![task(format!("t{a}")), task(format!("t{b}"))];
                    sessions.open(SessionKind::Dependency, tasks, None, None);
                }
                5 => {
                    let id = format!("local-{}", rng.u64(1..=step.max(1)));
                    let _ = sessions.escalate(&id, "by hand");
                }
                6 => {
                    let id = format!("local-{}", rng.u64(1..=step.max(1)));
                    sessions.restore_with(&id, |s, _| {
                        if s.is_open() {
                            s.closed_at = Some(s.last_activity);
                        }
                    });
                }
                7 => {
                    let tasks = vec![task(format!("t{a}")), task(format!("t{b}"))];
                    let restored = Session::open(
                        format!("r{}", rng.u8(..20)),
                        SessionKind::Conflict,
                        tasks,
                        None,
                        Utc::now(),
                    );
                    sessions.restore_opened(restored);
                }
                _ => {
                    now.fetch_add(rng.u64(..3 * 3_600_000), Ordering::SeqCst);
                    sessions.sweep();
                }
            }
            let book = sessions.inner.book.lock();
            let open: Vec<&Session> = book.sessions.values().filter(|s| s.is_open()).collect();
            assert_eq!(book.open, open.len(), "step {step}");
            let mut scanned: HashMap<Vec<String>, usize> = HashMap::new();
            for s in open {
                *scanned.entry(task_key(&s.tasks)).or_default() += 1;
            }
            assert_eq!(book.open_by_tasks, scanned, "step {step}");
        }
    }
}
