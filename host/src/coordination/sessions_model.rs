//! Coordination sessions as plain data and one state machine (seed 003's
//! CoordinationSession), free of the bus and of clocks: every step takes
//! the time as an argument, so the rules are tested without sleeping.
//!
//! What counts as agreement is not decided here: a message posted with the
//! explicit kind `agreement` by a participant counts at once; any other
//! message counts only once a judge (a plugin answering `session.message`
//! with `session.judged`) gives it the verdict `agreement`. A participant's
//! stance is their latest non-neutral verdict, so a later concern withdraws
//! an earlier agreement, and repeating "agreed" does not count twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::task::{Dependency, Task};

/// The author the plan is posted under.
pub const PLANNER: &str = "planner";

/// Longest message text accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Why a session exists (seed 003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// Dependent tasks across repositories.
    Dependency,
    /// Competing or conflicting changes.
    Conflict,
    /// Joint planning of a multi-repository feature.
    Planning,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Open for messages.
    Active,
    /// Consensus reached (closed right after; `closed_at` says when).
    Resolved,
    /// Handed to a person (closed right after; `closed_at` says when).
    Escalated,
    /// Closed without an outcome, after a time without activity.
    Closed,
}

impl SessionStatus {
    /// The word used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Resolved => "resolved",
            SessionStatus::Escalated => "escalated",
            SessionStatus::Closed => "closed",
        }
    }
}

/// What a message is (seed 003's message types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// A proposed approach.
    Proposal,
    /// A request for clarification.
    Question,
    /// Agreement with a proposal; counts at once when a participant posts it.
    Agreement,
    /// A concern or objection.
    Concern,
}

/// A judge's reading of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The author agrees.
    Agreement,
    /// The author objects; withdraws an earlier agreement.
    Disagreement,
    /// Neither; leaves the author's stance as it was.
    Neutral,
}

/// One message of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Message {
    /// Position in the session, from 1.
    pub id: u32,
    /// Who wrote it: a participant, or `planner`.
    pub author: String,
    /// What it is.
    pub kind: MessageKind,
    /// The text.
    pub text: String,
    /// When the session took it.
    pub at: DateTime<Utc>,
    /// The stance it expresses: set by the explicit kind `agreement`, or by
    /// a judge; `None` until judged.
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

/// A coordination session, as listed and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Session {
    /// Unique id, e.g. `s42` (42 is the sequence of the event that opened it).
    pub id: String,
    /// Why it exists.
    pub kind: SessionKind,
    /// Where it is.
    pub status: SessionStatus,
    /// Who takes part: the tasks' agents, or their repositories when a task
    /// has no agent.
    pub participants: Vec<String>,
    /// The tasks involved.
    pub tasks: Vec<Task>,
    /// The dependency that opened it, if one did.
    #[serde(default)]
    pub dependency: Option<Dependency>,
    /// The coordination plan a planner posted, as it sent it.
    #[serde(default)]
    pub plan: Option<serde_json::Value>,
    /// Every message, oldest first.
    pub messages: Vec<Message>,
    /// Participants whose stance is agreement now.
    pub agreements: Vec<String>,
    /// When it opened.
    pub created_at: DateTime<Utc>,
    /// When it last took a message (or opened).
    pub last_activity: DateTime<Utc>,
    /// Why it resolved.
    #[serde(default)]
    pub resolution: Option<String>,
    /// Why it escalated.
    #[serde(default)]
    pub escalation_reason: Option<String>,
    /// When it closed; a closed session takes no more messages.
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    /// Why it closed.
    #[serde(default)]
    pub closed_reason: Option<String>,
}

