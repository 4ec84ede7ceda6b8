//! The MCP face: the tools an AI coding agent calls, served by the official
//! `rmcp` crate over Streamable HTTP (`/mcp`, in the host) and over stdio
//! (`host mcp`).
//!
//! Every tool is a thin call into [`Operations`], so the tools behave the
//! same in the host and in an attached `host mcp`. Seed 004's four tools
//! keep its names, descriptions and input schemas exactly (the schemas are
//! written out below, not derived, so no library upgrade can change them),
//! and read their arguments as those schemas say: extra properties are
//! allowed (ignored), and `process_type` takes any kind name beside the
//! six the enum lists.
//! A failed call is a tool result with `isError` and a sentence the agent
//! can act on, never a protocol error.
//!
//! For clients that declare the Tasks extension, `start_background_process`
//! answers with a task that follows the process (its status message shows
//! state, progress and the status mappers' message) and whose cancel stops
//! it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock, CreateTaskResult,
    GetTaskParams, GetTaskResult, Implementation, JsonObject, ServerCapabilities, ServerConfig,
    UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskExit, TaskManager, TaskOptions};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt as _};
use rmcp::{tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::coordination::Task;
use crate::supervisor::ProcessState;

use super::control::Control;
use super::error::ApiError;
use super::model::{CreateProcess, EventsQuery, OutputQuery, ProcessFilter, StopOptions, WaitFor};
use super::ops::Operations;

/// How long a task follows a process with no timeout of its own.
pub const TASK_TTL: Duration = Duration::from_secs(24 * 3600);

/// What every tool handler shares; behind an `Arc`, because the HTTP
/// service may build a handler per request.
struct Shared {
    ops: Arc<dyn Operations>,
    tasks: TaskManager,
    /// Working directory for processes started without one: the folder
    /// `host mcp` was started in, so an agent's commands run in its project.
    default_cwd: Option<PathBuf>,
}

/// The MCP tools of a host.
#[derive(Clone)]
pub struct HostTools {
    shared: Arc<Shared>,
    tool_router: Arc<ToolRouter<HostTools>>,
}

/// Builds [`HostTools`] handlers over one set of operations.
#[derive(Clone)]
pub struct McpFactory {
    shared: Arc<Shared>,
    router: Arc<ToolRouter<HostTools>>,
}

impl McpFactory {
    /// Tools over `ops`; processes started without a working directory run
    /// in `default_cwd` (or the host's own).
    pub fn new(ops: Arc<dyn Operations>, default_cwd: Option<PathBuf>) -> McpFactory {
        McpFactory {
            shared: Arc::new(Shared {
                ops,
                tasks: TaskManager::new(),
                default_cwd,
            }),
            router: Arc::new(HostTools::tool_router()),
        }
    }

    /// A handler (cheap: two reference counts).
    pub fn handler(&self) -> HostTools {
        HostTools {
            shared: self.shared.clone(),
            tool_router: self.router.clone(),
        }
    }

    /// The tools' names and input schemas, for documentation and tests.
    pub fn tools(&self) -> Vec<rmcp::model::Tool> {
        self.router.list_all()
    }
}

/// Serves MCP over stdin/stdout until the client closes it.
///
/// # Errors
///
/// When the transport fails to start.
pub async fn serve_stdio(factory: McpFactory) -> anyhow::Result<()> {
    let running = factory
        .handler()
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start MCP on stdio: {e}"))?;
    let reason = running.waiting().await?;
    tracing::debug!(?reason, "MCP over stdio ended");
    Ok(())
}

/// The Streamable HTTP service to mount at `/mcp` (behind the API's guard).
pub fn http_service(
    factory: McpFactory,
    cancel: tokio_util::sync::CancellationToken,
) -> rmcp::transport::StreamableHttpService<
    HostTools,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    let config = rmcp::transport::StreamableHttpServerConfig::default()
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_cancellation_token(cancel);
    rmcp::transport::StreamableHttpService::new(
        move || Ok(factory.handler()),
        Arc::new(Default::default()),
        config,
    )
}

