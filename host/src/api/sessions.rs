//! Coordination sessions from outside: list, read, post to, escalate.
//!
//! The request shapes, the [`Control`] operations and the HTTP handlers of
//! `/v1/sessions` live together here, so the shared files (`http.rs`,
//! `mcp.rs`, `ops.rs`, `client.rs`) only gain a line per operation. The
//! rules are the coordination room's; this file checks and translates.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::coordination::{
    Message, MessageKind, Session, SessionError, SessionStatus, SessionSummary,
};

use super::control::Control;
use super::error::ApiError;
use super::http::{JsonBody, QueryArgs};

/// `GET /v1/sessions?status=active`: which sessions to list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsQuery {
    /// Only sessions in this status (active, resolved, escalated, closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<SessionStatus>,
}

/// `POST /v1/sessions/{id}/messages`: a message from a participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// A participant of the session (a task's agent, or its repository).
    pub author: String,
    /// proposal, question, agreement or concern. An `agreement` counts
    /// toward consensus at once; other kinds count when a judge plugin
    /// reads them as agreement.
    pub kind: MessageKind,
    /// The message (at most 16 KiB).
    pub text: String,
}

/// `POST /v1/sessions/{id}/escalate`: hand the session to a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateSession {
    /// Why.
    pub reason: String,
    /// Who asks, recorded in the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// MCP arguments naming one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRef {
    /// The session id, e.g. `s42`.
    pub id: String,
}

/// MCP arguments of `post_session_message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPost {
    /// The session id, e.g. `s42`.
    pub id: String,
    /// A participant of the session.
    pub author: String,
    /// proposal, question, agreement or concern.
    pub kind: MessageKind,
    /// The message (at most 16 KiB).
    pub text: String,
}

impl SessionPost {
    /// The message part, as HTTP takes it.
    pub fn message(self) -> PostMessage {
        PostMessage {
            author: self.author,
            kind: self.kind,
            text: self.text,
        }
    }
}

/// MCP arguments of `escalate_session`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionEscalation {
    /// The session id, e.g. `s42`.
    pub id: String,
    /// Why.
    pub reason: String,
    /// Who asks.
    #[serde(default)]
    pub by: Option<String>,
}

impl SessionEscalation {
    /// The request part, as HTTP takes it.
    pub fn request(self) -> EscalateSession {
        EscalateSession {
            reason: self.reason,
            by: self.by,
        }
    }
}

impl Control {
    /// Sessions still kept, newest first.
    pub fn sessions(&self, query: &SessionsQuery) -> Vec<SessionSummary> {
        self.sessions.list(query.status)
    }

    /// One session with its messages.
    ///
    /// # Errors
    ///
    /// 404 naming the known ids.
    pub fn session(&self, id: &str) -> Result<Session, ApiError> {
        self.sessions.get(id).map_err(|e| self.session_error(e))
    }

    /// Posts a message; answers with it as the session took it.
    ///
    /// # Errors
    ///
    /// 404 for an unknown id, 409 for a closed session, 400 naming
    /// `author` or `text`.
    pub fn post_session_message(
        &self,
        id: &str,
        request: PostMessage,
    ) -> Result<Message, ApiError> {
        self.sessions
            .post(id, &request.author, request.kind, &request.text)
            .map_err(|e| self.session_error(e))
    }

    /// Escalates a session on request; answers with the session.
    ///
    /// # Errors
    ///
    /// 404 for an unknown id, 409 for a closed session, 400 naming `reason`.
    pub fn escalate_session(
        &self,
        id: &str,
        request: EscalateSession,
    ) -> Result<Session, ApiError> {
        let reason = match request.by.as_deref().map(str::trim) {
            Some(by) if !by.is_empty() && !request.reason.trim().is_empty() => {
                format!("{} (asked by {by})", request.reason.trim())
            }
            _ => request.reason,
        };
        self.sessions
            .escalate(id, &reason)
            .map_err(|e| self.session_error(e))
    }

    fn session_error(&self, e: SessionError) -> ApiError {
        match e {
            SessionError::Unknown { id } => ApiError::unknown(
                "session",
                &id,
                self.sessions.list(None).into_iter().map(|s| s.id),
            ),
            SessionError::Closed { .. } => ApiError::conflict(e.to_string()),
            SessionError::Invalid { field, reason } => ApiError::bad_request(field, reason),
        }
    }
}

pub(super) async fn list_sessions(
    State(c): State<Control>,
    QueryArgs(query): QueryArgs<SessionsQuery>,
) -> Result<axum::Json<Vec<SessionSummary>>, ApiError> {
    Ok(axum::Json(c.sessions(&query)))
}

pub(super) async fn get_session(
    State(c): State<Control>,
    Path(id): Path<String>,
) -> Result<axum::Json<Session>, ApiError> {
    Ok(axum::Json(c.session(&id)?))
}

pub(super) async fn post_session_message(
    State(c): State<Control>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<PostMessage>,
) -> Result<(StatusCode, axum::Json<Message>), ApiError> {
    let message = c.post_session_message(&id, request)?;
    Ok((StatusCode::CREATED, axum::Json(message)))
}

pub(super) async fn escalate_session(
    State(c): State<Control>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<EscalateSession>,
) -> Result<axum::Json<Session>, ApiError> {
    Ok(axum::Json(c.escalate_session(&id, request)?))
}
