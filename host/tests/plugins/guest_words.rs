//! A guest's error reaches the journal in its own words: what it wrote to
//! stderr during the failing call is `guest_message` in `plugin.failed` /
//! `plugin.error`, not only a wasm trap and its backtrace.

use super::*;

#[tokio::test]
async fn a_rust_panic_reaches_plugin_failed_as_the_panic_message_not_only_unreachable() {
    let h = harness(&[("loud", fixture("panicker"))], |_| {}).await;
    let seq = h.publish("test.ping", json!({ "n": 7 }));
    let failed = h.wait_event("plugin.failed", |_| true).await;
    assert_eq!(failed.data["cause_sequence"], json!(seq));
    let error = failed.data["error"].as_str().unwrap();
    assert!(error.contains("unreachable"), "the trap itself: {error}");
    let said = failed.data["guest_message"]
        .as_str()
        .unwrap_or_else(|| panic!("no guest_message in {:#}", failed.data));
    assert!(
        said.contains(&format!("panicker refuses ping {seq} (data {{\"n\":7}})")),
        "{said}"
    );
    assert!(said.contains("panicked at"), "{said}");
}

#[tokio::test]
async fn each_failing_call_carries_only_what_it_wrote_itself() {
    let h = harness(&[("loud", fixture("panicker"))], |_| {}).await;
    let first = h.publish("test.ping", json!({ "n": 1 }));
    let second = h.publish("test.ping", json!({ "n": 2 }));
    let report = |seq: u64| {
        let h = &h;
        async move {
            h.wait_event("plugin.failed", |e| e.data["cause_sequence"] == json!(seq))
                .await
                .data["guest_message"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (one, two) = (report(first).await, report(second).await);
    assert!(
        one.contains("(data {\"n\":1})") && !one.contains("\"n\":2"),
        "{one}"
    );
    assert!(
        two.contains("(data {\"n\":2})") && !two.contains("\"n\":1"),
        "{two}"
    );
}

#[tokio::test]
async fn a_guest_error_with_nothing_on_stderr_has_no_guest_message() {
    let h = harness(&[("echo", fixture("echo-v1"))], |_| {}).await;
    h.publish("test.ping", json!({ "fail": true }));
    let error = h.wait_event("plugin.error", |_| true).await;
    assert_eq!(error.data["guest_message"], Value::Null, "{:#}", error.data);
}
