//! Building guest plugins: a manifest's `[build] command`, as `spin build`
//! does (so a fresh checkout's `host run` builds the plugins it ships before
//! loading them), and the one `cargo build` of a Rust guest workspace that
//! the bench and the test kit use too.
//!
//! A build is someone else's program running on the host's behalf, so it
//! is held to what a supervised process is: its own process group (a
//! timeout or a host stop takes the whole tree, `cargo` and every `rustc`
//! it started), a time limit, and its output kept for the error message
//! instead of scrolling past.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use super::error::PluginError;
use super::manifest::{BuildSpec, PluginSpec};

/// Most bytes of build output kept for the error message.
const OUTPUT_TAIL: usize = 4000;
/// How long a `[build] command` may run before it is killed.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// The target every guest is built for.
const GUEST_TARGET: &str = "wasm32-wasip2";

/// Removes what an outer `cargo` (a host started by `cargo run`, a test
/// run by `cargo test`) leaves in the environment: it would send a guest
/// build to another target folder or the wrong target.
fn clean_cargo_env<C: CommandEnv>(command: &mut C) {
    for name in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        command.remove_env(name);
    }
}

/// The one method [`clean_cargo_env`] needs, for std's and tokio's
/// `Command` alike.
trait CommandEnv {
    /// Removes `name` from the child's environment.
    fn remove_env(&mut self, name: &str);
}

impl CommandEnv for std::process::Command {
    fn remove_env(&mut self, name: &str) {
        self.env_remove(name);
    }
}

impl CommandEnv for tokio::process::Command {
    fn remove_env(&mut self, name: &str) {
        self.env_remove(name);
    }
}

/// `cargo build --release --target wasm32-wasip2 [-p PACKAGE ...]` in the
/// guest workspace `dir`, with the outer cargo's settings removed; the
/// caller runs it.
pub fn guest_build(dir: &std::path::Path, packages: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("cargo");
    command
        .args(["build", "--release", "--target", GUEST_TARGET])
        .args(packages.iter().flat_map(|p| ["-p", p]))
        .current_dir(dir);
    clean_cargo_env(&mut command);
    command
}

/// Run `build.command` with `sh -c` in the manifest's folder, in a process
/// group of its own, for at most `timeout`.
///
/// # Errors
///
/// [`PluginError::Build`] with the exit status (or the timeout) and the
/// tail of the command's output when it fails, runs too long, or does not
/// produce the component.
pub(crate) async fn run(
    spec: &PluginSpec,
    build: &BuildSpec,
    timeout: Duration,
) -> Result<(), PluginError> {
    let finished = execute(spec, build, timeout, std::future::pending()).await?;
    finished.into_result(spec, build)
}

/// How a build ended: its status (`None`: killed, past its time limit or
/// because the host stopped) and the tail of its output.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The exit status, if it exited by itself.
    pub status: Option<std::process::ExitStatus>,
    /// Why it was killed, when it was.
    pub killed: Option<String>,
    /// The last [`OUTPUT_TAIL`] bytes of stderr then stdout.
    pub output: String,
}

impl Finished {
    /// The status in words: `exit status: 1`, or why it was killed.
    pub fn status_text(&self) -> String {
        match (&self.status, &self.killed) {
            (Some(status), _) => status.to_string(),
            (None, Some(why)) => why.clone(),
            (None, None) => "killed".into(),
        }
    }

    /// The exit code, if it exited with one.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// `Ok` when the command succeeded and the component exists; the
    /// [`PluginError::Build`] saying otherwise.
    pub fn into_result(self, spec: &PluginSpec, build: &BuildSpec) -> Result<(), PluginError> {
        let fail = |reason: String| PluginError::Build {
            plugin: spec.name.clone(),
            command: build.command.clone(),
            reason,
        };
        match self.status {
            None => Err(fail(format!(
                "{}; its output ended:\n{}",
                self.status_text(),
                self.output
            ))),
            Some(status) if !status.success() => Err(fail(format!("{status}:\n{}", self.output))),
            Some(_) if !spec.component_path.exists() => Err(fail(format!(
                "it succeeded but {} still does not exist",
                spec.component_path.display()
            ))),
            Some(_) => Ok(()),
        }
    }
}

