//! Scenario: a malformed `host.toml` stops `host run` before it starts,
//! with an error naming the file, the line and the field.

use std::path::Path;

use host_tests::{read_events, run_host};

use crate::PATIENCE;

/// Runs `host run` with `config_text` as its host.toml; returns its stderr
/// after checking it failed without starting a host.
fn run_with_config(tmp: &Path, config_text: &str) -> (String, String) {
    let plugins = tmp.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let config = tmp.join("host.toml");
    std::fs::write(&config, config_text).unwrap();
    let state = tmp.join("state");
    let out = run_host(
        [
            "run".as_ref(),
            "--plugins".as_ref(),
            plugins.as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
            "--state-dir".as_ref(),
            state.as_os_str(),
        ],
        PATIENCE,
    )
    .expect("host run with a bad config should exit by itself");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "host run accepted a bad config:\n{config_text}\nstderr:\n{stderr}"
    );
    // No host started: either no journal at all, or one without host.started.
    if state.join("events.sqlite").exists() {
        let started = read_events(&state, &["host.started"]).unwrap();
        assert!(started.is_empty(), "a host started: {started:#?}");
    }
    (config.display().to_string(), stderr)
}

#[test]
fn a_misspelt_field_in_host_toml_is_named_with_its_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, stderr) = run_with_config(
        tmp.path(),
        "# a web server\n[process.web]\ncomand = \"python3 -m http.server\"\n",
    );
    assert!(
        stderr.contains(&format!("{file}:3")),
        "stderr should name {file} at line 3:\n{stderr}"
    );
    assert!(
        stderr.contains("comand"),
        "stderr should name the field `comand`:\n{stderr}"
    );
}

#[test]
fn a_field_of_the_wrong_type_in_host_toml_is_named_with_its_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, stderr) = run_with_config(
        tmp.path(),
        "[process.web]\ncommand = \"sleep 100\"\n\nautostart = \"yes\"\n",
    );
    assert!(
        stderr.contains(&format!("{file}:4")),
        "stderr should name {file} at line 4:\n{stderr}"
    );
    assert!(
        stderr.contains("autostart"),
        "stderr should name the field `autostart`:\n{stderr}"
    );
}
