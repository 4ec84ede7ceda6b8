//! `wait_for`: block until a process reaches a state, prints a matching
//! line, or an event appears — so an agent need not poll.
//!
//! The order matters: subscribe to the log first, then look at the present
//! (the process's state, the lines it already printed). Anything that
//! happens after the look arrives through the subscription, so nothing can
//! slip between the two; at worst a match is seen twice, and the first one
//! ends the wait.

use std::time::{Duration, Instant};

use regex::Regex;

use crate::bus::{Event, Pattern, StartAt};
use crate::supervisor::ProcessState;

use super::control::{Control, compile_regex};
use super::error::ApiError;
use super::model::{OutputLineView, ProcessStatus, WaitFor, WaitOutcome};

/// Wait used when none is given.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Longest wait allowed.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// What one wait looks for, checked and compiled.
struct Conditions {
    process: Option<String>,
    states: Vec<ProcessState>,
    regex: Option<Regex>,
    event: Option<Pattern>,
}

impl Control {
    /// Waits for the first of the conditions in `request`, or its timeout.
    ///
    /// # Errors
    ///
    /// 400 when nothing is asked for, a condition about a process names
    /// none, or a regex or pattern is malformed; 404 for an unknown
    /// process. A timeout is not an error: `matched` says `timeout`.
    pub async fn wait_for(&self, request: WaitFor) -> Result<WaitOutcome, ApiError> {
        let began = Instant::now();
        let limit = request
            .timeout_secs
            .map_or(DEFAULT_WAIT, Duration::from_secs)
            .min(MAX_WAIT);
        let conditions = self.conditions(&request)?;
        let mut filter = Vec::new();
        if conditions.process.is_some() {
            // Transitions and output of the process.
            filter.push(Pattern::parse("process.>").map_err(ApiError::from)?);
        }
        filter.extend(conditions.event.clone());
        let start = StartAt::After(request.after.unwrap_or_else(|| self.bus.head()));
        let mut consumer = self.bus.consumer("api/wait", filter, start);

        // Now the present: the state it is in, the lines it printed.
        let mut next_offset = 0;
        if let Some(id) = &conditions.process {
            let info = self
                .supervisor
                .get(id)
                .ok_or_else(|| ApiError::not_found(format!("no process `{id}`")))?;
            if conditions.states.contains(&info.state) {
                return Ok(self.outcome("state", began, Some(id), None, None));
            }
            if let Some(regex) = &conditions.regex {
                // Lines of the current run only: an old run's line is no
                // sign of this one.
                let page = self
                    .supervisor
                    .output_after(id, info.run_output_offset, usize::MAX)?;
                next_offset = page.next_offset;
                if let Some(line) = page.lines.into_iter().find(|l| regex.is_match(&l.line)) {
                    return Ok(self.outcome("output", began, Some(id), Some(line.into()), None));
                }
            }
        }

        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let event = match tokio::time::timeout_at(deadline, consumer.next()).await {
                Err(_) => {
                    let id = conditions.process.as_deref();
                    return Ok(self.outcome("timeout", began, id, None, None));
                }
                Ok(event) => event?,
            };
            let about_it = conditions.process.is_some() && event.subject == conditions.process;
            if about_it && !conditions.states.is_empty() {
                // The transition's target, not the state now: a state the
                // process only passed through still ends the wait.
                let reached = event.data["to"]
                    .as_str()
                    .and_then(|to| serde_json::from_value::<ProcessState>(to.into()).ok());
                if reached.is_some_and(|s| conditions.states.contains(&s)) {
                    let id = conditions.process.as_deref();
                    return Ok(self.outcome("state", began, id, None, Some(event)));
                }
            }
            if about_it
                && event.ty == "process.output"
                && let (Some(regex), Some(id)) = (&conditions.regex, &conditions.process)
            {
                let page = self.supervisor.output_after(id, next_offset, usize::MAX)?;
                next_offset = page.next_offset;
                if let Some(line) = page.lines.into_iter().find(|l| regex.is_match(&l.line)) {
                    let id = conditions.process.as_deref();
                    return Ok(self.outcome("output", began, id, Some(line.into()), None));
                }
            }
            let wanted = conditions
                .event
                .as_ref()
                .is_some_and(|p| p.matches(&event.ty));
            if wanted && (conditions.process.is_none() || about_it) {
                let id = conditions.process.as_deref();
                return Ok(self.outcome("event", began, id, None, Some(event)));
            }
        }
    }

    fn conditions(&self, request: &WaitFor) -> Result<Conditions, ApiError> {
        let regex = compile_regex("output_regex", request.output_regex.as_deref())?;
        let event = request
            .event_type
            .as_deref()
            .map(|t| {
                Pattern::parse(t).map_err(|e| ApiError::bad_request("event_type", e.to_string()))
            })
            .transpose()?;
        if request.states.is_empty() && regex.is_none() && event.is_none() {
            return Err(ApiError::invalid(
                "nothing to wait for: give `states`, `output_regex` or `event_type`",
            ));
        }
        if (!request.states.is_empty() || regex.is_some()) && request.process_id.is_none() {
            return Err(ApiError::bad_request(
                "process_id",
                "is needed to wait for a state or an output line",
            ));
        }
        if let Some(id) = &request.process_id {
            self.known(id)?;
        }
        Ok(Conditions {
            process: request.process_id.clone(),
            states: request.states.clone(),
            regex,
            event,
        })
    }

    fn outcome(
        &self,
        matched: &str,
        began: Instant,
        process: Option<&str>,
        line: Option<OutputLineView>,
        event: Option<Event>,
    ) -> WaitOutcome {
        WaitOutcome {
            matched: matched.into(),
            waited_ms: began.elapsed().as_millis() as u64,
            process: process
                .and_then(|id| self.supervisor.get(id))
                .map(|p| ProcessStatus::from_info(p, None)),
            line,
            event,
        }
    }
}
