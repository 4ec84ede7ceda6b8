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

/// A manifest for the echo fixture in `folder` with these `[permissions]`.
fn echo_with_grants(folder: &Path, permissions: &str) {
    std::fs::write(
        folder.join("plugin.toml"),
        format!("component = \"echo.wasm\"\n\n[permissions]\n{permissions}"),
    )
    .unwrap();
}

#[tokio::test]
async fn a_reload_asking_for_more_grants_waits_for_approval_of_exactly_those_grants() {
    let h = harness_prepared(
        &[],
        |plugins| {
            let folder = plugins.join("echo");
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::copy(fixture("echo-v1"), folder.join("echo.wasm")).unwrap();
            echo_with_grants(&folder, "emit = [\"test.pong\"]\n");
        },
        |_| {},
    )
    .await;
    let folder = h.plugins.join("echo");
    let err = h.host.approve("echo").await.unwrap_err();
    assert!(
        matches!(err, PluginError::NothingToApprove(_)),
        "nothing was refused yet: {err}"
    );

    // The new version asks to emit anything under test. and to restart.
    echo_with_grants(&folder, "emit = [\"test.>\"]\nrestart = [\"*\"]\n");
    h.host.reconcile().await.unwrap();
    let refused = h.wait_event("plugin.reload_refused", |_| true).await;
    let error = refused.data["error"].as_str().unwrap();
    assert!(
        error.contains("emit test.>") && error.contains("restart *"),
        "{error}"
    );
    let summary = h.host.list().remove(0);
    assert_eq!(summary.health.versions_loaded, 1, "the old version serves");
    assert_eq!(summary.awaiting_approval.len(), 2, "{summary:?}");

    // Changed again before the operator looked: it now also wants to stop
    // processes. Approving what was shown must not approve that.
    echo_with_grants(
        &folder,
        "emit = [\"test.>\"]\nrestart = [\"*\"]\nstop = [\"*\"]\n",
    );
    let err = h.host.approve("echo").await.unwrap_err();
    match &err {
        PluginError::NewGrants { grants, .. } => {
            assert!(grants.iter().any(|g| g.contains("stop")), "{grants:?}")
        }
        other => panic!("expected a refusal of the unseen grant, got {other}"),
    }
    assert_eq!(h.host.list()[0].health.versions_loaded, 1);
    assert_eq!(h.host.list()[0].awaiting_approval.len(), 3);

    // Approving what is now shown swaps it in; nothing waits after.
    h.host.approve("echo").await.unwrap();
    let summary = h.host.list().remove(0);
    assert_eq!(summary.health.versions_loaded, 2);
    assert!(summary.awaiting_approval.is_empty(), "{summary:?}");
    h.wait_event("plugin.reloaded", |e| e.data["plugin"] == "echo")
        .await;

    // Asking for less needs no approval.
    echo_with_grants(&folder, "emit = [\"test.pong\"]\n");
    h.host.reconcile().await.unwrap();
    assert_eq!(h.host.list()[0].health.versions_loaded, 3);
}

#[tokio::test]
async fn a_handler_with_nothing_left_to_read_shows_no_lag_however_many_events_it_skips() {
    let mut h = harness(&[("echo", fixture("echo-v1"))], |_| {}).await;
    for n in 0..50 {
        h.publish("other.noise", json!({ "n": n }));
    }
    h.publish("test.ping", json!({}));
    h.next_action().await;
    for n in 0..50 {
        h.publish("other.noise", json!({ "n": n }));
    }
    let plugin = h.host.get("echo").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let read = plugin.cursors()[&Kind::EventHandler];
        if read == h.bus.head() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "read up to {read}, head {}",
            h.bus.head()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
