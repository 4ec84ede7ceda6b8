//! `host plugin test`: replay, `--against`, `--expect`, run as a user
//! runs them: events recorded from a real `host run` with
//! `host events --json`, replayed through the shipped failure-alert.

use std::path::{Path, PathBuf};
use std::process::Output;

use host_tests::{RunningHost, fixture, install_plugin_folder, install_shipped_plugin, run_host};

use crate::PATIENCE;

/// Fails at once, every time: three runs, then given up.
const CONFIG: &str = r#"
[process.flaky]
command = "echo 'cannot connect' >&2; exit 3"
restart = "on-failure"
max_restarts = 2
restart_window = "10m"
backoff = "50ms"
backoff_max = "200ms"
"#;

fn host(args: &[&str]) -> Output {
    run_host(args, PATIENCE).expect("host ran")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run a host until `flaky` has failed for good and record its journal
/// with `host events --json`, as a user would.
fn record(dir: &Path) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let config = dir.join("host.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let state = dir.join("state");
    let mut running = RunningHost::start(&plugins, &state, &["--config", s(&config), "--no-build"]);
    running
        .wait_for("process.gave_up", PATIENCE, |e| e["subject"] == "flaky")
        .unwrap();
    running.terminate().unwrap();
    let out = host(&[
        "events",
        "--state-dir",
        s(&state),
        "--json",
        "--limit",
        "100000",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let file = dir.join("events.jsonl");
    std::fs::write(&file, &out.stdout).unwrap();
    file
}

#[test]
fn a_recorded_failure_replays_through_failure_alert_compares_with_a_stricter_version_and_checks_a_snapshot()
 {
    let tmp = tempfile::tempdir().unwrap();
    let events = record(tmp.path());
    let shipped = tmp.path().join("shipped");
    std::fs::create_dir(&shipped).unwrap();
    let alert = install_shipped_plugin("failure-alert", &shipped);

    let out = host(&["plugin", "test", s(&alert), "--events", s(&events)]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("plugin failure-alert (event-handler), clock virtual\n"),
        "{stdout}"
    );
    let alerts: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.trim_start()
                .starts_with("emit alert.process_failures flaky ")
        })
        .collect();
    assert_eq!(alerts.len(), 1, "one alert, at the third failure: {stdout}");
    let blocks: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" process.failed flaky"))
        .collect();
    assert_eq!(blocks.len(), 3, "{stdout}");
    let third = blocks[2];

    // A stricter copy (five failures) stays quiet at the third.
    let strict_dir = tmp.path().join("strict");
    std::fs::create_dir(&strict_dir).unwrap();
    let strict = install_shipped_plugin("failure-alert", &strict_dir);
    let manifest = std::fs::read_to_string(strict.join("plugin.toml")).unwrap();
    std::fs::write(
        strict.join("plugin.toml"),
        manifest.replace("threshold = 3", "threshold = 5"),
    )
    .unwrap();
    let out = host(&[
        "plugin",
        "test",
        s(&alert),
        "--events",
        s(&events),
        "--against",
        s(&strict),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with(&format!("{third}\n")), "{stdout}");
    assert!(
        stdout.contains("new: failure-alert") && stdout.contains("| old: failure-alert"),
        "{stdout}"
    );
    assert!(stdout.contains("| nothing"), "{stdout}");
    assert!(
        stdout.ends_with("1 inputs decided differently, 2 decided alike\n"),
        "{stdout}"
    );

    // --expect: bless, pass, then fail naming the event.
    let snap = tmp.path().join("alert.snap");
    let missing = host(&[
        "plugin",
        "test",
        s(&alert),
        "--events",
        s(&events),
        "--expect",
        s(&snap),
    ]);
    assert!(!missing.status.success());
    assert!(text(&missing).1.contains("--bless"), "{:?}", text(&missing));
    let out = host(&[
        "plugin",
        "test",
        s(&alert),
        "--events",
        s(&events),
        "--expect",
        s(&snap),
        "--bless",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = host(&[
        "plugin",
        "test",
        s(&alert),
        "--events",
        s(&events),
        "--expect",
        s(&snap),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = host(&[
        "plugin",
        "test",
        s(&strict),
        "--events",
        s(&events),
        "--expect",
        s(&snap),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("differs from {} at {third}", snap.display())),
        "{stderr}"
    );
    assert!(
        stdout.contains("expected emit alert.process_failures flaky"),
        "{stdout}"
    );
    assert!(stdout.contains("replayed nothing"), "{stdout}");
}

#[test]
fn garbage_in_the_events_file_is_named_by_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("events.jsonl");
    let good = r#"{"specversion":"1.0","id":"a","source":"host/api","type":"test.ping","time":"2026-01-01T00:00:00Z","sequence":1,"datacontenttype":"application/json","data":{}}"#;
    std::fs::write(
        &file,
        format!("{good}\n       2  2026-01-01T00:00:01Z  test.ping\n"),
    )
    .unwrap();
    let out = host(&[
        "plugin",
        "test",
        s(&fixture("echo-v1")),
        "--events",
        s(&file),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains(&format!("{}:2: line: not a JSON event", file.display())),
        "{stderr}"
    );
}

#[test]
fn a_plugin_that_spins_is_reported_per_event_at_its_deadline_without_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = install_plugin_folder(
        tmp.path(),
        "spin",
        &fixture("spin-forever"),
        "[limits]\ndeadline_ms = 100\n",
    );
    let file = tmp.path().join("events.jsonl");
    let event = |seq: u64| {
        format!(
            r#"{{"specversion":"1.0","id":"e{seq}","source":"host/api","type":"test.spin","time":"2026-01-01T00:00:0{seq}Z","sequence":{seq},"datacontenttype":"application/json","data":{{}}}}"#
        ) + "\n"
    };
    std::fs::write(&file, event(1) + &event(2)).unwrap();
    let out = host(&["plugin", "test", s(&folder), "--events", s(&file)]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout
            .matches("failed: handle ran past its deadline of 100 ms")
            .count(),
        2,
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "2 of 2 inputs given to the plugin (0 passed over); 2 with a decision, 2 failed"
        ),
        "{stdout}"
    );
}
