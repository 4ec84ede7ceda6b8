//! Tests of the shipped status mappers (ai-coder, test-suite, build) against their compiled components.
//!
//! Each installs the shipped plugin folder as shipped (its `plugin.toml`:
//! config, grants, limits), feeds it events as the supervisor publishes
//! them, and reads the actions it decided from the harness's channel.

use super::*;
use host_tests::install_shipped_plugin;

/// A harness with the shipped plugins `names` installed before the first
/// load, and processes `(name, kind)` in its table.
async fn shipped(names: &[&'static str], processes: &[(&str, &str)]) -> Harness {
    let names = names.to_vec();
    let h = harness_prepared(
        &[],
        |dir| {
            for name in names {
                install_shipped_plugin(name, dir);
            }
        },
        |_| {},
    )
    .await;
    for (name, kind) in processes {
        h.processes.0.lock().unwrap().push(process(name, kind));
    }
    h
}

/// Publish a supervisor event about process `name`; returns its sequence.
fn about(h: &Harness, name: &str, ty: &str, data: Value) -> u64 {
    h.bus
        .publish(NewEvent::new("host/supervisor", ty, data).with_subject(name))
        .unwrap()
        .sequence
}

/// Publish output lines of process `name` as one `process.output` event.
fn output<S: AsRef<str>>(h: &Harness, name: &str, lines: &[S]) -> u64 {
    let lines: Vec<&str> = lines.iter().map(AsRef::as_ref).collect();
    about(
        h,
        name,
        "process.output",
        json!({ "stream": "stdout", "lines": lines, "truncated": 0 }),
    )
}

/// The lines of a fixture captured from a real run, in a shipped plugin's
/// `fixtures/` folder.
fn fixture_lines(plugin: &str, file: &str) -> Vec<String> {
    let path = shipped_plugin(plugin).join("fixtures").join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// The next `set-status` decided by `plugin`, with the sequence of the
/// event that caused it.
async fn next_status(
    h: &mut Harness,
    plugin: &str,
) -> (u64, Option<ProcessState>, Option<f32>, Option<String>) {
    loop {
        let request = h.next_action().await;
        if request.plugin != plugin {
            continue;
        }
        for action in &request.actions {
            if let Action::SetStatus { update, .. } = action {
                let seq = request.cause.map(|c| c.sequence).unwrap_or(0);
                return (seq, update.state, update.progress, update.message.clone());
            }
        }
    }
}

/// The next event of type `ty` a plugin asked to emit, with the sequence of
/// its cause.
async fn next_emit(h: &mut Harness, ty: &str) -> (u64, Value) {
    loop {
        let request = h.next_action().await;
        let seq = request.cause.map(|c| c.sequence).unwrap_or(0);
        if let Some((_, data)) = emitted(&request).into_iter().find(|(t, _)| t == ty) {
            return (seq, data);
        }
    }
}

#[tokio::test]
async fn the_ai_coder_mapper_drops_hostile_lines_and_maps_the_next_good_one() {
    let mut h = shipped(&["ai-coder-mapper"], &[("coder", "ai-coder")]).await;
    // Just under the bus's 1 MiB event limit.
    let huge = format!(
        r#"{{"status":"failed","message":"{}"}}"#,
        "x".repeat((1 << 20) - 4096)
    );
    output(
        &h,
        "coder",
        &[
            huge.as_str(),
            r#"{"status": "failed""#,
            r#"{"status":"pondering"}"#,
            "STATUS: failed",
            r#"[{"status":"failed"}]"#,
        ],
    );
    // A bad progress is dropped on its own: the state still maps.
    let good = output(&h, "coder", &[r#"{"status":"paused","progress":7.0}"#]);
    let (seq, state, progress, message) = next_status(&mut h, "ai-coder-mapper").await;
    assert_eq!(seq, good, "the hostile lines must have decided nothing");
    assert_eq!(
        (state, progress, message),
        (Some(ProcessState::Paused), None, None)
    );
}

#[tokio::test]
async fn the_ai_coder_mapper_maps_a_status_line_to_state_progress_and_message() {
    let mut h = shipped(&["ai-coder-mapper"], &[("coder", "ai-coder")]).await;
    output(
        &h,
        "coder",
        &[
            "thinking about it",
            r#"{"status":"running","progress":0.4,"message":"writing tests"}"#,
        ],
    );
    let (_, state, progress, message) = next_status(&mut h, "ai-coder-mapper").await;
    assert_eq!(state, Some(ProcessState::Running));
    assert_eq!(progress, Some(0.4));
    assert_eq!(message.as_deref(), Some("writing tests"));
}

#[tokio::test]
async fn the_ai_coder_mapper_reads_progress_and_message_of_a_reported_status_from_its_report() {
    let mut h = shipped(&["ai-coder-mapper"], &[("coder", "ai-coder")]).await;
    about(
        &h,
        "coder",
        "process.reported",
        json!({ "status": "paused", "progress": 0.5, "message": "waiting for review" }),
    );
    let (_, state, progress, message) = next_status(&mut h, "ai-coder-mapper").await;
    assert_eq!(state, Some(ProcessState::Paused));
    assert_eq!(progress, Some(0.5));
    assert_eq!(message.as_deref(), Some("waiting for review"));
}

#[tokio::test]
async fn one_mapper_per_kind_progress_mapper_leaves_ai_coders_builds_and_test_suites_alone() {
    let mut h = shipped(
        &["ai-coder-mapper", "progress-mapper"],
        &[
            ("coder", "ai-coder"),
            ("unit", "test_suite"),
            ("app", "build"),
            ("job", "job"),
        ],
    )
    .await;
    // progress-mapper would read all of these (`STATUS:`, `[n/m]`, `%`).
    for name in ["coder", "unit", "app"] {
        output(&h, name, &["STATUS: failed [1/2] 50%"]);
    }
    let job = output(&h, "job", &["[1/4] linking"]);
    let coder = output(&h, "coder", &[r#"{"progress":0.25}"#]);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let request = h.next_action().await;
        seen.push((request.plugin.clone(), request.cause.map(|c| c.sequence)));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("ai-coder-mapper".to_string(), Some(coder)),
            ("progress-mapper".to_string(), Some(job)),
        ]
    );
}

#[tokio::test]
async fn the_test_suite_mapper_shows_live_counts_and_reports_a_failing_pytest_run_at_its_end() {
    let mut h = shipped(&["test-suite-mapper"], &[("unit", "test_suite")]).await;
    about(&h, "unit", "process.created", json!({}));
    let lines = fixture_lines("test-suite-mapper", "pytest.txt");
    let cut = lines
        .iter()
        .position(|l| l.starts_with("test_sample.py"))
        .unwrap();
    output(&h, "unit", &lines[..cut]);
    let (_, state, progress, message) = next_status(&mut h, "test-suite-mapper").await;
    assert_eq!(state, None, "a test run's state is the supervisor's");
    assert_eq!(progress, Some(0.61));
    assert_eq!(message.as_deref(), Some("5 passed, 2 failed, 1 skipped"));
    output(&h, "unit", &lines[cut..]);
    let end = about(&h, "unit", "process.failed", json!({ "exit_code": 1 }));
    let (seq, data) = next_emit(&mut h, "test_suite.finished").await;
    assert_eq!(seq, end);
    assert_eq!(
        (
            &data["passed"],
            &data["failed"],
            &data["skipped"],
            &data["total"]
        ),
        (&json!(7), &json!(4), &json!(2), &json!(13)),
        "{data}"
    );
    assert_eq!(data["outcome"], "failed");
    assert_eq!(data["exit_code"], 1);
    assert_eq!(data["complete"], true);
    assert_eq!(data["lines"], lines.len());
    assert_eq!(data["failures"].as_array().unwrap().len(), 4);
    assert_eq!(
        data["failures"][2],
        json!({ "test": "test_sample.py::test_raises", "message": "ValueError: bad input: 42" })
    );
}

#[tokio::test]
async fn a_restarted_test_run_is_reported_with_its_own_counts_only() {
    let mut h = shipped(&["test-suite-mapper"], &[("unit", "test_suite")]).await;
    about(&h, "unit", "process.created", json!({}));
    output(
        &h,
        "unit",
        &fixture_lines("test-suite-mapper", "cargo_test.txt"),
    );
    let first = about(&h, "unit", "process.failed", json!({ "exit_code": 101 }));
    about(&h, "unit", "process.starting", json!({ "restarts": 1 }));
    output(
        &h,
        "unit",
        &fixture_lines("test-suite-mapper", "go_test_verbose.txt"),
    );
    let second = about(&h, "unit", "process.failed", json!({ "exit_code": 1 }));
    let (seq, data) = next_emit(&mut h, "test_suite.finished").await;
    assert_eq!(seq, first);
    assert_eq!((&data["passed"], &data["failed"]), (&json!(3), &json!(3)));
    assert_eq!(
        data["failures"][0]["message"],
        "panicked at src/lib.rs:9:21: assertion `left == right` failed left: 4 right: 5"
    );
    let (seq, data) = next_emit(&mut h, "test_suite.finished").await;
    assert_eq!(seq, second);
    assert_eq!(
        (&data["passed"], &data["failed"], &data["skipped"]),
        (&json!(2), &json!(2), &json!(1)),
        "{data}"
    );
}

#[tokio::test]
async fn thousands_of_failures_are_counted_exactly_and_only_the_first_are_carried() {
    let mut h = shipped(&["test-suite-mapper"], &[("unit", "test_suite")]).await;
    about(&h, "unit", "process.created", json!({}));
    let mut lines = vec!["running 5000 tests".to_string()];
    lines.extend((0..5000).map(|i| format!("test t{i} ... FAILED")));
    for chunk in lines.chunks(1000) {
        output(&h, "unit", chunk);
    }
    output(
        &h,
        "unit",
        &["test result: FAILED. 0 passed; 5000 failed; 0 ignored; 0 measured; 0 filtered out"],
    );
    about(&h, "unit", "process.failed", json!({ "exit_code": 101 }));
    let (_, data) = next_emit(&mut h, "test_suite.finished").await;
    assert_eq!(data["failed"], 5000);
    assert_eq!(data["failures"].as_array().unwrap().len(), 20);
    assert_eq!(data["failures_left_out"], 4980);
    assert_eq!(data["failures"][19]["test"], "t19");
}

#[tokio::test]
async fn the_test_suite_mapper_ignores_the_end_of_processes_of_other_kinds() {
    let mut h = shipped(
        &["test-suite-mapper"],
        &[("web", "service"), ("unit", "test_suite")],
    )
    .await;
    about(&h, "web", "process.failed", json!({ "exit_code": 1 }));
    let end = about(&h, "unit", "process.completed", json!({ "exit_code": 0 }));
    let (seq, data) = next_emit(&mut h, "test_suite.finished").await;
    assert_eq!(seq, end, "the service's end must have emitted nothing");
    assert_eq!(
        (&data["total"], &data["outcome"]),
        (&json!(0), &json!("completed"))
    );
}

#[tokio::test]
async fn the_build_mapper_lists_compiler_errors_live_and_in_build_finished() {
    let mut h = shipped(&["build-mapper"], &[("app", "build")]).await;
    about(&h, "app", "process.created", json!({}));
    output(&h, "app", &fixture_lines("build-mapper", "cargo_build.txt"));
    let (_, _, _, message) = next_status(&mut h, "build-mapper").await;
    assert_eq!(message.as_deref(), Some("2 errors (src/main.rs:3)"));
    output(&h, "app", &fixture_lines("build-mapper", "tsc.txt"));
    about(&h, "app", "process.failed", json!({ "exit_code": 101 }));
    let (_, data) = next_emit(&mut h, "build.finished").await;
    assert_eq!(data["error_count"], 5, "{data}");
    assert_eq!(
        data["errors"][0],
        json!({ "file": "src/main.rs", "line": 3, "column": 20,
                "message": "E0425: cannot find value `y` in this scope" })
    );
    assert_eq!(data["errors"][4]["file"], "src/app.ts");
    assert_eq!(data["errors"][4]["line"], 5);
}

#[tokio::test]
async fn a_run_longer_than_the_read_budget_is_reported_as_incomplete() {
    let mut h = harness_prepared(
        &[],
        |dir| {
            let folder = install_shipped_plugin("test-suite-mapper", dir);
            let manifest = std::fs::read_to_string(folder.join("plugin.toml")).unwrap();
            assert!(manifest.contains("max_output_mib = 32"), "{manifest}");
            let manifest = manifest.replace("max_output_mib = 32", "max_output_mib = 1");
            std::fs::write(folder.join("plugin.toml"), manifest).unwrap();
        },
        |_| {},
    )
    .await;
    h.processes
        .0
        .lock()
        .unwrap()
        .push(process("unit", "test_suite"));
    about(&h, "unit", "process.created", json!({}));
    // Three events of about 600 KB: the budget of 1 MiB ends in the second.
    let line = format!("test t ... ok {}", "x".repeat(8000));
    for _ in 0..3 {
        output(&h, "unit", &vec![line.as_str(); 75]);
    }
    about(&h, "unit", "process.completed", json!({ "exit_code": 0 }));
    let (_, data) = next_emit(&mut h, "test_suite.finished").await;
    assert_eq!(data["complete"], false, "{data}");
    assert_eq!(data["lines"], 75);
}

#[tokio::test]
async fn a_removed_process_leaves_no_live_counts_behind_for_its_name() {
    let mut h = shipped(
        &["test-suite-mapper"],
        &[("unit", "test_suite"), ("other", "test_suite")],
    )
    .await;
    output(&h, "unit", &["running 2 tests", "test a ... ok"]);
    let (_, _, _, message) = next_status(&mut h, "test-suite-mapper").await;
    assert_eq!(message.as_deref(), Some("1 passed, 0 failed, 0 skipped"));
    about(
        &h,
        "unit",
        "process.removed",
        json!({ "reason": "requested" }),
    );
    // The handler takes events in order: once `other`'s end is reported,
    // the removal before it has been handled.
    let end = about(&h, "other", "process.completed", json!({ "exit_code": 0 }));
    let (seq, _) = next_emit(&mut h, "test_suite.finished").await;
    assert_eq!(seq, end);
    // A new process of the same name (same run key in this table).
    output(&h, "unit", &["running 1 test", "test b ... ok"]);
    let (_, _, _, message) = next_status(&mut h, "test-suite-mapper").await;
    assert_eq!(message.as_deref(), Some("1 passed, 0 failed, 0 skipped"));
}
