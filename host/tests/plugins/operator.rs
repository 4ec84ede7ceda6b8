//! What an operator asks of the plugin host directly (the control API's
//! verbs): an explicit reload of one plugin.

use super::*;

#[tokio::test]
async fn an_explicit_reload_of_unchanged_files_swaps_in_a_new_version_and_lifts_a_quarantine() {
    let h = harness(&[("spin", fixture("spin-forever"))], |c| {
        c.limits.deadline = Duration::from_millis(20);
    })
    .await;
    for _ in 0..3 {
        h.publish("test.spin", json!({}));
    }
    h.wait_event("plugin.quarantined", |_| true).await;
    h.host.reconcile().await.unwrap();
    assert!(
        h.host.list()[0].health.quarantined,
        "unchanged files: no reload"
    );

    h.host.reload("spin").await.unwrap();
    let health = h.host.list()[0].health.clone();
    assert!(!health.quarantined, "{health:?}");
    assert_eq!(health.versions_loaded, 2);
    assert_eq!(health.consecutive_failures, 0);
    let reloaded = h.wait_event("plugin.reloaded", |_| true).await;
    assert_eq!(reloaded.data["plugin"], "spin");

    let err = h.host.reload("nope").await.unwrap_err();
    assert!(matches!(err, PluginError::Unknown { .. }), "{err}");
    assert!(err.to_string().contains("known: spin"), "{err}");
}
