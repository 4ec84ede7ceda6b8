//! Scenario: a person at a terminal drives the running host with the
//! client verbs, and scripts read `--json`; exit codes tell "not found"
//! from "no host".

use std::time::Duration;

use host_tests::{RunningHost, run_host};
use serde_json::Value;

fn verb(state: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = args.to_vec();
    // After the verb (and its subcommand word, if any), before any `--`.
    let at = if matches!(args.first(), Some(&"plugin")) {
        2
    } else {
        1
    };
    all.splice(at..at, ["--state-dir", state]);
    let out = run_host(&all, Duration::from_secs(120)).unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_client_verbs_drive_the_running_host() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = RunningHost::start_with_config(
        tmp.path(),
        "[process.web]\ncommand = \"echo serving; sleep 300\"\nkind = \"server\"\n",
        &["--no-build"],
    );
    host.api();
    let state = host.state_dir.display().to_string();

    let (code, out, err) = verb(&state, &["ps"]);
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("STATE"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("web ") && l.contains("running")),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "no colour codes when not on a terminal"
    );

    let (code, out, err) = verb(
        &state,
        &[
            "start",
            "--name",
            "count",
            "--type",
            "build",
            "--json",
            "--",
            "for i in 1 2 3; do echo line $i; done",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["process_id"].as_str().unwrap().to_string();
    assert!(host_tests::eventually(Duration::from_secs(60), || {
        let (_, out, _) = verb(&state, &["ps", "--json", "--state", "completed"]);
        out.contains(&id)
    }));
    let (code, out, _) = verb(&state, &["logs", &id]);
    assert_eq!((code, out.as_str()), (0, "line 1\nline 2\nline 3\n"));
    let (code, out, _) = verb(&state, &["logs", &id, "-n", "1"]);
    assert_eq!((code, out.as_str()), (0, "line 3\n"));
    let (code, out, _) = verb(&state, &["logs", &id, "--follow"]);
    assert_eq!(code, 0, "-f of a finished process ends once drained");
    assert_eq!(out, "line 1\nline 2\nline 3\n");

    let (code, out, err) = verb(&state, &["stop", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("web  cancelled"), "{out}");
    let (code, _, err) = verb(&state, &["stop", "web"]);
    assert_eq!(code, 1, "stopping a stopped process is refused: {err}");
    let (code, _, err) = verb(&state, &["restart", "nope"]);
    assert_eq!(code, 3, "not found");
    assert!(
        err.contains("no process `nope`") && err.contains("web"),
        "{err}"
    );
    let (code, out, _) = verb(&state, &["rm", &id]);
    assert_eq!((code, out.trim()), (0, format!("removed {id}").as_str()));
    for listing in [["plugins"], ["agents"], ["tasks"], ["deps"]] {
        let (code, _, err) = verb(&state, &listing);
        assert_eq!(code, 0, "{listing:?}: {err}");
    }
    let (code, out, _) = verb(&state, &["events", "--type", "process.removed", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains(&id));

    assert!(host.terminate().unwrap().success());
    let (code, _, err) = verb(&state, &["ps"]);
    assert_eq!(code, 4, "no host running");
    assert!(err.contains("no host is running"), "{err}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_host(["completions", shell], Duration::from_secs(60)).unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("host") && text.contains("logs"), "{shell}");
    }
}

#[test]
fn a_second_host_on_the_same_state_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let mut first = RunningHost::start(&plugins, &tmp.path().join("state"), &["--no-build"]);
    first.api();
    let out = run_host(
        [
            "run",
            "--plugins",
            plugins.to_str().unwrap(),
            "--state-dir",
            tmp.path().join("state").to_str().unwrap(),
        ],
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already running") && err.contains(&first.child.id().to_string()),
        "{err}"
    );
}
