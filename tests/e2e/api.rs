//! Scenario: the HTTP API of a running host, driven with a real HTTP
//! client — every endpoint's success and its bad-input error, the token,
//! the origin check, the files in the state folder.

use std::os::unix::fs::PermissionsExt as _;

use host_tests::{Api, EMITS_TEST, RunningHost, fixture, install_plugin_folder};
use reqwest::Method;
use serde_json::{Value, json};

/// A host with the pinger agent and the echo handler (plugins to list, an
/// agent, a dispatcher with a lag), a config process that ignores SIGTERM,
/// and a task.
fn host() -> (tempfile::TempDir, RunningHost, Api) {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_plugin_folder(
        &plugins,
        "pinger",
        &fixture("pinger"),
        &format!("[config]\ninterval_ms = 60000\ntype = \"test.tick\"\n{EMITS_TEST}"),
    );
    install_plugin_folder(&plugins, "echo", &fixture("echo-v1"), EMITS_TEST);
    let config = tmp.path().join("host.toml");
    std::fs::write(
        &config,
        r#"
[process.stubborn]
command = "trap '' TERM; echo ready; while true; do sleep 1; done"
autostart = false
stop_timeout = "60s"

[[task]]
id = "t1"
repository = "backend"
title = "Add the login endpoint"
"#,
    )
    .unwrap();
    let mut host = RunningHost::start(
        &plugins,
        &tmp.path().join("state"),
        &["--config", config.to_str().unwrap(), "--no-build"],
    );
    let api = host.api();
    (tmp, host, api)
}

#[test]
fn every_request_needs_the_token_and_a_foreign_origin_is_refused() {
    let (_tmp, _host, api) = host();
    for path in ["/v1/processes", "/metrics", "/healthz", "/mcp"] {
        let response = api.anonymous(Method::GET, path).send().unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path}");
        let body: Value = response.json().unwrap();
        assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    }
    let wrong = api
        .anonymous(Method::GET, "/v1/processes")
        .bearer_auth("0".repeat(64))
        .send()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    for path in ["/mcp", "/v1/processes"] {
        let foreign = api
            .request(Method::POST, path)
            .header("Origin", "http://evil.example")
            .body("{}")
            .send()
            .unwrap();
        assert_eq!(foreign.status().as_u16(), 403, "{path}");
    }
    let own = api
        .request(Method::GET, "/v1/processes")
        .header("Origin", api.base.clone())
        .send()
        .unwrap();
    assert_eq!(own.status().as_u16(), 200);
    assert_eq!(
        own.headers()["access-control-allow-origin"],
        api.base.as_str()
    );
    // A browser's preflight carries no token; the API's own origin passes it.
    let preflight = api
        .anonymous(Method::OPTIONS, "/v1/processes")
        .header("Origin", api.base.clone())
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        api.base.as_str()
    );
    // The event stream also takes the token as a query parameter (a
    // browser's EventSource cannot set headers); nothing else does.
    let stream = api
        .anonymous(
            Method::GET,
            &format!("/v1/events/stream?access_token={}", api.token),
        )
        .send()
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    drop(stream);
    let listing = api
        .anonymous(
            Method::GET,
            &format!("/v1/processes?access_token={}", api.token),
        )
        .send()
        .unwrap();
    assert_eq!(listing.status().as_u16(), 401);
}

