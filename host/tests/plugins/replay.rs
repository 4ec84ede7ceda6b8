//! `host plugin test`'s replay against real components: the shipped
//! failure-alert on a recorded failure, two versions of one handler, a
//! plugin that spins or blocks, the history import under replay, a status
//! mapper, a dependency rule on a tasks file, an agent refused.

use super::*;

use host::authoring::replay::{ClockMode, Input, Replay, ReplayOptions, replay};
use host::authoring::replay_render::{compare, render};

/// One event as `host events --json` prints it: `secs` after a fixed
/// start, from the supervisor unless `ty` is a test event.
fn line(seq: u64, secs: i64, ty: &str, subject: &str, data: Value) -> String {
    let time = chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap();
    let source = if ty.starts_with("test.") {
        "host/api"
    } else {
        "host/supervisor"
    };
    json!({
        "specversion": "1.0", "id": format!("id-{seq}"), "source": source,
        "type": ty, "subject": subject, "time": time.to_rfc3339(),
        "sequence": seq, "datacontenttype": "application/json", "data": data,
    })
    .to_string()
        + "\n"
}

fn write(dir: &TempDir, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, lines.concat()).unwrap();
    path
}

async fn run(plugin: &Path, input: Input, clock: ClockMode) -> Replay {
    let options = ReplayOptions {
        clock,
        ..ReplayOptions::default()
    };
    timeout(Duration::from_secs(120), replay(plugin, &input, &options))
        .await
        .expect("a replay never hangs")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Two processes fail three times each: `flaky` a minute apart, `slow`
/// eleven minutes apart (outside failure-alert's ten-minute window).
fn failures(dir: &TempDir) -> PathBuf {
    let mut lines = vec![
        line(1, 0, "process.created", "flaky", json!({"kind": "default"})),
        line(2, 0, "process.created", "slow", json!({"kind": "default"})),
    ];
    for i in 0..3u64 {
        let failed = json!({"exit_code": 3, "from": "running", "to": "failed"});
        lines.push(line(
            10 + i,
            60 * i as i64,
            "process.failed",
            "flaky",
            failed.clone(),
        ));
        lines.push(line(
            20 + i,
            660 * i as i64 + 5,
            "process.failed",
            "slow",
            failed,
        ));
        lines.push(line(
            30 + i,
            700 * i as i64,
            "process.output",
            "slow",
            json!({"lines": ["x"]}),
        ));
    }
    // Keep the file in recorded order.
    lines.sort_by_key(|l| serde_json::from_str::<Value>(l).unwrap()["sequence"].as_u64());
    write(dir, "failures.jsonl", &lines)
}

#[tokio::test]
async fn failure_alert_replays_a_recorded_failure_deciding_by_the_recorded_times() {
    let dir = TempDir::new().unwrap();
    let events = failures(&dir);
    let r = run(
        &shipped_plugin("failure-alert"),
        Input::Events(events.clone()),
        ClockMode::Virtual,
    )
    .await;
    let text = render(&r);
    let decided: Vec<&str> = r
        .steps
        .iter()
        .filter(|s| !s.decisions.is_empty())
        .map(|s| s.input.as_str())
        .collect();
    assert_eq!(decided, ["#12 process.failed flaky"], "{text}");
    let alert = &r
        .steps
        .iter()
        .find(|s| s.sequence == Some(12))
        .unwrap()
        .decisions;
    assert_eq!(alert.len(), 1, "{text}");
    assert!(
        alert[0].starts_with("emit alert.process_failures flaky ")
            && alert[0].contains("\"failures\":3")
            && alert[0].contains("\"last_exit_code\":3"),
        "{text}"
    );
    assert_eq!(
        r.steps.len(),
        6,
        "only process.failed is subscribed: {text}"
    );
    assert_eq!(r.inputs, 11);

    // The same recording again decides the same, to the byte.
    let again = run(
        &shipped_plugin("failure-alert"),
        Input::Events(events.clone()),
        ClockMode::Virtual,
    )
    .await;
    assert_eq!(render(&again), text);

    // With the real clock every failure happens "now": `slow` alerts too.
    let real = run(
        &shipped_plugin("failure-alert"),
        Input::Events(events),
        ClockMode::Real,
    )
    .await;
    let c = compare(&real, &r);
    let differ: Vec<&str> = c.differences.iter().map(|d| d.input.as_str()).collect();
    assert_eq!(differ, ["#22 process.failed slow"], "{}", render(&real));
}

#[tokio::test]
async fn two_versions_of_a_handler_differ_only_where_their_code_does() {
    let dir = TempDir::new().unwrap();
    let events = write(
        &dir,
        "pings.jsonl",
        &[
            line(1, 0, "test.ping", "a", json!({})),
            line(2, 1, "test.ping", "a", json!({"fail": true})),
            line(3, 2, "test.other", "a", json!({})),
            line(4, 3, "test.ping", "b", json!({})),
        ],
    );
    let v2 = run(
        &fixture("echo-v2"),
        Input::Events(events.clone()),
        ClockMode::Virtual,
    )
    .await;
    let v1 = run(
        &fixture("echo-v1"),
        Input::Events(events),
        ClockMode::Virtual,
    )
    .await;
    let c = compare(&v2, &v1);
    assert_eq!(c.same, 1, "both refuse #2 the same way: {c:#?}");
    let differ: Vec<&str> = c.differences.iter().map(|d| d.input.as_str()).collect();
    assert_eq!(differ, ["#1 test.ping a", "#4 test.ping b"]);
    let first = &c.differences[0];
    assert!(
        first.new.as_ref().unwrap()[0].contains("\"version\":2"),
        "{first:?}"
    );
    assert!(
        first.old.as_ref().unwrap()[0].contains("\"version\":1"),
        "{first:?}"
    );
    let refused = &v2.steps[1].decisions;
    assert_eq!(
        refused,
        &["error from handle: asked to fail"],
        "{}",
        render(&v2)
    );
}

#[tokio::test]
async fn a_plugin_that_spins_or_blocks_fails_that_event_at_its_deadline_and_the_replay_goes_on() {
    let dir = TempDir::new().unwrap();
    let plugin = install_component(&fixture("hostile"), dir.path(), "hostile");
    let folder = dir.path().join("hostile-folder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::rename(&plugin, folder.join("hostile.wasm")).unwrap();
    std::fs::write(
        folder.join("plugin.toml"),
        "name = \"hostile\"\ncomponent = \"hostile.wasm\"\n[limits]\ndeadline_ms = 200\n",
    )
    .unwrap();
    let events = write(
        &dir,
        "hostile.jsonl",
        &[
            line(1, 0, "test.hostile", "p", json!({"do": "spin"})),
            line(
                2,
                1,
                "test.hostile",
                "p",
                json!({"do": "block", "with": "sleep", "ms": 30000}),
            ),
            line(
                3,
                2,
                "test.hostile",
                "p",
                json!({"do": "block", "with": "poll", "ms": 30000}),
            ),
            line(4, 3, "test.hostile", "p", json!({"do": "anything"})),
        ],
    );
    let started = std::time::Instant::now();
    let r = run(&folder, Input::Events(events), ClockMode::Virtual).await;
    let text = render(&r);
    for seq in 0..3 {
        assert_eq!(
            r.steps[seq].decisions,
            ["failed: handle ran past its deadline of 200 ms"],
            "{text}"
        );
    }
    assert!(
        r.steps[3].decisions[0] == "emit test.hostile-done - {\"sequence\":4}",
        "a fresh instance answers the next event: {text}"
    );
    assert!(text.contains("3 failed"), "{text}");
    // Not a speed assertion: the blocks asked for 30 s each.
    assert!(started.elapsed() < Duration::from_secs(60), "{text}");
}

#[tokio::test]
async fn history_under_replay_sees_the_events_replayed_so_far_and_never_a_later_one() {
    let dir = TempDir::new().unwrap();
    let events = write(
        &dir,
        "history.jsonl",
        &[
            line(5, 0, "a.x", "s", json!({})),
            line(6, 60, "a.x", "s", json!({})),
            line(
                9,
                120,
                "test.history",
                "s",
                json!({"types": ["a.x"], "limit": 10}),
            ),
            line(12, 180, "a.x", "s", json!({})),
            line(
                13,
                240,
                "test.history",
                "s",
                json!({"types": ["a.x"], "since_ms": 1_800_000_030_000u64, "limit": 10}),
            ),
        ],
    );
    let r = run(
        &fixture("aggregator-reader"),
        Input::Events(events),
        ClockMode::Virtual,
    )
    .await;
    let text = render(&r);
    assert!(
        r.steps[0].decisions[0].contains("\"sequences\":[5,6]"),
        "{text}"
    );
    assert!(
        r.steps[1].decisions[0].contains("\"sequences\":[6,12]"),
        "{text}"
    );
}

#[tokio::test]
async fn a_status_mapper_gets_output_of_processes_of_its_kinds_from_the_recorded_table() {
    let dir = TempDir::new().unwrap();
    let events = write(
        &dir,
        "output.jsonl",
        &[
            line(1, 0, "process.created", "job", json!({"kind": "sink"})),
            line(2, 0, "process.created", "web", json!({"kind": "other"})),
            line(3, 1, "process.output", "job", json!({"lines": ["working"]})),
            line(4, 2, "process.output", "web", json!({"lines": ["done"]})),
            line(5, 3, "process.output", "job", json!({"lines": ["done"]})),
        ],
    );
    let r = run(
        &fixture("kitchen-sink"),
        Input::Events(events.clone()),
        ClockMode::Virtual,
    )
    .await;
    let text = render(&r);
    let steps: Vec<(&str, &[String])> = r
        .steps
        .iter()
        .map(|s| (s.input.as_str(), s.decisions.as_slice()))
        .collect();
    assert_eq!(steps.len(), 2, "web is not of its kinds: {text}");
    assert_eq!(steps[0], ("#3 process.output job", &[][..]));
    assert_eq!(
        steps[1].1,
        ["set-status job state=completed progress=1 message=\"done\""],
        "{text}"
    );

    // A fixed snapshot where `job` is of another kind: nothing is fed.
    let snapshot = dir.path().join("ps.json");
    std::fs::write(&snapshot, r#"[{"name": "job", "kind": "other"}]"#).unwrap();
    let options = ReplayOptions {
        snapshot: Some(snapshot),
        ..ReplayOptions::default()
    };
    let fixed = replay(&fixture("kitchen-sink"), &Input::Events(events), &options)
        .await
        .unwrap();
    assert!(fixed.steps.is_empty(), "{}", render(&fixed));
}

#[tokio::test]
async fn a_dependency_rule_is_replayed_over_a_tasks_file_and_an_agent_is_refused() {
    let dir = TempDir::new().unwrap();
    let task = |id: &str, title: &str| {
        json!({"id": id, "repository": "r", "title": title, "description": "", "keywords": []})
            .to_string()
            + "\n"
    };
    let tasks = write(
        &dir,
        "tasks.jsonl",
        &[task("a", "login"), task("b", "logout"), task("c", "login")],
    );
    let r = run(
        &fixture("kitchen-sink"),
        Input::Tasks(tasks.clone()),
        ClockMode::Virtual,
    )
    .await;
    let text = render(&r);
    assert_eq!(r.steps.len(), 3, "{text}");
    assert!(
        r.steps[0].decisions.is_empty() && r.steps[1].decisions.is_empty(),
        "{text}"
    );
    assert_eq!(r.steps[2].decisions.len(), 1, "{text}");
    assert!(
        r.steps[2].decisions[0].starts_with("depends on a: same-title"),
        "{text}"
    );

    let err = replay(
        &fixture("counter-agent"),
        &Input::Tasks(tasks.clone()),
        &ReplayOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("background agent decides on a timer"), "{err}");
    let err = replay(
        &fixture("echo-v1"),
        &Input::Tasks(tasks),
        &ReplayOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("tasks drive dependency rules"), "{err}");
    let events = write(&dir, "e.jsonl", &[line(1, 0, "test.ping", "a", json!({}))]);
    // An events file given as tasks names the line.
    assert!(
        replay(
            &fixture("kitchen-sink"),
            &Input::Tasks(events),
            &ReplayOptions::default()
        )
        .await
        .unwrap_err()
        .to_string()
        .contains("e.jsonl:1: task:")
    );
}