/// The thresholds of sessions (`[coordination.sessions]` in host.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Open a session for each `dependency.detected`.
    /// Example: `open_on_dependency = false`
    pub open_on_dependency: bool,
    /// Participant messages a session may take; the one past it escalates.
    /// Example: `max_messages = 10`
    pub max_messages: u32,
    /// At most this many sessions are open at once; a dependency found
    /// while that many are open opens none (`session.limit_reached` says
    /// so, once per crossing, with the count skipped).
    /// Example: `max_open = 1000`
    pub max_open: usize,
    /// An active session older than this escalates.
    /// Example: `max_age = "30m"`
    #[serde(with = "crate::supervisor::duration::required")]
    pub max_age: Duration,
    /// A session without a message for this long closes.
    /// Example: `idle_timeout = "2h"`
    #[serde(with = "crate::supervisor::duration::required")]
    pub idle_timeout: Duration,
    /// How long a closed session stays queryable (its events stay in the
    /// journal). Example: `closed_retention = "24h"`
    #[serde(with = "crate::supervisor::duration::required")]
    pub closed_retention: Duration,
    /// At most this many closed sessions are kept queryable; the oldest go
    /// first. Example: `keep_closed = 1000`
    pub keep_closed: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            open_on_dependency: true,
            max_messages: 10,
            max_open: 1000,
            max_age: Duration::from_secs(30 * 60),
            idle_timeout: Duration::from_secs(2 * 3600),
            closed_retention: Duration::from_secs(24 * 3600),
            keep_closed: 1000,
        }
    }
}

impl SessionConfig {
    /// Why a threshold is refused, as `(key, reason)`, if one is.
    pub fn check(&self) -> Option<(&'static str, String)> {
        let second = Duration::from_secs(1);
        if !(1..=10_000).contains(&self.max_messages) {
            return Some(("max_messages", "must be between 1 and 10000".into()));
        }
        for (key, d) in [
            ("max_age", self.max_age),
            ("idle_timeout", self.idle_timeout),
        ] {
            if d < second {
                return Some((key, "must be at least 1s".into()));
            }
        }
        if !(1..=100_000).contains(&self.max_open) {
            return Some(("max_open", "must be between 1 and 100000".into()));
        }
        if self.keep_closed > 1_000_000 {
            return Some(("keep_closed", "must be at most 1000000".into()));
        }
        None
    }
}

/// Why a session step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No session has that id (or it was closed long enough ago to be dropped).
    #[error("no session `{id}`")]
    Unknown {
        /// The id asked for.
        id: String,
    },
    /// The session takes no more messages.
    #[error("session `{id}` is {} and closed; it takes no more messages", status.as_str())]
    Closed {
        /// The session.
        id: String,
        /// Its status.
        status: SessionStatus,
    },
    /// A field of the request is wrong.
    #[error("`{field}` {reason}")]
    Invalid {
        /// The field at fault (`author`, `text`, `reason` ...).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// What a step changed, in order; the room publishes one event for each.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A message was added (`session.message`).
    Message(Message),
    /// Consensus (`session.resolved`).
    Resolved(String),
    /// Escalated (`session.escalated`).
    Escalated(String),
    /// Closed (`session.closed`).
    Closed(String),
}

/// Who takes part for `tasks`: each task's agent, or its repository when it
/// has none (or its id when it has neither), without repeats.
pub fn participants_of(tasks: &[Task]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tasks {
        let who = t
            .agent
            .clone()
            .filter(|a| !a.trim().is_empty())
            .or_else(|| Some(t.repository.clone()).filter(|r| !r.trim().is_empty()))
            .unwrap_or_else(|| t.id.clone());
        if !out.contains(&who) {
            out.push(who);
        }
    }
    out
}

impl Session {
    /// A new active session at `now`.
    pub fn open(
        id: String,
        kind: SessionKind,
        tasks: Vec<Task>,
        dependency: Option<Dependency>,
        now: DateTime<Utc>,
    ) -> Session {
        Session {
            id,
            kind,
            status: SessionStatus::Active,
            participants: participants_of(&tasks),
            tasks,
            dependency,
            plan: None,
            messages: Vec::new(),
            agreements: Vec::new(),
            created_at: now,
            last_activity: now,
            resolution: None,
            escalation_reason: None,
            closed_at: None,
            closed_reason: None,
        }
    }

    /// Whether it still takes messages.
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    /// Agreements needed for consensus: participants − 1, and at least one.
    pub fn needed(&self) -> usize {
        self.participants.len().saturating_sub(1).max(1)
    }

