//! Scenario: an AI agent drives the host through MCP with rmcp's own
//! client — over stdio (`host mcp`, attached to a running host, and
//! running one in-process with `--config`) and over Streamable HTTP at
//! `/mcp` — calling every tool and seed 004's flows.

use std::collections::HashMap;
use std::time::Duration;

use host_tests::{EMITS_TEST, RunningHost, fixture, host_bin, install_plugin_folder};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ClientCapabilities,
    ClientConfig, GetTaskParams, Implementation, ProtocolVersion, TaskPayload,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt as _, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientLifecycleMode, ClientServiceExt as _, RoleClient, ServiceExt as _};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ClientConfig>;

/// Every tool the host must offer.
const TOOLS: [&str; 23] = [
    "start_background_process",
    "get_process_status",
    "stop_background_process",
    "list_background_processes",
    "get_process_output",
    "restart_process",
    "pause_process",
    "resume_process",
    "query_events",
    "event_stats",
    "wait_for",
    "register_task",
    "list_tasks",
    "list_dependencies",
    "list_sessions",
    "get_session",
    "post_session_message",
    "escalate_session",
    "list_plugins",
    "reload_plugin",
    "list_agents",
    "pause_agent",
    "resume_agent",
];

fn config(tasks: bool) -> ClientConfig {
    let caps = if tasks {
        ClientCapabilities::builder().enable_tasks().build()
    } else {
        ClientCapabilities::default()
    };
    ClientConfig::new(caps, Implementation::new("e2e-agent", "1.0"))
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
}

async fn over_stdio(args: &[&str], modern: bool) -> Client {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let command = tokio::process::Command::new(host_bin()).configure(move |cmd| {
        cmd.arg("mcp").args(&args).env("RUST_LOG", "warn");
    });
    let transport = TokioChildProcess::new(command).expect("spawn host mcp");
    connect(transport, modern, false).await
}

async fn over_http(base: &str, token: &str, modern: bool, tasks: bool) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"))
        .auth_header(token.to_string())
        .custom_headers(HashMap::new());
    connect(
        StreamableHttpClientTransport::from_config(config),
        modern,
        tasks,
    )
    .await
}

async fn connect<T, E, A>(transport: T, modern: bool, tasks: bool) -> Client
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let cfg = config(tasks);
    if modern {
        cfg.serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("MCP session (2026-07-28)")
    } else {
        cfg.serve(transport)
            .await
            .expect("MCP session (2025-11-25)")
    }
}

async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(serde_json::from_value(args).unwrap());
    tokio::time::timeout(Duration::from_secs(120), client.call_tool(params))
        .await
        .unwrap_or_else(|_| panic!("{tool} did not answer"))
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
}

/// The structured answer of a successful call.
async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let r = call(client, tool, args.clone()).await;
    assert_ne!(
        r.is_error,
        Some(true),
        "{tool}({args}) failed: {}",
        text(&r)
    );
    r.structured_content.clone().expect("structured content")
}

