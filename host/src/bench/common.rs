//! What the sections share: a host in-process (the [`Runtime`] `host run`
//! starts), a bare plugin host for the sections that time single calls,
//! pings, percentiles, and reading a process's CPU and memory from /proc.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::bus::{Bus, Event, JsonContentType, NewEvent, SpecVersion};
use crate::config::HostConfig;
use crate::plugins::{ActionRequest, NoProcesses, PluginHost, PluginHostConfig};
use crate::runtime::{RunOptions, Runtime};

/// Starts the host `host run` starts (journal in `state`, plugins from
/// `plugins`, the real executor), without the API and signal handling,
/// and waits for its first load of the plugins folder, as `host run`
/// waits before it announces what loaded: the runtime loads plugins in
/// the background, and a section that looked before then found none.
///
/// # Errors
///
/// As [`Runtime::start`], or when the first load takes over 120 s.
pub(crate) async fn start_runtime(
    plugins: &Path,
    state: &Path,
    config: HostConfig,
    watch: bool,
) -> anyhow::Result<Runtime> {
    let runtime = Runtime::start(
        config,
        RunOptions {
            plugins_dir: plugins.to_path_buf(),
            state_dir: state.to_path_buf(),
            watch,
            build_missing: false,
            rebuild: false,
        },
    )
    .await
    .with_context(|| format!("cannot start a host on {}", state.display()))?;
    let mut loaded = runtime.plugins_loaded.clone();
    tokio::time::timeout(Duration::from_secs(120), loaded.wait_for(|done| *done))
        .await
        .with_context(|| {
            format!(
                "the host on {} did not load its plugins within 120 s",
                state.display()
            )
        })?
        .context("the host dropped its plugins-loaded signal")?;
    Ok(runtime)
}

/// Stops a host started by [`start_runtime`], forcing after 30 s.
pub(crate) async fn stop_runtime(runtime: Runtime) -> anyhow::Result<()> {
    runtime
        .stop(Duration::from_secs(30), std::future::pending())
        .await
}

/// Fails, naming the plugin and what the host said, unless `name` loaded.
pub(crate) fn ensure_loaded(plugins: &PluginHost, name: &str) -> anyhow::Result<()> {
    if plugins.get(name).is_some_and(|p| p.is_loaded()) {
        return Ok(());
    }
    let failures: Vec<String> = plugins
        .failures()
        .into_iter()
        .map(|(path, error)| format!("{}: {error}", path.display()))
        .collect();
    anyhow::bail!(
        "the plugin `{name}` did not load; {}",
        if failures.is_empty() {
            "no load failure was reported".to_string()
        } else {
            failures.join("; ")
        }
    )
}

/// A plugin host over `dir` on `bus` (no processes, no watcher unless
/// asked), for the sections that call plugins directly.
pub(crate) async fn plugin_host(
    dir: &Path,
    bus: Bus,
    debounce_ms: u64,
) -> anyhow::Result<(PluginHost, mpsc::Receiver<ActionRequest>)> {
    let (tx, rx) = mpsc::channel(1024);
    let mut config = PluginHostConfig::new(dir);
    config.debounce = Duration::from_millis(debounce_ms);
    config.state_dir = Some(dir.join(".state"));
    config.build_missing = false;
    let host = PluginHost::start(config, bus, Arc::new(NoProcesses), tx).await?;
    Ok((host, rx))
}

/// A `test.ping` with this sequence, as the bus would deliver it.
pub(crate) fn ping(sequence: u64) -> Event {
    Event {
        specversion: SpecVersion,
        id: uuid::Uuid::now_v7().to_string(),
        source: "bench".into(),
        ty: "test.ping".into(),
        subject: None,
        time: Utc::now(),
        sequence,
        cause: None,
        depth: 0,
        datacontenttype: JsonContentType,
        data: json!({ "n": sequence }).into(),
    }
}

/// Publishes `n` pings in batches of 1,000.
pub(crate) async fn publish_pings(bus: &Bus, n: u64) -> anyhow::Result<()> {
    let mut left = n;
    while left > 0 {
        let k = left.min(1000);
        bus.publish_all_async(
            (0..k)
                .map(|i| NewEvent::new("bench", "test.ping", json!({ "n": i })))
                .collect(),
        )
        .await?;
        left -= k;
    }
    Ok(())
}

/// The median of `xs` (NaN when empty).
pub(crate) fn median(xs: Vec<f64>) -> f64 {
    Spread::of(xs).median
}