    fn ensure_open(&self) -> Result<(), SessionError> {
        if self.is_open() {
            Ok(())
        } else {
            Err(SessionError::Closed {
                id: self.id.clone(),
                status: self.status,
            })
        }
    }

    /// Messages from participants (the planner's do not count toward the
    /// escalation threshold: it speaks once, unasked).
    pub fn participant_messages(&self) -> usize {
        self.messages
            .iter()
            .filter(|m| self.participants.contains(&m.author))
            .count()
    }

    /// Adds a message from `author` at `now`, then applies the rules:
    /// consensus first, then the message count.
    ///
    /// # Errors
    ///
    /// [`SessionError::Closed`] once closed; [`SessionError::Invalid`] for an
    /// author who is not a participant, or an empty or oversized text.
    pub fn post(
        &mut self,
        author: &str,
        kind: MessageKind,
        text: &str,
        now: DateTime<Utc>,
        config: &SessionConfig,
    ) -> Result<Vec<Step>, SessionError> {
        self.ensure_open()?;
        if author != PLANNER && !self.participants.iter().any(|p| p == author) {
            return Err(SessionError::Invalid {
                field: "author",
                reason: format!(
                    "`{author}` is not a participant of session `{}` (participants: {})",
                    self.id,
                    self.participants.join(", ")
                ),
            });
        }
        if text.trim().is_empty() {
            return Err(SessionError::Invalid {
                field: "text",
                reason: "must not be empty".into(),
            });
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(SessionError::Invalid {
                field: "text",
                reason: format!(
                    "is {} bytes; at most {MAX_TEXT_BYTES} are taken",
                    text.len()
                ),
            });
        }
        let verdict =
            (kind == MessageKind::Agreement && author != PLANNER).then_some(Verdict::Agreement);
        let message = Message {
            id: self.messages.len() as u32 + 1,
            author: author.to_string(),
            kind,
            text: text.to_string(),
            at: now,
            verdict,
        };
        self.messages.push(message.clone());
        self.last_activity = now;
        let mut steps = vec![Step::Message(message)];
        steps.extend(self.evaluate(now, config));
        Ok(steps)
    }

    /// Records a judge's verdict on message `message`, then applies the
    /// rules. A verdict on an explicit `agreement` does not override it, and
    /// a verdict on a closed session or an unknown message changes nothing.
    pub fn judge(
        &mut self,
        message: u32,
        verdict: Verdict,
        now: DateTime<Utc>,
        config: &SessionConfig,
    ) -> Vec<Step> {
        if !self.is_open() {
            return Vec::new();
        }
        let Some(m) = self.messages.iter_mut().find(|m| m.id == message) else {
            return Vec::new();
        };
        if m.kind == MessageKind::Agreement && m.verdict == Some(Verdict::Agreement) {
            return Vec::new();
        }
        m.verdict = Some(verdict);
        self.evaluate(now, config)
    }

