//! An AI-coder session moving through its statuses, seen in `host ps` and MCP.
//!
//! The shipped example script (`examples/ai-coder/ai-coder.sh`) runs as a
//! process of kind `ai-coder` under the real binary with the shipped
//! ai-coder-mapper (and progress-mapper beside it, which must leave it
//! alone). One session runs through to `completed`; another, slowed down,
//! is reported to through the API, listed by MCP's
//! `list_background_processes`, and paused, resumed and stopped through
//! the CLI and MCP verbs.

use std::collections::HashMap;
use std::time::Duration;

use host_tests::{RunningHost, install_shipped_plugin, run_host, workspace_root};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::{Value, json};

use crate::PATIENCE;

/// `host ARGS... --state-dir STATE --json`, its output as JSON.
fn host_json(state: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.splice(1..1, ["--state-dir", state, "--json"]);
    let out = run_host(&all, Duration::from_secs(120)).unwrap();
    assert!(
        out.status.success(),
        "host {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "host {all:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The entry of process `id` in `host ps --json`.
fn ps_entry(state: &str, id: &str) -> Value {
    let all = host_json(state, &["ps"]);
    all.as_array()
        .unwrap_or_else(|| panic!("ps --json is a list: {all}"))
        .iter()
        .find(|p| p["process_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not in ps: {all}"))
}

/// Polls `host ps --json` until process `id` satisfies `pred`.
fn wait_ps(state: &str, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let ok = host_tests::eventually(PATIENCE, || {
        last = ps_entry(state, id);
        pred(&last)
    });
    assert!(ok, "{id} never got there in host ps: {last}");
    last
}

type Client = RunningService<RoleClient, ClientConfig>;

async fn mcp(base: &str, token: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"))
        .auth_header(token.to_string())
        .custom_headers(HashMap::new());
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("e2e-ai-coder", "1.0"),
    )
    .with_protocol_version(ProtocolVersion::V_2025_11_25)
    .serve(StreamableHttpClientTransport::from_config(config))
    .await
    .expect("MCP session")
}

/// The structured answer of a successful tool call.
async fn tool(client: &Client, name: &str, args: Value) -> Value {
    let params = CallToolRequestParams::new(name.to_string())
        .with_arguments(serde_json::from_value(args.clone()).unwrap());
    let r = tokio::time::timeout(Duration::from_secs(120), client.call_tool(params))
        .await
        .unwrap_or_else(|_| panic!("{name} did not answer"))
        .unwrap_or_else(|e| panic!("{name}: protocol error {e}"));
    assert_ne!(r.is_error, Some(true), "{name}({args}) failed: {r:?}");
    r.structured_content.expect("structured content")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn an_ai_coder_session_moves_through_its_statuses_and_is_driven_by_the_usual_verbs() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_shipped_plugin("ai-coder-mapper", &plugins);
    install_shipped_plugin("progress-mapper", &plugins);
    let script = workspace_root().join("examples/ai-coder/ai-coder.sh");
    let config = tmp.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[process.quick]\ncommand = \"sh '{script}' 'add a login form'\"\nkind = \"ai-coder\"\n\
             env = {{ AI_CODER_STEP = \"0.3\" }}\n\n\
             [process.slow]\ncommand = \"sh '{script}' 'fix the footer'\"\nkind = \"ai-coder\"\n\
             env = {{ AI_CODER_STEP = \"600\" }}\n",
            script = script.display()
        ),
    )
    .unwrap();
    let mut host = RunningHost::start(
        &plugins,
        &tmp.path().join("state"),
        &["--config", config.to_str().unwrap(), "--no-build"],
    );
    let api = host.api();
    let state = host.state_dir.display().to_string();

    // The quick session runs through every status to the end.
    let done = wait_ps(&state, "quick", |p| {
        p["state"] == "completed" && p["reported_state"] == "completed"
    });
    assert_eq!(done["process_type"], "ai-coder");
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["message"], "done: add a login form");
    let mut reported: Vec<String> = Vec::new();
    for e in host.events("process.status") {
        if e["subject"] != "quick" {
            continue;
        }
        // progress-mapper would have made the raw line the message.
        assert!(
            !e["data"]["message"].as_str().unwrap_or("").starts_with('{'),
            "only the ai-coder mapper sets an ai-coder's status: {e}"
        );
        if let Some(s) = e["data"]["state"].as_str()
            && reported.last().map(String::as_str) != Some(s)
        {
            reported.push(s.to_string());
        }
    }
    assert_eq!(
        reported,
        ["pending", "running", "paused", "running", "completed"]
    );

    // The slow session sits in `creating`; its system reports through the API.
    let slow = wait_ps(&state, "slow", |p| p["reported_state"] == "pending");
    assert_eq!(
        slow["message"],
        "setting up a workspace for: fix the footer"
    );
    let (code, body) = api.post(
        "/v1/processes/slow/status",
        &json!({ "status": "running", "progress": 0.45, "message": "writing the change" }),
    );
    assert_eq!(code, 202, "{body}");
    let slow = wait_ps(&state, "slow", |p| p["reported_state"] == "running");
    assert_eq!(slow["progress"], 0.45);
    assert_eq!(slow["message"], "writing the change");
    assert_eq!(slow["state"], "running");

    // MCP lists it with its kind and progress, and drives it with the
    // same verbs as the CLI.
    let (base, token) = (api.base.clone(), api.token.clone());
    let state_for_mcp = state.clone();
    block_on(async move {
        let client = mcp(&base, &token).await;
        let listed = tool(
            &client,
            "list_background_processes",
            json!({ "filter_type": "running" }),
        )
        .await;
        let entry = listed["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["process_id"] == "slow")
            .cloned()
            .unwrap_or_else(|| panic!("slow not listed: {listed}"));
        assert_eq!(entry["process_type"], "ai-coder");
        assert_eq!(entry["progress"], 0.45);
        assert_eq!(entry["reported_state"], "running");

        let paused = tool(&client, "pause_process", json!({ "process_id": "slow" })).await;
        assert_eq!(paused["state"], "paused");
        let resumed = host_json(&state_for_mcp, &["resume", "slow"]);
        assert_eq!(resumed["state"], "running");
        let paused = host_json(&state_for_mcp, &["pause", "slow"]);
        assert_eq!(paused["state"], "paused");
        let resumed = tool(&client, "resume_process", json!({ "process_id": "slow" })).await;
        assert_eq!(resumed["state"], "running");
        let stopped = tool(
            &client,
            "stop_background_process",
            json!({ "process_id": "slow" }),
        )
        .await;
        assert_eq!(stopped["state"], "cancelled");
        client.cancel().await.unwrap();
    });
    let slow = ps_entry(&state, "slow");
    assert_eq!(slow["state"], "cancelled");
    // What the coder last reported stays beside the lifecycle state.
    assert_eq!(slow["message"], "writing the change");
}
