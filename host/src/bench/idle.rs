//! Idle processes: this very binary, started as `host run` (a
//! [`HostChild`]) over `n` sleeping processes. Measured from outside: the
//! time until every process has started (`process.started` in its
//! journal), its resident memory, its CPU over 60 idle seconds (after 3 s
//! to settle; the first 10 of them also on their own), and, after SIGTERM,
//! the time until it exited and whether every child is gone.
//!
//! Why 60 s: the host samples resources every 10 s and publishes a quiet
//! process's sample every 6th time (a heartbeat), so one minute holds one
//! of everything it does while idle: its first sample of every process
//! (the costliest: every tree is found and every `/proc/<pid>/io` read)
//! and five quiet ones. Ten seconds hold one sample, the first or a quiet
//! one depending on when the window starts, and so measured either the
//! worst tick or the best.
//!
//! While the host is up and its footprint measured, the runner can use it
//! for more (the API section lists its processes); that happens between
//! the footprint and the stop, so it never counts as idle.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::child::HostChild;
use super::common::{alive, cpu_secs, program_code_mib, rss_mib};
use super::fixtures::write;

/// How long CPU is sampled while idle: six resource samples, one
/// heartbeat cycle.
pub(crate) const IDLE_WINDOW: Duration = Duration::from_secs(60);
/// The first part of [`IDLE_WINDOW`], also reported on its own (the
/// window earlier runs of this bench used).
pub(crate) const FIRST_WINDOW: Duration = Duration::from_secs(10);
/// How long start-up work may settle before measuring "idle".
pub(crate) const SETTLE: Duration = Duration::from_secs(3);
/// Longest wait for every process to start, or for a stop.
const PATIENCE: Duration = Duration::from_secs(300);

/// A supervisor running many idle processes.
#[derive(Debug, Serialize)]
pub struct IdleReport {
    /// Processes supervised (all running).
    pub processes: usize,
    /// From spawning the supervisor to every process started, as seen
    /// from outside (polled every 100 ms).
    pub start_all_ms: f64,
    /// The same, dated by the supervisor's own record: its last
    /// `process.started` event against the spawn (`None` for supervisord,
    /// which keeps no such record).
    pub start_all_dated_ms: Option<f64>,
    /// Resident memory of the supervisor process.
    pub rss_mib: f64,
    /// Of it, program code (see `program_code_mib`).
    pub code_mib: f64,
    /// CPU it used while idle, in percent of one core, over 60 s.
    pub idle_cpu_percent: f64,
    /// The same over the first 10 s of those 60.
    pub idle_cpu_first_10s_percent: f64,
    /// From SIGTERM to the supervisor's exit (every tree stopped).
    pub stop_all_ms: f64,
    /// Whether every child was gone after that.
    pub all_stopped: bool,
}

/// The `host.toml` of `n` processes `sleep 1000000`.
fn config(n: usize) -> String {
    let mut config = String::new();
    for i in 0..n {
        let _ = writeln!(
            config,
            "[process.idle{i}]\ncommand = \"sleep\"\nargs = [\"1000000\"]\n"
        );
    }
    config
}

/// Resident memory and idle CPU of a supervisor.
pub(crate) struct Footprint {
    /// Resident memory at the end of the window.
    pub(crate) rss_mib: f64,
    /// Of it, program code (see `program_code_mib`).
    pub(crate) code_mib: f64,
    /// CPU over [`IDLE_WINDOW`], percent of one core.
    pub(crate) idle_cpu_percent: f64,
    /// CPU over its first [`FIRST_WINDOW`], percent of one core.
    pub(crate) idle_cpu_first_10s_percent: f64,
}

/// The footprint of process `pid` while idle.
pub(crate) async fn footprint(pid: u32) -> anyhow::Result<Footprint> {
    let percent = |used: f64, window: Duration| used / window.as_secs_f64() * 100.0;
    tokio::time::sleep(SETTLE).await;
    let before = cpu_secs(pid)?;
    tokio::time::sleep(FIRST_WINDOW).await;
    let first = cpu_secs(pid)? - before;
    tokio::time::sleep(IDLE_WINDOW - FIRST_WINDOW).await;
    let used = cpu_secs(pid)? - before;
    Ok(Footprint {
        rss_mib: rss_mib(pid)?,
        code_mib: program_code_mib(pid)?,
        idle_cpu_percent: percent(used, IDLE_WINDOW),
        idle_cpu_first_10s_percent: percent(first, FIRST_WINDOW),
    })
}

/// Runs the section over `n` processes; `during` gets the running host
/// after its footprint is measured and before it is stopped.
pub(crate) async fn measure<T>(
    n: usize,
    during: impl AsyncFnOnce(&mut HostChild) -> anyhow::Result<T>,
) -> anyhow::Result<(IdleReport, T)> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let config_path = dir.path().join("host.toml");
    write(&config_path, &config(n))?;
    let mut host = HostChild::spawn(
        dir.path(),
        &plugins,
        &config_path,
        &dir.path().join("state"),
    )?;
    host.wait_count("process.started", n as u64, PATIENCE)
        .await?;
    let start_all_ms = host.spawned.elapsed().as_secs_f64() * 1000.0;
    let start_all_dated_ms = host
        .last_started_after_spawn()?
        .map(|d| d.as_secs_f64() * 1000.0);
    let footprint = footprint(host.pid).await?;
    let during = during(&mut host).await;
    let children = host.started_pids()?;
    let stop_all = host.terminate(PATIENCE).await?;
    let all_stopped = !children.iter().any(|&p| alive(p));
    Ok((
        IdleReport {
            processes: n,
            start_all_ms,
            start_all_dated_ms,
            rss_mib: footprint.rss_mib,
            code_mib: footprint.code_mib,
            idle_cpu_percent: footprint.idle_cpu_percent,
            idle_cpu_first_10s_percent: footprint.idle_cpu_first_10s_percent,
            stop_all_ms: stop_all.as_secs_f64() * 1000.0,
            all_stopped,
        },
        during?,
    ))
}

/// Prints one supervisor's line.
pub(crate) fn print(who: &str, i: &IdleReport) {
    println!(
        "  {who:<12} start all {:>6.0} ms, RSS {:>5.1} MiB (code {:.1}), idle CPU {:.2}% of a core over {} s ({:.2}% over its first {} s), stop all {:>6.0} ms; all gone: {}",
        i.start_all_ms,
        i.rss_mib,
        i.code_mib,
        i.idle_cpu_percent,
        IDLE_WINDOW.as_secs(),
        i.idle_cpu_first_10s_percent,
        FIRST_WINDOW.as_secs(),
        i.stop_all_ms,
        i.all_stopped
    );
    if let Some(dated) = i.start_all_dated_ms {
        println!(
            "  {:<12} (start all by its own events: the last `process.started` is dated {dated:.0} ms after the spawn)",
            ""
        );
    }
}
