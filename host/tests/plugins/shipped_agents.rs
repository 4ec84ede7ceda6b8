//! Tests of the shipped background agents (pm, gatherer, security) against their compiled components.
//!
//! The agents run under the real scheduler (`host::agents::Scheduler`) on
//! the harness's bus and fake process table; their actions are read from
//! the channel the scheduler sends to. The security plugin is an event
//! handler (the command and environment are visible only in
//! `process.created`), tested here with its family.

use std::time::Instant;

use super::*;

/// A harness with the shipped plugin `name` under a manifest ending in
/// `extra`, the process table holding `table` before the first tick, and a
/// scheduler ticking its agents into `h.actions`.
async fn shipped_agent(
    name: &str,
    extra: &str,
    table: Vec<ProcessInfo>,
) -> (Harness, host::agents::Scheduler) {
    let mut h = harness(&[], |_| {}).await;
    manifest_plugin(&h, name, &shipped_component(name), extra);
    h.host.reconcile().await.unwrap();
    h.processes.0.lock().unwrap().extend(table);
    let (tx, rx) = mpsc::channel(1024);
    h.actions = rx;
    let agents = host::agents::Scheduler::start(h.host.clone(), h.bus.clone(), tx);
    (h, agents)
}

fn ago(d: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::from_std(d).unwrap()
}

