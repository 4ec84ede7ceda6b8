//! Shadow on reload: with `shadow_events` set, a new version of an event
//! handler answers the live stream beside the old one, its actions not
//! performed, and is swapped in only if it did not fail.

use super::*;
use host_tests::{EMITS_TEST, install_plugin_folder};

async fn echo_v1(shadow: Option<u64>) -> (Harness, PathBuf) {
    let h = harness(&[], |c| c.shadow_events = shadow).await;
    let folder = install_plugin_folder(&h.plugins, "echo", &fixture("echo-v1"), EMITS_TEST);
    h.host.reconcile().await.unwrap();
    assert_eq!(h.host.list().len(), 1);
    (h, folder)
}

/// Publish a ping and return the `version` of the pong answering it.
async fn answered_by(h: &mut Harness) -> u64 {
    let seq = h.publish("test.ping", json!({}));
    loop {
        let request = h.next_action().await;
        if request.cause.map(|c| c.sequence) == Some(seq) {
            return emitted(&request)[0].1["version"].as_u64().unwrap();
        }
    }
}

#[tokio::test]
async fn a_new_version_shadows_the_old_for_its_events_then_is_swapped_in_with_a_report() {
    let (mut h, folder) = echo_v1(Some(5)).await;
    let old_digest = h.host.list()[0].digest.clone();
    install_component(&fixture("echo-v2"), &folder, "echo");
    h.host.reconcile().await.unwrap();
    h.wait_event("plugin.shadow_started", |_| true).await;
    // A rescan while the trial runs leaves it alone.
    h.host.reconcile().await.unwrap();
    assert_eq!(h.events("plugin.shadow_started").len(), 1);
    let mut pings = Vec::new();
    for _ in 0..5 {
        assert_eq!(
            answered_by(&mut h).await,
            1,
            "the old version serves the trial"
        );
        pings.push(h.events("test.ping").last().unwrap().sequence);
    }
    let report = h.wait_event("plugin.shadow_report", |_| true).await;
    let data = &report.data;
    assert_eq!(data["events_seen"], 5, "{data:#}");
    assert_eq!(
        data["disagreements"], 5,
        "v1 and v2 answer every ping differently"
    );
    assert_eq!(data["trapped"], false);
    assert_eq!(data["swapped"], true);
    assert_eq!(data["old_digest"], json!(old_digest));
    let first = &data["first_disagreements"][0];
    assert_eq!(first["sequence"], json!(pings[0]));
    assert_eq!(first["old"][0]["data"]["version"], 1, "{first:#}");
    assert_eq!(first["new"][0]["data"]["version"], 2, "{first:#}");
    assert_eq!(
        data["first_disagreements"].as_array().unwrap().len(),
        5.min(host::plugins::DEFAULT_SHADOW_EVENTS as usize)
    );
    let reloaded = h.wait_event("plugin.reloaded", |_| true).await;
    assert!(reloaded.sequence > report.sequence);
    assert_eq!(reloaded.data["digest"], data["new_digest"]);
    // The shadow's actions were never sent to the executor: nothing else
    // waits in the channel for the trial's pings.
    while let Ok(request) = h.actions.try_recv() {
        let cause = request.cause.map(|c| c.sequence).unwrap_or_default();
        assert!(
            !pings.contains(&cause),
            "a second answer to a trial ping: {request:?}"
        );
    }
    assert_eq!(answered_by(&mut h).await, 2);
}

#[tokio::test]
async fn a_shadow_that_traps_is_discarded_with_its_report_and_the_old_version_keeps_serving() {
    let (mut h, folder) = echo_v1(Some(5)).await;
    let old_digest = h.host.list()[0].digest.clone();
    install_component(&fixture("panicker"), &folder, "echo");
    h.host.reconcile().await.unwrap();
    h.wait_event("plugin.shadow_started", |_| true).await;
    assert_eq!(answered_by(&mut h).await, 1);
    let report = h.wait_event("plugin.shadow_report", |_| true).await;
    let data = &report.data;
    assert_eq!(data["trapped"], true, "{data:#}");
    assert_eq!(data["swapped"], false);
    assert_eq!(data["events_seen"], 0, "it trapped on the first");
    let said = data["trap"]["guest_message"].as_str().unwrap();
    assert!(said.contains("panicker refuses ping"), "{said}");
    assert!(h.events("plugin.reloaded").is_empty());
    assert!(
        h.events("plugin.failed").is_empty(),
        "the shadow's failure is the report's, not the serving plugin's"
    );
    assert_eq!(h.host.list()[0].digest, old_digest);
    for _ in 0..3 {
        assert_eq!(answered_by(&mut h).await, 1);
    }
    // The same files again start no new trial; new ones would.
    h.host.reconcile().await.unwrap();
    assert_eq!(h.events("plugin.shadow_started").len(), 1);
}

#[tokio::test]
async fn without_shadow_a_reload_swaps_at_once_as_before() {
    let (mut h, folder) = echo_v1(None).await;
    install_component(&fixture("echo-v2"), &folder, "echo");
    h.host.reconcile().await.unwrap();
    assert_eq!(h.events("plugin.reloaded").len(), 1);
    assert!(h.events("plugin.shadow_started").is_empty());
    assert_eq!(answered_by(&mut h).await, 2);
}

/// Publish a ping asking to be counted; the `(version, count)` of its pong.
async fn counted_by(h: &mut Harness) -> (u64, u64) {
    let seq = h.publish("test.ping", json!({ "count": true }));
    loop {
        let request = h.next_action().await;
        if request.cause.map(|c| c.sequence) == Some(seq) {
            let pong = &emitted(&request)[0].1;
            return (
                pong["version"].as_u64().unwrap(),
                pong["count"].as_u64().unwrap(),
            );
        }
    }
}

#[tokio::test]
async fn what_a_shadow_stores_stays_in_its_copy_and_once_swapped_in_it_sees_the_real_state() {
    let (mut h, folder) = echo_v1(Some(3)).await;
    assert_eq!(counted_by(&mut h).await, (1, 1));
    assert_eq!(counted_by(&mut h).await, (1, 2));
    install_component(&fixture("echo-v2"), &folder, "echo");
    h.host.reconcile().await.unwrap();
    h.wait_event("plugin.shadow_started", |_| true).await;
    for n in 3..=5 {
        // Had the shadow's state-set reached the plugin's state, the old
        // version would count 3, 5, 7.
        assert_eq!(counted_by(&mut h).await, (1, n), "the old version serves");
    }
    let report = h.wait_event("plugin.shadow_report", |_| true).await;
    let first = &report.data["first_disagreements"][0];
    assert_eq!(
        first["new"][0]["data"]["count"], 3,
        "the shadow read the state as it was when its trial began, then its own sets: {first:#}"
    );
    h.wait_event("plugin.reloaded", |_| true).await;
    assert_eq!(
        counted_by(&mut h).await,
        (2, 6),
        "swapped in, it counts on from what the old version stored"
    );
}
