//! Scenario: hot reload through the binary. The plugins folder holds the
//! `pinger` fixture (emits `test.ping` every 50 ms) and `echo/` (echo-v1,
//! answers each ping with `test.pong` {"version", "ping_sequence"}; its
//! manifest grants `test.>`); the tests change `echo/echo.wasm` under the
//! running host and read the journal.

use std::collections::BTreeMap;
use std::path::PathBuf;

use host_tests::{
    EMITS_TEST, RunningHost, fixture, install_component, install_plugin_folder, sequence,
};
use serde_json::Value;

use crate::PATIENCE;

/// A host serving echo-v1 as `echo`, fed pings by `pinger`.
struct Rig {
    host: RunningHost,
    plugins: PathBuf,
    _tmp: tempfile::TempDir,
}

fn start() -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_plugin_folder(
        &plugins,
        "pinger",
        &fixture("pinger"),
        &format!("[config]\ninterval_ms = 50\ntype = \"test.ping\"\n{EMITS_TEST}"),
    );
    install_plugin_folder(&plugins, "echo", &fixture("echo-v1"), EMITS_TEST);
    let host = RunningHost::start(&plugins, &tmp.path().join("state"), &[]);
    Rig {
        host,
        plugins,
        _tmp: tmp,
    }
}

/// The `test.pong` events `plugin` emitted.
fn pongs(host: &RunningHost, plugin: &str) -> Vec<Value> {
    let source = format!("plugin/{plugin}");
    host.events("test.pong")
        .into_iter()
        .filter(|e| e["source"] == source.as_str())
        .collect()
}

fn ping_of(pong: &Value) -> u64 {
    pong["data"]["ping_sequence"]
        .as_u64()
        .unwrap_or_else(|| panic!("pong without ping_sequence: {pong}"))
}

/// Waits for a pong from `plugin` of `version` answering a ping published
/// after sequence `after`.
fn wait_for_pong(host: &mut RunningHost, plugin: &str, version: u64, after: u64) -> Value {
    let source = format!("plugin/{plugin}");
    host.wait_for("test.pong", PATIENCE, |e| {
        e["source"] == source.as_str() && e["data"]["version"] == version && ping_of(e) > after
    })
    .unwrap_or_else(|e| panic!("no version-{version} pong from {plugin} after #{after}: {e:#}"))
}

/// Waits for `count` successive pongs as [`wait_for_pong`] does, each
/// answering a later ping than the one before; returns the last.
fn wait_for_pongs(
    host: &mut RunningHost,
    plugin: &str,
    version: u64,
    after: u64,
    count: usize,
) -> Value {
    let mut last = wait_for_pong(host, plugin, version, after);
    for _ in 1..count {
        last = wait_for_pong(host, plugin, version, ping_of(&last));
    }
    last
}

/// Every ping from the first one up to `last_ping` was answered by
/// `plugin` exactly once: nothing lost, nothing handled twice.
///
/// Call it once the pong for `last_ping` is in the journal; pings are
/// delivered in order, so every earlier one has been handled by then.
fn assert_each_ping_answered_once(host: &RunningHost, plugin: &str, last_ping: u64) {
    let pings: Vec<u64> = host
        .events("test.ping")
        .iter()
        .map(sequence)
        .filter(|s| *s <= last_ping)
        .collect();
    assert!(
        pings.contains(&last_ping),
        "#{last_ping} is not a ping: {pings:?}"
    );
    let mut answers: BTreeMap<u64, usize> = BTreeMap::new();
    for pong in pongs(host, plugin) {
        *answers.entry(ping_of(&pong)).or_default() += 1;
    }
    let wrong: Vec<(u64, usize)> = pings
        .iter()
        .map(|p| (*p, answers.get(p).copied().unwrap_or(0)))
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} pings up to #{last_ping} were not answered exactly once by {plugin} \
         (ping sequence, answers): {wrong:?}",
        wrong.len(),
        pings.len()
    );
}

fn subject_is(name: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["subject"] == name
}

