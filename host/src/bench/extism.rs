//! A peer in the same run: Extism, the plugin-call cost of its Rust host
//! SDK beside the handler section's figures.
//!
//! The peer is a program of its own (`benches/extism-peer`, its own cargo
//! workspace, never part of this one: Extism brings its own wasmtime, which
//! the host's pinned one must not meet in a build). `host bench` builds it
//! once into the cache folder (`<cache>/extism-target`; cargo does nothing
//! on later runs), together with its guest (`benches/extism-peer/guest`, the
//! echo logic as an Extism plugin, a core module built for wasm32-wasip2),
//! then runs it as a child and reads one JSON object from its stdout: a
//! bare call, a lean call (event in, nothing out) and the echo, each timed
//! over the same number of calls as the handler section.
//!
//! When cargo cannot build either (no wasm32-wasip2 target, crates.io out of
//! reach, a toolchain too old) or the peer fails, the peer is skipped with
//! the reason (cargo's first error line); nothing else depends on it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::handlers::{BATCH, HandlerReport};

/// Longest the build of the peer may take (the first one compiles Extism
/// and its wasmtime: many minutes on two busy cores).
const BUILD_LIMIT: Duration = Duration::from_secs(3600);
/// Longest the peer may run.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// What the peer measured: its stdout, as it prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtismReport {
    /// The Extism version the peer was built with.
    pub extism: String,
    /// Calls per measurement.
    pub calls: u64,
    /// Nanoseconds per bare call (`noop`: no input, no output).
    pub noop_ns: f64,
    /// Nanoseconds per lean call (the event as JSON in, copied into the
    /// guest, nothing out).
    pub lean_ns: f64,
    /// Nanoseconds per echo call (event JSON in, pong JSON out, both
    /// encoded and decoded, one host-function call).
    pub echo_ns: f64,
    /// Echo calls per second.
    pub echo_per_sec: f64,
    /// Mean size of an event's JSON, in bytes.
    pub input_bytes: f64,
    /// Mean size of a pong's JSON, in bytes.
    pub output_bytes: f64,
}

/// The Extism peer's outcome.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ExtismOutcome {
    /// It ran.
    Measured {
        /// Its figures.
        figures: ExtismReport,
    },
    /// It could not be built or run here, and why.
    Skipped {
        /// Why, in a sentence.
        reason: String,
    },
}

/// Where the peer's sources are: `benches/extism-peer` of the workspace
/// this binary was built from.
fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/extism-peer")
}

/// Builds the peer (once) and runs it for `calls` calls per measurement.
pub(crate) async fn measure(cache: &Path, calls: u64) -> ExtismOutcome {
    measure_in(&peer_dir(), &cache.join("extism-target"), calls).await
}

/// [`measure`] with the sources in `peer` and the builds in `target`.
async fn measure_in(peer: &Path, target: &Path, calls: u64) -> ExtismOutcome {
    match build_and_run(peer, target, calls).await {
        Ok(figures) => ExtismOutcome::Measured { figures },
        Err(reason) => ExtismOutcome::Skipped { reason },
    }
}

/// Both builds, then the run; the reason to skip when any fails.
async fn build_and_run(peer: &Path, target: &Path, calls: u64) -> Result<ExtismReport, String> {
    eprintln!(
        "building the Extism peer into {} (the first time compiles Extism: many minutes)...",
        target.display()
    );
    let mut guest =
        tokio::process::Command::from(crate::plugins::guest_build(&peer.join("guest"), &[]));
    guest.arg("--target-dir").arg(target);
    cargo(guest, "the Extism guest").await?;

    let mut runner = tokio::process::Command::new("cargo");
    runner
        .args(["build", "--release", "--manifest-path"])
        .arg(peer.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target)
        .current_dir(peer);
    // What an outer cargo (`cargo run -p host -- bench`) leaves behind
    // would send the build elsewhere, as for the guest builds.
    for name in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        runner.env_remove(name);
    }
    cargo(runner, "the Extism peer").await?;

    let guest_wasm = target.join("wasm32-wasip2/release/extism_echo_guest.wasm");
    let program = target.join("release/extism-peer");
    run(&program, &guest_wasm, calls)
        .await
        .map_err(|e| format!("the Extism peer failed: {e:#}"))
}

