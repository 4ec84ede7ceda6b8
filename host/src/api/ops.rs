//! [`Operations`]: the list of what a host can be asked, as one trait.
//!
//! Two things answer it: [`Control`] inside the host (the real work), and
//! [`ApiClient`](super::ApiClient) outside it (each call one HTTP request
//! to a running host). The MCP server is written against the trait, so the
//! same tools serve `/mcp` in the host, and `host mcp` over stdio whether
//! it attached to a running host or runs one in-process.

use async_trait::async_trait;

use crate::bus::{BusStats, Event};
use crate::coordination::{Dependency, Task};

use super::control::Control;
use super::error::ApiError;
use super::model::{
    AgentStatusView, CreateProcess, Created, EventsPage, EventsQuery, OutputPage, OutputQuery,
    PluginStatus, ProcessFilter, ProcessStatus, PublishEvent, Registered, StatusReport,
    StopOptions, WaitFor, WaitOutcome,
};

/// Everything a host can be asked, answered in-process or over HTTP.
#[async_trait]
pub trait Operations: Send + Sync + 'static {
    /// Processes passing `filter`.
    async fn processes(&self, filter: ProcessFilter) -> Result<Vec<ProcessStatus>, ApiError>;
    /// One process with its last output lines.
    async fn process(&self, id: &str) -> Result<ProcessStatus, ApiError>;
    /// Creates (and by default starts) a process.
    async fn create(&self, request: CreateProcess) -> Result<Created, ApiError>;
    /// Starts a process afresh.
    async fn start(&self, id: &str) -> Result<ProcessStatus, ApiError>;
    /// Stops a process's tree.
    async fn stop(&self, id: &str, options: StopOptions) -> Result<ProcessStatus, ApiError>;
    /// Restarts through the restart accounting.
    async fn restart(&self, id: &str) -> Result<ProcessStatus, ApiError>;
    /// Pauses a running process.
    async fn pause(&self, id: &str) -> Result<ProcessStatus, ApiError>;
    /// Resumes a paused process.
    async fn resume(&self, id: &str) -> Result<ProcessStatus, ApiError>;
    /// Removes a process that is not active.
    async fn remove(&self, id: &str) -> Result<(), ApiError>;
    /// Output lines of a process.
    async fn output(&self, id: &str, query: OutputQuery) -> Result<OutputPage, ApiError>;
    /// Publishes a status the process's own system reports.
    async fn report_status(&self, id: &str, report: StatusReport) -> Result<(), ApiError>;
    /// Events from the log, and the cursor to continue from.
    async fn events(&self, query: EventsQuery) -> Result<EventsPage, ApiError>;
    /// Publishes an event.
    async fn publish(&self, request: PublishEvent) -> Result<Event, ApiError>;
    /// Counts over the log.
    async fn stats(&self) -> Result<BusStats, ApiError>;
    /// Counts of a window of the log by type, source and minute.
    async fn event_stats(
        &self,
        query: super::stats::StatsQuery,
    ) -> Result<super::stats::EventStats, ApiError>;
    /// Loaded plugins and their health.
    async fn plugins(&self) -> Result<Vec<PluginStatus>, ApiError>;
    /// Reloads one plugin from disk.
    async fn reload_plugin(&self, name: &str) -> Result<PluginStatus, ApiError>;
    /// Approves the new grants of a plugin version refused on reload.
    async fn approve_plugin(&self, name: &str) -> Result<PluginStatus, ApiError>;
    /// Background agents.
    async fn agents(&self) -> Result<Vec<AgentStatusView>, ApiError>;
    /// Pauses an agent.
    async fn pause_agent(&self, name: &str) -> Result<AgentStatusView, ApiError>;
    /// Resumes an agent.
    async fn resume_agent(&self, name: &str) -> Result<AgentStatusView, ApiError>;
    /// Registered tasks.
    async fn tasks(&self) -> Result<Vec<Task>, ApiError>;
    /// Registers a task; the rules are asked about it.
    async fn register_task(&self, task: Task) -> Result<Registered, ApiError>;
    /// Dependencies found so far.
    async fn dependencies(&self) -> Result<Vec<Dependency>, ApiError>;
    /// Coordination sessions still kept, newest first.
    async fn sessions(
        &self,
        query: super::sessions::SessionsQuery,
    ) -> Result<Vec<crate::coordination::SessionSummary>, ApiError>;
    /// One coordination session with its messages.
    async fn session(&self, id: &str) -> Result<crate::coordination::Session, ApiError>;
    /// Posts a message to a session.
    async fn post_session_message(
        &self,
        id: &str,
        request: super::sessions::PostMessage,
    ) -> Result<crate::coordination::Message, ApiError>;
    /// Escalates a session on request.
    async fn escalate_session(
        &self,
        id: &str,
        request: super::sessions::EscalateSession,
    ) -> Result<crate::coordination::Session, ApiError>;
    /// Waits for a state, an output line or an event.
    async fn wait_for(&self, request: WaitFor) -> Result<WaitOutcome, ApiError>;
}