#[test]
fn a_broken_component_written_in_place_fails_to_reload_and_the_old_version_keeps_serving() {
    let mut rig = start();
    wait_for_pong(&mut rig.host, "echo", 1, 0);

    // Overwrite the file in place (same inode), as a careless build does.
    std::fs::write(
        rig.plugins.join("echo/echo.wasm"),
        b"this is not a wasm component",
    )
    .unwrap();
    let failed = rig
        .host
        .wait_for("plugin.reload_failed", PATIENCE, subject_is("echo"))
        .unwrap();
    let error = failed["data"]["error"].as_str().unwrap_or_default();
    assert!(
        !error.trim().is_empty(),
        "reload_failed should carry the error text: {failed}"
    );
    assert!(
        error.contains("echo.wasm"),
        "the error should name the file: {failed}"
    );

    let later = wait_for_pongs(&mut rig.host, "echo", 1, sequence(&failed), 5);
    let swaps: Vec<Value> = rig
        .host
        .events("plugin.>")
        .into_iter()
        .filter(|e| {
            e["subject"] == "echo"
                && (e["type"] == "plugin.reloaded" || e["type"] == "plugin.unloaded")
        })
        .collect();
    assert!(
        swaps.is_empty(),
        "the broken file must not replace or unload echo: {swaps:#?}"
    );
    assert_each_ping_answered_once(&rig.host, "echo", ping_of(&later));

    let status = rig.host.terminate().unwrap();
    assert!(
        status.success(),
        "host exited with {status}:\n{}",
        rig.host.stderr()
    );
}

#[test]
fn a_component_dropped_into_the_folder_is_loaded_and_deleting_it_unloads_it() {
    let mut rig = start();
    wait_for_pong(&mut rig.host, "echo", 1, 0);

    let added = install_plugin_folder(&rig.plugins, "echo2", &fixture("echo-v2"), EMITS_TEST);
    let loaded = rig
        .host
        .wait_for("plugin.loaded", PATIENCE, subject_is("echo2"))
        .unwrap();
    assert_eq!(
        loaded["data"]["kinds"],
        serde_json::json!(["event-handler"]),
        "{loaded}"
    );
    wait_for_pong(&mut rig.host, "echo2", 2, sequence(&loaded));

    std::fs::remove_dir_all(&added).unwrap();
    let unloaded = rig
        .host
        .wait_for("plugin.unloaded", PATIENCE, subject_is("echo2"))
        .unwrap();
    // Once echo has answered a ping published after the unload, echo2 would
    // have answered it too, had it still been loaded.
    let later = wait_for_pong(&mut rig.host, "echo", 1, sequence(&unloaded));
    let late: Vec<Value> = pongs(&rig.host, "echo2")
        .into_iter()
        .filter(|p| ping_of(p) > sequence(&unloaded))
        .collect();
    assert!(
        late.is_empty(),
        "echo2 answered pings after its unload: {late:#?}"
    );
    assert_each_ping_answered_once(&rig.host, "echo", ping_of(&later));

    let status = rig.host.terminate().unwrap();
    assert!(
        status.success(),
        "host exited with {status}:\n{}",
        rig.host.stderr()
    );
}

#[test]
fn replacing_a_component_with_a_new_version_reloads_it_and_the_new_version_answers() {
    let mut rig = start();
    wait_for_pong(&mut rig.host, "echo", 1, 0);

    install_component(&fixture("echo-v2"), &rig.plugins.join("echo"), "echo");
    let reloaded = rig
        .host
        .wait_for("plugin.reloaded", PATIENCE, subject_is("echo"))
        .unwrap();
    let later = wait_for_pongs(&mut rig.host, "echo", 2, sequence(&reloaded), 5);

    // The swap happens before plugin.reloaded is published: no ping after
    // it may reach version 1.
    let stale: Vec<Value> = pongs(&rig.host, "echo")
        .into_iter()
        .filter(|p| p["data"]["version"] == 1 && ping_of(p) > sequence(&reloaded))
        .collect();
    assert!(
        stale.is_empty(),
        "version 1 answered pings after the reload: {stale:#?}"
    );
    // The cursor carried over: across the swap every ping got one answer.
    assert_each_ping_answered_once(&rig.host, "echo", ping_of(&later));

    let status = rig.host.terminate().unwrap();
    assert!(
        status.success(),
        "host exited with {status}:\n{}",
        rig.host.stderr()
    );
}
