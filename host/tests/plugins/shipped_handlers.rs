//! Tests of the shipped event handlers (failure-alert, completion-metrics, system-warnings) against their compiled components.
//!
//! Each loads the plugin from `plugins/` with a manifest of the test's own
//! (its `[config]`), feeds it events through a real bus, and reads what it
//! decided from the action channel. Floods first: a handler that alerts on
//! every event of a storm is the failure these plugins exist to avoid.
//! (The security handler, seed 002's, is tested in `shipped_agents.rs`.)

use super::*;

/// A harness with the shipped plugin `name` loaded under a manifest whose
/// tail is `extra` (a `[config]` table).
async fn shipped_handler(name: &str, extra: &str) -> Harness {
    let h = harness(&[], |_| {}).await;
    manifest_plugin(&h, name, &shipped_component(name), extra);
    h.host.reconcile().await.unwrap();
    assert!(h.host.get(name).is_some(), "{name} did not load");
    h
}

/// Every emit of every request until one satisfies `done`, which is
/// included.
async fn emits_until(h: &mut Harness, done: impl Fn(&str, &Value) -> bool) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    loop {
        let request = h.next_action().await;
        for (ty, data) in emitted(&request) {
            let last = done(&ty, &data);
            all.push((ty, data));
            if last {
                return all;
            }
        }
    }
}

fn failed(name: &str) -> NewEvent {
    NewEvent::new(
        "host/supervisor",
        "process.failed",
        json!({ "exit_code": 3, "signal": null, "reason": "exited with code 3" }),
    )
    .with_subject(name)
}

#[tokio::test]
async fn a_storm_of_failures_inside_one_window_raises_one_failure_alert_not_one_per_threshold() {
    let mut h = shipped_handler(
        "failure-alert",
        "[config]\nthreshold = 3\nwindow_secs = 600\n",
    )
    .await;
    for _ in 0..60 {
        h.bus.publish(failed("web")).unwrap();
    }
    // A marker: `other`'s alert comes after every `web` failure was handled.
    for _ in 0..3 {
        h.bus.publish(failed("other")).unwrap();
    }
    let emits = emits_until(&mut h, |_, d| d["process"] == "other").await;
    let web: Vec<&Value> = emits
        .iter()
        .filter(|(ty, d)| ty == "alert.process_failures" && d["process"] == "web")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        web.len(),
        1,
        "60 failures in one window, one alert: {emits:#?}"
    );
    assert_eq!(web[0]["failures"], 3);
    assert_eq!(web[0]["suppressed"], 0);
    assert_eq!(web[0]["last_exit_code"], 3);
    assert!(h.events("plugin.error").is_empty());
}

#[tokio::test]
async fn the_failure_alert_holds_back_within_its_window_then_alerts_with_the_count() {
    let mut h = shipped_handler(
        "failure-alert",
        "[config]\nthreshold = 2\nwindow_secs = 1\n",
    )
    .await;
    for _ in 0..5 {
        h.bus.publish(failed("web")).unwrap();
    }
    let first = emits_until(&mut h, |ty, _| ty == "alert.process_failures").await;
    assert_eq!(first.last().unwrap().1["failures"], 2);
    // Past the one-second window, two more failures alert again and say
    // how many were held back in between.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    h.bus.publish(failed("web")).unwrap();
    h.bus.publish(failed("web")).unwrap();
    let second = emits_until(&mut h, |ty, _| ty == "alert.process_failures").await;
    assert_eq!(second.last().unwrap().1["suppressed"], 3, "{second:#?}");
}

fn exited(name: &str, duration_ms: u64, to: &str, exit_code: Option<i32>) -> NewEvent {
    NewEvent::new(
        "host/supervisor",
        "process.exited",
        json!({ "exit_code": exit_code, "signal": null, "duration_ms": duration_ms,
                "restarts": 0, "from": "running", "to": to }),
    )
    .with_subject(name)
}

