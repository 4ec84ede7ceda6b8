//! Workspace events for processes with `watch_workspace = true`, and the aggregator's queries.
//!
//! A process with `watch_workspace = true` creates, modifies and deletes
//! files in its cwd (and writes under `.git/` and `target/`, which must not
//! show up); the changes appear as `workspace.*` events in `host events
//! --json` and the API; the watch's inotify instance exists only while the
//! process runs, and changes after it stopped produce nothing. Provider
//! events posted by an agent, and the stats by source and per minute, are
//! read back through the CLI and the API.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use host_tests::{RunningHost, eventually, run_host};
use serde_json::{Value, json};

use crate::PATIENCE;

/// Inotify instances the process `pid` holds open.
fn inotify_instances(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|target| target.to_string_lossy() == "anon_inode:inotify")
                })
                .count()
        })
        .unwrap_or(0)
}

/// `(type, path)` of the workspace file events in `events`.
fn changes(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("workspace.file_"))
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["data"]["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn change(ty: &str, path: &str) -> (String, String) {
    (format!("workspace.file_{ty}"), path.to_string())
}

/// `host events --stats ARGS --state-dir STATE`, its stdout.
fn stats_cli(state: &Path, args: &[&str]) -> String {
    let mut all: Vec<&OsStr> = vec![OsStr::new("events"), OsStr::new("--stats")];
    all.extend(args.iter().map(OsStr::new));
    all.extend([OsStr::new("--state-dir"), state.as_os_str()]);
    let out = run_host(all, PATIENCE).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_watched_process_reports_its_file_changes_until_it_stops_and_stats_count_them() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(ws.join(".git")).unwrap();
    std::fs::create_dir_all(ws.join("target")).unwrap();
    // Steps a second apart, so each lands in a window of its own.
    let script = "echo one > notes.txt; sleep 1; echo two >> notes.txt; sleep 1; \
                  rm notes.txt; echo ref > .git/ORIG_HEAD; echo obj > target/app; \
                  mkdir -p src; echo 'fn main() {}' > src/main.rs; sleep 1; \
                  echo done > done.flag; exec sleep 1000";
    let config = tmp.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[process.coder]\ncommand = {script:?}\ncwd = {:?}\nautostart = false\nwatch_workspace = true\n",
            ws.display().to_string()
        ),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let mut host = RunningHost::start(&plugins, &state, &["--config", config.to_str().unwrap()]);
    let api = host.api();
    let host_pid = host.child.id();
    let before = inotify_instances(host_pid);

    let (status, body) = api.post("/v1/processes/coder/start", &json!({}));
    assert_eq!(status, 200, "{body}");
    host.wait_for("workspace.file_created", PATIENCE, |e| {
        e["data"]["path"] == "done.flag"
    })
    .unwrap();
    assert_eq!(
        inotify_instances(host_pid),
        before + 1,
        "one inotify instance while the process runs"
    );

    let events = host.events("workspace.>");
    let seen = changes(&events);
    for want in [
        change("created", "notes.txt"),
        change("modified", "notes.txt"),
        change("deleted", "notes.txt"),
        change("created", "src"),
        change("created", "src/main.rs"),
        change("created", "done.flag"),
    ] {
        assert!(seen.contains(&want), "{want:?} missing from {seen:#?}");
    }
    assert!(
        seen.iter()
            .all(|(_, p)| !p.starts_with(".git") && !p.starts_with("target")),
        "ignored folders reported: {seen:#?}"
    );
    let first = &events[0];
    assert_eq!(first["source"], "host/workspace");
    assert_eq!(first["subject"], "coder");
    assert_eq!(first["data"]["process"], "coder");
    assert_eq!(
        events.iter().find(|e| e["data"]["path"] == "src").unwrap()["data"]["kind"],
        "dir"
    );

    // The same events through the API, by source and type.
    let (status, page) = api.get("/v1/events?source=host/workspace&type=workspace.%3E&limit=1000");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"].as_array().unwrap().len(), events.len());

    // Provider events from an agent are accepted; workspace events are the host's.
    for ty in [
        "provider.api_call",
        "provider.api_call",
        "provider.rate_limit",
    ] {
        let (status, body) = api.post(
            "/v1/events",
            &json!({ "type": ty, "source": "coder", "subject": "coder",
                     "data": { "provider": "anthropic", "model": "m", "tokens_used": 10 } }),
        );
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = api.post(
        "/v1/events",
        &json!({ "type": "workspace.file_created", "data": { "path": "forged" } }),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("type")),
        "{body}"
    );

    // Stats of the last ten minutes: by source, by type, per minute.
    let (status, stats) = api.get("/v1/events/stats?since=10m");
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats["by_source"]["host/workspace"].as_u64(),
        Some(events.len() as u64),
        "{stats:#}"
    );
    assert_eq!(stats["by_source"]["api/coder"], 3, "{stats:#}");
    assert_eq!(stats["by_type"]["provider.api_call"], 2, "{stats:#}");
    let per_minute: u64 = stats["per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["events"].as_u64().unwrap())
        .sum();
    assert_eq!(per_minute, stats["total"].as_u64().unwrap(), "{stats:#}");
    assert!(stats["events_per_minute"].as_f64().unwrap() > 0.0);
    assert_eq!(stats["complete"], true);

    // The CLI gives the same window's counts from the journal.
    let cli: Value =
        serde_json::from_str(&stats_cli(&state, &["--since", "10m", "--json"])).unwrap();
    assert_eq!(cli["by_source"]["api/coder"], 3, "{cli:#}");
    assert!(cli["by_source"]["host/workspace"].as_u64().unwrap() >= events.len() as u64);
    assert!(!cli["per_minute"].as_array().unwrap().is_empty());
    let text = stats_cli(&state, &["--since", "10m"]);
    assert!(
        text.contains("host/workspace") && text.contains("per minute"),
        "{text}"
    );
    let text = stats_cli(&state, &[]);
    assert!(text.contains("per minute (last hour)"), "{text}");

    // Stopped: the watch is gone and later changes are not reported.
    let (status, body) = api.post("/v1/processes/coder/stop", &json!({ "force": true }));
    assert_eq!(status, 200, "{body}");
    assert!(
        eventually(PATIENCE, || inotify_instances(host_pid) == before),
        "the watch's inotify instance outlived the process"
    );
    let reported = host.events("workspace.>").len();
    std::fs::write(ws.join("after.txt"), "late").unwrap();
    std::fs::write(ws.join("src/main.rs"), "fn main() { late() }").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let after = host.events("workspace.>");
    assert_eq!(after.len(), reported, "{:#?}", &after[reported..]);

    let status = host.terminate().unwrap();
    assert!(status.success(), "{}", host.stderr());
}

#[test]
fn a_runtime_process_can_ask_for_its_workspace_to_be_watched() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&ws).unwrap();
    let state = tmp.path().join("state");
    let mut host = RunningHost::start(&plugins, &state, &[]);
    let api = host.api();
    let (status, body) = api.post(
        "/v1/processes",
        &json!({ "process_type": "ai-coder", "name": "Write a file",
                 "command": "sleep 1; echo hi > hello.txt; exec sleep 1000",
                 "cwd": ws.display().to_string(), "watch_workspace": true }),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["process_id"].as_str().unwrap().to_string();
    let event = host
        .wait_for("workspace.file_created", PATIENCE, |e| {
            e["data"]["path"] == "hello.txt"
        })
        .unwrap();
    assert_eq!(event["subject"].as_str(), Some(id.as_str()));
    let (status, body) = api.post(
        &format!("/v1/processes/{id}/stop"),
        &json!({ "force": true }),
    );
    assert_eq!(status, 200, "{body}");
    let status = host.terminate().unwrap();
    assert!(status.success(), "{}", host.stderr());
}