#[async_trait]
impl Operations for Control {
    async fn processes(&self, filter: ProcessFilter) -> Result<Vec<ProcessStatus>, ApiError> {
        Ok(Control::processes(self, &filter))
    }
    async fn process(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        Control::process(self, id)
    }
    async fn create(&self, request: CreateProcess) -> Result<Created, ApiError> {
        Control::create(self, request).await
    }
    async fn start(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        Control::start(self, id).await
    }
    async fn stop(&self, id: &str, options: StopOptions) -> Result<ProcessStatus, ApiError> {
        Control::stop(self, id, options).await
    }
    async fn restart(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        Control::restart(self, id).await
    }
    async fn pause(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        Control::pause(self, id)
    }
    async fn resume(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        Control::resume(self, id)
    }
    async fn remove(&self, id: &str) -> Result<(), ApiError> {
        Control::remove(self, id)
    }
    async fn output(&self, id: &str, query: OutputQuery) -> Result<OutputPage, ApiError> {
        Control::output(self, id, &query)
    }
    async fn report_status(&self, id: &str, report: StatusReport) -> Result<(), ApiError> {
        Control::report_status(self, id, report).await
    }
    async fn events(&self, query: EventsQuery) -> Result<EventsPage, ApiError> {
        Control::events(self, &query)
    }
    async fn publish(&self, request: PublishEvent) -> Result<Event, ApiError> {
        Control::publish(self, request).await
    }
    async fn stats(&self) -> Result<BusStats, ApiError> {
        Ok(Control::stats(self))
    }
    async fn event_stats(
        &self,
        query: super::stats::StatsQuery,
    ) -> Result<super::stats::EventStats, ApiError> {
        Control::event_stats(self, &query)
    }
    async fn plugins(&self) -> Result<Vec<PluginStatus>, ApiError> {
        Ok(Control::plugins(self))
    }
    async fn reload_plugin(&self, name: &str) -> Result<PluginStatus, ApiError> {
        Control::reload_plugin(self, name).await
    }
    async fn approve_plugin(&self, name: &str) -> Result<PluginStatus, ApiError> {
        Control::approve_plugin(self, name).await
    }
    async fn agents(&self) -> Result<Vec<AgentStatusView>, ApiError> {
        Ok(Control::agents(self))
    }
    async fn pause_agent(&self, name: &str) -> Result<AgentStatusView, ApiError> {
        Control::pause_agent(self, name)
    }
    async fn resume_agent(&self, name: &str) -> Result<AgentStatusView, ApiError> {
        Control::resume_agent(self, name)
    }
    async fn tasks(&self) -> Result<Vec<Task>, ApiError> {
        Ok(Control::tasks(self))
    }
    async fn register_task(&self, task: Task) -> Result<Registered, ApiError> {
        Control::register_task(self, task).await
    }
    async fn dependencies(&self) -> Result<Vec<Dependency>, ApiError> {
        Ok(Control::dependencies(self))
    }
    async fn sessions(
        &self,
        query: super::sessions::SessionsQuery,
    ) -> Result<Vec<crate::coordination::SessionSummary>, ApiError> {
        Ok(Control::sessions(self, &query))
    }
    async fn session(&self, id: &str) -> Result<crate::coordination::Session, ApiError> {
        Control::session(self, id)
    }
    async fn post_session_message(
        &self,
        id: &str,
        request: super::sessions::PostMessage,
    ) -> Result<crate::coordination::Message, ApiError> {
        Control::post_session_message(self, id, request)
    }
    async fn escalate_session(
        &self,
        id: &str,
        request: super::sessions::EscalateSession,
    ) -> Result<crate::coordination::Session, ApiError> {
        Control::escalate_session(self, id, request)
    }
    async fn wait_for(&self, request: WaitFor) -> Result<WaitOutcome, ApiError> {
        Control::wait_for(self, request).await
    }
}
