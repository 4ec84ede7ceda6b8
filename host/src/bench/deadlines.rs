//! Deadlines: how far past its deadline a call ends when the guest loops
//! (`spin-forever`), sleeps in WASI, or is blocked in the host opening a
//! FIFO nobody writes (`hostile`). Each is called five times through the
//! plugin host's `handle`, the call the dispatcher makes, with a 100 ms
//! deadline and quarantine off (so every call is made).

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::common::{median, ping};
use super::fixtures::{Fixtures, install_folder};
use crate::bus::{Bus, BusConfig};
use crate::plugins::{Kind, NoProcesses, PluginHost, PluginHostConfig, PluginRef};

/// The deadline every call here runs under.
const DEADLINE: Duration = Duration::from_millis(100);

/// What the section measured.
#[derive(Debug, Serialize)]
pub struct DeadlineReport {
    /// Deadline of every call.
    pub deadline_ms: u64,
    /// How long past its deadline a looping plugin ran, worst of 5.
    pub runaway_overshoot_max_ms: f64,
    /// Median of the same.
    pub runaway_overshoot_median_ms: f64,
    /// A plugin blocked in a WASI sleep (asked for 2 s): how long past its
    /// deadline its caller got the answer.
    pub blocked_sleep: BlockedReport,
    /// A plugin blocked opening a FIFO nobody writes (outside anything
    /// WASI can time out): the same.
    pub blocked_fifo: BlockedReport,
}

/// Calls into a plugin blocked outside wasm code, past the deadline.
#[derive(Debug, Serialize)]
pub struct BlockedReport {
    /// Calls measured (fewer than 5 when one was not cut off at all).
    pub calls: usize,
    /// Median time past the deadline until the caller had its answer.
    pub overshoot_median_ms: f64,
    /// Worst of the same.
    pub overshoot_max_ms: f64,
    /// Whether every call ended, as `deadline`, within 10 s.
    pub all_cut_off: bool,
}

/// Runs the section.
pub(crate) async fn measure(fixtures: &Fixtures) -> anyhow::Result<DeadlineReport> {
    let (median_ms, max_ms) = runaway(&fixtures.fixture("spin-forever")?).await?;
    let hostile = fixtures.fixture("hostile")?;
    Ok(DeadlineReport {
        deadline_ms: DEADLINE.as_millis() as u64,
        runaway_overshoot_max_ms: max_ms,
        runaway_overshoot_median_ms: median_ms,
        blocked_sleep: blocked(&hostile, "sleep").await?,
        blocked_fifo: blocked(&hostile, "open").await?,
    })
}

/// A plugin host over `plugins` with the bench's deadline, quarantine off,
/// and its one event handler; manifests may grant folders under `allowed`
/// (the host.toml ceiling `allowed_dirs`).
async fn host_with(
    plugins: &Path,
    what: &str,
    allowed: &[&Path],
) -> anyhow::Result<(PluginHost, PluginRef)> {
    let (tx, _rx) = mpsc::channel(16);
    let mut config = PluginHostConfig::new(plugins);
    config.ceilings.allowed_dirs = allowed.iter().map(|p| p.to_path_buf()).collect();
    config.limits.deadline = DEADLINE;
    config.max_failures = u32::MAX;
    config.build_missing = false;
    let bus = Bus::open_in_memory(BusConfig::default())?;
    let host = PluginHost::start(config, bus, Arc::new(NoProcesses), tx).await?;
    let plugin = host
        .with_kind(Kind::EventHandler)
        .into_iter()
        .next()
        .with_context(|| format!("the {what} fixture did not load"))?;
    Ok((host, plugin))
}

/// Time a call into a plugin that never returns: how far past its
/// deadline was it cut off? (median, worst)
async fn runaway(spin: &Path) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    install_folder(&plugins, "spin", spin, "")?;
    let (host, spin) = host_with(&plugins, "spin-forever", &[]).await?;
    let mut event = ping(1);
    event.ty = "test.spin".into();
    let mut overshoot = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let result = spin.handle(&event).await;
        if result.is_ok() {
            bail!("the looping plugin returned instead of being cut off");
        }
        // Signed: a cut-off before the deadline would show as negative.
        overshoot.push((t.elapsed().as_secs_f64() - DEADLINE.as_secs_f64()) * 1000.0);
    }
    host.shutdown().await;
    let max = overshoot.iter().copied().fold(f64::MIN, f64::max);
    Ok((median(overshoot), max))
}

/// Time calls into the `hostile` fixture while it blocks `with` (`sleep`:
/// a 2 s WASI sleep; `open`: opening a FIFO nobody writes, in a granted
/// folder): how long past its deadline did the caller get its answer?
async fn blocked(hostile: &Path, with: &str) -> anyhow::Result<BlockedReport> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let fifo = data.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .context("cannot run mkfifo")?;
    if !made.success() {
        bail!("mkfifo {} failed", fifo.display());
    }
    install_folder(
        &plugins,
        "hostile",
        hostile,
        &format!("[permissions]\ndirs = [{{ host = {data:?}, guest = \"/data\" }}]\n"),
    )?;
    let (host, plugin) = host_with(&plugins, "hostile", &[&data]).await?;
    let mut event = ping(1);
    event.ty = "test.hostile".into();
    event.data = json!({ "do": "block", "with": with, "ms": 2000, "path": "/data/fifo" }).into();
    let mut overshoot = Vec::new();
    let mut all_cut_off = true;
    for _ in 0..5 {
        let t = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(10), plugin.handle(&event)).await;
        let elapsed = t.elapsed();
        overshoot.push((elapsed.as_secs_f64() - DEADLINE.as_secs_f64()) * 1000.0);
        let cut_off = matches!(
            &result,
            Ok(Err(crate::plugins::PluginError::Call { failure, .. })) if failure.kind() == "deadline"
        );
        if !cut_off {
            all_cut_off = false;
            break;
        }
    }
    // Release any thread still blocked opening the FIFO: a writer that
    // opens and closes it lets every waiting reader through.
    for _ in 0..10 {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
        {
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(_) => break,
        }
    }
    tokio::time::timeout(Duration::from_secs(10), host.shutdown())
        .await
        .ok();
    let max = overshoot.iter().copied().fold(f64::MIN, f64::max);
    Ok(BlockedReport {
        calls: overshoot.len(),
        overshoot_median_ms: median(overshoot),
        overshoot_max_ms: max,
        all_cut_off,
    })
}

/// Prints the section.
pub(crate) fn print(r: &DeadlineReport) {
    println!(
        "runaway plugin, deadline {} ms: cut off {:.1} ms after it (median), {:.1} ms worst of 5",
        r.deadline_ms, r.runaway_overshoot_median_ms, r.runaway_overshoot_max_ms
    );
    for (what, b) in [
        ("in a WASI sleep", &r.blocked_sleep),
        ("opening a FIFO", &r.blocked_fifo),
    ] {
        println!(
            "plugin blocked {what}, deadline {} ms: answered {:.1} ms after it (median), {:.1} ms worst of {}{}",
            r.deadline_ms,
            b.overshoot_median_ms,
            b.overshoot_max_ms,
            b.calls,
            if b.all_cut_off {
                ""
            } else {
                " — NOT cut off"
            }
        );
    }
}
