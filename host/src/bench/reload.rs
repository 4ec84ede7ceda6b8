//! Reload latency: a host in-process (the [`Runtime`](crate::runtime::Runtime)
//! `host run` starts: file journal, watcher, real executor) serves the
//! echo fixture as a plugin folder granted `emit = ["test.>"]`. Under a
//! steady stream of pings, the bench swaps the folder's component between
//! echo-v1 and echo-v2 (write a temporary file, rename over it) and times
//! from the rename to the `handled_ms` the new version stamps on its first
//! pong; every ping's answers are counted by sequence, so a ping answered
//! zero or several times across the swaps shows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use serde::Serialize;
use serde_json::json;

use super::common::{Spread, ensure_loaded, lift_emit_rate, start_runtime, stop_runtime};
use super::fixtures::{ECHO_GRANTS, Fixtures, install_folder};
use crate::bus::{Consumer, NewEvent, Pattern, StartAt};
use crate::config::HostConfig;

/// The reload measurement.
#[derive(Debug, Serialize)]
pub struct ReloadReport {
    /// Pings per second during the swaps.
    pub rate: u64,
    /// Swaps measured.
    pub swaps: usize,
    /// Watcher debounce in force.
    pub debounce_ms: u64,
    /// Latency, file renamed → first ping handled by the new version, ms.
    pub latency_ms: Spread,
    /// Pings sent.
    pub pings: u64,
    /// Pings never answered.
    pub lost: u64,
    /// Pings answered more than once.
    pub duplicated: u64,
}

/// Runs the section: `swaps` swaps under `rate` pings/s.
pub(crate) async fn measure(
    fixtures: &Fixtures,
    swaps: u32,
    rate: u64,
    debounce_ms: u64,
) -> anyhow::Result<ReloadReport> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    let folder = install_folder(&plugins, "echo", &fixtures.fixture("echo-v1")?, ECHO_GRANTS)?;
    let target = folder.join("echo.wasm");
    let bytes = [
        std::fs::read(fixtures.fixture("echo-v1")?)?,
        std::fs::read(fixtures.fixture("echo-v2")?)?,
    ];
    let mut config = HostConfig::default();
    config.plugins.debounce_ms = debounce_ms;
    lift_emit_rate(&mut config, "echo");
    let runtime = start_runtime(&plugins, &dir.path().join("state"), config, true).await?;
    ensure_loaded(&runtime.plugins, "echo")?;
    let bus = runtime.bus.clone();

    // A steady stream of pings, in small batches every millisecond; the
    // publisher keeps the sequence of every ping it published.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let publisher_bus = bus.clone();
    let per_ms = (rate / 1000).max(1);
    let publisher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut sent = Vec::new();
        loop {
            tokio::select! {
                _ = crate::shutdown::requested(&mut stop_rx) => return sent,
                _ = tick.tick() => {
                    let batch = (0..per_ms).map(|_| NewEvent::new("bench", "test.ping", json!({}))).collect();
                    if let Ok(events) = publisher_bus.publish_all_async(batch).await {
                        sent.extend(events.iter().map(|e| e.sequence));
                    }
                }
            }
        }
    });

    let mut pongs = bus.consumer(
        "bench-pongs",
        vec![Pattern::parse("test.pong")?],
        StartAt::Head,
    );
    let mut answers: HashMap<u64, u32> = HashMap::new();
    let mut latencies = Vec::new();
    let mut version = 1;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let result: anyhow::Result<()> = async {
        for swap in 0..swaps {
            let next = if version == 1 { 2 } else { 1 };
            let tmp = folder.join(".echo.wasm.tmp");
            std::fs::write(&tmp, &bytes[next - 1])
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            let renamed = Instant::now();
            let renamed_ms = Utc::now().timestamp_millis() as u64;
            std::fs::rename(&tmp, &target)
                .with_context(|| format!("cannot rename over {}", target.display()))?;
            let deadline = renamed + Duration::from_secs(30);
            loop {
                let e = tokio::time::timeout_at(deadline.into(), pongs.next())
                    .await
                    .with_context(|| {
                        format!("swap {swap}: version {next} never answered within 30 s")
                    })??;
                record(&mut answers, &e.data);
                if e.data["version"].as_u64() == Some(next as u64) {
                    // When the new version handled its first ping (stamped
                    // by the guest), not when its pong came out of the queues.
                    let handled = e.data["handled_ms"]
                        .as_u64()
                        .context("pong without handled_ms")?;
                    latencies.push(handled.saturating_sub(renamed_ms) as f64);
                    break;
                }
            }
            version = next;
            drain(&mut pongs, &mut answers, Duration::from_millis(200), None).await;
        }
        Ok(())
    }
    .await;
    stop_tx.send_replace(true);
    let pings = publisher.await?;
    // Every ping published must be answered: wait for the last one's pong.
    if let Some(&last) = pings.last() {
        drain(
            &mut pongs,
            &mut answers,
            Duration::from_secs(30),
            Some(last),
        )
        .await;
    }
    stop_runtime(runtime).await?;
    result?;
    let lost = pings.iter().filter(|p| !answers.contains_key(p)).count() as u64;
    let duplicated = answers.values().filter(|&&c| c > 1).count() as u64;
    Ok(ReloadReport {
        rate,
        swaps: latencies.len(),
        debounce_ms,
        latency_ms: Spread::of(latencies),
        pings: pings.len() as u64,
        lost,
        duplicated,
    })
}

fn record(answers: &mut HashMap<u64, u32>, pong: &serde_json::Value) {
    *answers
        .entry(pong["ping_sequence"].as_u64().unwrap_or(0))
        .or_default() += 1;
}

/// Records pongs for `quiet`, or (with `until`) until that ping is
/// answered, at most `quiet` in all.
async fn drain(
    pongs: &mut Consumer,
    answers: &mut HashMap<u64, u32>,
    quiet: Duration,
    until: Option<u64>,
) {
    let deadline = Instant::now() + quiet;
    loop {
        if until.is_some_and(|last| answers.contains_key(&last)) {
            return;
        }
        match tokio::time::timeout_at(deadline.into(), pongs.next()).await {
            Ok(Ok(e)) => record(answers, &e.data),
            _ => return,
        }
    }
}

/// Prints the section.
pub(crate) fn print(l: &ReloadReport) {
    println!(
        "reload under {} pings/s, {} swaps, debounce {} ms (host in-process, file journal):",
        l.rate, l.swaps, l.debounce_ms
    );
    println!(
        "  file renamed → new version answering: median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        l.latency_ms.median, l.latency_ms.p95, l.latency_ms.max
    );
    println!(
        "  {} pings: {} lost, {} duplicated",
        l.pings, l.lost, l.duplicated
    );
}