/// The sentence of a failed call.
async fn fails(client: &Client, tool: &str, args: Value) -> String {
    let r = call(client, tool, args.clone()).await;
    assert_eq!(
        r.is_error,
        Some(true),
        "{tool}({args}) should fail: {}",
        text(&r)
    );
    text(&r)
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn wait_state(client: &Client, id: &str, states: &[&str]) -> Value {
    let outcome = ok(
        client,
        "wait_for",
        json!({ "process_id": id, "states": states, "timeout_secs": 60 }),
    )
    .await;
    assert_eq!(outcome["matched"], "state", "{outcome}");
    outcome["process"].clone()
}

/// Seed 004's flows and every other tool, through one client.
async fn exercise(client: &Client) {
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    let mut want: Vec<&str> = TOOLS.to_vec();
    want.sort();
    assert_eq!(names, want);
    let start = tools
        .iter()
        .find(|t| t.name == "start_background_process")
        .unwrap();
    assert_eq!(
        Value::Object((*start.input_schema).clone()),
        json!({
            "type": "object",
            "properties": {
                "process_type": {
                    "type": "string",
                    "enum": ["jules_session", "test_suite", "build", "server", "analysis", "custom"],
                    "description": "Type of process to start"
                },
                "name": {"type": "string", "description": "Human-readable name for the process"},
                "command": {"type": "string", "description": "Shell command to execute"},
                "timeout": {"type": "integer", "description": "Maximum runtime in seconds (0 = no timeout)", "default": 0},
                "metadata": {"type": "object", "description": "Additional context (session_id, test_file, etc.)"}
            },
            "required": ["process_type", "name", "command"]
        }),
        "seed 004's schema, exactly"
    );
    assert_eq!(
        start.description.as_deref(),
        Some("Start a long-running background process (Jules, tests, builds)")
    );

    // start → running → listed → stop → cancelled
    let started = ok(
        client,
        "start_background_process",
        json!({ "process_type": "server", "name": "dev server", "command": "echo 'ready on :3000'; sleep 300", "metadata": { "session_id": "s1" } }),
    )
    .await;
    let id = started["process_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("server_"), "{started}");
    let line = ok(
        client,
        "wait_for",
        json!({ "process_id": id, "output_regex": "ready on :\\d+", "timeout_secs": 60 }),
    )
    .await;
    assert_eq!(line["matched"], "output", "{line}");
    let status = ok(client, "get_process_status", json!({ "process_id": id })).await;
    assert_eq!(status["state"], "running");
    assert_eq!(status["name"], "dev server");
    assert_eq!(status["metadata"]["session_id"], "s1");
    let listed = ok(
        client,
        "list_background_processes",
        json!({ "filter_type": "running" }),
    )
    .await;
    assert!(
        listed["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["process_id"] == id),
        "{listed}"
    );
    let paused = ok(client, "pause_process", json!({ "process_id": id })).await;
    assert_eq!(paused["state"], "paused");
    let resumed = ok(client, "resume_process", json!({ "process_id": id })).await;
    assert_eq!(resumed["state"], "running");
    let restarted = ok(client, "restart_process", json!({ "process_id": id })).await;
    assert_eq!(restarted["restarts"], 1);
    let stopped = ok(
        client,
        "stop_background_process",
        json!({ "process_id": id }),
    )
    .await;
    assert_eq!(stopped["state"], "cancelled");

    // a command that exits 1 → failed, with its exit code and output
    let failing = ok(
        client,
        "start_background_process",
        json!({ "process_type": "test_suite", "name": "tests", "command": "echo 'FAILED test_login - AssertionError'; exit 1" }),
    )
    .await;
    let fid = failing["process_id"].as_str().unwrap().to_string();
    let failed = wait_state(client, &fid, &["failed"]).await;
    assert_eq!(failed["exit_code"], 1);
    let status = ok(client, "get_process_status", json!({ "process_id": fid })).await;
    assert_eq!(
        status["output"],
        json!(["FAILED test_login - AssertionError"])
    );
    let output = ok(
        client,
        "get_process_output",
        json!({ "process_id": fid, "offset": 0, "regex": "Assertion" }),
    )
    .await;
    assert_eq!(output["lines"].as_array().unwrap().len(), 1);
    let failed_list = ok(
        client,
        "list_background_processes",
        json!({ "filter_type": "failed" }),
    )
    .await;
    assert!(
        failed_list["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["process_id"] == fid)
    );

    // timeout: 1 on sleep 5 → timeout
    let slow = ok(
        client,
        "start_background_process",
        json!({ "process_type": "build", "name": "slow", "command": "sleep 5", "timeout": 1 }),
    )
    .await;
    let sid = slow["process_id"].as_str().unwrap().to_string();
    let timed_out = wait_state(client, &sid, &["timeout"]).await;
    assert_eq!(timed_out["state"], "timeout");

    // force kills a process that ignores SIGTERM
    let stubborn = ok(
        client,
        "start_background_process",
        json!({ "process_type": "custom", "name": "stubborn", "command": "trap '' TERM; echo up; while true; do sleep 1; done" }),
    )
    .await;
    let tid = stubborn["process_id"].as_str().unwrap().to_string();
    ok(
        client,
        "wait_for",
        json!({ "process_id": tid, "output_regex": "^up$" }),
    )
    .await;
    let killed = ok(
        client,
        "stop_background_process",
        json!({ "process_id": tid, "force": true }),
    )
    .await;
    assert_eq!(
        (killed["state"].as_str(), killed["signal"].as_u64()),
        (Some("cancelled"), Some(9))
    );

    // events with a cursor: resume where the last call stopped
    let page = ok(
        client,
        "query_events",
        json!({ "type": ["process.failed"], "subject": fid }),
    )
    .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    let cursor = page["next_after"].as_u64().unwrap();
    let next = ok(
        client,
        "query_events",
        json!({ "type": ["process.failed"], "after": cursor }),
    )
    .await;
    assert_eq!(next["events"], json!([]));

    // tasks, dependencies, plugins, agents
    let registered = ok(
        client,
        "register_task",
        json!({ "id": "login-api", "repository": "backend", "title": "Add /login" }),
    )
    .await;
    assert_eq!(registered["task"]["id"], "login-api");
    let tasks = ok(client, "list_tasks", json!({})).await;
    assert!(
        tasks["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "login-api")
    );
    let deps = ok(client, "list_dependencies", json!({})).await;
    assert!(deps["dependencies"].is_array());
    let plugins = ok(client, "list_plugins", json!({})).await;
    assert_eq!(plugins["plugins"][0]["name"], "pinger", "{plugins}");
    ok(client, "reload_plugin", json!({ "name": "pinger" })).await;
    let agents = ok(client, "list_agents", json!({})).await;
    assert_eq!(agents["agents"][0]["plugin"], "pinger");
    assert_eq!(
        ok(client, "pause_agent", json!({ "name": "pinger" })).await["status"],
        "paused"
    );
    assert_ne!(
        ok(client, "resume_agent", json!({ "name": "pinger" })).await["status"],
        "paused"
    );

    // failures are tool results an agent can act on, not protocol errors
    let unknown = fails(
        client,
        "get_process_status",
        json!({ "process_id": "web_12" }),
    )
    .await;
    assert!(
        unknown.contains("no process `web_12`") && unknown.contains(&fid),
        "{unknown}"
    );
    let bad_filter = fails(
        client,
        "list_background_processes",
        json!({ "filter_type": "zombie" }),
    )
    .await;
    assert!(
        bad_filter.contains("all, running, completed, failed"),
        "{bad_filter}"
    );
    let missing = fails(
        client,
        "start_background_process",
        json!({ "process_type": "build" }),
    )
    .await;
    assert!(
        missing.contains("name") || missing.contains("command"),
        "{missing}"
    );
    let no_agent = fails(client, "pause_agent", json!({ "name": "nobody" })).await;
    assert!(no_agent.contains("pinger"), "{no_agent}");
}

/// A host with the pinger agent (slow), for plugin and agent tools.
fn host() -> (tempfile::TempDir, RunningHost) {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_plugin_folder(
        &plugins,
        "pinger",
        &fixture("pinger"),
        &format!("[config]\ninterval_ms = 60000\n{EMITS_TEST}"),
    );
    let host = RunningHost::start(&plugins, &tmp.path().join("state"), &["--no-build"]);
    (tmp, host)
}

/// The async part of a test, on a runtime of its own (the test kit's
/// blocking HTTP client must not be used inside one).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn an_agent_drives_the_host_over_http_with_both_protocol_revisions() {
    let (_tmp, mut host) = host();
    let api = host.api();
    let (base, token) = (api.base.clone(), api.token.clone());
    block_on(async move {
        for modern in [false, true] {
            let client = over_http(&base, &token, modern, false).await;
            let expected = if modern { "2026-07-28" } else { "2025-11-25" };
            assert_eq!(
                client.peer_info().unwrap().protocol_version.to_string(),
                expected
            );
            exercise(&client).await;
            client.cancel().await.unwrap();
        }
    });
}

#[test]
fn an_agent_drives_a_running_host_through_host_mcp_over_stdio() {
    let (_tmp, mut host) = host();
    host.api();
    let state = host.state_dir.display().to_string();
    block_on(async move {
        for modern in [false, true] {
            let client = over_stdio(&["--state-dir", &state], modern).await;
            exercise(&client).await;
            client.cancel().await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn host_mcp_with_a_config_runs_a_host_for_the_session_and_stops_it_after() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_plugin_folder(
        &plugins,
        "pinger",
        &fixture("pinger"),
        &format!("[config]\ninterval_ms = 60000\n{EMITS_TEST}"),
    );
    let state = tmp.path().join("state");
    let config = tmp.path().join("host.toml");
    std::fs::write(
        &config,
        format!("[host]\nstate_dir = {state:?}\n[plugins]\ndir = {plugins:?}\n"),
    )
    .unwrap();
    let client = over_stdio(&["--config", config.to_str().unwrap()], false).await;
    exercise(&client).await;
    // While the session lasts, the in-process host has its API up too.
    assert!(state.join("api.addr").exists());
    let started = ok(
        &client,
        "start_background_process",
        json!({ "process_type": "server", "name": "left running", "command": "sleep 300" }),
    )
    .await;
    let pid = started["pid"].as_u64().unwrap() as i32;
    client.cancel().await.unwrap();
    // Closing the session stops the host and what it ran.
    assert!(
        host_tests::eventually(Duration::from_secs(60), || !host_tests::pid_alive(pid)),
        "the session's process outlived it"
    );
    assert!(host_tests::eventually(Duration::from_secs(60), || !state
        .join("api.addr")
        .exists()));
}

#[tokio::test(flavor = "multi_thread")]
async fn host_mcp_with_no_host_and_no_config_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let out = host_tests::run_host(
        ["mcp", "--state-dir", tmp.path().to_str().unwrap()],
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no host is running") && stderr.contains("--config"),
        "{stderr}"
    );
}

#[test]
fn a_client_with_the_tasks_extension_follows_a_process_as_a_task_and_cancels_it() {
    let (_tmp, mut host) = host();
    let api = host.api();
    let (base, token) = (api.base.clone(), api.token.clone());
    block_on(follow_a_task(base, token));
}

async fn follow_a_task(base: String, token: String) {
    let client = over_http(&base, &token, true, true).await;
    let params = |command: &str| {
        CallToolRequestParams::new("start_background_process").with_arguments(
            serde_json::from_value(
                json!({ "process_type": "build", "name": "b", "command": command }),
            )
            .unwrap(),
        )
    };
    let CallToolResponse::Task(created) = client
        .call_tool_once(params("sleep 0.5; exit 3"))
        .await
        .unwrap()
    else {
        panic!("a client with the tasks extension gets a task");
    };
    let finished = loop {
        let got = client
            .get_task(GetTaskParams::new(created.task.task_id.clone()))
            .await
            .unwrap();
        if got.task.status().is_terminal() {
            break got.task;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let TaskPayload::Completed { result } = &finished.payload else {
        panic!(
            "the task completes with the process's final status: {:?}",
            finished.payload
        );
    };
    let result: CallToolResult = serde_json::from_value(Value::Object(result.clone())).unwrap();
    assert_eq!(result.is_error, Some(true), "the process failed");
    let status = result.structured_content.unwrap();
    assert_eq!(
        (status["state"].as_str(), status["exit_code"].as_i64()),
        (Some("failed"), Some(3))
    );

    let CallToolResponse::Task(created) = client.call_tool_once(params("sleep 300")).await.unwrap()
    else {
        panic!("a task");
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .cancel_task(CancelTaskParams::new(created.task.task_id.clone()))
        .await
        .unwrap();
    let cancelled = loop {
        let got = client
            .get_task(GetTaskParams::new(created.task.task_id.clone()))
            .await
            .unwrap();
        if got.task.status().is_terminal() {
            break got.task;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        matches!(cancelled.payload, TaskPayload::Cancelled),
        "{:?}",
        cancelled.payload
    );
    let listed = ok(
        &client,
        "list_background_processes",
        json!({ "filter_type": "all" }),
    )
    .await;
    let states: Vec<&str> = listed["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"cancelled"),
        "cancelling the task stopped the process: {states:?}"
    );
    client.cancel().await.unwrap();
}
