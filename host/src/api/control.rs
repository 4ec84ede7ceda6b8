//! [`Control`]: every operation a running host offers, written once.
//!
//! HTTP handlers, MCP tools and (through HTTP) the CLI verbs all call these
//! methods. They are a client of the rooms' public handles and own no
//! behaviour those rooms already own: they check and translate requests,
//! call the supervisor, bus, plugin host, scheduler or coordinator, and
//! shape the answers. This file holds the process operations; events,
//! plugins and waiting are in their own files.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::json;

use crate::agents::Scheduler;
use crate::bus::{Bus, NewEvent};
use crate::coordination::{Coordinator, Sessions};
use crate::plugins::PluginHost;
use crate::supervisor::{ProcessSpec, ProcessState, Supervisor};

use super::error::ApiError;
use super::model::{
    CreateProcess, Created, OutputLineView, OutputPage, OutputQuery, ProcessFilter, ProcessStatus,
    STATUS_OUTPUT_LINES, StatusReport, StopOptions,
};

/// Source of the events the API publishes for its callers.
pub const SOURCE: &str = "api";

/// Most output lines one read returns.
pub const MAX_OUTPUT_LINES: usize = 10_000;

/// The handles of a running host that the operations work on.
///
/// Cheap to clone (every field is a handle).
#[derive(Clone)]
pub struct Control {
    /// The event log.
    pub bus: Bus,
    /// Process supervision.
    pub supervisor: Supervisor,
    /// Loaded plugins.
    pub plugins: PluginHost,
    /// Background agents.
    pub agents: Scheduler,
    /// Tasks and dependencies.
    pub coordinator: Coordinator,
    /// Coordination sessions.
    pub sessions: Sessions,
    /// When this host started (for uptime in health answers).
    pub started_at: DateTime<Utc>,
    /// The state folder (journal, logs), for health checks.
    pub state_dir: PathBuf,
    /// True once the first load of the plugins folder is over.
    pub plugins_loaded: tokio::sync::watch::Receiver<bool>,
}

impl Control {
    /// Every process that passes `filter`, by id.
    pub fn processes(&self, filter: &ProcessFilter) -> Vec<ProcessStatus> {
        self.supervisor
            .list()
            .into_iter()
            .filter(|p| filter.state.is_empty() || filter.state.contains(&p.state))
            .filter(|p| filter.kind.as_ref().is_none_or(|k| *k == p.kind))
            .map(|p| ProcessStatus::from_info(p, None))
            .collect()
    }

    /// One process, with its last output lines.
    ///
    /// # Errors
    ///
    /// 404 naming the known ids.
    pub fn process(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        let info = self.supervisor.get(id).ok_or_else(|| self.unknown(id))?;
        let output = self
            .supervisor
            .output(id, STATUS_OUTPUT_LINES)
            .map(|lines| lines.into_iter().map(|l| l.line).collect())
            .ok();
        Ok(ProcessStatus::from_info(info, output))
    }

    /// Creates a process from a runtime request and (unless `start` is
    /// false) starts it; answers with its id.
    ///
    /// # Errors
    ///
    /// 400 naming the field (kind, command, cwd, timeout, metadata ...),
    /// 503 while shutting down; a spawn failure leaves the process `failed`
    /// and is reported in its status, not as an error of the creation.
    pub async fn create(&self, request: CreateProcess) -> Result<Created, ApiError> {
        let mut spec = ProcessSpec::new("pending-id", request.command);
        spec.kind = request.process_type;
        if request.name.trim().is_empty() {
            return Err(ApiError::bad_request("name", "must not be empty"));
        }
        spec.label = Some(request.name);
        spec.metadata = request.metadata;
        spec.env = request.env;
        spec.restart = request.restart;
        spec.watch_workspace = request.watch_workspace;
        if request.timeout > 0 {
            spec.timeout = Some(Duration::from_secs(request.timeout));
        }
        if let Some(cwd) = request.cwd {
            let path = PathBuf::from(&cwd);
            if !path.is_dir() {
                return Err(ApiError::bad_request(
                    "cwd",
                    format!("`{cwd}` is not a folder on the host"),
                ));
            }
            spec.cwd = Some(path);
        }
        let id = self.supervisor.create(spec).map_err(|e| match e {
            // The request calls the kind `process_type` and the label `name`.
            crate::supervisor::SupervisorError::InvalidSpec { field, reason, .. } => {
                let field = match field.as_str() {
                    "kind" => "process_type".to_string(),
                    "label" => "name".to_string(),
                    _ => field,
                };
                ApiError::bad_request(field, reason)
            }
            other => other.into(),
        })?;
        if request.start {
            // A spawn failure is part of the process's story (state
            // `failed`, a `process.failed` event), not of the request's.
            if let Err(e) = self.supervisor.start_promptly(&id).await {
                tracing::info!(process = %id, "created, but did not start: {e}");
            }
        }
        Ok(Created { process_id: id })
    }

    /// Starts a pending or finished process afresh. Answers once it is
    /// spawned, or once it waits for its dependencies (state `starting`,
    /// `waiting_for` naming them): never for as long as they take.
    ///
    /// # Errors
    ///
    /// 404, 409 if it is active, 503 while shutting down.
    pub async fn start(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        self.known(id)?;
        self.supervisor.start_promptly(id).await?;
        self.process(id)
    }

    /// Stops a process and its whole tree; `force` sends SIGKILL at once.
    ///
    /// # Errors
    ///
    /// 404, 409 if it is not active.
    pub async fn stop(&self, id: &str, options: StopOptions) -> Result<ProcessStatus, ApiError> {
        self.known(id)?;
        self.supervisor.stop(id, options.force).await?;
        self.process(id)
    }

