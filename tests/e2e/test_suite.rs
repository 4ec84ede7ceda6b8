//! Test runs of kind `test_suite` reported with counts and first failures
//! (and, in the same pattern, a build of kind `build` with its errors).
//!
//! A real pytest session, supervised by the real binary with the shipped
//! test-suite-mapper: the process shows the live counts and progress, and
//! the end of the run is a `test_suite.finished` event with the counts and
//! the failures with their messages.
//!
//! pytest comes from `python3 -m pytest` if installed, else from a venv in
//! `target/pytest-venv` (which `.ci/run` prepares, and this test creates
//! with pip when it can). Without either, and without the network to make
//! one, the test says so and skips — unless `HOST_E2E_REQUIRE_PYTEST` is
//! set, as CI sets it, where that is a failure.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use host_tests::{RunningHost, install_shipped_plugin, run_host, workspace_root};
use serde_json::{Value, json};

use crate::PATIENCE;

/// Whether `python` can run pytest.
fn has_pytest(python: &str) -> bool {
    Command::new(python)
        .args(["-m", "pytest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A Python that can run pytest, or why there is none.
fn pytest_python() -> Result<PathBuf, String> {
    if has_pytest("python3") {
        return Ok(PathBuf::from("python3"));
    }
    let venv = workspace_root().join("target/pytest-venv");
    let python = venv.join("bin/python");
    if has_pytest(&python.to_string_lossy()) {
        return Ok(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !made.status.success() {
        return Err(format!(
            "python3 -m venv failed: {}",
            String::from_utf8_lossy(&made.stderr)
        ));
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "pytest>=8,<10"])
        .output()
        .map_err(|e| format!("pip: {e}"))?;
    if !pip.status.success() || !has_pytest(&python.to_string_lossy()) {
        return Err(format!(
            "pip install pytest failed: {}",
            String::from_utf8_lossy(&pip.stderr)
        ));
    }
    Ok(python)
}

const TESTS: &str = r#"import pytest

def test_adds():
    assert 1 + 1 == 2

def test_compares():
    assert [1, 2, 3] == [1, 2, 4]

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

def test_raises():
    raise ValueError("bad input: 42")

def test_more():
    assert True
"#;

#[test]
fn a_failing_pytest_run_is_reported_with_its_counts_and_first_failures() {
    let python = match pytest_python() {
        Ok(python) => python,
        Err(why) if std::env::var_os("HOST_E2E_REQUIRE_PYTEST").is_none() => {
            eprintln!("SKIPPED: no pytest on this machine and none could be installed: {why}");
            return;
        }
        Err(why) => panic!("HOST_E2E_REQUIRE_PYTEST is set but there is no pytest: {why}"),
    };
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_shipped_plugin("test-suite-mapper", &plugins);
    let project = tmp.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join("test_sample.py"), TESTS).unwrap();
    let config = tmp.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[process.unit]\ncommand = \"'{python}' -m pytest -p no:cacheprovider\"\n\
             cwd = '{project}'\nkind = \"test_suite\"\n",
            python = python.display(),
            project = project.display(),
        ),
    )
    .unwrap();
    let mut host = RunningHost::start(
        &plugins,
        &tmp.path().join("state"),
        &["--config", config.to_str().unwrap(), "--no-build"],
    );
    host.api();

    let finished = host
        .wait_for("test_suite.finished", PATIENCE, |_| true)
        .unwrap();
    let data = &finished["data"];
    assert_eq!(finished["subject"], "unit");
    assert_eq!(finished["source"], "plugin/test-suite-mapper");
    assert_eq!(
        (&data["passed"], &data["failed"], &data["skipped"]),
        (&json!(2), &json!(2), &json!(1)),
        "{data}"
    );
    assert_eq!(data["outcome"], "failed");
    assert_eq!(data["exit_code"], 1);
    assert_eq!(data["complete"], true);
    assert_eq!(
        data["failures"],
        json!([
            { "test": "test_sample.py::test_compares", "message": "assert [1, 2, 3] == [1, 2, 4]" },
            { "test": "test_sample.py::test_raises", "message": "ValueError: bad input: 42" },
        ])
    );
    // The run's end came after its output: the event is caused by it.
    let failed = host
        .events("process.failed")
        .into_iter()
        .find(|e| e["subject"] == "unit")
        .expect("process.failed of unit");
    assert!(host_tests::sequence(&finished) > host_tests::sequence(&failed));

    // The process itself shows the counts, read live from its output.
    let state = host.state_dir.display().to_string();
    let mut shown = Value::Null;
    let ok = host_tests::eventually(PATIENCE, || {
        let out = run_host(
            ["ps", "--state-dir", state.as_str(), "--json"],
            Duration::from_secs(120),
        )
        .unwrap();
        let all: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        shown = all
            .as_array()
            .and_then(|a| a.iter().find(|p| p["process_id"] == "unit").cloned())
            .unwrap_or_default();
        shown["message"] == "2 passed, 2 failed, 1 skipped"
    });
    assert!(ok, "host ps never showed the counts: {shown}");
    assert_eq!(shown["progress"], 1.0);
    assert_eq!(shown["state"], "failed");
}

/// A broken crate: two type errors rustc reports with their places.
const BROKEN_MAIN: &str = "fn main() {\n    let x: i32 = \"a\";\n    println!(\"{}\", y);\n}\n";

#[test]
fn a_failing_cargo_build_is_reported_with_its_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_shipped_plugin("build-mapper", &plugins);
    let project = tmp.path().join("broken");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(project.join("src/main.rs"), BROKEN_MAIN).unwrap();
    let config = tmp.path().join("host.toml");
    // Its own target folder, and no colours: as a user's terminal-less build.
    std::fs::write(
        &config,
        format!(
            "[process.app]\ncommand = \"cargo build --offline\"\ncwd = '{project}'\nkind = \"build\"\n\
             env = {{ CARGO_TARGET_DIR = '{target}', CARGO_TERM_COLOR = \"never\" }}\n",
            project = project.display(),
            target = tmp.path().join("target").display(),
        ),
    )
    .unwrap();
    let mut host = RunningHost::start(
        &plugins,
        &tmp.path().join("state"),
        &["--config", config.to_str().unwrap(), "--no-build"],
    );
    host.api();

    let finished = host.wait_for("build.finished", PATIENCE, |_| true).unwrap();
    let data = &finished["data"];
    assert_eq!(finished["subject"], "app");
    assert_eq!(data["outcome"], "failed", "{data}");
    assert_eq!(data["error_count"], 2, "{data}");
    assert_eq!(
        data["errors"][0],
        json!({ "file": "src/main.rs", "line": 3, "column": 20,
                "message": "E0425: cannot find value `y` in this scope" })
    );
    assert_eq!(data["errors"][1]["message"], "E0308: mismatched types");
    assert_eq!(
        (&data["errors"][1]["line"], &data["errors"][1]["column"]),
        (&json!(2), &json!(18))
    );

    let state = host.state_dir.display().to_string();
    let mut shown = Value::Null;
    let ok = host_tests::eventually(PATIENCE, || {
        let out = run_host(
            ["ps", "--state-dir", state.as_str(), "--json"],
            Duration::from_secs(120),
        )
        .unwrap();
        let all: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        shown = all
            .as_array()
            .and_then(|a| a.iter().find(|p| p["process_id"] == "app").cloned())
            .unwrap_or_default();
        shown["message"] == "2 errors (src/main.rs:3)"
    });
    assert!(ok, "host ps never showed the errors: {shown}");
}
