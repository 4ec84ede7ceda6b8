//! Scenario: the compilation cache in the state folder does not grow
//! without bound. A host started on a state folder holding an entry of
//! another host build and a leftover temporary file removes both; with
//! `cache_max_size` smaller than two entries, loading a second plugin
//! leaves one entry, the newest.

use std::path::Path;

use host_tests::{RunningHost, install_shipped_plugin};

use crate::PATIENCE;

fn entries(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache)
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_host_prunes_entries_it_can_never_load_and_keeps_the_cache_under_its_size() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let state = tmp.path().join("state");
    let cache = state.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("feed-0000000000000001.cwasm"), [0u8; 64]).unwrap();
    std::fs::write(cache.join("feed-0000000000000001.tmp999"), [0u8; 64]).unwrap();
    let config = tmp.path().join("host.toml");
    // One entry of a shipped plugin is well over 1 KiB: at most the newest stays.
    std::fs::write(&config, "[plugins]\ncache_max_size = \"1KiB\"\n").unwrap();
    install_shipped_plugin("failure-alert", &plugins);

    let mut host = RunningHost::start(&plugins, &state, &["--config", config.to_str().unwrap()]);
    host.wait_for("plugin.loaded", PATIENCE, |e| {
        e["subject"] == "failure-alert"
    })
    .unwrap();
    let first = entries(&cache);
    assert_eq!(first.len(), 1, "only the loaded plugin's entry: {first:?}");
    assert!(first[0].ends_with(".cwasm") && !first[0].starts_with("feed-"));

    install_shipped_plugin("completion-metrics", &plugins);
    host.wait_for("plugin.loaded", PATIENCE, |e| {
        e["subject"] == "completion-metrics"
    })
    .unwrap();
    let second = entries(&cache);
    assert_eq!(second.len(), 1, "the older entry was pruned: {second:?}");
    assert_ne!(second, first, "the newest entry is the one kept");
    host.terminate().unwrap();
}
