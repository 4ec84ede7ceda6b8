//! A peer in the same run: supervisord (from PyPI, in a venv under the
//! bench's cache folder, installed once) over the same `n` sleeping
//! processes as the idle section, measured the same way from outside:
//! time until every process is its child, its resident memory, its CPU
//! over 60 idle seconds after 3 s to settle (and over the first 10 of
//! them), and the time from SIGTERM to its exit with every child gone.
//!
//! supervisord keeps each program's stdout and stderr in log files (its
//! default, as the host keeps a log per process), so it needs about four
//! descriptors per process: `minfds = 6000` for 1,000. When Python, venv
//! or PyPI is not available the section says so and is skipped; nothing
//! else depends on it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::common::{alive, children};
use super::fixtures::write;
use super::idle::{IdleReport, footprint};

/// Longest the one-time install may take.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);
/// Longest wait for every process to start, or for the stop.
const PATIENCE: Duration = Duration::from_secs(300);

/// The peer's outcome.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PeerOutcome {
    /// It ran.
    Measured {
        /// `supervisord --version`.
        version: String,
        /// The figures, as the host's.
        idle: IdleReport,
    },
    /// It could not run here, and why.
    Skipped {
        /// Why, in a sentence.
        reason: String,
    },
}

/// Runs supervisord over `n` idle processes; a failure to install it is a
/// skip, a failure while measuring an error.
pub(crate) async fn measure(cache: &Path, n: usize) -> anyhow::Result<PeerOutcome> {
    let venv = cache.join("supervisor-venv");
    let supervisord = match install(&venv).await {
        Ok(bin) => bin,
        Err(e) => {
            return Ok(PeerOutcome::Skipped {
                reason: format!("{e:#}"),
            });
        }
    };
    let version = version(&supervisord).await;
    let idle = run(&supervisord, n).await?;
    Ok(PeerOutcome::Measured { version, idle })
}

/// `supervisord --version`, or empty.
pub(crate) async fn version(supervisord: &Path) -> String {
    run_capture(supervisord, &["--version"], Duration::from_secs(30))
        .await
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// `venv/bin/supervisord`, creating the venv and installing supervisor
/// from PyPI the first time.
pub(crate) async fn install(venv: &Path) -> anyhow::Result<PathBuf> {
    let bin = venv.join("bin/supervisord");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "installing supervisor from PyPI into {} (once)...",
        venv.display()
    );
    std::fs::create_dir_all(venv.parent().unwrap_or(venv))
        .with_context(|| format!("cannot create {}", venv.display()))?;
    let venv_arg = venv.to_string_lossy().into_owned();
    run_capture(
        Path::new("python3"),
        &["-m", "venv", &venv_arg],
        INSTALL_LIMIT,
    )
    .await
    .context("supervisord skipped: cannot create a Python venv")?;
    let pip = venv.join("bin/pip");
    run_capture(
        &pip,
        &[
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "supervisor",
        ],
        INSTALL_LIMIT,
    )
    .await
    .context("supervisord skipped: `pip install supervisor` failed (is PyPI reachable?)")?;
    if !bin.is_file() {
        bail!(
            "supervisord skipped: pip installed supervisor but {} is missing",
            bin.display()
        );
    }
    Ok(bin)
}

/// Runs `program args` to completion within `limit`; its stdout, or an
/// error with the end of its stderr.
pub(crate) async fn run_capture(
    program: &Path,
    args: &[&str],
    limit: Duration,
) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        limit,
        tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("{} did not finish within {limit:?}", program.display()))?
    .with_context(|| format!("cannot run {}", program.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        bail!(
            "{} {} exited with {}: {}",
            program.display(),
            args.join(" "),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// supervisord's config: `n` programs `sleep 1000000`, logs in `dir`.
fn config(dir: &Path, n: usize) -> String {
    let mut c = format!(
        "[supervisord]\nnodaemon = true\nminfds = {}\nloglevel = warn\nlogfile = {dir}/supervisord.log\n\
         pidfile = {dir}/supervisord.pid\nchildlogdir = {dir}/logs\n\n",
        (n * 4 + 2000).max(1024),
        dir = dir.display()
    );
    for i in 0..n {
        let _ = writeln!(c, "[program:idle{i}]\ncommand = sleep 1000000\n");
    }
    c
}

/// Starts supervisord on `conf` in the foreground (the config says
/// `nodaemon = true`), output discarded, killed if dropped; and its pid.
pub(crate) fn spawn(
    supervisord: &Path,
    conf: &Path,
) -> anyhow::Result<(tokio::process::Child, u32)> {
    let child = tokio::process::Command::new(supervisord)
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", supervisord.display()))?;
    let pid = child.id().context("supervisord has no pid")?;
    Ok((child, pid))
}

/// Sends SIGTERM to supervisord's `pid`: its own clean stop.
pub(crate) fn terminate(pid: u32) -> anyhow::Result<()> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    Ok(())
}

/// Starts supervisord over `n` processes and measures it.
async fn run(supervisord: &Path, n: usize) -> anyhow::Result<IdleReport> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("logs"))?;
    let conf = dir.path().join("supervisord.conf");
    write(&conf, &config(dir.path(), n))?;
    let spawned = Instant::now();
    let (mut child, pid) = spawn(supervisord, &conf)?;
    loop {
        if children(pid).len() >= n {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "supervisord exited ({status}) before starting its processes; see {}",
                dir.path().join("supervisord.log").display()
            );
        }
        if spawned.elapsed() > PATIENCE {
            bail!(
                "supervisord started {} of {n} processes within {PATIENCE:?}",
                children(pid).len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start_all_ms = spawned.elapsed().as_secs_f64() * 1000.0;
    let footprint = footprint(pid).await?;
    let sleepers = children(pid);
    let t = Instant::now();
    terminate(pid)?;
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .context("supervisord still running after SIGTERM")??;
    let stop_all_ms = t.elapsed().as_secs_f64() * 1000.0;
    if !status.success() {
        bail!("supervisord exited with {status} on SIGTERM");
    }
    Ok(IdleReport {
        processes: n,
        start_all_ms,
        start_all_dated_ms: None,
        rss_mib: footprint.rss_mib,
        code_mib: footprint.code_mib,
        idle_cpu_percent: footprint.idle_cpu_percent,
        idle_cpu_first_10s_percent: footprint.idle_cpu_first_10s_percent,
        stop_all_ms,
        all_stopped: !sleepers.iter().any(|&p| alive(p)),
    })
}
