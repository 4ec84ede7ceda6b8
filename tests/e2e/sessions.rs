//! Coordination sessions: a dependency opens one; it resolves by agreement or escalates.
//!
//! The real binary with the shipped API-contract rule, session judge and
//! session planner: two tasks in different repositories registered through
//! the API make a dependency, the dependency a session with the planner's
//! plan in it; a participant's free-text agreement, read by the judge,
//! resolves it. A second pair talks past the message limit and escalates;
//! a third is escalated on request from the CLI.

use std::time::Duration;

use host_tests::{Api, RunningHost, install_shipped_plugin, run_host};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn host() -> (tempfile::TempDir, RunningHost, Api) {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for name in ["api-contract-rule", "session-judge", "session-planner"] {
        install_shipped_plugin(name, &plugins);
    }
    let config = tmp.path().join("host.toml");
    std::fs::write(
        &config,
        "[coordination.sessions]\nmax_messages = 3\nmax_age = \"1h\"\n",
    )
    .unwrap();
    let mut host = RunningHost::start(
        &plugins,
        &tmp.path().join("state"),
        &["--config", config.to_str().unwrap(), "--no-build"],
    );
    host.wait_for("host.plugins_loaded", WAIT, |_| true)
        .unwrap();
    let api = host.api();
    (tmp, host, api)
}

fn register(api: &Api, id: &str, repository: &str, agent: &str, title: &str) {
    let (status, body) = api.post(
        "/v1/tasks",
        &json!({ "id": id, "repository": repository, "agent": agent, "title": title,
                 "keywords": ["api"] }),
    );
    assert_eq!(status, 201, "{body}");
}

/// The session over tasks `a` and `b`, once it has its plan.
fn session_of(host: &mut RunningHost, api: &Api, a: &str, b: &str) -> Value {
    let opened = host
        .wait_for("session.opened", WAIT, |e| {
            let tasks = e["data"]["tasks"].to_string();
            tasks.contains(&format!("\"{a}\"")) && tasks.contains(&format!("\"{b}\""))
        })
        .unwrap();
    let id = opened["data"]["id"].as_str().unwrap().to_string();
    host.wait_for("session.message", WAIT, |e| {
        e["data"]["session"] == id.as_str() && e["data"]["message"]["author"] == "planner"
    })
    .unwrap();
    let (status, session) = api.get(&format!("/v1/sessions/{id}"));
    assert_eq!(status, 200, "{session}");
    session
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn post(api: &Api, id: &str, author: &str, kind: &str, text: &str) -> (u16, Value) {
    api.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({ "author": author, "kind": kind, "text": text }),
    )
}