fn restarts(request: &ActionRequest) -> Vec<String> {
    request
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Restart { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

const PM_CONFIG: &str = "[config]\ninterval_ms = 50\nstall_after_secs = 60\nmax_heals = 1\nheal_window_secs = 3600\ncheckin_every_secs = 3600\n";

#[tokio::test]
async fn the_pm_heals_a_stalled_process_once_then_reports_it_blocked_at_its_limit() {
    let now = chrono::Utc::now();
    let mut stuck = process("stuck", "worker");
    stuck.started_at = Some(ago(Duration::from_secs(3600)));
    let mut busy = process("busy", "worker");
    busy.started_at = Some(ago(Duration::from_secs(3600)));
    busy.last_output_at = Some(now);
    busy.progress = Some(0.25);
    let mut ghost = process("ghost", "worker");
    ghost.pid = None;
    ghost.started_at = Some(now);
    let (mut h, agents) = shipped_agent("pm", PM_CONFIG, vec![stuck, busy, ghost]).await;

    // The first tick, at once.
    let first = h.next_action().await;
    assert_eq!(first.plugin, "pm");
    assert_eq!(restarts(&first), ["stuck", "ghost"]);
    let emits = emitted(&first);
    let healed: Vec<&Value> = emits
        .iter()
        .filter(|(ty, _)| ty == "pm.healed")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(healed.len(), 2);
    assert_eq!(healed[1]["reason"], "running with no live pid");
    assert_eq!(healed[0]["process"], "stuck");
    assert!(
        healed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("no output for 3"),
        "{}",
        healed[0]
    );
    assert_eq!(
        (
            healed[0]["attempt"].as_u64(),
            healed[0]["max_heals"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let checkin = emits
        .iter()
        .find(|(ty, _)| ty == "pm.checkin")
        .map(|(_, d)| d)
        .expect("a check-in at the first tick");
    assert_eq!(checkin["type"], "review", "{checkin}");
    assert_eq!(checkin["findings"]["progress"]["running"], 3);
    assert_eq!(checkin["findings"]["progress"]["mean_progress"], 0.25);
    assert!(
        emits
            .iter()
            .any(|(ty, d)| ty == "process.stalled" && d["process"] == "stuck")
    );

    // Later ticks of the same episode do nothing more.
    let quiet_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < quiet_until {
        if let Ok(r) = h.actions.try_recv() {
            assert!(
                restarts(&r).is_empty(),
                "healed the same episode twice: {r:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The restart happened and the new run stalls too: past the limit the
    // PM does not restart again; it says so, and the check-in's blockers
    // name it.
    {
        let mut table = h.processes.0.lock().unwrap();
        let stuck = table.iter_mut().find(|p| p.name == "stuck").unwrap();
        stuck.started_at = Some(ago(Duration::from_secs(1800)));
        stuck.restarts = 1;
    }
    let skipped = loop {
        let r = h.next_action().await;
        assert!(restarts(&r).is_empty(), "restarted past max_heals: {r:?}");
        if let Some((_, d)) = emitted(&r)
            .into_iter()
            .find(|(ty, _)| ty == "pm.heal_skipped")
        {
            break d;
        }
    };
    assert_eq!(skipped["process"], "stuck");
    assert_eq!(skipped["why"], "heal limit reached");

    let activity = h.events("agent.activity").into_iter().find(|e| {
        e.data["activity"]
            .as_str()
            .unwrap()
            .contains("healed in window")
    });
    assert!(activity.is_some(), "the activity says what the PM does");
    let state = agents
        .list()
        .into_iter()
        .find(|a| a.plugin == "pm")
        .unwrap();
    assert_eq!(state.name, "pm");
    assert!(state.cycles >= 2);
    agents.shutdown().await;
    let state = agents
        .list()
        .into_iter()
        .find(|a| a.plugin == "pm")
        .unwrap();
    assert_eq!(
        state.status,
        host::agents::AgentStatus::Stopped,
        "stopped on shutdown, as the seed's agents are"
    );
}

#[tokio::test]
async fn the_pm_checks_in_with_progress_concerns_and_blockers() {
    let mut failed = process("tests", "test_suite");
    failed.state = ProcessState::Failed;
    failed.exit_code = Some(1);
    let mut coder = process("coder", "ai-coder");
    coder.started_at = Some(chrono::Utc::now());
    coder.progress = Some(0.5);
    let (mut h, agents) = shipped_agent(
        "pm",
        "[config]\ninterval_ms = 50\ncheckin_every_secs = 3600\nheal = false\n",
        vec![failed, coder],
    )
    .await;
    let (ty, checkin) = emitted(&h.next_action().await).remove(0);
    assert_eq!(ty, "pm.checkin");
    assert_eq!(
        checkin,
        json!({
            "type": "blocker",
            "summary": "2 processes: 1 running, 0 completed, 1 failed; 0 concerns, 1 blockers",
            "action_required": "Address blockers to unblock the work",
            "findings": {
                "progress": { "processes": 2, "running": 1, "completed": 0, "failed": 1,
                              "mean_progress": 0.5 },
                "concerns": [],
                "blockers": ["tests failed (exit code 1)"],
            },
        })
    );
    // Not again before checkin_every_secs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.actions.try_recv().is_err());
    agents.shutdown().await;
}

/// A gatherer manifest granting `dir` (if any) as `/data`; `extra` holds
/// more `[config]` lines (`rescan_secs` among them).
fn gatherer_manifest(dir: Option<&Path>, extra: &str) -> String {
    let grant = match dir {
        Some(d) => format!("dirs = [{{ host = {d:?}, guest = \"/data\", read_only = true }}]\n"),
        None => String::new(),
    };
    format!("[config]\ninterval_ms = 20\n{extra}[permissions]\n{grant}emit = [\"gatherer.>\"]\n")
}

#[tokio::test]
async fn the_gatherer_reads_tags_from_its_granted_folder_and_publishes_only_changes() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("src")).unwrap();
    std::fs::write(
        data.path().join("src/lib.rs"),
        "fn a() {}\n// TODO: cover the empty case\n/* FIXME leaks */\n",
    )
    .unwrap();
    std::fs::write(data.path().join("notes.md"), "nothing to see\n").unwrap();
    let (mut h, agents) = shipped_agent(
        "gatherer",
        &gatherer_manifest(Some(data.path()), "rescan_secs = 0\n"),
        vec![],
    )
    .await;
    let mut emits = Vec::new();
    while !emits
        .iter()
        .any(|(ty, _): &(String, Value)| ty == "gatherer.scan_completed")
    {
        emits.extend(emitted(&h.next_action().await));
    }
    assert_eq!(
        emits[0],
        (
            "gatherer.findings".to_string(),
            json!({ "file": "/data/src/lib.rs", "total": 2, "truncated": false, "partial": false,
                    "findings": [ { "line": 2, "tag": "TODO", "text": "cover the empty case" },
                                  { "line": 3, "tag": "FIXME", "text": "leaks */" } ] })
        )
    );
    let summary = &emits.last().unwrap().1;
    assert_eq!(
        (
            summary["files"].as_u64(),
            summary["files_with_findings"].as_u64()
        ),
        (Some(2), Some(1))
    );

    // Rescans (rescan_secs = 0) publish nothing until a file changes.
    std::fs::write(data.path().join("notes.md"), "HACK: temporary\n").unwrap();
    std::fs::write(data.path().join("src/lib.rs"), "fn a() {}\n").unwrap();
    let mut changed = Vec::new();
    while changed.len() < 2 {
        for (ty, d) in emitted(&h.next_action().await) {
            if ty == "gatherer.findings" {
                changed.push(d);
            }
        }
    }
    changed.sort_by_key(|d| d["file"].as_str().unwrap().to_string());
    assert_eq!(changed[0]["file"], "/data/notes.md");
    assert_eq!(changed[0]["findings"][0]["tag"], "HACK");
    assert_eq!(changed[1]["file"], "/data/src/lib.rs");
    assert_eq!(changed[1]["total"], 0, "resolved: {}", changed[1]);
    assert!(h.events("plugin.failed").is_empty());
    agents.shutdown().await;
}

#[tokio::test]
async fn without_a_grant_the_gatherer_reads_nothing_and_the_failed_tick_says_why() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("a.rs"), "// TODO secret plans\n").unwrap();
    let (mut h, agents) = shipped_agent("gatherer", &gatherer_manifest(None, ""), vec![]).await;
    let error = h
        .wait_event("agent.error", |e| e.data["agent"] == "gatherer")
        .await;
    let text = error.data["error"].as_str().unwrap();
    assert!(text.contains("cannot read /data"), "{text}");
    assert!(text.contains("[permissions] dirs"), "{text}");
    h.wait_event("plugin.error", |e| e.data["plugin"] == "gatherer")
        .await;
    // The agent retries every 20 ms and shows `running` while a retry's
    // tick runs, so a listing may fall inside one: wait for a listing
    // between ticks, which must show the error.
    let state = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let state = agents
                .list()
                .into_iter()
                .find(|a| a.plugin == "gatherer")
                .unwrap();
            if state.status != host::agents::AgentStatus::Running {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the agent rests between ticks within 30 s");
    assert_eq!(state.status, host::agents::AgentStatus::Error);
    assert!(
        state
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("cannot read /data"),
        "{:?}",
        state.last_error
    );
    assert!(h.actions.try_recv().is_err(), "no findings without a grant");
    agents.shutdown().await;

    // A root pointing at the host path directly is no better: the sandbox
    // has no such folder.

    let (mut h, agents) = shipped_agent(
        "gatherer",
        &gatherer_manifest(None, &format!("root = {:?}\n", data.path())),
        vec![],
    )
    .await;
    let error = h
        .wait_event("agent.error", |e| e.data["agent"] == "gatherer")
        .await;
    assert!(
        error.data["error"]
            .as_str()
            .unwrap()
            .contains("cannot read")
    );
    assert!(h.actions.try_recv().is_err());
    agents.shutdown().await;
}

#[tokio::test]
async fn the_gatherer_covers_thousands_of_files_and_a_large_file_in_ticks_within_the_deadline() {
    let data = tempfile::tempdir().unwrap();
    for d in 0..10 {
        let dir = data.path().join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..300 {
            let body = if f % 50 == 0 {
                "// TODO one\n"
            } else {
                "code\n"
            };
            std::fs::write(dir.join(format!("f{f}.rs")), body).unwrap();
        }
    }
    // 48 MiB, a FIXME on its very last line.
    let mut big = "let x = 1;\n".repeat((48 << 20) / 11);
    big.push_str("// FIXME at the end\n");
    std::fs::write(data.path().join("big.rs"), &big).unwrap();
    let (mut h, agents) = shipped_agent(
        "gatherer",
        &gatherer_manifest(Some(data.path()), "max_file_mib = 64\nrescan_secs = 3600\n"),
        vec![],
    )
    .await;
    let mut findings = Vec::new();
    let summary = loop {
        let mut done = None;
        for (ty, d) in emitted(&h.next_action().await) {
            match ty.as_str() {
                "gatherer.findings" => findings.push(d),
                "gatherer.scan_completed" => done = Some(d),
                _ => {}
            }
        }
        if let Some(d) = done {
            break d;
        }
    };
    assert_eq!(findings.len(), 61, "60 small files and the large one");
    let large = findings
        .iter()
        .find(|d| d["file"] == "/data/big.rs")
        .unwrap();
    assert_eq!(large["findings"][0]["tag"], "FIXME");
    assert_eq!(summary["files"], 3001);
    assert!(summary["bytes"].as_u64().unwrap() > 48 << 20);
    assert!(
        h.events("plugin.failed").is_empty(),
        "no tick overran its deadline: {:#?}",
        h.events("plugin.failed")
    );
    let state = agents
        .list()
        .into_iter()
        .find(|a| a.plugin == "gatherer")
        .unwrap();
    assert!(
        state.cycles > 10,
        "the scan took many ticks: {}",
        state.cycles
    );
    agents.shutdown().await;
}

const GHP: &str = "ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
const AWS: &str = "AKIAIOSFODNN7EXAMPLE";

#[tokio::test]
async fn the_security_plugin_names_where_and_what_secrets_are_but_never_their_values() {
    let h = harness(&[], |_| {}).await;
    manifest_plugin(&h, "security", &shipped_component("security"), "");
    h.host.reconcile().await.unwrap();
    let mut h = h;
    let created = |name: &str, spec: Value| {
        NewEvent::new(
            "host/supervisor",
            "process.created",
            json!({ "origin": "config", "kind": "worker", "label": null, "spec": spec }),
        )
        .with_subject(name)
    };
    h.bus
        .publish(created(
            "clean",
            json!({ "command": "sleep 1", "env": { "HOME": "/root" } }),
        ))
        .unwrap();
    h.bus
        .publish(created(
            "leaky",
            json!({
                "command": format!("deploy --token {GHP} DB_PASSWORD=hunter2"),
                "env": { "AWS_ACCESS_KEY_ID": AWS, "KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn" },
            }),
        ))
        .unwrap();
    let request = h.next_action().await;
    let found: Vec<(String, String)> = emitted(&request)
        .into_iter()
        .map(|(ty, d)| {
            assert_eq!(ty, "security.secret_found");
            assert_eq!(d["process"], "leaky");
            (
                d["where"].as_str().unwrap().to_string(),
                d["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("command", "github_token"),
        ("command", "token"),
        ("command", "password"),
        ("env:AWS_ACCESS_KEY_ID", "aws_access_key"),
        ("env:KEY", "private_key"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(found, expected);
    // Nothing the plugin published or logged holds a prefix of a secret.
    let published = serde_json::to_string(&request.actions).unwrap();
    for secret in [GHP, AWS, "hunter2", "b3Blbn"] {
        for n in 4..=secret.len() {
            assert!(
                !published.contains(&secret[..n]),
                "{} leaked into {published}",
                &secret[..n]
            );
        }
    }
    assert!(
        h.actions.try_recv().is_err(),
        "the clean process raised nothing"
    );
}
