//! The version a plugin claims is backed by its component: a `version`
//! bumped in `plugin.toml` before the rebuild is held, said once as
//! `plugin.waiting`, and claimed when the component changes.

use super::*;
use host_tests::{EMITS_TEST, install_plugin_folder};

/// Rewrite the manifest of the `echo` folder with `version` and `tail`.
fn manifest(folder: &Path, version: &str, tail: &str) {
    std::fs::write(
        folder.join("plugin.toml"),
        format!("name = \"echo\"\ncomponent = \"echo.wasm\"\nversion = \"{version}\"\n{EMITS_TEST}{tail}"),
    )
    .unwrap();
}

/// The `version` field of the pong the plugin answers a ping with.
async fn pong_version(h: &mut Harness) -> u64 {
    let seq = h.publish("test.ping", json!({}));
    loop {
        let request = h.next_action().await;
        if request.cause.map(|c| c.sequence) == Some(seq) {
            return emitted(&request)[0].1["version"].as_u64().unwrap();
        }
    }
}

async fn echo_1_0() -> (Harness, PathBuf) {
    let h = harness(&[], |_| {}).await;
    let folder = install_plugin_folder(&h.plugins, "echo", &fixture("echo-v1"), "");
    manifest(&folder, "1.0", "");
    h.host.reconcile().await.unwrap();
    assert_eq!(h.host.list()[0].version.as_deref(), Some("1.0"));
    (h, folder)
}

#[tokio::test]
async fn a_version_bumped_before_the_rebuild_keeps_the_old_one_serving_and_says_once_that_it_waits()
{
    let (mut h, folder) = echo_1_0().await;
    let digest = h.host.list()[0].digest.clone();
    manifest(&folder, "1.1", "");
    h.host.reconcile().await.unwrap();
    h.host.reconcile().await.unwrap();
    assert!(
        h.events("plugin.reloaded").is_empty(),
        "no reload claims 1.1 for the old code: {:#?}",
        h.events("plugin.reloaded")
    );
    let waiting = h.events("plugin.waiting");
    assert_eq!(waiting.len(), 1, "said once: {waiting:#?}");
    assert_eq!(waiting[0].data["declared_version"], "1.1");
    assert_eq!(waiting[0].data["serving_version"], "1.0");
    assert_eq!(waiting[0].data["digest"], json!(digest));
    let listed = &h.host.list()[0];
    assert_eq!(listed.version.as_deref(), Some("1.0"));
    assert_eq!(listed.waiting_for_rebuild.as_deref(), Some("1.1"));
    assert_eq!(pong_version(&mut h).await, 1, "the old code serves");

    // The rebuild lands: reloaded as usual, under the new version.
    install_component(&fixture("echo-v2"), &folder, "echo");
    h.host.reconcile().await.unwrap();
    let reloaded = h.wait_event("plugin.reloaded", |_| true).await;
    assert_eq!(reloaded.data["version"], "1.1");
    assert_ne!(reloaded.data["digest"], json!(digest));
    assert_eq!(h.host.list()[0].waiting_for_rebuild, None);
    assert_eq!(pong_version(&mut h).await, 2);
}

#[tokio::test]
async fn a_version_bumped_and_bumped_back_reloads_nothing_and_a_second_bump_is_said_again() {
    let (h, folder) = echo_1_0().await;
    manifest(&folder, "2.0", "");
    h.host.reconcile().await.unwrap();
    manifest(&folder, "1.0", "");
    h.host.reconcile().await.unwrap();
    assert_eq!(h.host.list()[0].waiting_for_rebuild, None);
    manifest(&folder, "2.0", "");
    h.host.reconcile().await.unwrap();
    assert_eq!(h.events("plugin.waiting").len(), 2);
    assert!(h.events("plugin.reloaded").is_empty());
    assert_eq!(h.host.list()[0].version.as_deref(), Some("1.0"));
}

#[tokio::test]
async fn a_config_change_with_a_premature_bump_still_applies_under_the_old_version() {
    let (h, folder) = echo_1_0().await;
    manifest(&folder, "1.1", "[config]\nmood = \"new\"\n");
    h.host.reconcile().await.unwrap();
    let reloaded = h.wait_event("plugin.reloaded", |_| true).await;
    assert_eq!(
        reloaded.data["version"], "1.0",
        "the config reloads, the name stays"
    );
    assert_eq!(h.events("plugin.waiting").len(), 1);
    // Config alone, no bump: a reload as before, nothing waits.
    manifest(&folder, "1.0", "[config]\nmood = \"newer\"\n");
    h.host.reconcile().await.unwrap();
    assert_eq!(h.events("plugin.reloaded").len(), 2);
    assert_eq!(h.host.list()[0].waiting_for_rebuild, None);
}

#[tokio::test]
async fn a_component_rebuilt_first_and_bumped_after_is_announced_under_the_new_version() {
    let (mut h, folder) = echo_1_0().await;
    install_component(&fixture("echo-v2"), &folder, "echo");
    h.host.reconcile().await.unwrap();
    let first = h.wait_event("plugin.reloaded", |_| true).await;
    assert_eq!(first.data["version"], "1.0", "the manifest still said 1.0");
    manifest(&folder, "1.1", "");
    h.host.reconcile().await.unwrap();
    let second = h
        .wait_event("plugin.reloaded", |e| e.data["version"] == "1.1")
        .await;
    assert_eq!(second.data["digest"], first.data["digest"]);
    assert!(h.events("plugin.waiting").is_empty());
    assert_eq!(pong_version(&mut h).await, 2);
}