/// A tool's answer: the value as JSON text and structured content, or the
/// error's sentence with `isError`.
fn answer<T: Serialize>(result: Result<T, ApiError>) -> CallToolResult {
    match result {
        Ok(value) => {
            let value = serde_json::to_value(value).unwrap_or(Value::Null);
            // Structured content must be an object.
            let value = match value {
                Value::Object(_) => value,
                other => json!({ "result": other }),
            };
            CallToolResult::structured(value)
        }
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e.error)]),
    }
}

/// An input schema written out as JSON.
fn schema(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("schemas below are objects"),
    }
}

/// A derived input schema without its `$schema` key.
fn derived<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    let mut obj = rmcp::handler::server::common::schema_for_input::<T>()
        .map(|s| (*s).clone())
        .unwrap_or_default();
    obj.remove("$schema");
    Arc::new(obj)
}

fn start_schema() -> Arc<JsonObject> {
    schema(json!({
        "type": "object",
        "properties": {
            "process_type": {
                "type": "string",
                "enum": ["jules_session", "test_suite", "build", "server", "analysis", "custom"],
                "description": "Type of process to start"
            },
            "name": {"type": "string", "description": "Human-readable name for the process"},
            "command": {"type": "string", "description": "Shell command to execute"},
            "timeout": {
                "type": "integer",
                "description": "Maximum runtime in seconds (0 = no timeout)",
                "default": 0
            },
            "metadata": {
                "type": "object",
                "description": "Additional context (session_id, test_file, etc.)"
            }
        },
        "required": ["process_type", "name", "command"]
    }))
}

fn status_schema() -> Arc<JsonObject> {
    schema(json!({
        "type": "object",
        "properties": {
            "process_id": {"type": "string", "description": "Process ID to query"}
        },
        "required": ["process_id"]
    }))
}

fn stop_schema() -> Arc<JsonObject> {
    schema(json!({
        "type": "object",
        "properties": {
            "process_id": {"type": "string", "description": "Process ID to stop"},
            "force": {
                "type": "boolean",
                "description": "Use SIGKILL instead of SIGTERM",
                "default": false
            }
        },
        "required": ["process_id"]
    }))
}

fn list_schema() -> Arc<JsonObject> {
    schema(json!({
        "type": "object",
        "properties": {
            "filter_type": {
                "type": "string",
                "enum": ["all", "running", "completed", "failed"],
                "description": "Filter by process state",
                "default": "all"
            }
        }
    }))
}

/// `start_background_process` arguments (seed 004).
#[derive(Debug, Deserialize)]
struct StartArgs {
    process_type: String,
    name: String,
    command: String,
    #[serde(default)]
    timeout: u64,
    #[serde(default)]
    metadata: Map<String, Value>,
}

/// A process id.
#[derive(Debug, Deserialize, JsonSchema)]
struct ProcessId {
    /// The process's id (see list_background_processes).
    process_id: String,
}

/// `stop_background_process` arguments (seed 004).
#[derive(Debug, Deserialize)]
struct StopArgs {
    process_id: String,
    #[serde(default)]
    force: bool,
}

/// `list_background_processes` arguments (seed 004).
#[derive(Debug, Deserialize)]
struct ListArgs {
    #[serde(default = "all")]
    filter_type: String,
}

fn all() -> String {
    "all".into()
}

/// `get_process_output` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OutputArgs {
    /// The process's id.
    process_id: String,
    /// The last N lines (default 100, unless `offset` is given).
    #[serde(default)]
    tail: Option<usize>,
    /// Lines from this offset on (the `next_offset` of an earlier call).
    #[serde(default)]
    offset: Option<u64>,
    /// Only lines matching this regular expression.
    #[serde(default)]
    regex: Option<String>,
    /// At most this many lines (default and maximum 10000).
    #[serde(default)]
    limit: Option<usize>,
}

/// A plugin's or agent's name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NameArgs {
    /// The plugin's name (agents are addressed by their plugin's name).
    name: String,
}

