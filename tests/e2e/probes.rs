//! Dependencies and probes: `depends_on` conditions, readiness and liveness, start and stop in graph order.
//!
//! Scenario: a db that is ready when it prints a line, a migration that
//! must complete successfully, and a web server (`python3 -m http.server`)
//! ready when it answers HTTP GET; the web waits for both. `host events
//! --json` shows the starts in graph order and the readiness events, and
//! `host ps` shows readiness. A cycle in `depends_on` is a config error
//! naming the cycle and the file.

use std::path::Path;
use std::time::Duration;

use host_tests::{RunningHost, read_events, run_host, sequence};
use serde_json::Value;

use crate::PATIENCE;

/// `host ARGS --state-dir STATE`, its exit code and stdout.
fn verb(state: &Path, args: &[&str]) -> (i32, String) {
    let mut all: Vec<&str> = args.to_vec();
    let state = state.to_str().unwrap();
    all.splice(1..1, ["--state-dir", state]);
    let out = run_host(&all, Duration::from_secs(120)).unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Process `id` as `host ps --json` lists it.
fn listed(state: &Path, id: &str) -> Value {
    let (code, json) = verb(state, &["ps", "--json"]);
    assert_eq!(code, 0, "{json}");
    let all: Value = serde_json::from_str(&json).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|p| p["process_id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {all}"))
        .clone()
}

fn subject(e: &Value) -> &str {
    e["subject"].as_str().unwrap_or_default()
}

#[test]
fn web_starts_after_a_ready_db_and_a_completed_migration_and_ps_shows_readiness() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let port = free_port();
    let config = tmp.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[process.web]
command = "exec python3 -m http.server {port} --bind 127.0.0.1"
depends_on = {{ db = "log_ready", migrate = "completed_successfully" }}
readiness_probe = {{ http_get = "http://127.0.0.1:{port}/", period = "200ms" }}

[process.migrate]
command = "sleep 0.5; echo migrated"
depends_on = {{ db = "healthy" }}

[process.db]
command = "sleep 0.5; echo 'database system is ready to accept connections'; exec sleep 300"
readiness_probe = {{ log = "ready to accept connections", period = "100ms" }}
"#
        ),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let mut host = RunningHost::start(
        &plugins,
        &state,
        &["--config", config.to_str().unwrap(), "--no-build"],
    );
    host.wait_for("process.ready", PATIENCE, |e| subject(e) == "web")
        .unwrap();

    let events = read_events(
        &state,
        &["process.started", "process.ready", "process.completed"],
    )
    .unwrap();
    let order: Vec<String> = events
        .iter()
        .map(|e| format!("{} {}", subject(e), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        order,
        [
            "db process.started",
            "db process.ready",
            "migrate process.started",
            "migrate process.completed",
            "web process.started",
            "web process.ready",
        ],
        "{events:#?}"
    );
    assert!(events.windows(2).all(|w| sequence(&w[0]) < sequence(&w[1])));
    let web_ready = events
        .iter()
        .find(|e| subject(e) == "web" && e["type"] == "process.ready");
    assert_eq!(web_ready.unwrap()["data"]["probe"], "http_get");

    let (code, out) = verb(&state, &["ps"]);
    assert_eq!(code, 0, "{out}");
    let header = out.lines().next().unwrap();
    assert!(header.contains("READY"), "{out}");
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not in ps:\n{out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // ID KIND STATE READY ...
    assert_eq!(row("web")[2..4], ["running", "yes"], "{out}");
    assert_eq!(row("db")[2..4], ["running", "yes"], "{out}");
    assert_eq!(row("migrate")[2..4], ["completed", "-"], "{out}");

    let (code, json) = verb(&state, &["ps", "--json"]);
    assert_eq!(code, 0, "{json}");
    let all: Value = serde_json::from_str(&json).unwrap();
    let ready_of = |id: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|p| p["process_id"] == id)
            .map(|p| p["ready"].clone())
    };
    assert_eq!(ready_of("web"), Some(Value::Bool(true)), "{all}");
    assert_eq!(ready_of("migrate"), Some(Value::Null), "{all}");

    // Stopped in reverse order: web before db.
    host.terminate().unwrap();
    let stops: Vec<String> = read_events(&state, &["process.cancelled"])
        .unwrap()
        .iter()
        .map(|e| subject(e).to_string())
        .collect();
    assert_eq!(stops, ["web", "db"]);
}

#[test]
fn a_dependency_cycle_is_a_config_error_naming_the_cycle_and_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let config = tmp.path().join("host.toml");
    std::fs::write(
        &config,
        "[process.a]\ncommand = \"sleep 1\"\ndepends_on = [\"b\"]\n\n\
         [process.b]\ncommand = \"sleep 1\"\ndepends_on = { c = \"started\" }\n\n\
         [process.c]\ncommand = \"sleep 1\"\ndepends_on = [\"a\"]\n\n\
         [process.d]\ncommand = \"sleep 1\"\ndepends_on = [\"nobody\"]\n",
    )
    .unwrap();
    let run = |config: &Path| {
        let out = run_host(
            [
                "run".as_ref(),
                "--plugins".as_ref(),
                plugins.as_os_str(),
                "--config".as_ref(),
                config.as_os_str(),
                "--state-dir".as_ref(),
                tmp.path().join("state").as_os_str(),
            ],
            PATIENCE,
        )
        .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run(&config);
    let file = config.display().to_string();
    // The unknown name is found first, in name order (a, b, c, d).
    assert!(
        stderr.contains(&format!("{file}:15"))
            && stderr.contains("process.d.depends_on.nobody: no such process"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"nobody\"", "\"a\"")).unwrap();
    let stderr = run(&config);
    assert!(
        stderr.contains(&format!("{file}:3"))
            && stderr.contains("process.a.depends_on: dependency cycle a → b → c → a"),
        "{stderr}"
    );
}

#[test]
fn a_start_behind_a_dependency_that_is_not_ready_answers_at_once_and_says_what_it_waits_for() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let flag = tmp.path().join("db-ready");
    let config = tmp.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[process.web]
command = "exec sleep 300"
autostart = false
depends_on = {{ db = "healthy" }}

[process.db]
command = "exec sleep 300"
autostart = false
readiness_probe = {{ exec = "test -f {flag}", period = "100ms" }}
"#,
            flag = flag.display()
        ),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let mut host = RunningHost::start(
        &plugins,
        &state,
        &["--config", config.to_str().unwrap(), "--no-build"],
    );
    host.wait_for("host.started", PATIENCE, |_| true).unwrap();
    // db runs but is not ready: `host start web` answers without waiting
    // for it (it would wait as long as the client let it).
    let (code, out) = verb(&state, &["start", "web"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("web  starting"), "{out}");
    assert!(out.contains("waiting for db"), "{out}");
    let web = listed(&state, "web");
    assert_eq!(web["state"], "starting", "{web}");
    assert_eq!(web["waiting_for"], serde_json::json!(["db"]), "{web}");
    let (_, table) = verb(&state, &["ps"]);
    assert!(table.contains("waiting for db"), "{table}");
    // Once db is ready, web spawns on its own and waits for nothing.
    std::fs::write(&flag, "").unwrap();
    host.wait_for("process.started", PATIENCE, |e| subject(e) == "web")
        .unwrap();
    let web = listed(&state, "web");
    assert_eq!(web["waiting_for"], serde_json::json!([]), "{web}");
    host.terminate().unwrap();
}
