//! The one error type of every operation: an HTTP status, a sentence a
//! person or an agent can act on, and the field at fault.
//!
//! HTTP sends it as `{"error": "...", "field": "..."}` with its status; MCP
//! turns it into a tool result with `isError`; the CLI prints the sentence
//! and picks its exit code from the status. The errors of the other rooms
//! are mapped here once, so each face says the same thing.

use serde::{Deserialize, Serialize};

use crate::agents::AgentError;
use crate::bus::BusError;
use crate::coordination::CoordinationError;
use crate::plugins::PluginError;
use crate::supervisor::SupervisorError;

/// What went wrong in an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    /// The HTTP status that describes it (400 bad input, 404 unknown id,
    /// 409 wrong state, 503 shutting down, 500 the host failed).
    #[serde(skip, default = "internal_status")]
    pub status: u16,
    /// What happened, in words.
    pub error: String,
    /// The request field at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

fn internal_status() -> u16 {
    500
}

impl ApiError {
    /// 400: `field` is wrong because `reason`.
    pub fn bad_request(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let field = field.into();
        ApiError {
            status: 400,
            error: format!("`{field}` {}", reason.into()),
            field: Some(field),
        }
    }

    /// 400 about the request as a whole.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::with_status(400, reason)
    }

    /// 404: nothing of that name.
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::with_status(404, reason)
    }

    /// 409: the thing exists but is in the wrong state for this.
    pub fn conflict(reason: impl Into<String>) -> Self {
        Self::with_status(409, reason)
    }

    /// 500: the host itself failed.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::with_status(500, reason)
    }

    /// An error with any status.
    pub fn with_status(status: u16, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            error: reason.into(),
            field: None,
        }
    }

    /// True for an unknown id (404).
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }

    /// "no process `web_12`; known: build_7f3a, api_91c2" — an unknown
    /// name with the names that do exist, so the caller can correct itself.
    pub fn unknown(what: &str, name: &str, known: impl IntoIterator<Item = String>) -> Self {
        let mut known: Vec<String> = known.into_iter().collect();
        let listed = match known.len() {
            0 => "there are none".to_string(),
            n if n > 20 => {
                known.truncate(20);
                format!("known: {} and {} more", known.join(", "), n - 20)
            }
            _ => format!("known: {}", known.join(", ")),
        };
        Self::not_found(format!("no {what} `{name}`; {listed}"))
    }
}

impl From<SupervisorError> for ApiError {
    fn from(e: SupervisorError) -> Self {
        let status = match &e {
            SupervisorError::UnknownProcess { .. } => 404,
            SupervisorError::AlreadyExists { .. }
            | SupervisorError::InvalidState { .. }
            | SupervisorError::NotRestarted { .. } => 409,
            SupervisorError::InvalidSpec { field, reason, .. } => {
                return ApiError::bad_request(field.clone(), reason.clone());
            }
            SupervisorError::InvalidStatus { .. } => 400,
            SupervisorError::ShuttingDown { .. } => 503,
            _ => 500,
        };
        ApiError::with_status(status, e.to_string())
    }
}

impl From<BusError> for ApiError {
    fn from(e: BusError) -> Self {
        match &e {
            BusError::InvalidEvent { field, reason } => {
                ApiError::bad_request(*field, reason.clone())
            }
            BusError::InvalidPattern { .. } => ApiError::bad_request("type", e.to_string()),
            BusError::Closed => ApiError::with_status(503, e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Unknown(_) => ApiError::not_found(e.to_string()),
        }
    }
}

impl From<CoordinationError> for ApiError {
    fn from(e: CoordinationError) -> Self {
        match e {
            CoordinationError::InvalidTask { field, reason, .. } => {
                ApiError::bad_request(field, reason)
            }
        }
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::Unknown { .. } => ApiError::not_found(e.to_string()),
            // The plugin is in a state where this cannot be done; the old
            // version keeps serving.
            PluginError::NewGrants { .. } | PluginError::NothingToApprove(_) => {
                ApiError::conflict(e.to_string())
            }
            _ => ApiError::internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let e = ApiError::unknown(
            "process",
            "web_12",
            ["build_7f3a".into(), "api_91c2".into()],
        );
        assert_eq!(e.status, 404);
        assert_eq!(e.error, "no process `web_12`; known: build_7f3a, api_91c2");
        let e = ApiError::unknown("process", "x", Vec::new());
        assert_eq!(e.error, "no process `x`; there are none");
    }

    #[test]
    fn a_bad_field_is_named_in_the_body() {
        let e = ApiError::bad_request("timeout", "must be a whole number of seconds");
        let body = serde_json::to_value(&e).unwrap();
        assert_eq!(body["field"], "timeout");
        assert_eq!(body["error"], "`timeout` must be a whole number of seconds");
        assert!(
            body.get("status").is_none(),
            "the status travels as the HTTP status"
        );
    }
}
