//! `host sessions`, `host sessions show ID`, `host sessions post ID ...`
//! and `host sessions escalate ID ...`: coordination sessions from a
//! terminal, through the same operations as HTTP and MCP.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use comfy_table::Cell;

use crate::api::{EscalateSession, Operations as _, PostMessage, SessionsQuery};
use crate::coordination::{MessageKind, Session, SessionStatus};

use super::client::{ConnectArgs, Failure, block_on};
use super::output;

/// Flags of `host sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Only sessions in this status.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    #[command(subcommand)]
    action: Option<SessionAction>,
}

/// A status, as typed.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    /// Open for messages.
    Active,
    /// Consensus reached.
    Resolved,
    /// Handed to a person.
    Escalated,
    /// Closed after inactivity.
    Closed,
}

/// A message kind, as typed.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// A proposed approach.
    Proposal,
    /// A request for clarification.
    Question,
    /// Agreement; counts toward consensus at once.
    Agreement,
    /// A concern or objection.
    Concern,
}

/// What to do with a session.
#[derive(Debug, Subcommand)]
pub enum SessionAction {
    /// One session: tasks, plan, messages, outcome.
    Show {
        /// The session id.
        id: String,
    },
    /// Post a message as a participant.
    Post {
        /// The session id.
        id: String,
        /// What the message is.
        #[arg(long, value_enum, default_value = "proposal")]
        kind: KindArg,
        /// A participant (a task's agent, or its repository).
        #[arg(long)]
        author: String,
        /// The message.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Hand the session to a person.
    Escalate {
        /// The session id.
        id: String,
        /// Who asks.
        #[arg(long)]
        by: Option<String>,
        /// Why.
        #[arg(required = true, num_args = 1..)]
        reason: Vec<String>,
    },
}

pub(super) fn sessions(args: SessionsArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = args.connect.connect()?;
        let json = args.connect.json;
        match args.action {
            Some(SessionAction::Show { id }) => {
                let s = client.session(&id).await?;
                Ok(if json {
                    output::json(&s)
                } else {
                    output::line(&describe(&s))
                })
            }
            Some(SessionAction::Post {
                id,
                kind,
                author,
                text,
            }) => {
                let kind = match kind {
                    KindArg::Proposal => MessageKind::Proposal,
                    KindArg::Question => MessageKind::Question,
                    KindArg::Agreement => MessageKind::Agreement,
                    KindArg::Concern => MessageKind::Concern,
                };
                let request = PostMessage {
                    author,
                    kind,
                    text: text.join(" "),
                };
                let m = client.post_session_message(&id, request).await?;
                Ok(if json {
                    output::json(&m)
                } else {
                    output::line(&format!("posted message {} to {id}", m.id))
                })
            }
            Some(SessionAction::Escalate { id, by, reason }) => {
                let request = EscalateSession {
                    reason: reason.join(" "),
                    by,
                };
                let s = client.escalate_session(&id, request).await?;
                Ok(if json {
                    output::json(&s)
                } else {
                    output::line(&format!("escalated {id}"))
                })
            }
            None => {
                let status = args.status.map(|s| match s {
                    StatusArg::Active => SessionStatus::Active,
                    StatusArg::Resolved => SessionStatus::Resolved,
                    StatusArg::Escalated => SessionStatus::Escalated,
                    StatusArg::Closed => SessionStatus::Closed,
                });
                let list = client.sessions(SessionsQuery { status }).await?;
                if json {
                    return Ok(output::json(&list));
                }
                let mut table = output::table(&[
                    "ID",
                    "KIND",
                    "STATUS",
                    "PARTICIPANTS",
                    "TASKS",
                    "MESSAGES",
                    "AGREE",
                    "OUTCOME",
                ]);
                for s in &list {
                    table.add_row(vec![
                        Cell::new(&s.id),
                        Cell::new(word(&s.kind)),
                        Cell::new(word(&s.status)),
                        Cell::new(s.participants.join(",")),
                        Cell::new(s.tasks.join(",")),
                        output::num(s.messages.to_string()),
                        output::num(s.agreements.len().to_string()),
                        Cell::new(output::or_dash(s.outcome.as_ref())),
                    ]);
                }
                Ok::<_, Failure>(output::print(&mut table))
            }
        }
    })
}

/// A serde enum's word (`active`, `dependency`).
fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A session as a person reads it.
fn describe(s: &Session) -> String {
    let mut out = format!(
        "session {} ({}) {}\nparticipants: {}\n",
        s.id,
        word(&s.kind),
        word(&s.status),
        s.participants.join(", ")
    );
    for t in &s.tasks {
        out.push_str(&format!("task {} [{}]: {}\n", t.id, t.repository, t.title));
    }
    if let Some(d) = &s.dependency {
        out.push_str(&format!(
            "dependency: {} -> {} ({}, rule {}): {}\n",
            d.task, d.depends_on, d.relationship, d.rule, d.reason
        ));
    }
    for m in &s.messages {
        let verdict = m.verdict.as_ref().map(word).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "\n#{} {} {} [{}] {}\n{}\n",
            m.id,
            m.at.format("%H:%M:%S"),
            m.author,
            word(&m.kind),
            verdict,
            m.text.trim_end()
        ));
    }
    if let Some(r) = s.resolution.as_ref().or(s.escalation_reason.as_ref()) {
        out.push_str(&format!("\noutcome: {r}\n"));
    }
    out.trim_end().to_string()
}