/// Run `build.command` as [`run`] does, and also stop it (its whole
/// group) when `stop` completes first: the host is shutting down.
///
/// # Errors
///
/// [`PluginError::Io`] naming the folder when the shell cannot be started.
pub(crate) async fn execute(
    spec: &PluginSpec,
    build: &BuildSpec,
    timeout: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Finished, PluginError> {
    let dir = spec.base_dir();
    tracing::info!(plugin = %spec.name, command = %build.command, dir = %dir.display(), "building plugin");
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&build.command)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    clean_cargo_env(&mut command);
    let mut child = command.spawn().map_err(|source| PluginError::Io {
        path: dir.clone(),
        source,
    })?;
    let group = child.id().map(|pid| nix::unistd::Pid::from_raw(pid as i32));
    // Both pipes drained as the build runs: a chatty build never blocks.
    let read = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
        tokio::spawn(async move {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes).await;
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let (status, killed) = tokio::select! {
        waited = tokio::time::timeout(timeout, child.wait()) => match waited {
            Ok(status) => (Some(status.map_err(|source| PluginError::Io {
                path: dir.clone(),
                source,
            })?), None),
            Err(_) => (None, Some(format!(
                "it ran longer than {} s and was killed", timeout.as_secs()
            ))),
        },
        () = stop => (None, Some("it was stopped with the host".to_string())),
    };
    // Whatever the outcome, nothing the build started outlives it.
    if let Some(group) = group {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = child.wait().await;
    let mut text = String::from_utf8_lossy(&stderr.await.unwrap_or_default()).into_owned();
    text.push_str(&String::from_utf8_lossy(&stdout.await.unwrap_or_default()));
    Ok(Finished {
        status,
        killed,
        output: tail(&text).to_string(),
    })
}

/// The last [`OUTPUT_TAIL`] bytes of `text`, cut at a character boundary.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(OUTPUT_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::LimitDefaults;

    fn spec_in(dir: &std::path::Path, command: &str) -> (PluginSpec, BuildSpec) {
        let mut spec = PluginSpec::bare(&dir.join("p.wasm"), LimitDefaults::default()).unwrap();
        spec.manifest_path = Some(dir.join("plugin.toml"));
        let build = BuildSpec {
            command: command.into(),
            watch: Vec::new(),
        };
        (spec, build)
    }

    #[tokio::test]
    async fn a_failing_build_reports_its_status_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, build) = spec_in(
            dir.path(),
            "echo compiling; echo 'error: no target' >&2; exit 2",
        );
        let err = run(&spec, &build, BUILD_TIMEOUT)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("exit status: 2"), "{err}");
        assert!(
            err.contains("error: no target") && err.contains("compiling"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_build_past_its_timeout_is_killed_with_everything_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild.pid");
        let command = format!(
            "sleep 300 & echo $! > {}; echo waiting; wait",
            marker.display()
        );
        let (spec, build) = spec_in(dir.path(), &command);
        let err = run(&spec, &build, Duration::from_millis(500))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ran longer than") && err.contains("waiting"),
            "{err}"
        );
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed with its group; the test process reaps nothing of it, so
        // wait for it to be a zombie at most.
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            procfs::process::Process::new(pid)
                .and_then(|p| p.stat())
                .map_or(true, |s| s.state == 'Z')
        });
        assert!(gone, "the build's background child outlived the timeout");
    }

    #[tokio::test]
    async fn a_build_that_produces_nothing_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, build) = spec_in(dir.path(), "true");
        let err = run(&spec, &build, BUILD_TIMEOUT)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("still does not exist"), "{err}");
    }
}