/// No arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[tool_router]
impl HostTools {
    #[tool(
        description = "Start a long-running background process (Jules, tests, builds)",
        input_schema = start_schema()
    )]
    async fn start_background_process(
        &self,
        Parameters(args): Parameters<StartArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let ops = &self.shared.ops;
        let request = CreateProcess {
            process_type: args.process_type,
            name: args.name,
            command: args.command,
            timeout: args.timeout,
            metadata: args.metadata,
            cwd: self
                .shared
                .default_cwd
                .as_ref()
                .map(|p| p.display().to_string()),
            env: Default::default(),
            restart: Default::default(),
            start: true,
            watch_workspace: false,
        };
        let timeout = args.timeout;
        let created = match ops.create(request).await {
            Ok(created) => created,
            Err(e) => return Ok(answer::<()>(Err(e)).into()),
        };
        let tasks_supported = ctx
            .client_capabilities()
            .is_some_and(|c| c.supports_tasks());
        if !tasks_supported {
            return Ok(answer(ops.process(&created.process_id).await).into());
        }
        let task = self.follow_as_task(created.process_id, timeout);
        Ok(CallToolResponse::Task(CreateTaskResult::new(task)))
    }

    #[tool(
        description = "Get current status of a background process",
        input_schema = status_schema()
    )]
    async fn get_process_status(&self, Parameters(args): Parameters<ProcessId>) -> CallToolResult {
        answer(self.shared.ops.process(&args.process_id).await)
    }

    #[tool(
        description = "Stop a running background process",
        input_schema = stop_schema()
    )]
    async fn stop_background_process(
        &self,
        Parameters(args): Parameters<StopArgs>,
    ) -> CallToolResult {
        let options = StopOptions { force: args.force };
        answer(self.shared.ops.stop(&args.process_id, options).await)
    }

    #[tool(
        description = "List all active background processes",
        input_schema = list_schema()
    )]
    async fn list_background_processes(
        &self,
        Parameters(args): Parameters<ListArgs>,
    ) -> CallToolResult {
        let filter = args.filter_type.as_str();
        if !["all", "running", "completed", "failed"].contains(&filter) {
            return answer::<()>(Err(ApiError::bad_request(
                "filter_type",
                format!("is `{filter}`; use one of all, running, completed, failed"),
            )));
        }
        let listed = self
            .shared
            .ops
            .processes(ProcessFilter::default())
            .await
            .map(|all| {
                let processes: Vec<_> = all
                    .into_iter()
                    .filter(|p| Control::seed_filter_matches(filter, p.state))
                    .collect();
                json!({ "count": processes.len(), "filter_type": filter, "processes": processes })
            });
        answer(listed)
    }

    #[tool(
        description = "Read a background process's output: the last lines (tail), or the lines after an offset (resume with next_offset), optionally only those matching a regex",
        input_schema = derived::<OutputArgs>()
    )]
    async fn get_process_output(&self, Parameters(args): Parameters<OutputArgs>) -> CallToolResult {
        let query = OutputQuery {
            tail: args.tail,
            after: args.offset,
            limit: args.limit,
            regex: args.regex,
        };
        answer(self.shared.ops.output(&args.process_id, query).await)
    }

    #[tool(
        description = "Restart a process: it is stopped gracefully and started again after its backoff; restarts count towards its restart limit",
        input_schema = derived::<ProcessId>()
    )]
    async fn restart_process(&self, Parameters(args): Parameters<ProcessId>) -> CallToolResult {
        answer(self.shared.ops.restart(&args.process_id).await)
    }

    #[tool(
        description = "Pause a running process and its whole tree (SIGSTOP)",
        input_schema = derived::<ProcessId>()
    )]
    async fn pause_process(&self, Parameters(args): Parameters<ProcessId>) -> CallToolResult {
        answer(self.shared.ops.pause(&args.process_id).await)
    }

    #[tool(
        description = "Resume a paused process (SIGCONT)",
        input_schema = derived::<ProcessId>()
    )]
    async fn resume_process(&self, Parameters(args): Parameters<ProcessId>) -> CallToolResult {
        answer(self.shared.ops.resume(&args.process_id).await)
    }

    #[tool(
        description = "Query the host's event log (CloudEvents). Filter by type pattern (process.*, plugin.>), subject, source, since/until (RFC 3339 or an age like 10m); pass `after` = the returned next_after to read on from where you stopped",
        input_schema = derived::<EventsQuery>()
    )]
    async fn query_events(&self, Parameters(query): Parameters<EventsQuery>) -> CallToolResult {
        answer(self.shared.ops.events(query).await)
    }

    #[tool(
        description = "Count the host's events in a window of time (since/until: RFC 3339 or an age like 1h; default: everything kept, up to now) by type, by source and per minute, with the mean events per minute: seed 001's aggregator",
        input_schema = derived::<super::stats::StatsQuery>()
    )]
    async fn event_stats(
        &self,
        Parameters(query): Parameters<super::stats::StatsQuery>,
    ) -> CallToolResult {
        answer(self.shared.ops.event_stats(query).await)
    }

    #[tool(
        description = "Wait until a process reaches one of the given states, prints a line matching output_regex, or an event of event_type appears — or timeout_secs (default 30, at most 600) pass. Returns what matched, so you need not poll",
        input_schema = derived::<WaitFor>()
    )]
    async fn wait_for(&self, Parameters(request): Parameters<WaitFor>) -> CallToolResult {
        answer(self.shared.ops.wait_for(request).await)
    }

    #[tool(
        description = "Register a task (id, repository, title, description, keywords, agent); dependency rules are asked about it against the known tasks and what they found is returned",
        input_schema = derived::<Task>()
    )]
    async fn register_task(&self, Parameters(task): Parameters<Task>) -> CallToolResult {
        answer(self.shared.ops.register_task(task).await)
    }

    #[tool(description = "List the registered tasks", input_schema = derived::<NoArgs>())]
    async fn list_tasks(&self) -> CallToolResult {
        answer(self.shared.ops.tasks().await.map(|t| json!({ "tasks": t })))
    }

    #[tool(
        description = "List the coordination sessions (id, kind, status, participants, tasks, message count, agreements, outcome), newest first; `status` filters (active, resolved, escalated, closed)",
        input_schema = derived::<super::sessions::SessionsQuery>()
    )]
    async fn list_sessions(
        &self,
        Parameters(query): Parameters<super::sessions::SessionsQuery>,
    ) -> CallToolResult {
        answer(
            self.shared
                .ops
                .sessions(query)
                .await
                .map(|s| json!({ "sessions": s })),
        )
    }

    #[tool(
        description = "Read one coordination session: its tasks, the dependency that opened it, the coordination plan, every message with its verdict, and its outcome",
        input_schema = derived::<super::sessions::SessionRef>()
    )]
    async fn get_session(
        &self,
        Parameters(r): Parameters<super::sessions::SessionRef>,
    ) -> CallToolResult {
        answer(self.shared.ops.session(&r.id).await)
    }

    #[tool(
        description = "Post a message to a coordination session as one of its participants (kind: proposal, question, agreement or concern). An `agreement` counts toward consensus at once (participants - 1 agreements resolve the session); other kinds count when the judge plugin reads them as agreement. Past the message limit the session escalates",
        input_schema = derived::<super::sessions::SessionPost>()
    )]
    async fn post_session_message(
        &self,
        Parameters(p): Parameters<super::sessions::SessionPost>,
    ) -> CallToolResult {
        let id = p.id.clone();
        answer(self.shared.ops.post_session_message(&id, p.message()).await)
    }

    #[tool(
        description = "Escalate a coordination session to a person, with the reason (and who asks); the session closes as escalated",
        input_schema = derived::<super::sessions::SessionEscalation>()
    )]
    async fn escalate_session(
        &self,
        Parameters(e): Parameters<super::sessions::SessionEscalation>,
    ) -> CallToolResult {
        let id = e.id.clone();
        answer(self.shared.ops.escalate_session(&id, e.request()).await)
    }

    #[tool(
        description = "List the dependencies the rules found between tasks",
        input_schema = derived::<NoArgs>()
    )]
    async fn list_dependencies(&self) -> CallToolResult {
        answer(
            self.shared
                .ops
                .dependencies()
                .await
                .map(|d| json!({ "dependencies": d })),
        )
    }

    #[tool(
        description = "List the loaded plugins with their kinds, health (calls, failures, errors, quarantine) and lag behind the event log",
        input_schema = derived::<NoArgs>()
    )]
    async fn list_plugins(&self) -> CallToolResult {
        answer(
            self.shared
                .ops
                .plugins()
                .await
                .map(|p| json!({ "plugins": p })),
        )
    }

    #[tool(
        description = "Reload a plugin from disk even if unchanged (also lifts a quarantine)",
        input_schema = derived::<NameArgs>()
    )]
    async fn reload_plugin(&self, Parameters(args): Parameters<NameArgs>) -> CallToolResult {
        answer(self.shared.ops.reload_plugin(&args.name).await)
    }

    #[tool(
        description = "List the background agents with their status, current activity, cycles and last activity",
        input_schema = derived::<NoArgs>()
    )]
    async fn list_agents(&self) -> CallToolResult {
        answer(
            self.shared
                .ops
                .agents()
                .await
                .map(|a| json!({ "agents": a })),
        )
    }

    #[tool(
        description = "Pause a background agent (its ticks are skipped until resumed)",
        input_schema = derived::<NameArgs>()
    )]
    async fn pause_agent(&self, Parameters(args): Parameters<NameArgs>) -> CallToolResult {
        answer(self.shared.ops.pause_agent(&args.name).await)
    }

    #[tool(
        description = "Resume a paused background agent",
        input_schema = derived::<NameArgs>()
    )]
    async fn resume_agent(&self, Parameters(args): Parameters<NameArgs>) -> CallToolResult {
        answer(self.shared.ops.resume_agent(&args.name).await)
    }
}

