//! The authoring loop: a plugin folder filled after it was made, a version bumped before the rebuild, guest errors in words, `[build]` and `host run --watch`.

// --- folder and watch
//
// A plugin folder made empty and filled afterwards, a component built
// into folders that do not exist yet, and `host run --watch` with a real
// build command: `build.sh` copies echo-v1 or echo-v2 into place depending
// on what `src/version.txt` says (anything else fails as a compiler does),
// and appends a line to `builds.log` per build, so the tests count builds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use host_tests::{EMITS_TEST, RunningHost, fixture, install_plugin_folder, sequence};
use serde_json::Value;

use crate::PATIENCE;

/// Waits for `host.plugins_loaded`: the first load is over and the
/// watcher runs.
fn wait_started(host: &mut RunningHost) {
    host.wait_for("host.plugins_loaded", PATIENCE, |_| true)
        .expect("the host finishes its first load");
}

/// Lets a few debounce spells pass, so the watcher has handled the last
/// change before the next one: what the tests build up in steps arrives in
/// steps, not as one batch.
fn pause() {
    std::thread::sleep(Duration::from_millis(700));
}

fn loaded(name: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["data"]["plugin"] == name
}

#[test]
fn a_plugin_folder_made_empty_and_filled_later_is_loaded_by_the_running_host() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let mut host = RunningHost::start(&plugins, &tmp.path().join("state"), &[]);
    wait_started(&mut host);

    // mkdir, then (an npm install later) the manifest, then the build's
    // component: three steps the watcher sees apart.
    let folder = plugins.join("late");
    std::fs::create_dir(&folder).unwrap();
    pause();
    std::fs::write(
        folder.join("plugin.toml"),
        format!("name = \"late\"\ncomponent = \"late.wasm\"\n{EMITS_TEST}"),
    )
    .unwrap();
    // The manifest alone names a component that is not there yet.
    host.wait_for("plugin.load_failed", PATIENCE, |e| {
        e["data"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("late/plugin.toml"))
    })
    .unwrap();
    pause();
    std::fs::copy(fixture("echo-v1"), folder.join("late.wasm")).unwrap();
    host.wait_for("plugin.loaded", PATIENCE, loaded("late"))
        .unwrap();
}

#[test]
fn a_component_built_into_folders_that_do_not_exist_yet_is_loaded_when_it_appears() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    let folder = plugins.join("nested");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("plugin.toml"),
        format!(
            "name = \"nested\"\ncomponent = \"target/wasm32-wasip2/release/nested.wasm\"\n{EMITS_TEST}"
        ),
    )
    .unwrap();
    let mut host = RunningHost::start(&plugins, &tmp.path().join("state"), &[]);
    wait_started(&mut host);
    assert!(
        host.events("plugin.loaded").is_empty(),
        "nothing to load yet"
    );

    // A build makes its output folders one level at a time, minutes
    // apart for all the host knows, and writes the component last.
    let mut release = folder.clone();
    for part in ["target", "wasm32-wasip2", "release"] {
        release.push(part);
        std::fs::create_dir(&release).unwrap();
        pause();
    }
    std::fs::copy(fixture("echo-v1"), release.join("nested.wasm")).unwrap();
    host.wait_for("plugin.loaded", PATIENCE, loaded("nested"))
        .unwrap();

    // A clean build deletes the output tree and makes it anew: the new
    // folders are watched too, and the new component is loaded.
    std::fs::remove_dir_all(folder.join("target")).unwrap();
    pause();
    std::fs::create_dir_all(&release).unwrap();
    pause();
    std::fs::copy(fixture("echo-v2"), release.join("nested.wasm")).unwrap();
    host.wait_for("plugin.reloaded", PATIENCE, loaded("nested"))
        .unwrap();
}

/// A host serving `pinger` (a ping every 50 ms) and `echo`, a plugin with
/// a real `[build]`: see the comment at the top of this section.
struct Rig {
    host: RunningHost,
    plugins: PathBuf,
    echo: PathBuf,
    _tmp: tempfile::TempDir,
}