#[tokio::test]
async fn completion_metrics_time_each_run_and_keep_per_kind_percentiles() {
    let mut h = shipped_handler("completion-metrics", "[config]\nsummary_every = 1\n").await;
    h.processes
        .0
        .lock()
        .unwrap()
        .extend([process("b1", "build"), process("t1", "tests")]);
    // 100 builds of 1..=100 s, one test run, one cancelled build (skipped).
    for s in 1..=100u64 {
        let to = if s % 10 == 0 { "failed" } else { "completed" };
        let code = if to == "failed" { 1 } else { 0 };
        h.bus
            .publish(exited("b1", s * 1000, to, Some(code)))
            .unwrap();
    }
    h.bus.publish(exited("b1", 5, "cancelled", None)).unwrap();
    h.bus.publish(exited("t1", 750, "timeout", None)).unwrap();
    let emits = emits_until(&mut h, |ty, d| {
        ty == "metrics.summary" && d["kind"] == "tests"
    })
    .await;

    let completions: Vec<&Value> = emits
        .iter()
        .filter(|(ty, _)| ty == "metrics.completion")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(completions.len(), 101, "the cancelled run is not counted");
    assert_eq!(
        completions[9],
        &json!({ "process": "b1", "kind": "build", "duration_ms": 10_000,
                 "exit_code": 1, "signal": null, "state": "failed" })
    );
    let build = emits
        .iter()
        .rev()
        .find(|(ty, d)| ty == "metrics.summary" && d["kind"] == "build")
        .map(|(_, d)| d)
        .unwrap();
    assert_eq!(build["count"], 100);
    assert_eq!(build["by_state"], json!({ "completed": 90, "failed": 10 }));
    let p50 = build["p50_ms"].as_u64().unwrap();
    let p95 = build["p95_ms"].as_u64().unwrap();
    assert!((50_000..=50_000 + 50_000 / 8).contains(&p50), "p50 {p50}");
    assert!((95_000..=100_000).contains(&p95), "p95 {p95}");
    let tests = &emits.last().unwrap().1;
    assert_eq!(
        (tests["count"].as_u64(), tests["p50_ms"].as_u64()),
        (Some(1), Some(750))
    );
}

#[tokio::test]
async fn completion_metrics_refuse_malformed_exit_data_and_keep_counting() {
    let mut h = shipped_handler("completion-metrics", "").await;
    h.processes.0.lock().unwrap().push(process("b1", "build"));
    let bad = h
        .bus
        .publish(
            NewEvent::new(
                "host/supervisor",
                "process.exited",
                json!({ "duration_ms": "soon", "to": "completed" }),
            )
            .with_subject("b1"),
        )
        .unwrap()
        .sequence;
    h.bus
        .publish(exited("b1", 40, "completed", Some(0)))
        .unwrap();
    let emits = emits_until(&mut h, |ty, _| ty == "metrics.summary").await;
    assert_eq!(
        emits.last().unwrap().1["count"],
        1,
        "the bad event counted nothing"
    );
    let error = h
        .wait_event("plugin.error", |e| e.data["cause_sequence"] == json!(bad))
        .await;
    assert!(
        error.data["error"]
            .as_str()
            .unwrap()
            .contains("duration_ms"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_flood_of_rate_limits_is_one_system_warning_per_window_with_the_rest_counted() {
    let mut h = shipped_handler("system-warnings", "[config]\nwindow_secs = 1\n").await;
    for _ in 0..500 {
        h.publish("provider.rate_limit", json!({ "provider": "anthropic" }));
    }
    h.publish(
        "provider.error",
        json!({ "provider": "anthropic", "status": 500 }),
    );
    h.publish("provider.rate_limit", "not even an object".into());
    h.bus
        .publish(
            NewEvent::new(
                "host/supervisor",
                "process.resource_limit",
                json!({ "memory_bytes": 300u64 << 20, "limit_bytes": 256u64 << 20 }),
            )
            .with_subject("hog"),
        )
        .unwrap();
    let emits = emits_until(&mut h, |_, d| d["type"] == "resource_limit").await;
    let warnings: Vec<&Value> = emits
        .iter()
        .filter(|(ty, _)| ty == "system.warning")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert_eq!(
        (&warnings[0]["type"], &warnings[0]["source"]),
        (&json!("rate_limit"), &json!("anthropic"))
    );
    // The rate limit with unreadable data is named by its event's source.
    assert_eq!(warnings[1]["source"], "test");
    assert_eq!(warnings[2]["source"], "hog");
    assert!(
        warnings[2]["message"].as_str().unwrap().contains("300 MiB"),
        "{}",
        warnings[2]
    );

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    h.publish(
        "provider.error",
        json!({ "provider": "anthropic", "status": 429, "message": "slow down" }),
    );
    let next = emits_until(&mut h, |ty, _| ty == "system.warning").await;
    let next = &next.last().unwrap().1;
    assert_eq!(next["suppressed"], 499, "{next}");
    assert_eq!(next["cause_type"], "provider.error");
    assert!(h.events("plugin.error").is_empty());
}

#[tokio::test]
async fn resource_samples_warn_only_above_the_configured_level() {
    let mut h = shipped_handler(
        "system-warnings",
        "[config]\nmemory_warn_mib = 100\ncpu_warn_percent = 0\n",
    )
    .await;
    let sample = |name: &str, mib: u64| {
        NewEvent::new(
            "host/supervisor",
            "process.resource",
            json!({ "pids": 1, "memory_bytes": mib << 20, "cpu_percent": 900.0,
                    "disk_read_bytes": 0, "disk_written_bytes": 0 }),
        )
        .with_subject(name)
    };
    h.bus.publish(sample("small", 99)).unwrap();
    h.bus.publish(sample("big", 101)).unwrap();
    let emits = emits_until(&mut h, |ty, _| ty == "system.warning").await;
    assert_eq!(emits.len(), 1, "{emits:#?}");
    assert_eq!(emits[0].1["source"], "big");
    assert_eq!(emits[0].1["type"], "resource");
}
