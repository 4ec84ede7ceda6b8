//! Values from guests are bounded (issue 6): actions per call, error
//! strings, status messages, log lines, what a plugin says about itself,
//! `recent-events` answers and per-plugin state.

use super::deadlines::hostile;
use super::*;

/// Not about deadlines: generous, so a debug build never trips them.
const DEADLINE: Duration = Duration::from_secs(5);

async fn with_hostile(extra: &str) -> Harness {
    let h = harness(&[], |c| c.limits.deadline = DEADLINE).await;
    hostile(&h.plugins, "hostile", extra);
    h.host.reconcile().await.unwrap();
    assert_eq!(h.host.list().len(), 1, "{:#?}", h.events("plugin.>"));
    h
}

#[tokio::test]
async fn of_ten_thousand_actions_the_first_256_run_and_the_rest_are_refused_and_reported() {
    let mut h = with_hostile("").await;
    let seq = h.publish("test.hostile", json!({ "do": "actions", "n": 10_000 }));
    let request = h.next_action().await;
    assert_eq!(request.cause.map(|c| c.sequence), Some(seq));
    assert_eq!(request.actions.len(), host::plugins::MAX_ACTIONS);
    let Action::Emit { data, .. } = &request.actions[255] else {
        panic!("{:?}", request.actions[255])
    };
    assert_eq!(data["i"], 255, "the first ones, in order");
    let error = h.wait_event("plugin.error", |_| true).await;
    assert_eq!(error.data["cause_sequence"], seq);
    let text = error.data["error"].as_str().unwrap();
    assert!(
        text.contains("10000 actions") && text.contains("9744"),
        "{text}"
    );
}

#[tokio::test]
async fn a_huge_error_string_is_cut_to_4_kib_with_a_marker_saying_how_much() {
    let h = with_hostile("").await;
    h.publish("test.hostile", json!({ "do": "error", "bytes": 1_000_000 }));
    let error = h.wait_event("plugin.error", |_| true).await;
    let text = error.data["error"].as_str().unwrap();
    assert!(text.len() < 4096 + 100, "{} bytes", text.len());
    assert!(
        text.ends_with("… [995904 more bytes cut]"),
        "{}",
        &text[4000..]
    );
    let health = h.host.list()[0].health.clone();
    assert!(health.last_error.unwrap().len() < 4096 + 100);
}

#[tokio::test]
async fn a_huge_status_message_is_cut_to_1_kib() {
    let mut h = with_hostile("").await;
    h.publish("test.hostile", json!({ "do": "status", "bytes": 100_000 }));
    let request = h.next_action().await;
    let Action::SetStatus { update, .. } = &request.actions[0] else {
        panic!("{request:?}")
    };
    let message = update.message.as_deref().unwrap();
    assert!(message.len() < 1024 + 100, "{} bytes", message.len());
    assert!(message.ends_with("… [98976 more bytes cut]"), "{message}");
}

#[tokio::test]
async fn a_plugin_printing_in_a_loop_is_held_to_its_log_budget() {
    let mut h = with_hostile("").await;
    for stream in ["stdout", "log"] {
        h.publish(
            "test.hostile",
            json!({ "do": "print", "lines": 5_000, "stream": stream }),
        );
        let (_, data) = emitted(&h.next_action().await).remove(0);
        assert_eq!(data["printed"], 5_000);
    }
    let health = h.host.list()[0].health.clone();
    // A burst of 200 plus 100 a second got through: far fewer than 1,000
    // unless printing took 8 s.
    assert!(health.log_lines_suppressed >= 10_000 - 1_000, "{health:?}");
    assert!(h.events("plugin.failed").is_empty());
}

#[tokio::test]
async fn a_plugin_describing_itself_past_the_caps_does_not_load() {
    let h = harness_prepared(
        &[("echo", fixture("echo-v1"))],
        |plugins| {
            hostile(plugins, "subs", "[config]\nsubscriptions = 100\n");
            hostile(plugins, "keywords", "[config]\nkeywords = 1000\n");
        },
        |c| c.limits.deadline = DEADLINE,
    )
    .await;
    let names: Vec<String> = h.host.list().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["echo"]);
    let failed = h.events("plugin.load_failed");
    let error = |plugin: &str| {
        failed
            .iter()
            .find(|e| e.data["plugin"] == plugin)
            .and_then(|e| e.data["error"].as_str())
            .unwrap_or_else(|| panic!("no load failure for {plugin}: {failed:#?}"))
            .to_string()
    };
    let subs = error("subs");
    assert!(subs.contains("100 subscriptions; at most 64"), "{subs}");
    let keywords = error("keywords");
    assert!(
        keywords.contains("1000 keywords; at most 256"),
        "{keywords}"
    );
}

#[tokio::test]
async fn recent_events_over_big_events_ends_within_its_deadline_bounded_in_bytes() {
    // The deadline the issue measured against: 0.31-0.36 s past it before.
    let mut h = harness(&[], |c| c.limits.deadline = Duration::from_millis(100)).await;
    hostile(&h.plugins, "hostile", "");
    h.host.reconcile().await.unwrap();
    let pad = "x".repeat(30_000);
    for _ in 0..10 {
        h.bus
            .publish_all(
                (0..100)
                    .map(|_| NewEvent::new("test", "test.big", json!({ "pad": pad })))
                    .collect(),
            )
            .unwrap();
    }
    let seq = h.publish(
        "test.hostile",
        json!({ "do": "recent-events", "limit": 1000, "types": ["test.big"] }),
    );
    let Ok(Some(request)) = timeout(Duration::from_secs(10), h.actions.recv()).await else {
        panic!("no answer: {:#?}", h.events("plugin.>"));
    };
    assert_eq!(
        request.cause.map(|c| c.sequence),
        Some(seq),
        "{:#?}",
        h.events("plugin.>")
    );
    let (ty, data) = emitted(&request).remove(0);
    assert_eq!(ty, "test.hostile-result");
    let (count, bytes) = (
        data["count"].as_u64().unwrap(),
        data["bytes"].as_u64().unwrap(),
    );
    assert!((20..1000).contains(&count), "{data}");
    assert!(bytes <= 1 << 20, "{data}");
    assert!(h.events("plugin.failed").is_empty());
}

#[tokio::test]
async fn twenty_thousand_state_keys_in_one_call_all_reach_the_state_file() {
    let mut h = with_hostile("").await;
    h.publish("test.hostile", json!({ "do": "state-set", "keys": 20_000 }));
    let (_, data) = emitted(&h.next_action().await).remove(0);
    assert_eq!(data["set"], 20_000);
    h.host.shutdown().await;
    let db = rusqlite::Connection::open(h._dir.path().join("state/plugin-state.sqlite")).unwrap();
    let rows: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM plugin_state WHERE plugin = 'hostile'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 20_000);
}