#[test]
fn the_address_and_token_files_are_private_and_removed_at_exit() {
    let (_tmp, mut host, api) = host();
    for name in ["api.addr", "api.token"] {
        let meta = std::fs::metadata(host.state_dir.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    assert_eq!(
        std::fs::read_to_string(host.state_dir.join("api.token")).unwrap(),
        api.token
    );
    assert!(host.terminate().unwrap().success());
    assert!(!host.state_dir.join("api.addr").exists());
    assert!(!host.state_dir.join("api.token").exists());
}

#[test]
fn a_runtime_process_is_created_listed_read_and_removed() {
    let (_tmp, _host, api) = host();
    let (status, created) = api.post(
        "/v1/processes",
        &json!({
            "process_type": "test_suite",
            "name": "unit tests",
            "command": "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; exit 1",
            "metadata": { "test_file": "tests/test_login.py" }
        }),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["process_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("test_suite_"), "{id}");
    let done = api.wait_process(&id, |p| p["state"] == "failed");
    assert_eq!(done["exit_code"], 1);
    assert_eq!(done["name"], "unit tests");
    assert_eq!(done["process_type"], "test_suite");
    assert_eq!(done["origin"], "runtime");
    assert_eq!(done["metadata"]["test_file"], "tests/test_login.py");
    assert!(done["completed_at"].is_string() && done["duration"].is_number());
    assert_eq!(done["output"], json!(["one", "two", "three"]));

    let (_, listed) = api.get("/v1/processes?state=failed&kind=test_suite");
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["process_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let (_, none) = api.get("/v1/processes?state=running&kind=test_suite");
    assert_eq!(none, json!([]));

    let (_, tail) = api.get(&format!("/v1/processes/{id}/output?tail=2"));
    let texts: Vec<&str> = tail["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["two", "three"]);
    assert_eq!(tail["lines"][0]["stream"], "stderr");
    let (_, after) = api.get(&format!("/v1/processes/{id}/output?after=1&limit=1"));
    assert_eq!(after["lines"][0]["line"], "two");
    assert_eq!(after["next_offset"], 2);
    let (_, matching) = api.get(&format!("/v1/processes/{id}/output?after=0&regex=^t"));
    assert_eq!(matching["lines"].as_array().unwrap().len(), 2);
    let log = api
        .request(Method::GET, &format!("/v1/processes/{id}/log"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(log, "one\ntwo\nthree\n");

    let (status, _) = api.delete(&format!("/v1/processes/{id}"));
    assert_eq!(status, 204);
    let (status, gone) = api.get(&format!("/v1/processes/{id}"));
    assert_eq!(status, 404);
    assert!(gone["error"].as_str().unwrap().contains(&id), "{gone}");
}

#[test]
fn bad_input_is_a_400_naming_the_field_and_unknown_ids_a_404_naming_the_known() {
    let (_tmp, _host, api) = host();
    let cases = [
        (json!({ "process_type": "build", "name": "x" }), "command"),
        (
            json!({ "process_type": "two words", "name": "x", "command": "true" }),
            "process_type",
        ),
        (
            json!({ "process_type": "build", "name": "x", "command": "true", "timeout": "soon" }),
            "timeout",
        ),
        (
            json!({ "process_type": "build", "name": "x", "command": "true", "colour": 1 }),
            "colour",
        ),
        (
            json!({ "process_type": "build", "name": "x", "command": "true", "cwd": "/no/such/dir" }),
            "cwd",
        ),
        (
            json!({ "process_type": "build", "name": " ", "command": "true" }),
            "name",
        ),
    ];
    for (body, field) in cases {
        let (status, error) = api.post("/v1/processes", &body);
        assert_eq!(status, 400, "{body} → {error}");
        assert_eq!(error["field"], field, "{body} → {error}");
        assert!(error["error"].is_string());
    }
    let broken = api
        .request(Method::POST, "/v1/processes")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(broken.status().as_u16(), 400);

    let (status, error) = api.post("/v1/processes/web_12/stop", &json!({}));
    assert_eq!(status, 404);
    let text = error["error"].as_str().unwrap();
    assert!(
        text.contains("no process `web_12`") && text.contains("stubborn"),
        "{text}"
    );
    let (status, error) = api.post("/v1/processes/stubborn/stop", &json!({ "force": "yes" }));
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("force")),
        "{error}"
    );
    let (status, error) = api.post("/v1/processes/stubborn/stop", &json!({}));
    assert_eq!(status, 409, "stopping a pending process: {error}");
    let (status, error) = api.get("/v1/events?since=soon");
    assert_eq!((status, error["field"].as_str()), (400, Some("since")));
    let (status, error) = api.get("/v1/events?type=a..b");
    assert_eq!((status, error["field"].as_str()), (400, Some("type")));
    let (status, error) = api.get("/v1/no/such/endpoint");
    assert_eq!(status, 404);
    assert!(error["error"].as_str().unwrap().contains("/v1"));
    let (status, error) = api.delete("/v1/events");
    assert_eq!(status, 405);
    assert!(error["error"].is_string(), "a JSON body: {error}");
    let long = "n".repeat(300);
    let (status, error) = api.post(
        "/v1/processes",
        &json!({ "process_type": "build", "name": long, "command": "true" }),
    );
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("name")),
        "{error}"
    );
    let (status, error) = api.post("/v1/tasks", &json!({ "id": "t9", "title": " " }));
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("title")),
        "{error}"
    );
    let huge = "x".repeat(3 << 20);
    let (status, _) = api.post("/v1/events", &json!({ "type": "a.b", "data": huge }));
    assert_eq!(status, 413, "the body limit");
}

#[test]
fn stop_with_force_kills_a_process_that_ignores_sigterm_at_once() {
    let (_tmp, _host, api) = host();
    let (status, started) = api.post("/v1/processes/stubborn/start", &json!({}));
    assert_eq!(
        (status, started["state"].as_str()),
        (200, Some("running")),
        "{started}"
    );
    let before = std::time::Instant::now();
    let (status, stopped) = api.post("/v1/processes/stubborn/stop", &json!({ "force": true }));
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["state"], "cancelled");
    assert_eq!(
        stopped["signal"], 9,
        "SIGKILL, not the 60 s grace: {stopped}"
    );
    assert!(before.elapsed() < std::time::Duration::from_secs(50));
}

#[test]
fn pause_resume_and_restart_go_through_the_supervisor() {
    let (_tmp, _host, api) = host();
    let id = api.create("server", "sleeper", "sleep 300");
    api.wait_process(&id, |p| p["state"] == "running");
    let (status, paused) = api.post(&format!("/v1/processes/{id}/pause"), &json!({}));
    assert_eq!((status, paused["state"].as_str()), (200, Some("paused")));
    let (status, _) = api.post(&format!("/v1/processes/{id}/pause"), &json!({}));
    assert_eq!(status, 409, "already paused");
    let (status, resumed) = api.post(&format!("/v1/processes/{id}/resume"), &json!({}));
    assert_eq!((status, resumed["state"].as_str()), (200, Some("running")));
    let pid = resumed["pid"].clone();
    let (status, restarted) = api.post(&format!("/v1/processes/{id}/restart"), &json!({}));
    assert_eq!(status, 200, "{restarted}");
    assert_eq!(restarted["state"], "running");
    assert_eq!(restarted["restarts"], 1);
    assert_ne!(restarted["pid"], pid);
    let (status, _) = api.post(
        &format!("/v1/processes/{id}/stop"),
        &json!({ "force": true }),
    );
    assert_eq!(status, 200);
}

#[test]
fn events_are_queried_and_published_and_reserved_types_refused() {
    let (_tmp, _host, api) = host();
    let (status, published) = api.post(
        "/v1/events",
        &json!({ "type": "provider.rate_limited", "subject": "claude", "data": { "retry_after": 30 }, "source": "agent-7" }),
    );
    assert_eq!(status, 201, "{published}");
    assert_eq!(published["source"], "api/agent-7");
    let seq = published["sequence"].as_u64().unwrap();
    let (_, page) = api.get("/v1/events?type=provider.>&subject=claude");
    assert_eq!(page["events"][0]["sequence"], seq);
    assert_eq!(page["events"][0]["data"]["retry_after"], 30);
    let (_, after) = api.get(&format!("/v1/events?after={seq}&type=provider.>"));
    assert_eq!(after["events"], json!([]));
    assert!(after["next_after"].as_u64().unwrap() >= seq);
    for reserved in ["process.failed", "host.started", "plugin.loaded"] {
        let (status, error) = api.post("/v1/events", &json!({ "type": reserved }));
        assert_eq!(
            (status, error["field"].as_str()),
            (400, Some("type")),
            "{reserved}: {error}"
        );
    }
    let (status, stats) = api.get("/v1/stats");
    assert_eq!(status, 200);
    assert_eq!(stats["by_type"]["provider.rate_limited"], 1);
}

#[test]
fn plugins_agents_tasks_and_dependencies_are_listed_and_driven() {
    let (_tmp, _host, api) = host();
    let (_, plugins) = api.get("/v1/plugins");
    assert_eq!(plugins[0]["name"], "echo", "{plugins}");
    assert_eq!(plugins[0]["kinds"], json!(["event-handler"]));
    assert_eq!(plugins[1]["name"], "pinger", "{plugins}");
    assert_eq!(plugins[1]["kinds"], json!(["background-agent"]));
    assert_eq!(plugins[1]["state"], "serving");
    let (status, reloaded) = api.post("/v1/plugins/pinger/reload", &json!({}));
    assert_eq!(status, 200, "{reloaded}");
    let (status, error) = api.post("/v1/plugins/nope/reload", &json!({}));
    assert_eq!(status, 404);
    assert!(
        error["error"].as_str().unwrap().contains("pinger"),
        "{error}"
    );

    let (_, agents) = api.get("/v1/agents");
    assert_eq!(agents[0]["plugin"], "pinger", "{agents}");
    let (_, paused) = api.post("/v1/agents/pinger/pause", &json!({}));
    assert_eq!(paused["status"], "paused");
    let (_, resumed) = api.post("/v1/agents/pinger/resume", &json!({}));
    assert_ne!(resumed["status"], "paused");
    let (status, _) = api.post("/v1/agents/nope/pause", &json!({}));
    assert_eq!(status, 404);

    let (status, registered) = api.post(
        "/v1/tasks",
        &json!({ "id": "t2", "repository": "frontend", "title": "Login form" }),
    );
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["task"]["id"], "t2");
    let (status, error) = api.post("/v1/tasks", &json!({ "id": "t3", "title": "" }));
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("title")),
        "{error}"
    );
    let (_, tasks) = api.get("/v1/tasks");
    let ids: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t1", "t2"]);
    let (status, deps) = api.get("/v1/dependencies");
    assert_eq!((status, deps), (200, json!([])), "no rule plugin is loaded");
}

