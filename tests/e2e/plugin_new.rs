//! `host plugin new` in Rust, JavaScript and Python: from scaffold to a live plugin.
//!
//! Each language's test does what the newcomer of docs/plugin-guide.md does:
//! `host plugin new`, the project's own `./build.sh`, `host plugin check`
//! (and `--conformance`, which calls the stubs on synthetic inputs),
//! then `host run --plugins` on the folder holding it, until
//! `plugin.loaded`. The four kinds are spread over the three languages and
//! every one is built and loaded: Rust builds an event handler and a status
//! mapper (they share one cargo target folder under the repository's
//! target/, so only the first pays for wit-bindgen), JavaScript a background
//! agent, Python a dependency rule.
//!
//! What each language takes from `new` to `plugin.loaded` is printed
//! (`--nocapture` shows it); nothing asserts on it.
//!
//! The toolchains are the ones `.ci/run` prepares: rustup's wasm32-wasip2,
//! npm (jco comes from npm's cache when it holds it), and componentize-py
//! from `examples/python/.venv` when that exists (else the project's
//! build.sh makes its own .venv).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use host_tests::{RunningHost, run_host, workspace_root};
use serde_json::Value;

use crate::PATIENCE;

/// A build that installs jco or compiles wit-bindgen on a loaded machine
/// takes minutes; this only keeps a hung build from hanging the suite.
const BUILD_PATIENCE: Duration = Duration::from_secs(600);
/// A first compile of an 18 MB Python component on a busy machine takes
/// tens of seconds.
const LOAD_PATIENCE: Duration = Duration::from_secs(300);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn plugin_new(args: &[&str]) -> Output {
    let mut all = vec!["plugin", "new"];
    all.extend_from_slice(args);
    run_host(all, PATIENCE).unwrap()
}

/// `host plugin new NAME --lang LANG --kind KIND --dir PARENT/NAME`, which
/// must succeed and say how to build and run.
fn scaffold(parent: &Path, name: &str, lang: &str, kind: &str) -> PathBuf {
    let dir = parent.join(name);
    let out = plugin_new(&[
        name,
        "--lang",
        lang,
        "--kind",
        kind,
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("./build.sh"), "{stdout}");
    assert!(
        stdout.contains(&format!("host run --plugins {}", parent.display())),
        "{stdout}"
    );
    dir
}

/// Runs the project's build script as its `[build] command` says, with
/// the outer `cargo test`'s settings removed (as the host removes them).
fn build(dir: &Path, env: &[(&str, &Path)]) {
    let manifest: toml_lite::Manifest = toml_lite::read(&dir.join("plugin.toml"));
    assert_eq!(manifest.build_command, "./build.sh");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(&manifest.build_command)
        .current_dir(dir);
    for name in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let out = run_with_timeout(command, BUILD_PATIENCE);
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        dir.join("build.sh").display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        dir.join(&manifest.component).is_file(),
        "the build wrote no {}",
        manifest.component
    );
}

fn run_with_timeout(mut command: Command, timeout: Duration) -> Output {
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // Only the build's own shell is ours to kill; what it started
            // dies with its pipes.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("the build did not finish within {timeout:?}");
        }
    }
}

/// `host plugin check DIR --json`: the kind the project was made as; then
/// `host plugin check --conformance DIR` must pass.
fn check(dir: &Path, kind: &str) -> Value {
    let out = run_host(
        ["plugin", "check", dir.to_str().unwrap(), "--json"],
        LOAD_PATIENCE,
    )
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kinds"], serde_json::json!([kind]), "{report}");
    // The kind's contract, on synthetic inputs: the stubs' functions run in
    // the component and their answers cross back valid.
    let out = run_host(
        ["plugin", "check", "--conformance", dir.to_str().unwrap()],
        LOAD_PATIENCE,
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    report
}

/// `host run --plugins PLUGINS` until each `(name, kind)` is loaded; the
/// host is stopped when the returned handle drops.
fn load(plugins: &Path, state: &Path, expected: &[(&str, &str)]) -> RunningHost {
    let mut host = RunningHost::start(plugins, state, &[]);
    for (name, kind) in expected {
        let loaded = host
            .wait_for("plugin.loaded", LOAD_PATIENCE, |e| e["subject"] == *name)
            .unwrap();
        assert_eq!(
            loaded["data"]["kinds"],
            serde_json::json!([kind]),
            "{loaded}"
        );
    }
    assert!(
        host.events("plugin.failed").is_empty(),
        "{:?}",
        host.events("plugin.failed")
    );
    host
}

/// The few fields of plugin.toml these tests read, parsed by hand so the
/// test crate needs no TOML parser of its own (the host parses it for real
/// in `host plugin check` and `host run`).
mod toml_lite {
    use std::path::Path;

    pub struct Manifest {
        pub component: String,
        pub build_command: String,
    }

    fn value(text: &str, key: &str) -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no {key} in plugin.toml:\n{text}"))
            .to_string()
    }

    pub fn read(path: &Path) -> Manifest {
        let text = std::fs::read_to_string(path).unwrap();
        Manifest {
            component: value(&text, "component"),
            build_command: value(&text, "command"),
        }
    }
}