/// The echo plugin folder with `build.sh`, `src/version.txt` = "1", the
/// echo-v1 component in place and a manifest whose `[build]` runs
/// `build.sh` and watches `src/**/*.txt`. `extra` is appended to the
/// build script (a build that writes into its own sources).
fn install_echo(plugins: &Path, extra: &str) -> PathBuf {
    let echo = plugins.join("echo");
    std::fs::create_dir_all(echo.join("src")).unwrap();
    std::fs::write(echo.join("src/version.txt"), "1\n").unwrap();
    let script = format!(
        "#!/bin/sh\n\
         echo build >> builds.log\n\
         case \"$(cat src/version.txt)\" in\n\
         1) cp '{v1}' echo.wasm.tmp ;;\n\
         2) cp '{v2}' echo.wasm.tmp ;;\n\
         *) echo '   Compiling echo v0.1.0'\n\
            echo 'error[E0308]: mismatched types' >&2\n\
            echo ' --> src/lib.rs:3:5' >&2\n\
            exit 1 ;;\n\
         esac\n\
         mv echo.wasm.tmp echo.wasm\n\
         {extra}\n",
        v1 = fixture("echo-v1").display(),
        v2 = fixture("echo-v2").display(),
    );
    std::fs::write(echo.join("build.sh"), script).unwrap();
    std::fs::copy(fixture("echo-v1"), echo.join("echo.wasm")).unwrap();
    std::fs::write(
        echo.join("plugin.toml"),
        format!(
            "name = \"echo\"\ncomponent = \"echo.wasm\"\n{EMITS_TEST}\n\
             [build]\ncommand = \"sh build.sh\"\nwatch = [\"src/**/*.txt\"]\n"
        ),
    )
    .unwrap();
    echo
}

fn start_rig(flags: &[&str], extra: &str) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_plugin_folder(
        &plugins,
        "pinger",
        &fixture("pinger"),
        &format!("[config]\ninterval_ms = 50\ntype = \"test.ping\"\n{EMITS_TEST}"),
    );
    let echo = install_echo(&plugins, extra);
    let host = RunningHost::start(&plugins, &tmp.path().join("state"), flags);
    Rig {
        host,
        plugins,
        echo,
        _tmp: tmp,
    }
}

/// Waits for a pong of `version` from echo answering a ping published
/// after sequence `after`.
fn wait_for_pong(host: &mut RunningHost, version: u64, after: u64) -> Value {
    host.wait_for("test.pong", PATIENCE, |e| {
        e["source"] == "plugin/echo"
            && e["data"]["version"] == version
            && e["data"]["ping_sequence"]
                .as_u64()
                .is_some_and(|p| p > after)
    })
    .unwrap_or_else(|e| panic!("no version-{version} pong after #{after}: {e:#}"))
}