    /// Restarts through the restart accounting (backoff, restart limit).
    ///
    /// # Errors
    ///
    /// 404; 409 when the restart limit is reached.
    pub async fn restart(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        self.known(id)?;
        self.supervisor.restart(id).await?;
        self.process(id)
    }

    /// Pauses (SIGSTOP) a running process's tree.
    ///
    /// # Errors
    ///
    /// 404, 409 unless it is running.
    pub fn pause(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        self.known(id)?;
        self.supervisor.pause(id)?;
        self.process(id)
    }

    /// Resumes (SIGCONT) a paused process's tree.
    ///
    /// # Errors
    ///
    /// 404, 409 unless it is paused.
    pub fn resume(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        self.known(id)?;
        self.supervisor.resume(id)?;
        self.process(id)
    }

    /// Removes a process that is not active.
    ///
    /// # Errors
    ///
    /// 404, 409 while it is active.
    pub fn remove(&self, id: &str) -> Result<(), ApiError> {
        self.known(id)?;
        self.supervisor.remove(id)?;
        Ok(())
    }

    /// Output lines: the last `tail`, or those after an offset, optionally
    /// only those matching a regular expression.
    ///
    /// # Errors
    ///
    /// 404; 400 for a regex that does not compile or a limit of 0.
    pub fn output(&self, id: &str, query: &OutputQuery) -> Result<OutputPage, ApiError> {
        self.known(id)?;
        let regex = compile_regex("regex", query.regex.as_deref())?;
        let limit = query
            .limit
            .unwrap_or(MAX_OUTPUT_LINES)
            .min(MAX_OUTPUT_LINES);
        if limit == 0 {
            return Err(ApiError::bad_request("limit", "must be at least 1"));
        }
        let from = match (query.after, query.tail) {
            (Some(after), _) => after,
            (None, tail) => {
                // The last `tail` lines: start that many before the end.
                let end = self.supervisor.output_after(id, u64::MAX, 0)?.next_offset;
                end.saturating_sub(tail.unwrap_or(100) as u64)
            }
        };
        let page = self.supervisor.output_after(id, from, MAX_OUTPUT_LINES)?;
        let mut lines = Vec::new();
        let mut next_offset = page.next_offset;
        for line in page.lines {
            if lines.len() == limit {
                next_offset = line.offset;
                break;
            }
            if regex.as_ref().is_none_or(|r| r.is_match(&line.line)) {
                lines.push(OutputLineView::from(line));
            }
        }
        Ok(OutputPage {
            lines,
            first_offset: page.first_offset,
            next_offset,
        })
    }

    /// The process's log files, oldest generation first.
    ///
    /// # Errors
    ///
    /// 404.
    pub fn log_files(&self, id: &str) -> Result<Vec<PathBuf>, ApiError> {
        self.known(id)?;
        Ok(self.supervisor.log_files(id)?)
    }

    /// Records a status the process's own system reports: its progress and
    /// message at once (`process.status`), and the status word as
    /// `process.reported` for status mappers to map to a state.
    ///
    /// # Errors
    ///
    /// 404; 400 for a progress outside 0..1 or an empty status.
    pub async fn report_status(&self, id: &str, report: StatusReport) -> Result<(), ApiError> {
        self.known(id)?;
        if report.status.trim().is_empty() {
            return Err(ApiError::bad_request("status", "must not be empty"));
        }
        if report
            .progress
            .is_some_and(|p| !(p.is_finite() && (0.0..=1.0).contains(&p)))
        {
            return Err(ApiError::bad_request("progress", "must be between 0 and 1"));
        }
        // Progress and message are the reporter's own facts: recorded at
        // once. The status word is for the status mappers to map to a state.
        if report.progress.is_some() || report.message.is_some() {
            let update = crate::supervisor::StatusUpdate {
                state: None,
                progress: report.progress,
                message: report.message.clone(),
            };
            self.supervisor.set_status(id, update, None)?;
        }
        let event = NewEvent::new(
            SOURCE,
            "process.reported",
            json!({ "status": report.status, "progress": report.progress, "message": report.message }),
        )
        .with_subject(id);
        self.bus.publish(event)?;
        Ok(())
    }

    /// 404 unless `id` names a process.
    pub(super) fn known(&self, id: &str) -> Result<(), ApiError> {
        match self.supervisor.get(id) {
            Some(_) => Ok(()),
            None => Err(self.unknown(id)),
        }
    }

    /// "no process `web_12`; known: ..." with the newest ids first.
    fn unknown(&self, id: &str) -> ApiError {
        let mut all = self.supervisor.list();
        all.sort_by_key(|p| std::cmp::Reverse(p.created_at));
        ApiError::unknown("process", id, all.into_iter().map(|p| p.name))
    }

    /// Whether `state` counts as seed 004's filter `filter` (all, running,
    /// completed, failed).
    pub fn seed_filter_matches(filter: &str, state: ProcessState) -> bool {
        match filter {
            "running" => state.is_active(),
            "completed" => state == ProcessState::Completed,
            "failed" => matches!(state, ProcessState::Failed | ProcessState::Timeout),
            _ => true,
        }
    }
}

/// Compiles an optional regular expression, naming the field on error.
pub(super) fn compile_regex(field: &str, text: Option<&str>) -> Result<Option<Regex>, ApiError> {
    text.map(|t| {
        regex::RegexBuilder::new(t)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| ApiError::bad_request(field, format!("is not a valid regex: {e}")))
    })
    .transpose()
}