#[test]
fn a_name_the_host_would_refuse_is_refused_and_nothing_is_written() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("x");
    let out = plugin_new(&[
        "two words",
        "--lang",
        "rust",
        "--kind",
        "event-handler",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("`two words` is not a valid plugin name"),
        "{stderr}"
    );
    assert!(!dir.exists());
}

#[test]
fn a_folder_that_holds_anything_is_refused_and_left_untouched() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("mine");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("plugin.toml"), "name = \"mine\"\n").unwrap();
    let out = plugin_new(&[
        "mine",
        "--lang",
        "js",
        "--kind",
        "event-handler",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("plugin.toml")).unwrap(),
        "name = \"mine\"\n"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn an_unknown_language_or_kind_is_refused_listing_the_choices() {
    let out = plugin_new(&["p", "--lang", "go", "--kind", "event-handler"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("rust, js, python"), "{stderr}");
    let out = plugin_new(&["p", "--lang", "rust", "--kind", "policy"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("event-handler, status-mapper, dependency-rule, background-agent"),
        "{stderr}"
    );
}

#[test]
fn every_language_and_kind_gets_the_contract_of_this_host_byte_for_byte() {
    let parent = tempfile::tempdir().unwrap();
    let repo_wit = workspace_root().join("wit");
    for lang in ["rust", "js", "python"] {
        for kind in [
            "event-handler",
            "status-mapper",
            "dependency-rule",
            "background-agent",
        ] {
            let name = format!("{lang}-{kind}");
            let dir = scaffold(parent.path(), &name, lang, kind);
            for file in ["types.wit", "host.wit", "kinds.wit", "worlds.wit"] {
                assert_eq!(
                    std::fs::read(dir.join("wit").join(file)).unwrap(),
                    std::fs::read(repo_wit.join(file)).unwrap(),
                    "{name}/wit/{file}"
                );
            }
            let build = std::fs::read_to_string(dir.join("build.sh")).unwrap();
            if lang != "rust" {
                assert!(build.contains(&format!("{kind}-plugin")), "{name}: {build}");
            }
        }
    }
}

#[test]
fn a_rust_handler_and_a_rust_mapper_build_check_and_load_as_they_are() {
    let parent = tempfile::tempdir().unwrap();
    // Shared by every run of this test, so only the first compiles
    // wit-bindgen; cargo's lock serialises concurrent runs.
    let target = workspace_root().join("target/plugin-new-e2e");
    let start = Instant::now();
    let handler = scaffold(parent.path(), "new-rust-handler", "rust", "event-handler");
    build(&handler, &[("CARGO_TARGET_DIR", &target)]);
    let report = check(&handler, "event-handler");
    assert_eq!(
        report["description"]["subscriptions"],
        serde_json::json!(["process.failed"])
    );
    let mapper = scaffold(parent.path(), "new-rust-mapper", "rust", "status-mapper");
    build(&mapper, &[("CARGO_TARGET_DIR", &target)]);
    let report = check(&mapper, "status-mapper");
    assert_eq!(
        report["description"]["mapper_kinds"],
        serde_json::json!(["new-rust-mapper"])
    );
    let state = tempfile::tempdir().unwrap();
    load(
        parent.path(),
        state.path(),
        &[
            ("new-rust-handler", "event-handler"),
            ("new-rust-mapper", "status-mapper"),
        ],
    );
    eprintln!(
        "rust: new -> build (two) -> loaded in {:?}",
        start.elapsed()
    );
}

/// The agent is the kind whose stub crosses a u64 (`intervalMs`) out of
/// JavaScript, which traps unless it is a Number.
#[test]
fn a_javascript_agent_builds_checks_and_loads_as_it_is() {
    let parent = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let dir = scaffold(parent.path(), "new-js-agent", "js", "background-agent");
    build(&dir, &[]);
    // The editor's type definitions came out of the build.
    assert!(dir.join("types/interfaces/host-plugin-host.d.ts").is_file());
    let report = check(&dir, "background-agent");
    assert_eq!(report["description"]["agent"]["interval"], 60000);
    let state = tempfile::tempdir().unwrap();
    let mut host = load(
        parent.path(),
        state.path(),
        &[("new-js-agent", "background-agent")],
    );
    // Its first tick ran in the component and crossed back.
    host.wait_for("agent.activity", LOAD_PATIENCE, |e| {
        e["subject"] == "new-js-agent" && e["data"]["activity"] == "watching 0 processes"
    })
    .unwrap();
    eprintln!("js: new -> build -> loaded in {:?}", start.elapsed());
}

#[test]
fn a_python_dependency_rule_builds_checks_and_loads_as_it_is() {
    let parent = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let dir = scaffold(parent.path(), "new-py-rule", "python", "dependency-rule");
    let venv = workspace_root().join("examples/python/.venv/bin");
    let path = std::env::join_paths(std::iter::once(venv).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    build(&dir, &[("PATH", Path::new(&path))]);
    // The editor's bindings came out of the build.
    assert!(dir.join("bindings/wit_world/exports/__init__.py").is_file());
    let report = check(&dir, "dependency-rule");
    assert_eq!(report["description"]["rule"]["name"], "new-py-rule");
    let state = tempfile::tempdir().unwrap();
    load(
        parent.path(),
        state.path(),
        &[("new-py-rule", "dependency-rule")],
    );
    eprintln!("python: new -> build -> loaded in {:?}", start.elapsed());
}