impl HostTools {
    /// A task following process `id` until it ends; its cancel stops it.
    ///
    /// A task has a time to live after which the SDK marks it failed (and
    /// later forgets it), which keeps the task table bounded: the process's
    /// own timeout plus five minutes, or [`TASK_TTL`] without one. A process
    /// that outlives its task goes on; `get_process_status` still follows it.
    fn follow_as_task(&self, id: String, timeout_secs: u64) -> rmcp::model::Task {
        let ops = self.shared.ops.clone();
        let ttl = match timeout_secs {
            0 => TASK_TTL,
            secs => Duration::from_secs(secs.saturating_add(300)),
        };
        self.shared.tasks.spawn(
            TaskOptions::new()
                .with_poll_interval_ms(1000)
                .with_ttl_ms(ttl.as_millis() as u64)
                .with_status_message(format!("{id}: starting")),
            move |task| {
                Box::pin(async move {
                    let terminal: Vec<ProcessState> = ProcessState::ALL
                        .into_iter()
                        .filter(|s| s.is_terminal())
                        .collect();
                    loop {
                        let wait = WaitFor {
                            process_id: Some(id.clone()),
                            states: terminal.clone(),
                            timeout_secs: Some(1),
                            ..WaitFor::default()
                        };
                        tokio::select! {
                            _ = task.cancelled() => {
                                let stopped = ops.stop(&id, StopOptions::default()).await;
                                task.set_status_message(match stopped {
                                    Ok(p) => format!("{id}: {}", p.state),
                                    Err(e) => format!("{id}: cancel: {}", e.error),
                                });
                                return Err(TaskExit::Cancelled);
                            }
                            outcome = ops.wait_for(wait) => {
                                let outcome = outcome.map_err(|e| {
                                    TaskExit::Error(McpError::internal_error(e.error, None))
                                })?;
                                let Some(process) = outcome.process else { continue };
                                task.set_status_message(describe(&process));
                                if process.state.is_terminal() {
                                    let failed = !matches!(process.state, ProcessState::Completed);
                                    let value = serde_json::to_value(&process).unwrap_or_default();
                                    let mut result = CallToolResult::structured(value);
                                    result.is_error = Some(failed);
                                    return Ok(result);
                                }
                            }
                        }
                    }
                })
            },
        )
    }
}

/// "build_7f3a9c: running 40% — compiling step [4/10]".
fn describe(p: &super::model::ProcessStatus) -> String {
    let mut text = format!("{}: {}", p.process_id, p.state);
    if let Some(progress) = p.progress {
        text.push_str(&format!(" {:.0}%", progress * 100.0));
    }
    if let Some(message) = &p.message {
        text.push_str(&format!(" — {message}"));
    }
    text
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for HostTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new("host", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "A process manager and event log. Start long-running commands with \
             start_background_process, follow them with get_process_status, \
             get_process_output and wait_for (instead of polling), stop them with \
             stop_background_process. query_events reads the host's event log; pass the \
             returned next_after to continue where you stopped.",
        )
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        Ok(GetTaskResult::new(
            self.shared.tasks.get_task(&request.task_id)?,
        ))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.shared
            .tasks
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.shared.tasks.cancel_task(&request.task_id)
    }
}