#[test]
fn a_dependency_opens_a_planned_session_that_resolves_by_a_judged_agreement() {
    let (tmp, mut host, api) = host();
    register(
        &api,
        "auth-api",
        "backend",
        "alice",
        "Define user authentication API",
    );
    register(
        &api,
        "auth-ui",
        "frontend",
        "bob",
        "Implement authentication endpoint client",
    );
    let session = session_of(&mut host, &api, "auth-api", "auth-ui");
    let id = session["id"].as_str().unwrap().to_string();
    assert_eq!(session["status"], "active");
    assert_eq!(session["kind"], "dependency");
    assert_eq!(session["participants"], json!(["alice", "bob"]));
    let plan = session["messages"][0]["text"].as_str().unwrap();
    for point in [
        "SEQUENCE",
        "INFORMATION SHARING",
        "COORDINATION POINTS",
        "POTENTIAL CONFLICTS",
        "SUCCESS CRITERIA",
    ] {
        assert!(plan.contains(point), "{point} missing: {plan}");
    }
    assert!(plan.contains("backend/auth-api"), "{plan}");

    // Refusals name what is wrong.
    let (status, body) = post(&api, &id, "mallory", "agreement", "yes");
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("author")),
        "{body}"
    );
    let (status, body) = post(&api, "s999999", "bob", "agreement", "yes");
    assert_eq!(status, 404, "{body}");
    let (status, body) = api.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({ "author": "bob", "kind": "shout", "text": "x" }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["field"].as_str().unwrap_or_default().contains("kind"),
        "{body}"
    );

    // A question does not agree; bob's free-text approval does, once judged.
    let (status, body) = post(
        &api,
        &id,
        "alice",
        "question",
        "Do you agree with the order?",
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &api,
        &id,
        "bob",
        "proposal",
        "Sounds good, I will wait for the spec.",
    );
    assert_eq!(status, 201, "{body}");
    let resolved = host
        .wait_for("session.resolved", WAIT, |e| {
            e["data"]["session"] == id.as_str()
        })
        .unwrap();
    assert_eq!(resolved["data"]["agreements"], json!(["bob"]));
    host.wait_for("session.closed", WAIT, |e| {
        e["data"]["session"] == id.as_str()
    })
    .unwrap();
    let judged = host.events("session.judged");
    assert!(
        judged.iter().any(|e| e["data"]["verdict"] == "neutral"),
        "the question was judged neutral: {judged:#?}"
    );

    let (_, session) = api.get(&format!("/v1/sessions/{id}"));
    assert_eq!(session["status"], "resolved");
    let (status, body) = post(&api, &id, "alice", "agreement", "late");
    assert_eq!(status, 409, "a resolved session is closed: {body}");
    let (status, list) = api.get("/v1/sessions?status=resolved");
    assert_eq!(status, 200);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == id.as_str()),
        "{list}"
    );

    // The CLI lists and shows the same session.
    let state = tmp.path().join("state");
    let out = run_host(
        ["sessions", "--state-dir", state.to_str().unwrap()],
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&id) && text(&out.stdout).contains("resolved"),
        "{}",
        text(&out.stdout)
    );
    let out = run_host(
        [
            "sessions",
            "--state-dir",
            state.to_str().unwrap(),
            "show",
            &id,
        ],
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(
        text(&out.stdout).contains("SUCCESS CRITERIA") && text(&out.stdout).contains("consensus"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_session_past_its_message_limit_escalates_and_one_escalates_on_request_from_the_cli() {
    let (tmp, mut host, api) = host();
    register(
        &api,
        "bill-api",
        "payments",
        "carol",
        "Define invoice billing API",
    );
    register(
        &api,
        "bill-ui",
        "web",
        "dave",
        "Implement invoice billing endpoint client",
    );
    let session = session_of(&mut host, &api, "bill-api", "bill-ui");
    let id = session["id"].as_str().unwrap().to_string();
    // max_messages = 3: the fourth participant message escalates.
    let talk = [
        ("carol", "proposal", "Spec first?"),
        (
            "dave",
            "concern",
            "The spec is not ready, this is a blocker",
        ),
        ("carol", "question", "When can you start?"),
        ("dave", "concern", "No way this week"),
    ];
    for (i, (author, kind, text)) in talk.iter().enumerate() {
        let (status, body) = post(&api, &id, author, kind, text);
        assert_eq!(status, 201, "message {i}: {body}");
    }
    let escalated = host
        .wait_for("session.escalated", WAIT, |e| {
            e["data"]["session"] == id.as_str()
        })
        .unwrap();
    let reason = escalated["data"]["reason"].as_str().unwrap();
    assert!(reason.contains("4 messages"), "{reason}");
    let (status, body) = post(&api, &id, "carol", "agreement", "fine");
    assert_eq!(status, 409, "{body}");

    register(
        &api,
        "ship-api",
        "logistics",
        "erin",
        "Define shipment tracking API",
    );
    register(
        &api,
        "ship-ui",
        "mobile",
        "frank",
        "Implement shipment tracking endpoint client",
    );
    let other = session_of(&mut host, &api, "ship-api", "ship-ui");
    let other = other["id"].as_str().unwrap().to_string();
    let state = tmp.path().join("state");
    let out = run_host(
        [
            "sessions",
            "--state-dir",
            state.to_str().unwrap(),
            "escalate",
            &other,
            "--by",
            "erin",
            "needs",
            "a",
            "product",
            "decision",
        ],
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let e = host
        .wait_for("session.escalated", WAIT, |e| {
            e["data"]["session"] == other.as_str()
        })
        .unwrap();
    assert_eq!(
        e["data"]["reason"],
        "needs a product decision (asked by erin)"
    );
    let out = run_host(
        [
            "sessions",
            "--state-dir",
            state.to_str().unwrap(),
            "escalate",
            &other,
            "again",
        ],
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(
        !out.status.success(),
        "a closed session cannot escalate twice"
    );
}

#[test]
fn sessions_survive_a_restart_and_go_on_where_they_were() {
    let (tmp, mut host, api) = host();
    register(&api, "map-api", "geo", "gina", "Define map tiles API");
    register(
        &api,
        "map-ui",
        "viewer",
        "hugo",
        "Implement map tiles endpoint client",
    );
    let session = session_of(&mut host, &api, "map-api", "map-ui");
    let id = session["id"].as_str().unwrap().to_string();
    let (status, body) = post(&api, &id, "gina", "question", "Tiles as PNG or vector?");
    assert_eq!(status, 201, "{body}");
    host.terminate().unwrap();

    let plugins = tmp.path().join("plugins");
    let config = tmp.path().join("host.toml");
    let mut host = RunningHost::start(
        &plugins,
        &tmp.path().join("state"),
        &["--config", config.to_str().unwrap(), "--no-build"],
    );
    let api = host.api();
    let (status, again) = api.get(&format!("/v1/sessions/{id}"));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["status"], "active");
    assert_eq!(again["messages"].as_array().unwrap().len(), 2, "{again:#}");
    assert!(again["plan"]["sequence"].is_array(), "{again:#}");
    let (status, body) = post(&api, &id, "hugo", "agreement", "vector, agreed");
    assert_eq!(status, 201, "{body}");
    let (_, done) = api.get(&format!("/v1/sessions/{id}"));
    assert_eq!(done["status"], "resolved", "{done:#}");
    let opened: Vec<Value> = host
        .events("session.opened")
        .into_iter()
        .filter(|e| e["data"]["id"] == id.as_str())
        .collect();
    assert_eq!(opened.len(), 1, "the restart opened nothing twice");
}