/// Runs a cargo build to its end, within [`BUILD_LIMIT`], in a process
/// group of its own so a timeout takes every `rustc` with it.
async fn cargo(mut command: tokio::process::Command, what: &str) -> Result<(), String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| format!("cannot build {what}: cannot run cargo: {e}"))?;
    let pid = child.id();
    match tokio::time::timeout(BUILD_LIMIT, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "cannot build {what}: {}",
            first_error_line(&String::from_utf8_lossy(&out.stderr), out.status)
        )),
        Ok(Err(e)) => Err(format!("cannot build {what}: {e}")),
        Err(_) => {
            if let Some(pid) = pid {
                // The group's leader is gone with the dropped child; the
                // rustc processes it started are still in the group.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(format!(
                "cannot build {what}: cargo did not finish within {BUILD_LIMIT:?}"
            ))
        }
    }
}

/// The line of cargo's stderr that says what went wrong: the first that
/// starts with `error`, else the last one, else the exit status.
fn first_error_line(stderr: &str, status: std::process::ExitStatus) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| l.starts_with("error"))
        .or(lines.last())
        .map_or_else(|| format!("cargo exited with {status}"), |l| l.to_string())
}

/// Runs the built peer and reads its report.
async fn run(program: &Path, guest: &Path, calls: u64) -> anyhow::Result<ExtismReport> {
    let out = tokio::time::timeout(
        RUN_LIMIT,
        tokio::process::Command::new(program)
            .arg("--guest")
            .arg(guest)
            .arg("--calls")
            .arg(calls.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("{} did not finish within {RUN_LIMIT:?}", program.display()))?
    .with_context(|| format!("cannot run {}", program.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!(
            "{} exited with {}: {}",
            program.display(),
            out.status,
            stderr.trim()
        );
    }
    parse_report(&String::from_utf8_lossy(&out.stdout))
}

/// The peer's report: the last non-empty line of its stdout, one JSON
/// object whose figures are all positive and finite.
fn parse_report(stdout: &str) -> anyhow::Result<ExtismReport> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("the Extism peer printed nothing")?;
    let report: ExtismReport = serde_json::from_str(line).with_context(|| {
        format!("the Extism peer printed something else than its report: {line}")
    })?;
    let figures = [
        report.noop_ns,
        report.lean_ns,
        report.echo_ns,
        report.echo_per_sec,
        report.input_bytes,
        report.output_bytes,
    ];
    if report.calls == 0 || figures.iter().any(|f| !f.is_finite() || *f <= 0.0) {
        anyhow::bail!("the Extism peer reported an impossible figure: {line}");
    }
    Ok(report)
}

/// Prints the peer's lines under the handler section, each beside the
/// host's figure for the same work.
pub(crate) fn print(outcome: Option<&ExtismOutcome>, ours: &HandlerReport) {
    match outcome {
        Some(ExtismOutcome::Measured { figures: x }) => {
            println!(
                "  Extism {}, same run, {} calls each, one at a time on the caller's thread (guest in Rust, JSON in and out):",
                x.extism, x.calls
            );
            println!("    bare call, nothing in or out  {:>8.0} ns", x.noop_ns);
            println!(
                "    lean, event in, nothing out   {:>8.2} µs             ours, lean, batched: {:.2} µs",
                x.lean_ns / 1e3,
                ours.call_wasm_lean_us
            );
            println!(
                "    echo, ping in, pong out       {:>8.2} µs = {:>6.0}/s   ours, echo, batched ({BATCH}): {:.2} µs = {:.0}/s; one at a time: {:.0}/s",
                x.echo_ns / 1e3,
                x.echo_per_sec,
                ours.call_wasm_batched_us,
                1e6 / ours.call_wasm_batched_us,
                ours.call_wasm_per_sec
            );
        }
        Some(ExtismOutcome::Skipped { reason }) => println!("  Extism  skipped: {reason}"),
        None => println!("  Extism  not run (--no-peers)"),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    const SAMPLE: &str = r#"{"extism":"1.30.0","calls":1000,"noop_ns":812.5,"lean_ns":1400.0,"echo_ns":4200.0,"echo_per_sec":238095.2,"input_bytes":201.0,"output_bytes":88.0}"#;

    #[test]
    fn the_peer_report_is_read_from_the_last_line_of_its_stdout() {
        let stdout = format!("a warning the SDK printed\n{SAMPLE}\n\n");
        let r = parse_report(&stdout).unwrap();
        assert_eq!(r.extism, "1.30.0");
        assert_eq!(r.calls, 1000);
        assert_eq!(r.noop_ns, 812.5);
        assert_eq!(r.echo_per_sec, 238095.2);
    }

    #[test]
    fn a_peer_that_prints_nothing_or_something_else_is_an_error_naming_it() {
        let empty = parse_report("\n  \n").unwrap_err();
        assert!(
            format!("{empty:#}").contains("printed nothing"),
            "{empty:#}"
        );
        let other = parse_report("Segmentation fault").unwrap_err();
        assert!(
            format!("{other:#}").contains("Segmentation fault"),
            "{other:#}"
        );
        let missing = parse_report(r#"{"extism":"1.30.0","calls":10}"#).unwrap_err();
        assert!(format!("{missing:#}").contains("noop_ns"), "{missing:#}");
    }

    #[test]
    fn a_zero_or_negative_figure_is_refused_rather_than_reported() {
        for bad in [
            SAMPLE.replace("\"echo_ns\":4200.0", "\"echo_ns\":0.0"),
            SAMPLE.replace("\"calls\":1000", "\"calls\":0"),
            SAMPLE.replace("\"noop_ns\":812.5", "\"noop_ns\":-1.0"),
        ] {
            let e = parse_report(&bad).unwrap_err();
            assert!(format!("{e:#}").contains("impossible"), "{bad}: {e:#}");
        }
    }

    #[test]
    fn the_reason_to_skip_is_cargos_first_error_line() {
        let status = std::process::ExitStatus::from_raw(101 << 8);
        let stderr = "   Compiling wasmtime v43.0.2\n\
                      error: package `wasmtime v49.0.0` cannot be built because it requires rustc 1.96.0\n\
                      error: could not compile `extism`\n";
        assert_eq!(
            first_error_line(stderr, status),
            "error: package `wasmtime v49.0.0` cannot be built because it requires rustc 1.96.0"
        );
        assert_eq!(
            first_error_line("warning: x\n  last words  \n", status),
            "last words"
        );
        assert!(first_error_line("", status).contains("101"));
    }

    #[tokio::test]
    async fn a_peer_that_cargo_cannot_build_is_skipped_with_cargos_error() {
        let dir = tempfile::tempdir().unwrap();
        let peer = dir.path().join("extism-peer");
        std::fs::create_dir_all(peer.join("guest")).unwrap();
        std::fs::write(peer.join("guest/Cargo.toml"), "[package\nname = ").unwrap();
        let outcome = measure_in(&peer, &dir.path().join("target"), 10).await;
        let ExtismOutcome::Skipped { reason } = outcome else {
            panic!("a broken manifest was measured: {outcome:?}");
        };
        assert!(
            reason.starts_with("cannot build the Extism guest: error"),
            "{reason}"
        );
        assert!(!reason.contains('\n'), "{reason}");
        assert!(!dir.path().join("target").exists(), "{reason}");
    }
}
