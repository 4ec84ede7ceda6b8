//! Scenario: `host events --json` prints the journal as JSON Lines of
//! CloudEvents, and `--type` filters it.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::Path;

use host_tests::{RunningHost, run_host};
use serde_json::Value;

use crate::PATIENCE;

/// Runs a host with two short processes until both have finished, stops
/// it, and returns its state folder (inside `tmp`).
fn journal_of_a_short_run(tmp: &Path) -> std::path::PathBuf {
    let plugins = tmp.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let config = tmp.join("host.toml");
    std::fs::write(
        &config,
        "[process.hello]\ncommand = \"echo hello\"\n\n[process.oops]\ncommand = \"echo oops >&2; exit 1\"\n",
    )
    .unwrap();
    let state = tmp.join("state");
    let mut host = RunningHost::start(&plugins, &state, &["--config", config.to_str().unwrap()]);
    host.wait_for("process.completed", PATIENCE, |e| e["subject"] == "hello")
        .unwrap();
    host.wait_for("process.failed", PATIENCE, |e| e["subject"] == "oops")
        .unwrap();
    let status = host.terminate().unwrap();
    assert!(
        status.success(),
        "host exited with {status}:\n{}",
        host.stderr()
    );
    state
}

/// `host events --state-dir STATE --json EXTRA...`, parsed line by line.
fn events_json(state: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        OsStr::new("events"),
        OsStr::new("--json"),
        OsStr::new("--state-dir"),
        state.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    let out = run_host(args, PATIENCE).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "host events failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON value per line ({e}): {line:?}"))
        })
        .collect()
}

fn is_rfc3339_utc(text: &str) -> bool {
    // 2026-11-21T17:02:03.123456Z: a date, `T`, a time, and a zone.
    let b = text.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (text.ends_with('Z') || text.ends_with("+00:00"))
}

#[test]
fn events_json_prints_one_cloudevent_per_line_in_strictly_increasing_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let state = journal_of_a_short_run(tmp.path());
    let events = events_json(&state, &[]);
    assert!(
        events.len() >= 6,
        "too few events for a run with two processes: {events:#?}"
    );

    let mut ids = HashSet::new();
    for e in &events {
        assert!(e.is_object(), "{e}");
        assert_eq!(e["specversion"], "1.0", "{e}");
        for field in ["id", "source", "type", "time"] {
            let value = e[field].as_str().unwrap_or_default();
            assert!(!value.is_empty(), "`{field}` missing or empty: {e}");
        }
        assert!(
            ids.insert(e["id"].as_str().unwrap().to_string()),
            "duplicate id: {e}"
        );
        assert!(
            is_rfc3339_utc(e["time"].as_str().unwrap()),
            "time is not RFC 3339: {e}"
        );
        assert!(
            e["sequence"].is_u64(),
            "sequence is not an unsigned integer: {e}"
        );
    }
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequences not strictly increasing: {seqs:?}"
    );
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"host.starting"), "{types:?}");
    assert_eq!(types.last(), Some(&"host.stopped"), "{types:?}");
}

#[test]
fn events_type_filter_keeps_exactly_the_matching_events() {
    let tmp = tempfile::tempdir().unwrap();
    let state = journal_of_a_short_run(tmp.path());
    let all = events_json(&state, &[]);
    let filtered = events_json(&state, &["--type", "process.*"]);

    let expected: Vec<u64> = all
        .iter()
        .filter(|e| {
            let ty = e["type"].as_str().unwrap();
            ty.strip_prefix("process.")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('.'))
        })
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    let got: Vec<u64> = filtered
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert!(!got.is_empty(), "no process events: {all:#?}");
    assert_eq!(got, expected, "--type 'process.*' returned {filtered:#?}");
    assert!(
        filtered
            .iter()
            .any(|e| e["type"] == "process.failed" && e["subject"] == "oops"),
        "{filtered:#?}"
    );

    let both = events_json(&state, &["--type", "process.failed", "--type", "host.*"]);
    assert!(
        both.iter()
            .all(|e| e["type"] == "process.failed"
                || e["type"].as_str().unwrap().starts_with("host.")),
        "{both:#?}"
    );
    assert!(
        both.iter().any(|e| e["type"] == "process.failed"),
        "{both:#?}"
    );
    assert!(
        both.iter().any(|e| e["type"] == "host.stopped"),
        "{both:#?}"
    );
}

#[test]
fn events_stats_count_the_journal_by_type_and_source() {
    let tmp = tempfile::tempdir().unwrap();
    let state = journal_of_a_short_run(tmp.path());
    let all = events_json(&state, &["--limit", "100000"]);
    let args = [
        OsStr::new("events"),
        OsStr::new("--stats"),
        OsStr::new("--json"),
        OsStr::new("--state-dir"),
        state.as_os_str(),
    ];
    let out = run_host(args, PATIENCE).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["total"].as_u64(), Some(all.len() as u64), "{stats:#}");
    let failed = all.iter().filter(|e| e["type"] == "process.failed").count() as u64;
    assert_eq!(stats["by_type"]["process.failed"].as_u64(), Some(failed));
    let by_source: u64 = stats["by_source"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(by_source, all.len() as u64);
}