/// Median, 99th percentile and extremes of a set of timings.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    /// How many.
    pub samples: usize,
    /// Smallest.
    pub min: f64,
    /// 50th percentile.
    pub median: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `xs` (all NaN when empty).
    pub(crate) fn of(mut xs: Vec<f64>) -> Spread {
        xs.sort_by(|a, b| a.total_cmp(b));
        let at = |p: f64| {
            xs.get(((xs.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        Spread {
            samples: xs.len(),
            min: at(0.0),
            median: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// User plus system CPU of the process (or thread) whose `stat` file is
/// `path`, in clock ticks.
pub(crate) fn stat_ticks(path: &Path) -> anyhow::Result<u64> {
    let (user, system) = stat_user_system_ticks(path)?;
    Ok(user + system)
}

/// User and system CPU of the process (or thread) whose `stat` file is
/// `path`, apart, in clock ticks.
pub(crate) fn stat_user_system_ticks(path: &Path) -> anyhow::Result<(u64, u64)> {
    let stat =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15; after the name, 12 and 13.
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {} of {}", i + 3, path.display()))
    };
    Ok((field(11)?, field(12)?))
}

/// CPU seconds of process `pid` so far.
pub(crate) fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    Ok(stat_ticks(Path::new(&format!("/proc/{pid}/stat")))? as f64 / clock_ticks())
}

/// CPU seconds of process `pid` so far, user plus system and user alone
/// (the rest is the kernel working for it), from one read.
pub(crate) fn cpu_and_user_secs(pid: u32) -> anyhow::Result<(f64, f64)> {
    let (user, system) = stat_user_system_ticks(Path::new(&format!("/proc/{pid}/stat")))?;
    Ok((
        (user + system) as f64 / clock_ticks(),
        user as f64 / clock_ticks(),
    ))
}

/// Clock ticks per second.
pub(crate) fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}

/// A `kB` field (`VmRSS`, `VmHWM`) of a `/proc/.../status` file.
pub(crate) fn status_kib(path: &Path, field: &str) -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{field} in {}", path.display()))
}

/// Resident memory of process `pid`, in MiB.
pub(crate) fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    Ok(status_kib(Path::new(&format!("/proc/{pid}/status")), "VmRSS")? as f64 / 1024.0)
}

/// How much program code process `pid` has resident, in MiB: its
/// executable file mappings, the program's and its shared libraries' (for
/// supervisord, the Python interpreter's `libpython` among them). The
/// kernel maps code 64 KiB around each page a program touches, so this is
/// the figure the release build's code layout (`host/link-order.txt`)
/// brings down for the host, and the one that shows a stale layout.
pub(crate) fn program_code_mib(pid: u32) -> anyhow::Result<f64> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .with_context(|| format!("cannot read /proc/{pid}/smaps"))?;
    Ok(code_kib(&smaps) as f64 / 1024.0)
}

/// The `Rss` of the executable mappings of files in an `smaps` text, KiB.
fn code_kib(smaps: &str) -> u64 {
    let mut counting = false;
    let mut kib = 0;
    for line in smaps.lines() {
        if let Some(rss) = line.strip_prefix("Rss:") {
            if counting {
                kib += rss
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            continue;
        }
        // A mapping's header: `start-end perms offset dev inode [path]`;
        // field lines are `Name: value`, their first word never a range.
        let fields: Vec<&str> = line.splitn(6, ' ').collect();
        if fields.len() >= 5 && fields[0].contains('-') && fields[1].len() == 4 {
            let path = fields.get(5).map(|p| p.trim_start()).unwrap_or("");
            counting = fields[1].contains('x') && path.starts_with('/');
        }
    }
    kib
}

/// The peak of a process's anonymous resident memory (`RssAnon`: its heap,
/// stacks and other private pages), sampled every 10 ms on a thread of its
/// own until [`AnonPeak::finish`]. The kernel keeps a high-water mark only
/// of the whole RSS (`VmHWM`), which also counts the clean pages of the
/// program's files the kernel maps 64 KiB at a time around each page a
/// program touches (see [`program_code_mib`]): for `host run` before its
/// code was laid out together, ~15 MiB of its binary's code mapped for
/// ~3 MiB executed, more than its whole heap when idle.
pub(crate) struct AnonPeak {
    stop: Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<u64>,
}

impl AnonPeak {
    /// Starts sampling `pid`.
    pub(crate) fn start(pid: u32) -> AnonPeak {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let status = format!("/proc/{pid}/status");
        let sampler = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match status_kib(Path::new(&status), "RssAnon") {
                    Ok(kib) => peak = peak.max(kib),
                    // The process is gone: nothing more to see.
                    Err(_) => break,
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        AnonPeak { stop, sampler }
    }

    /// Stops sampling; the peak seen, MiB.
    pub(crate) fn finish(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sampler.join().unwrap_or(0) as f64 / 1024.0
    }
}

/// The children of process `pid` (its first thread's), from /proc.
pub(crate) fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether process `pid` still exists (a zombie counts: it is not reaped).
pub(crate) fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Lifts `plugin`'s emit rate as a user would in host.toml
/// (`[plugins.rate.NAME]`): a throughput run at 10,000+ events/s would
/// otherwise be refused by the default 1,000 emits/s. The limiter still
/// checks every emit, so its cost stays in the figures.
pub(super) fn lift_emit_rate(config: &mut crate::config::HostConfig, plugin: &str) {
    config.plugins.rate.insert(
        plugin.into(),
        crate::config::RateOverride {
            emits_per_sec: Some(1e9),
            emit_burst: Some(1e9),
            ..crate::config::RateOverride::default()
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55c0b6725000-55c0b6eff000 r--p 00000000 fe:00 10010805                   /opt/host
Size:               8040 kB
Rss:                2460 kB
55c0b6eff000-55c0b8d6b000 r-xp 007d9000 fe:00 10010805                   /opt/host
Size:              31152 kB
Rss:                3476 kB
VmFlags: rd ex mr mw me
7fa7c8e00000-7fa7c8f80000 r-xp 00028000 fe:00 2345                       /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1100 kB
7fa7c9000000-7fa7c9100000 rw-p 00000000 00:00 0 
Rss:                 900 kB
";

    #[test]
    fn program_code_counts_the_executable_mappings_of_files_only() {
        // The program's code and libc's; not its read-only data, not the
        // anonymous mapping.
        assert_eq!(code_kib(SMAPS), 3476 + 1100);
        assert_eq!(code_kib(""), 0);
    }

    #[test]
    fn program_code_of_this_test_process_is_resident() {
        let mib = program_code_mib(std::process::id()).expect("own smaps");
        assert!(
            mib > 0.0,
            "the code running this test is resident: {mib} MiB"
        );
    }
}