#[test]
fn wait_returns_what_matched_or_times_out() {
    let (_tmp, _host, api) = host();
    // A line printed the moment the process starts, before anyone waits.
    let eager = api.create("server", "eager", "echo 'ready at once'; sleep 300");
    let (_, outcome) = api.post(
        "/v1/wait",
        &json!({ "process_id": eager, "output_regex": "ready", "timeout_secs": 60 }),
    );
    assert_eq!(outcome["matched"], "output", "{outcome}");
    let id = api.create(
        "server",
        "web",
        "sleep 0.3; echo 'listening on :8080'; sleep 300",
    );
    let (status, outcome) = api.post(
        "/v1/wait",
        &json!({ "process_id": id, "output_regex": "listening on :\\d+", "timeout_secs": 60 }),
    );
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["matched"], "output");
    assert_eq!(outcome["line"]["line"], "listening on :8080");
    // Already printed: a second wait finds it at once.
    let (_, again) = api.post(
        "/v1/wait",
        &json!({ "process_id": id, "output_regex": "listening", "timeout_secs": 60 }),
    );
    assert_eq!(again["matched"], "output");
    let (_, timeout) = api.post(
        "/v1/wait",
        &json!({ "process_id": id, "states": ["completed"], "timeout_secs": 1 }),
    );
    assert_eq!(timeout["matched"], "timeout");
    assert_eq!(timeout["process"]["state"], "running");
    let stop = {
        let api = api.clone();
        let id = id.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            api.post(&format!("/v1/processes/{id}/stop"), &json!({}))
        })
    };
    let (_, state) = api.post(
        "/v1/wait",
        &json!({ "process_id": id, "states": ["cancelled"], "timeout_secs": 60 }),
    );
    assert_eq!(state["matched"], "state");
    assert_eq!(stop.join().unwrap().0, 200);
    let (status, error) = api.post("/v1/wait", &json!({ "timeout_secs": 1 }));
    assert_eq!(status, 400, "nothing to wait for: {error}");
}

#[test]
fn metrics_health_and_readiness_answer() {
    let (_tmp, _host, api) = host();
    api.create("build", "b", "true");
    // The echo handler answers a ping, so its dispatcher has a cursor.
    let (status, _) = api.post("/v1/events", &json!({ "type": "test.ping" }));
    assert_eq!(status, 201);
    api.post(
        "/v1/wait",
        &json!({ "event_type": "test.pong", "after": 0, "timeout_secs": 60 }),
    );
    let metrics = api
        .request(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
    for name in [
        "host_processes{state=\"pending\"}",
        "host_plugin_calls_total{plugin=\"pinger\"}",
        "host_journal_bytes",
        "host_output_lines_dropped_total",
        "host_consumer_lag_events{plugin=\"echo\",kind=\"event-handler\"}",
        "host_events_published_total{type=\"test.ping\"}",
        "host_plugin_call_seconds_count{plugin=\"echo\"}",
        "host_plugin_call_seconds_bucket{le=\"+Inf\",plugin=\"echo\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(metrics.trim_end().ends_with("# EOF"));
    let (status, health) = api.get("/healthz");
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, ready) = api.get("/readyz");
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["checks"]["journal_writable"], true);
}
