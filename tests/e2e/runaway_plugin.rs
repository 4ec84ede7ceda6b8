//! Scenario: a plugin that loops forever is cut off at its deadline,
//! reported, and quarantined, while another plugin in the same host keeps
//! answering.

use host_tests::{
    EMITS_TEST, RunningHost, fixture, install_component, install_plugin_folder, sequence,
};

use crate::PATIENCE;

#[test]
fn a_plugin_looping_forever_is_cut_off_and_quarantined_while_another_plugin_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    // spin-forever never returns from `test.spin`; echo answers `test.ping`.
    install_component(&fixture("spin-forever"), &plugins, "spin");
    install_plugin_folder(&plugins, "echo", &fixture("echo-v1"), EMITS_TEST);
    install_plugin_folder(
        &plugins,
        "spinner",
        &fixture("pinger"),
        &format!("[config]\ninterval_ms = 100\ntype = \"test.spin\"\n{EMITS_TEST}"),
    );
    install_plugin_folder(
        &plugins,
        "pinger",
        &fixture("pinger"),
        &format!("[config]\ninterval_ms = 50\ntype = \"test.ping\"\n{EMITS_TEST}"),
    );
    let mut host = RunningHost::start(&plugins, &tmp.path().join("state"), &[]);

    let failed = host
        .wait_for("plugin.failed", PATIENCE, |e| e["subject"] == "spin")
        .unwrap();
    assert_eq!(failed["data"]["failure"], "deadline", "{failed}");
    assert_eq!(failed["data"]["call"], "handle", "{failed}");
    let quarantined = host
        .wait_for("plugin.quarantined", PATIENCE, |e| e["subject"] == "spin")
        .unwrap();

    // echo keeps answering, after the failures and after the quarantine.
    for after in [sequence(&failed), sequence(&quarantined)] {
        host.wait_for("test.pong", PATIENCE, |e| {
            e["source"] == "plugin/echo" && e["data"]["ping_sequence"].as_u64() > Some(after)
        })
        .unwrap_or_else(|e| panic!("echo stopped answering after #{after}: {e:#}"));
    }
    let echo_failures: Vec<_> = host
        .events("plugin.>")
        .into_iter()
        .filter(|e| e["subject"] == "echo" && e["type"] != "plugin.loaded")
        .collect();
    assert!(
        echo_failures.is_empty(),
        "echo was affected: {echo_failures:#?}"
    );

    let status = host.terminate().unwrap();
    assert!(
        status.success(),
        "host exited with {status}:\n{}",
        host.stderr()
    );
}