/// How many builds `build.sh` ran.
fn builds(echo: &Path) -> usize {
    std::fs::read_to_string(echo.join("builds.log"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Proof that the watcher has handled everything before it: a new plugin
/// folder, loaded. Batches are handled in order, and a batch's builds run
/// before its reload, so a build caused by an earlier change has run by
/// the time this plugin is loaded.
fn barrier(rig: &mut Rig, name: &'static str) {
    install_plugin_folder(&rig.plugins, name, &fixture("echo-v1"), EMITS_TEST);
    rig.host
        .wait_for("plugin.loaded", PATIENCE, loaded(name))
        .unwrap();
}

#[test]
fn with_watch_a_source_edit_rebuilds_and_a_failed_build_keeps_the_old_version_serving() {
    let mut rig = start_rig(&["--watch"], "");
    let first = wait_for_pong(&mut rig.host, 1, 0);
    assert_eq!(builds(&rig.echo), 0, "the component was in place");

    // The edit that matters: the build now copies echo-v2.
    std::fs::write(rig.echo.join("src/version.txt"), "2\n").unwrap();
    let reloaded = rig
        .host
        .wait_for("plugin.reloaded", PATIENCE, loaded("echo"))
        .unwrap();
    wait_for_pong(&mut rig.host, 2, sequence(&reloaded));
    assert_eq!(builds(&rig.echo), 1);
    assert!(sequence(&reloaded) > sequence(&first));

    // A source that does not compile: the build fails, says why, and
    // version 2 keeps answering.
    std::fs::write(rig.echo.join("src/version.txt"), "oops\n").unwrap();
    let failed = rig
        .host
        .wait_for("plugin.build_failed", PATIENCE, loaded("echo"))
        .unwrap();
    let data = &failed["data"];
    assert_eq!(data["command"], "sh build.sh", "{failed}");
    assert_eq!(data["code"], 1, "{failed}");
    assert!(
        data["status"].as_str().is_some_and(|s| s.contains('1')),
        "{failed}"
    );
    let output = data["output"].as_str().unwrap_or_default();
    assert!(
        output.contains("error[E0308]: mismatched types")
            && output.contains("src/lib.rs:3:5")
            && output.contains("Compiling echo"),
        "the compiler's output, stderr and stdout: {failed}"
    );
    assert!(
        rig.host.stderr().contains("mismatched types"),
        "the log shows the compiler output too"
    );
    wait_for_pong(&mut rig.host, 2, sequence(&failed));
    let swaps = rig
        .host
        .events("plugin.>")
        .into_iter()
        .filter(|e| {
            e["data"]["plugin"] == "echo"
                && sequence(e) > sequence(&failed)
                && matches!(
                    e["type"].as_str(),
                    Some("plugin.reloaded" | "plugin.unloaded")
                )
        })
        .count();
    assert_eq!(swaps, 0, "the failed build replaced nothing");

    // Fixed again: back to version 1, one build per edit in all.
    std::fs::write(rig.echo.join("src/version.txt"), "1\n").unwrap();
    let back = rig
        .host
        .wait_for("plugin.reloaded", PATIENCE, |e| {
            e["data"]["plugin"] == "echo" && sequence(e) > sequence(&failed)
        })
        .unwrap();
    wait_for_pong(&mut rig.host, 1, sequence(&back));
    assert_eq!(builds(&rig.echo), 3);
}

#[test]
fn a_burst_of_saves_is_one_build_and_a_save_that_changes_nothing_is_none() {
    let mut rig = start_rig(&["--watch"], "");
    wait_for_pong(&mut rig.host, 1, 0);
    // An editor's save: truncate, write in pieces, rename a backup.
    let source = rig.echo.join("src/version.txt");
    for text in ["", "2", "2\n"] {
        std::fs::write(&source, text).unwrap();
    }
    std::fs::write(rig.echo.join("src/notes.txt~"), "backup").unwrap();
    let reloaded = rig
        .host
        .wait_for("plugin.reloaded", PATIENCE, loaded("echo"))
        .unwrap();
    wait_for_pong(&mut rig.host, 2, sequence(&reloaded));
    barrier(&mut rig, "barrier-one");
    assert_eq!(builds(&rig.echo), 1, "the burst was one build");

    // The same bytes saved again, and a file the globs do not match.
    std::fs::write(&source, "2\n").unwrap();
    std::fs::write(rig.echo.join("README.txt"), "not under src/").unwrap();
    barrier(&mut rig, "barrier-two");
    assert_eq!(builds(&rig.echo), 1, "nothing changed, nothing built");
}

#[test]
fn a_build_that_writes_into_its_own_watched_sources_runs_once_not_in_a_loop() {
    // The build touches a source and rewrites a generated one with new
    // content each time, as code generators do.
    let mut rig = start_rig(
        &["--watch"],
        "touch src/version.txt\ndate +%s%N > src/generated.txt",
    );
    wait_for_pong(&mut rig.host, 1, 0);
    std::fs::write(rig.echo.join("src/version.txt"), "2\n").unwrap();
    let reloaded = rig
        .host
        .wait_for("plugin.reloaded", PATIENCE, loaded("echo"))
        .unwrap();
    wait_for_pong(&mut rig.host, 2, sequence(&reloaded));
    // A loop would go on building; give it room to show, then count.
    pause();
    barrier(&mut rig, "barrier");
    pause();
    assert_eq!(builds(&rig.echo), 1, "one edit, one build");
    assert!(rig.echo.join("src/generated.txt").is_file());
    assert!(
        rig.host.events("plugin.build_failed").is_empty(),
        "{:?}",
        rig.host.events("plugin.build_failed")
    );
}

#[test]
fn without_watch_a_source_edit_builds_nothing() {
    let mut rig = start_rig(&[], "");
    wait_for_pong(&mut rig.host, 1, 0);
    std::fs::write(rig.echo.join("src/version.txt"), "2\n").unwrap();
    barrier(&mut rig, "barrier");
    pause();
    assert_eq!(builds(&rig.echo), 0, "sources are not watched");
    let pong = wait_for_pong(&mut rig.host, 1, 0);
    assert_eq!(pong["data"]["version"], 1);
}

// --- (helper E's tests follow)

// --- versions, guest errors, shadow
//
// A guest's error in its own words in the journal: a JavaScript handler
// returning the wrong shape and a Python handler raising an exception,
// each built here with the flags of its language's example and fed by
// `pinger`; the host's report (`plugin.failed`) must carry what the guest
// wrote to stderr as `guest_message`.
mod guest_errors {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::Duration;

    use host_tests::{
        EMITS_TEST, RunningHost, example_component, fixture, install_plugin_folder, workspace_root,
    };
    use serde_json::Value;

    use crate::PATIENCE;

    /// Build a guest with `command` in `dir`; panics with its output.
    fn build(dir: &Path, command: &mut Command) {
        let out = command
            .current_dir(dir)
            .output()
            .expect("run the guest build");
        assert!(
            out.status.success(),
            "guest build failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A host with `pinger` (test.ping every 50 ms) and `component` as
    /// `name`; waits for the first `plugin.failed` of `name`.
    fn first_failure(tmp: &Path, name: &str, component: &Path, tail: &str) -> Value {
        first_failure_within(tmp, name, component, tail, PATIENCE)
    }

    /// [`first_failure`], waiting up to `patience` (a Python component
    /// takes the host tens of seconds to compile on a busy machine).
    fn first_failure_within(
        tmp: &Path,
        name: &str,
        component: &Path,
        tail: &str,
        patience: Duration,
    ) -> Value {
        let plugins = tmp.join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        install_plugin_folder(
            &plugins,
            "pinger",
            &fixture("pinger"),
            &format!("[config]\ninterval_ms = 50\ntype = \"test.ping\"\n{EMITS_TEST}"),
        );
        install_plugin_folder(&plugins, name, component, &format!("{EMITS_TEST}{tail}"));
        let mut host = RunningHost::start(&plugins, &tmp.join("state"), &[]);
        host.wait_for("plugin.failed", patience, |e| e["data"]["plugin"] == name)
            .unwrap_or_else(|e| {
                panic!(
                    "no plugin.failed from {name}: {e:#}\n{:#?}",
                    host.events("plugin.>")
                )
            })
    }

    fn guest_message(failed: &Value) -> &str {
        failed["data"]["guest_message"]
            .as_str()
            .unwrap_or_else(|| panic!("no guest_message in {:#}", failed["data"]))
    }

    #[test]
    fn a_javascript_handler_returning_the_wrong_shape_says_what_it_could_not_convert() {
        // The example's build installs jco (CI runs it before the tests).
        example_component("js/restart-on-failure", "restart-on-failure.wasm");
        let jco = workspace_root().join("examples/js/restart-on-failure/node_modules/.bin/jco");
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        // An emit without `data`: undefined where WIT wants a string.
        std::fs::write(
            src.join("app.js"),
            "export const eventHandler = {\n\
             \x20 subscriptions() { return ['test.ping']; },\n\
             \x20 handle(e) { return [{ tag: 'emit', val: { type: 'test.pong' } }]; },\n\
             };\n",
        )
        .unwrap();
        let wit = workspace_root().join("wit/v0.1");
        // The flags of examples/js/restart-on-failure/build.sh.
        build(
            &src,
            Command::new(&jco)
                .args(["componentize", "app.js", "--wit"])
                .arg(&wit)
                .args([
                    "--world-name",
                    "event-handler-plugin",
                    "--backend",
                    "quickjs",
                    "--backend-qjs-disable-async",
                    "-o",
                    "shape.wasm",
                ]),
        );
        // A deadline well past a busy machine's first QuickJS call: this
        // test is about the conversion's message, and under CI's load the
        // default 100 ms was once met before the guest got to trap.
        let failed = first_failure(
            tmp.path(),
            "shape",
            &src.join("shape.wasm"),
            "[limits]\ndeadline_ms = 5000\n",
        );
        let said = guest_message(&failed);
        assert!(
            said.contains("expected string") && said.contains("undefined"),
            "{said}"
        );
        assert!(
            failed["data"]["error"]
                .as_str()
                .unwrap()
                .contains("unreachable"),
            "the trap as it was: {}",
            failed["data"]["error"]
        );
    }

    /// componentize-py: on `PATH`, else the examples' venv (which the
    /// example's build fills).
    fn componentize_py() -> PathBuf {
        example_component("python/failure-alert", "failure-alert.wasm");
        let on_path = Command::new("sh")
            .args(["-c", "command -v componentize-py"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        on_path
            .unwrap_or_else(|| workspace_root().join("examples/python/.venv/bin/componentize-py"))
    }

    #[test]
    fn a_python_handler_raising_an_exception_leaves_its_traceback_in_the_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        // A KeyError raised out of `handle`: not an `Err`, so
        // componentize-py prints the traceback and traps.
        std::fs::write(
            src.join("app.py"),
            "from typing import List\n\
             from wit_world import exports\n\
             from wit_world.imports.types import Action, Event\n\
             \n\
             LIMITS = {\"pings\": 3}\n\
             \n\
             class EventHandler(exports.EventHandler):\n\
             \x20   def subscriptions(self) -> List[str]:\n\
             \x20       return [\"test.ping\"]\n\
             \n\
             \x20   def handle(self, e: Event) -> List[Action]:\n\
             \x20       return LIMITS[\"pongs_per_ping\"]\n",
        )
        .unwrap();
        // The flags of examples/python/failure-alert/build.sh.
        build(
            &src,
            Command::new(componentize_py())
                .arg("-d")
                .arg(workspace_root().join("wit"))
                .args([
                    "-w",
                    "event-handler-plugin",
                    "componentize",
                    "app",
                    "-o",
                    "raise.wasm",
                ]),
        );
        let failed = first_failure_within(
            tmp.path(),
            "raise",
            &src.join("raise.wasm"),
            "",
            Duration::from_secs(300),
        );
        let said = guest_message(&failed);
        assert!(said.contains("Traceback"), "{said}");
        assert!(
            said.contains("KeyError") && said.contains("pongs_per_ping"),
            "the exception and its key: {said}"
        );
        assert!(
            said.contains("app.py") && said.contains("line 12"),
            "where it was raised: {said}"
        );
    }
}