    /// Escalates on request.
    ///
    /// # Errors
    ///
    /// [`SessionError::Closed`] once closed; [`SessionError::Invalid`] for an
    /// empty reason.
    pub fn escalate(
        &mut self,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Step>, SessionError> {
        self.ensure_open()?;
        if reason.trim().is_empty() {
            return Err(SessionError::Invalid {
                field: "reason",
                reason: "must not be empty".into(),
            });
        }
        Ok(self.finish(SessionStatus::Escalated, reason.to_string(), now))
    }

    /// The time rules at `now`: an active session past `max_age` escalates,
    /// one idle past `idle_timeout` closes.
    pub fn tick(&mut self, now: DateTime<Utc>, config: &SessionConfig) -> Vec<Step> {
        if !self.is_open() {
            return Vec::new();
        }
        let age = (now - self.created_at).to_std().unwrap_or_default();
        let idle = (now - self.last_activity).to_std().unwrap_or_default();
        if idle >= config.idle_timeout {
            let why = format!(
                "no activity for {}",
                crate::supervisor::duration::format(config.idle_timeout)
            );
            self.status = SessionStatus::Closed;
            self.closed_at = Some(now);
            self.closed_reason = Some(why.clone());
            return vec![Step::Closed(why)];
        }
        if age >= config.max_age {
            let why = format!(
                "open longer than {} without consensus",
                crate::supervisor::duration::format(config.max_age)
            );
            return self.finish(SessionStatus::Escalated, why, now);
        }
        Vec::new()
    }

    /// Consensus, then the message count.
    fn evaluate(&mut self, now: DateTime<Utc>, config: &SessionConfig) -> Vec<Step> {
        self.agreements = self.stances();
        if self.agreements.len() >= self.needed() {
            let why = format!(
                "consensus: {} of {} participants agree ({})",
                self.agreements.len(),
                self.participants.len(),
                self.agreements.join(", ")
            );
            return self.finish(SessionStatus::Resolved, why, now);
        }
        let count = self.participant_messages();
        if count > config.max_messages as usize {
            let why = format!(
                "{count} messages without consensus (more than {})",
                config.max_messages
            );
            return self.finish(SessionStatus::Escalated, why, now);
        }
        Vec::new()
    }

    /// Participants whose latest non-neutral verdict is agreement.
    fn stances(&self) -> Vec<String> {
        self.participants
            .iter()
            .filter(|p| {
                self.messages
                    .iter()
                    .rev()
                    .filter(|m| &m.author == *p)
                    .find_map(|m| m.verdict.filter(|v| *v != Verdict::Neutral))
                    == Some(Verdict::Agreement)
            })
            .cloned()
            .collect()
    }

    /// Sets the outcome and closes: a resolved or escalated session is
    /// cleaned up at once (it stays queryable until retention drops it).
    fn finish(&mut self, status: SessionStatus, why: String, now: DateTime<Utc>) -> Vec<Step> {
        self.status = status;
        self.closed_at = Some(now);
        let closed = match status {
            SessionStatus::Resolved => {
                self.resolution = Some(why.clone());
                self.closed_reason = Some("resolved".into());
                Step::Resolved(why)
            }
            _ => {
                self.escalation_reason = Some(why.clone());
                self.closed_reason = Some("escalated".into());
                Step::Escalated(why)
            }
        };
        vec![
            closed,
            Step::Closed(self.closed_reason.clone().unwrap_or_default()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, repo: &str, agent: Option<&str>) -> Task {
        Task {
            id: id.into(),
            repository: repo.into(),
            title: format!("{id} title"),
            description: String::new(),
            keywords: vec![],
            agent: agent.map(Into::into),
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn session(agents: &[&str]) -> Session {
        let tasks = agents
            .iter()
            .enumerate()
            .map(|(i, a)| task(&format!("t{i}"), &format!("repo{i}"), Some(a)))
            .collect();
        Session::open("s1".into(), SessionKind::Dependency, tasks, None, t0())
    }

    fn kinds(steps: &[Step]) -> Vec<&'static str> {
        steps
            .iter()
            .map(|s| match s {
                Step::Message(_) => "message",
                Step::Resolved(_) => "resolved",
                Step::Escalated(_) => "escalated",
                Step::Closed(_) => "closed",
            })
            .collect()
    }

    #[test]
    fn participants_are_the_agents_or_else_the_repositories_without_repeats() {
        let tasks = vec![
            task("a", "backend", Some("alice")),
            task("b", "frontend", None),
            task("c", "infra", Some("alice")),
            task("d", "", None),
        ];
        assert_eq!(participants_of(&tasks), ["alice", "frontend", "d"]);
    }

    #[test]
    fn with_two_participants_one_explicit_agreement_resolves() {
        let c = SessionConfig::default();
        let mut s = session(&["alice", "bob"]);
        let steps = s
            .post("alice", MessageKind::Proposal, "API first", t0(), &c)
            .unwrap();
        assert_eq!(kinds(&steps), ["message"]);
        let steps = s
            .post("bob", MessageKind::Agreement, "fine by me", t0(), &c)
            .unwrap();
        assert_eq!(kinds(&steps), ["message", "resolved", "closed"]);
        assert_eq!(s.status, SessionStatus::Resolved);
        assert_eq!(s.agreements, ["bob"]);
        assert!(s.resolution.as_deref().unwrap().contains("1 of 2"));
    }

    #[test]
    fn with_three_participants_two_distinct_agreements_are_needed() {
        let c = SessionConfig::default();
        let mut s = session(&["a", "b", "c"]);
        s.post("a", MessageKind::Agreement, "yes", t0(), &c)
            .unwrap();
        // The same participant agreeing again is still one agreement.
        let steps = s
            .post("a", MessageKind::Agreement, "yes!", t0(), &c)
            .unwrap();
        assert_eq!(kinds(&steps), ["message"]);
        assert_eq!(s.status, SessionStatus::Active);
        let steps = s.post("c", MessageKind::Agreement, "ok", t0(), &c).unwrap();
        assert_eq!(kinds(&steps), ["message", "resolved", "closed"]);
    }

    #[test]
    fn a_judged_agreement_counts_and_a_later_disagreement_withdraws_it() {
        let c = SessionConfig::default();
        let mut s = session(&["a", "b", "c"]);
        s.post("a", MessageKind::Proposal, "sounds good", t0(), &c)
            .unwrap();
        assert!(s.judge(1, Verdict::Agreement, t0(), &c).is_empty());
        assert_eq!(s.agreements, ["a"]);
        s.post("a", MessageKind::Concern, "wait, auth?", t0(), &c)
            .unwrap();
        s.judge(2, Verdict::Disagreement, t0(), &c);
        assert!(s.agreements.is_empty());
        s.post("b", MessageKind::Question, "looks good", t0(), &c)
            .unwrap();
        s.judge(3, Verdict::Agreement, t0(), &c);
        // A neutral verdict keeps the earlier stance.
        s.post("b", MessageKind::Question, "when?", t0(), &c)
            .unwrap();
        s.judge(4, Verdict::Neutral, t0(), &c);
        assert_eq!(s.agreements, ["b"]);
        let steps = {
            s.post("c", MessageKind::Proposal, "approved", t0(), &c)
                .unwrap();
            s.judge(5, Verdict::Agreement, t0(), &c)
        };
        assert_eq!(kinds(&steps), ["resolved", "closed"]);
    }

    #[test]
    fn a_judge_cannot_turn_an_explicit_agreement_into_a_disagreement() {
        let c = SessionConfig::default();
        let mut s = session(&["a", "b", "c"]);
        s.post("a", MessageKind::Agreement, "no way", t0(), &c)
            .unwrap();
        s.judge(1, Verdict::Disagreement, t0(), &c);
        assert_eq!(s.agreements, ["a"]);
    }

    #[test]
    fn the_message_past_the_threshold_escalates_naming_the_count() {
        let c = SessionConfig {
            max_messages: 3,
            ..SessionConfig::default()
        };
        let mut s = session(&["a", "b"]);
        for i in 0..3 {
            let steps = s
                .post("a", MessageKind::Question, &format!("q{i}"), t0(), &c)
                .unwrap();
            assert_eq!(kinds(&steps), ["message"]);
        }
        let steps = s.post("b", MessageKind::Concern, "hmm", t0(), &c).unwrap();
        assert_eq!(kinds(&steps), ["message", "escalated", "closed"]);
        assert_eq!(s.status, SessionStatus::Escalated);
        assert!(
            s.escalation_reason
                .as_deref()
                .unwrap()
                .contains("4 messages")
        );
    }

    #[test]
    fn the_planner_message_does_not_count_toward_escalation() {
        let c = SessionConfig {
            max_messages: 1,
            ..SessionConfig::default()
        };
        let mut s = session(&["a", "b"]);
        s.post(PLANNER, MessageKind::Proposal, "the plan", t0(), &c)
            .unwrap();
        let steps = s.post("a", MessageKind::Question, "ok?", t0(), &c).unwrap();
        assert_eq!(kinds(&steps), ["message"]);
    }

    #[test]
    fn an_old_session_escalates_and_an_idle_one_closes_by_the_clock_given() {
        let c = SessionConfig::default();
        let mut s = session(&["a", "b"]);
        let minutes = |m| t0() + chrono::Duration::minutes(m);
        assert!(s.tick(minutes(29), &c).is_empty());
        let steps = s.tick(minutes(30), &c);
        assert_eq!(kinds(&steps), ["escalated", "closed"]);
        assert!(s.escalation_reason.as_deref().unwrap().contains("1800s"));

        let c = SessionConfig {
            max_age: Duration::from_secs(24 * 3600),
            ..SessionConfig::default()
        };
        let mut s = session(&["a", "b"]);
        s.post("a", MessageKind::Proposal, "x", minutes(60), &c)
            .unwrap();
        // Two hours after the last message, not after opening.
        assert!(s.tick(minutes(179), &c).is_empty());
        let steps = s.tick(minutes(180), &c);
        assert_eq!(kinds(&steps), ["closed"]);
        assert_eq!(s.status, SessionStatus::Closed);
        assert!(s.tick(minutes(999), &c).is_empty(), "closed once");
    }

    #[test]
    fn escalation_on_request_needs_a_reason_and_an_open_session() {
        let c = SessionConfig::default();
        let mut s = session(&["a", "b"]);
        assert!(matches!(
            s.escalate("  ", t0()),
            Err(SessionError::Invalid {
                field: "reason",
                ..
            })
        ));
        let steps = s.escalate("needs a human", t0()).unwrap();
        assert_eq!(kinds(&steps), ["escalated", "closed"]);
        assert_eq!(s.escalation_reason.as_deref(), Some("needs a human"));
        assert!(matches!(
            s.escalate("again", t0()),
            Err(SessionError::Closed { .. })
        ));
        assert!(matches!(
            s.post("a", MessageKind::Agreement, "late", t0(), &c),
            Err(SessionError::Closed {
                status: SessionStatus::Escalated,
                ..
            })
        ));
        assert!(s.judge(1, Verdict::Agreement, t0(), &c).is_empty());
    }

    #[test]
    fn an_unknown_author_and_bad_texts_are_refused_naming_the_field() {
        let c = SessionConfig::default();
        let mut s = session(&["alice", "bob"]);
        let err = s
            .post("mallory", MessageKind::Agreement, "yes", t0(), &c)
            .unwrap_err();
        assert!(
            matches!(&err, SessionError::Invalid { field: "author", reason } if reason.contains("alice, bob")),
            "{err}"
        );
        let err = s
            .post("alice", MessageKind::Proposal, " ", t0(), &c)
            .unwrap_err();
        assert!(matches!(err, SessionError::Invalid { field: "text", .. }));
        let huge = "x".repeat(MAX_TEXT_BYTES + 1);
        let err = s
            .post("alice", MessageKind::Proposal, &huge, t0(), &c)
            .unwrap_err();
        assert!(matches!(err, SessionError::Invalid { field: "text", .. }));
        assert!(s.messages.is_empty());
    }

    #[test]
    fn a_flood_of_messages_stores_at_most_the_threshold_plus_one() {
        let c = SessionConfig::default();
        let mut s = session(&["a", "b"]);
        let mut refused = 0;
        for i in 0..10_000 {
            if s.post("a", MessageKind::Concern, &format!("{i}"), t0(), &c)
                .is_err()
            {
                refused += 1;
            }
        }
        assert_eq!(s.messages.len(), 11);
        assert_eq!(refused, 10_000 - 11);
        assert_eq!(s.status, SessionStatus::Escalated);
    }

    #[test]
    fn thresholds_out_of_range_are_named() {
        let bad = SessionConfig {
            max_messages: 0,
            ..SessionConfig::default()
        };
        assert_eq!(bad.check().unwrap().0, "max_messages");
        let bad = SessionConfig {
            idle_timeout: Duration::from_millis(10),
            ..SessionConfig::default()
        };
        assert_eq!(bad.check().unwrap().0, "idle_timeout");
        assert!(SessionConfig::default().check().is_none());
    }
}
