//! `host bench`: the numbers of the design card, measured in one run.
//!
//! 1. **Handler throughput**: the same logic (answer `test.ping` with a
//!    `test.pong` carrying the ping's sequence) as a WASM event handler and
//!    as a native Rust function, both as bare calls and through the full
//!    pipeline (event log → consumer → handler → action channel).
//! 2. **Reload latency**: under a steady stream of pings, swap the
//!    component file between two versions; time from the file's rename to
//!    the first pong answered by the new version, and count, by sequence
//!    numbers, pings answered zero or several times.
//! 3. **Deadlines**: how far past its deadline a call ends when the guest
//!    loops (`spin-forever`), sleeps in WASI, or is blocked in the host
//!    opening a FIFO (`hostile`).
//!
//! The components are test fixtures (`tests/plugins`); they are built on
//! first use.
//!
//! The event bus has its own section (`bench/bus.rs`, flags `--bus-*`,
//! `--journal-gb`, `--storm-secs`); `--bus-only` runs just that.

mod bus;

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;
use clap::Args;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::bus::{Bus, BusConfig, Event, NewEvent, Pattern, StartAt};
use crate::plugins::{Action, ActionRequest, Kind, NoProcesses, PluginHost, PluginHostConfig};

/// Flags of `host bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Events per throughput measurement.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Number of hot swaps in the reload measurement.
    #[arg(long, default_value_t = 20)]
    pub reloads: u32,
    /// Pings per second during the reload measurement.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Debounce of the plugin watcher during the reload measurement.
    #[arg(long, default_value_t = 100)]
    pub debounce_ms: u64,
    /// The v1 echo component [default: built from tests/plugins].
    #[arg(long)]
    pub echo_v1: Option<PathBuf>,
    /// The v2 echo component [default: built from tests/plugins].
    #[arg(long)]
    pub echo_v2: Option<PathBuf>,
    /// Supervised idle processes for the footprint measurement (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub idle_processes: usize,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// The event bus section.
    #[command(flatten)]
    pub bus: bus::BusBenchArgs,
}

/// Everything `host bench` measured.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Events per measurement.
    pub events: u64,
    /// Bare calls per second, WASM.
    pub call_wasm_per_sec: f64,
    /// Bare calls per second, native.
    pub call_native_per_sec: f64,
    /// Cost of one call inside a batch of 64 (`handle_each`), in µs: the
    /// plugin-side cost of a call, thread hops amortised.
    pub call_wasm_batched_us: f64,
    /// The same for a handler that answers nothing (no action to
    /// validate): the lean cost of a call itself.
    pub call_wasm_lean_us: f64,
    /// Pipeline events per second, WASM handler.
    pub pipeline_wasm_per_sec: f64,
    /// Pipeline events per second, native handler.
    pub pipeline_native_per_sec: f64,
    /// Reload measurement.
    pub reload: ReloadReport,
    /// Plugins loaded in the start-up measurement.
    pub startup_plugins: usize,
    /// Median time to start a plugin host with a warm compile cache.
    pub startup_warm_ms: f64,
    /// Time to start the same host with an empty cache.
    pub startup_cold_ms: f64,
    /// Deadline of the runaway measurement.
    pub runaway_deadline_ms: u64,
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
    /// The idle-processes measurement, when run.
    pub idle: Option<IdleReport>,
    /// Registering one task against 10,000 with 4 rule plugins.
    pub dependencies: DependencyReport,
    /// The event bus section.
    pub bus: Option<bus::BusReport>,
}

/// Dependency detection for one new task against many.
#[derive(Debug, Serialize)]
pub struct DependencyReport {
    /// Tasks already registered.
    pub tasks: usize,
    /// Dependency-rule plugins loaded.
    pub rules: usize,
    /// Median time to register one more task (detection included).
    pub median_ms: f64,
    /// Slowest of the five.
    pub max_ms: f64,
    /// Dependencies the last registration found.
    pub found: usize,
}

/// A real `host run` supervising many idle processes.
#[derive(Debug, Serialize)]
pub struct IdleReport {
    /// Processes supervised (all running).
    pub processes: usize,
    /// Resident memory of the host process.
    pub host_rss_mib: f64,
    /// CPU the host used while idle, in percent of one core, over 10 s.
    pub host_idle_cpu_percent: f64,
    /// Whether every child was gone after the host's SIGTERM shutdown.
    pub all_stopped: bool,
}

/// Calls into a plugin blocked outside wasm code, past a 100 ms deadline.
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

/// The reload measurement.
#[derive(Debug, Serialize)]
pub struct ReloadReport {
    /// Swaps measured.
    pub swaps: usize,
    /// Watcher debounce in force.
    pub debounce_ms: u64,
    /// Median latency, file renamed → first event handled by new version.
    pub median_ms: f64,
    /// 95th percentile latency.
    pub p95_ms: f64,
    /// Slowest swap.
    pub max_ms: f64,
    /// Pings sent.
    pub pings: u64,
    /// Pings never answered.
    pub lost: u64,
    /// Pings answered more than once.
    pub duplicated: u64,
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.bus.bus_open_probe {
        return bus::probe_open(dir);
    }
    crate::cli::init_logging("warn");
    if args.bus.bus_only {
        let report = bus::measure(&args.bus)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            bus::print(&report);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (v1, v2) = match (&args.echo_v1, &args.echo_v2) {
        (Some(a), Some(b)) => (a.clone(), b.clone()),
        _ => build_fixtures()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = runtime.block_on(measure(&args, &v1, &v2))?;
    report.bus = Some(bus::measure(&args.bus)?);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let r = &report;
        println!(
            "handler throughput, {} events (same logic, one handler):",
            r.events
        );
        println!(
            "  bare call    wasm {:>10.0}/s   native {:>10.0}/s   ratio {:.2}",
            r.call_wasm_per_sec,
            r.call_native_per_sec,
            r.call_wasm_per_sec / r.call_native_per_sec
        );
        println!(
            "  batched call wasm {:>8.2} µs per call (batches of {BATCH}); lean (no actions) {:.2} µs",
            r.call_wasm_batched_us, r.call_wasm_lean_us
        );
        println!(
            "  pipeline     wasm {:>10.0}/s   native {:>10.0}/s   ratio {:.2}",
            r.pipeline_wasm_per_sec,
            r.pipeline_native_per_sec,
            r.pipeline_wasm_per_sec / r.pipeline_native_per_sec
        );
        let l = &r.reload;
        println!(
            "reload under {} pings/s, {} swaps, debounce {} ms:",
            args.rate, l.swaps, l.debounce_ms
        );
        println!(
            "  file renamed → new version answering: median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            l.median_ms, l.p95_ms, l.max_ms
        );
        println!(
            "  {} pings: {} lost, {} duplicated",
            l.pings, l.lost, l.duplicated
        );
        println!(
            "start-up with {} plugins: warm cache {:.1} ms (median of 5), cold {:.0} ms",
            r.startup_plugins, r.startup_warm_ms, r.startup_cold_ms
        );
        println!(
            "runaway plugin, deadline {} ms: cut off {:.1} ms after it (median), {:.1} ms worst of 5",
            r.runaway_deadline_ms, r.runaway_overshoot_median_ms, r.runaway_overshoot_max_ms
        );
        for (what, b) in [
            ("in a WASI sleep", &r.blocked_sleep),
            ("opening a FIFO", &r.blocked_fifo),
        ] {
            println!(
                "plugin blocked {what}, deadline {} ms: answered {:.1} ms after it (median), {:.1} ms worst of {}{}",
                r.runaway_deadline_ms,
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
        let d = &r.dependencies;
        println!(
            "dependency check of 1 new task against {} with {} rules: median {:.2} ms, max {:.2} ms ({} found)",
            d.tasks, d.rules, d.median_ms, d.max_ms, d.found
        );
        if let Some(i) = &r.idle {
            println!(
                "{} idle supervised processes: host RSS {:.1} MiB, idle CPU {:.2}% of a core; all stopped on SIGTERM: {}",
                i.processes, i.host_rss_mib, i.host_idle_cpu_percent, i.all_stopped
            );
        }
        if let Some(b) = &r.bus {
            bus::print(b);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Register `n` tasks (a tenth of them about APIs, spread over 20
/// repositories), load `rules` copies of the shipped api-contract-rule,
/// then time registering five more API tasks, detection included.
async fn measure_dependencies(n: usize, rules: usize) -> anyhow::Result<DependencyReport> {
    use crate::coordination::{CoordinationConfig, Coordinator, Task};
    let rule = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release/api_contract_rule.wasm");
    if !rule.is_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        let status = std::process::Command::new("cargo")
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "api-contract-rule",
            ])
            .current_dir(&root)
            .status()?;
        if !status.success() {
            bail!("building api-contract-rule in {} failed", root.display());
        }
    }
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let bus = Bus::open_in_memory(BusConfig::default())?;
    let (host, _rx) = plugin_host(&plugins, bus.clone(), 100).await?;
    let coordinator = Coordinator::new(bus, host.clone(), CoordinationConfig::default());
    let nouns = [
        "orders",
        "users",
        "billing",
        "search",
        "auth",
        "reports",
        "cart",
        "inventory",
        "shipping",
        "email",
    ];
    let task = |i: usize, api: bool| Task {
        id: format!("t{i}"),
        repository: format!("repo{}", i % 20),
        title: if api {
            format!(
                "Expose the {} REST API endpoint v{i}",
                nouns[i % nouns.len()]
            )
        } else {
            format!("Refactor the {} module part {i}", nouns[i % nouns.len()])
        },
        description: String::new(),
        keywords: Vec::new(),
        agent: None,
    };
    // Rules are loaded after the backlog: registering 10,000 tasks with
    // rules would measure the backlog, not the new task.
    for i in 0..n {
        coordinator.register(task(i, i % 10 == 0), "bench").await?;
    }
    for r in 0..rules {
        std::fs::copy(&rule, plugins.join(format!("rule{r}.wasm")))?;
    }
    host.reconcile().await?;
    let loaded = host.with_kind(Kind::DependencyRule).len();
    let mut times = Vec::new();
    let mut found = 0;
    for k in 0..5 {
        let t = Instant::now();
        found = coordinator
            .register(task(n + k, true), "bench")
            .await?
            .len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    host.shutdown().await;
    let max = times.iter().copied().fold(0.0, f64::max);
    Ok(DependencyReport {
        tasks: n,
        rules: loaded,
        median_ms: median(times),
        max_ms: max,
        found,
    })
}

/// Run this very binary as `host run` over `n` sleeping processes and read
/// its footprint from /proc: resident memory, and CPU over 10 idle seconds.
async fn measure_idle(n: usize) -> anyhow::Result<IdleReport> {
    use std::fmt::Write as _;
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let mut config = String::new();
    for i in 0..n {
        writeln!(
            config,
            "[process.idle{i}]\ncommand = \"sleep\"\nargs = [\"1000000\"]\n"
        )?;
    }
    let config_path = dir.path().join("host.toml");
    std::fs::write(&config_path, config)?;
    let state = dir.path().join("state");
    let mut host = tokio::process::Command::new(std::env::current_exe()?)
        .arg("run")
        .arg("--plugins")
        .arg(&plugins)
        .arg("--config")
        .arg(&config_path)
        .arg("--state-dir")
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = host.id().context("host pid")?;
    let started = || -> usize {
        crate::bus::Journal::open_read_only(&crate::bus::journal_path(&state))
            .and_then(|j| j.stats())
            .map(|s| s.by_type.get("process.started").copied().unwrap_or(0) as usize)
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while started() < n {
        if Instant::now() > deadline {
            bail!("only {} of {n} processes started within 300 s", started());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let start-up work settle before measuring "idle".
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_ticks = || -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15; after the name, 12 and 13.
        Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
    };
    let ticks_per_sec =
        nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    let before = cpu_ticks()?;
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let used = (cpu_ticks()? - before) as f64 / ticks_per_sec;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")?;
    let children: Vec<u32> =
        crate::bus::Journal::open_read_only(&crate::bus::journal_path(&state))?
            .query(&crate::bus::EventQuery {
                types: vec![Pattern::parse("process.started")?],
                after_sequence: Some(0),
                limit: Some(usize::MAX),
                ..Default::default()
            })?
            .iter()
            .filter_map(|e| e.data["pid"].as_u64().map(|p| p as u32))
            .collect();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    tokio::time::timeout(Duration::from_secs(300), host.wait()).await??;
    let all_stopped = children
        .iter()
        .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists());
    Ok(IdleReport {
        processes: n,
        host_rss_mib: rss_kib / 1024.0,
        host_idle_cpu_percent: used / window.as_secs_f64() * 100.0,
        all_stopped,
    })
}

/// Build the test fixtures with cargo and return the two echo versions.
fn build_fixtures() -> anyhow::Result<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/plugins");
    let status =
        crate::plugins::guest_build(&root, &["echo-v1", "echo-v2", "spin-forever", "hostile"])
            .status()
            .with_context(|| format!("cannot run cargo in {}", root.display()))?;
    if !status.success() {
        bail!("building the echo fixtures in {} failed", root.display());
    }
    let out = root.join("target/wasm32-wasip2/release");
    Ok((out.join("echo_v1.wasm"), out.join("echo_v2.wasm")))
}

fn native_echo(event: &Event) -> Result<Vec<Action>, String> {
    if event.data.get("fail").and_then(|f| f.as_bool()) == Some(true) {
        return Err("asked to fail".into());
    }
    Ok(vec![Action::Emit {
        ty: "test.pong".into(),
        subject: None,
        data: json!({ "version": 0, "ping_sequence": event.sequence }),
    }])
}

fn ping(sequence: u64) -> Event {
    Event {
        specversion: "1.0".into(),
        id: uuid::Uuid::now_v7().to_string(),
        source: "bench".into(),
        ty: "test.ping".into(),
        subject: None,
        time: Utc::now(),
        sequence,
        cause: None,
        depth: 0,
        datacontenttype: "application/json".into(),
        data: json!({ "n": sequence }),
    }
}

async fn plugin_host(
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

async fn measure(args: &BenchArgs, v1: &Path, v2: &Path) -> anyhow::Result<BenchReport> {
    let n = args.events;
    let calls = tempfile::tempdir()?;
    let plugin_dir = calls.path().join("plugins");
    std::fs::create_dir_all(&plugin_dir)?;
    std::fs::copy(v1, plugin_dir.join("echo.wasm")).with_context(|| format!("{}", v1.display()))?;
    // `hostile` answers any event but its own with nothing: the lean call.
    let hostile = v1.with_file_name("hostile.wasm");
    std::fs::copy(&hostile, plugin_dir.join("lean.wasm"))
        .with_context(|| format!("{}", hostile.display()))?;

    // 1a. Bare calls.
    let bus = Bus::open_in_memory(BusConfig::default())?;
    let (host, _rx) = plugin_host(&plugin_dir, bus.clone(), 100).await?;
    let handler = |name: &str| {
        host.with_kind(Kind::EventHandler)
            .into_iter()
            .find(|p| p.name() == name)
            .with_context(|| format!("the {name} fixture did not load as an event handler"))
    };
    let (echo, lean) = (handler("echo")?, handler("lean")?);
    let events: Vec<Event> = (1..=n).map(ping).collect();
    for e in events.iter().take(1000) {
        echo.handle(e).await?;
    }
    let t = Instant::now();
    for e in &events {
        std::hint::black_box(echo.handle(e).await?);
    }
    let call_wasm = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for e in &events {
        std::hint::black_box(native_echo(e).map_err(anyhow::Error::msg)?);
    }
    let call_native = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for chunk in events.chunks(BATCH) {
        for r in echo.handle_each(chunk).await {
            std::hint::black_box(r?);
        }
    }
    let call_batched_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    for chunk in events.chunks(BATCH).take(20) {
        lean.handle_each(chunk).await;
    }
    let t = Instant::now();
    for chunk in events.chunks(BATCH) {
        for r in lean.handle_each(chunk).await {
            std::hint::black_box(r?);
        }
    }
    let call_lean_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    host.shutdown().await;
    drop(host);

    // 1b. Pipeline: pre-publish, then time consumers catching up.
    let pipeline_wasm = {
        let bus = Bus::open_in_memory(BusConfig::default())?;
        let (host, mut rx) = plugin_host(&plugin_dir, bus.clone(), 100).await?;
        let t = Instant::now();
        publish_pings(&bus, n)?;
        let mut seen = 0;
        while seen < n {
            let r = rx.recv().await.context("the handler stopped answering")?;
            seen += r.actions.len() as u64;
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        host.shutdown().await;
        rate
    };
    let pipeline_native = {
        let bus = Bus::open_in_memory(BusConfig::default())?;
        let (tx, mut rx) = mpsc::channel::<ActionRequest>(1024);
        let mut consumer = bus.consumer(
            "native",
            vec![Pattern::parse("test.ping")?],
            StartAt::After(bus.head()),
        );
        let worker = tokio::spawn(async move {
            while let Ok(e) = consumer.next().await {
                if let Ok(actions) = native_echo(&e)
                    && tx
                        .send(ActionRequest {
                            plugin: "native".into(),
                            kind: Kind::EventHandler,
                            cause: Some(crate::plugins::Cause::of(&e)),
                            actions,
                        })
                        .await
                        .is_err()
                {
                    break;
                }
            }
        });
        let t = Instant::now();
        publish_pings(&bus, n)?;
        let mut seen = 0;
        while seen < n {
            let r = rx.recv().await.context("the native handler stopped")?;
            seen += r.actions.len() as u64;
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        worker.abort();
        rate
    };

    let idle = if args.idle_processes > 0 {
        Some(measure_idle(args.idle_processes).await?)
    } else {
        None
    };
    let dependencies = measure_dependencies(10_000, 4).await?;
    let reload = measure_reload(args, v1, v2).await?;
    let fixtures = v1.parent().context("fixture folder")?;
    let (startup_plugins, startup_cold_ms, startup_warm_ms) = measure_startup(fixtures).await?;
    let deadline = Duration::from_millis(100);
    let (overshoot_median, overshoot_max) =
        measure_runaway(&fixtures.join("spin_forever.wasm"), deadline).await?;
    let hostile = fixtures.join("hostile.wasm");
    let blocked_sleep = measure_blocked(&hostile, deadline, "sleep").await?;
    let blocked_fifo = measure_blocked(&hostile, deadline, "open").await?;
    Ok(BenchReport {
        startup_plugins,
        startup_warm_ms,
        startup_cold_ms,
        runaway_deadline_ms: deadline.as_millis() as u64,
        runaway_overshoot_max_ms: overshoot_max,
        runaway_overshoot_median_ms: overshoot_median,
        blocked_sleep,
        blocked_fifo,
        idle,
        dependencies,
        events: n,
        call_wasm_per_sec: call_wasm,
        call_native_per_sec: call_native,
        call_wasm_batched_us: call_batched_us,
        call_wasm_lean_us: call_lean_us,
        pipeline_wasm_per_sec: pipeline_wasm,
        pipeline_native_per_sec: pipeline_native,
        reload,
        bus: None,
    })
}

fn publish_pings(bus: &Bus, n: u64) -> anyhow::Result<()> {
    let mut left = n;
    while left > 0 {
        let k = left.min(1000);
        bus.publish_all(
            (0..k)
                .map(|i| NewEvent::new("bench", "test.ping", json!({ "n": i })))
                .collect(),
        )?;
        left -= k;
    }
    Ok(())
}

async fn measure_reload(args: &BenchArgs, v1: &Path, v2: &Path) -> anyhow::Result<ReloadReport> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let target = plugins.join("echo.wasm");
    std::fs::copy(v1, &target)?;
    let bytes = [std::fs::read(v1)?, std::fs::read(v2)?];
    let bus = Bus::open(&dir.path().join("journal"), BusConfig::default())?;
    let (host, mut actions) = plugin_host(&plugins, bus.clone(), args.debounce_ms).await?;
    host.watch()?;

    // The executor's job, reduced to what matters here: perform the emits,
    // as the runtime's executor does, one journal commit per round of
    // queued requests.
    let executor_bus = bus.clone();
    let executor = tokio::spawn(async move {
        while let Some(first) = actions.recv().await {
            let mut round = vec![first];
            while round.len() < 64 {
                match actions.try_recv() {
                    Ok(more) => round.push(more),
                    Err(_) => break,
                }
            }
            let events: Vec<NewEvent> = round
                .into_iter()
                .flat_map(|request| {
                    let source = format!("plugin/{}", request.plugin);
                    request.actions.into_iter().filter_map(move |a| match a {
                        Action::Emit { ty, data, .. } => {
                            Some(NewEvent::new(source.clone(), ty, data))
                        }
                        _ => None,
                    })
                })
                .collect();
            let _ = executor_bus.publish_all(events);
        }
    });

    // A steady stream of pings, in small batches every millisecond.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let publisher_bus = bus.clone();
    let per_ms = (args.rate / 1000).max(1);
    let publisher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut sent = 0u64;
        loop {
            tokio::select! {
                _ = crate::shutdown::requested(&mut stop_rx) => return sent,
                _ = tick.tick() => {
                    let batch = (0..per_ms).map(|_| NewEvent::new("bench", "test.ping", json!({}))).collect();
                    if publisher_bus.publish_all(batch).is_ok() {
                        sent += per_ms;
                    }
                }
            }
        }
    });

    let mut pongs = bus.consumer(
        "bench-pongs",
        vec![Pattern::parse("test.pong")?],
        StartAt::After(bus.head()),
    );
    let mut answers: HashMap<u64, u32> = HashMap::new();
    let mut latencies = Vec::new();
    let mut version = 1;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for swap in 0..args.reloads {
        let next = if version == 1 { 2 } else { 1 };
        let tmp = plugins.join(".echo.wasm.tmp");
        std::fs::write(&tmp, &bytes[next as usize - 1])?;
        let renamed = Instant::now();
        let renamed_ms = Utc::now().timestamp_millis() as u64;
        std::fs::rename(&tmp, &target)?;
        let deadline = renamed + Duration::from_secs(30);
        loop {
            let e = tokio::time::timeout_at(deadline.into(), pongs.next())
                .await
                .with_context(|| format!("swap {swap}: version {next} never answered"))??;
            *answers
                .entry(e.data["ping_sequence"].as_u64().unwrap_or(0))
                .or_default() += 1;
            if e.data["version"].as_u64() == Some(next) {
                // When the new version handled its first ping (stamped by
                // the guest), not when its pong came out of the queues.
                let handled = e.data["handled_ms"]
                    .as_u64()
                    .context("pong without handled_ms")?;
                latencies.push(handled.saturating_sub(renamed_ms) as f64);
                break;
            }
        }
        version = next;
        let settle = Instant::now() + Duration::from_millis(200);
        while let Ok(Ok(e)) = tokio::time::timeout_at(settle.into(), pongs.next()).await {
            *answers
                .entry(e.data["ping_sequence"].as_u64().unwrap_or(0))
                .or_default() += 1;
        }
    }
    stop_tx.send_replace(true);
    let pings = publisher.await?;
    // Drain: every ping published must be answered.
    let last_ping = bus
        .query(&crate::bus::EventQuery {
            types: vec![Pattern::parse("test.ping")?],
            limit: Some(1),
            ..Default::default()
        })?
        .pop()
        .map(|e| e.sequence)
        .unwrap_or(0);
    let drain = Instant::now() + Duration::from_secs(30);
    while !answers.contains_key(&last_ping) {
        match tokio::time::timeout_at(drain.into(), pongs.next()).await {
            Ok(Ok(e)) => {
                *answers
                    .entry(e.data["ping_sequence"].as_u64().unwrap_or(0))
                    .or_default() += 1
            }
            _ => break,
        }
    }
    let ping_seqs = bus.query(&crate::bus::EventQuery {
        types: vec![Pattern::parse("test.ping")?],
        limit: Some(usize::MAX),
        after_sequence: Some(0),
        ..Default::default()
    })?;
    let lost = ping_seqs
        .iter()
        .filter(|p| !answers.contains_key(&p.sequence))
        .count() as u64;
    let duplicated = answers.values().filter(|&&c| c > 1).count() as u64;
    host.shutdown().await;
    drop(host);
    executor.abort();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(ReloadReport {
        swaps: latencies.len(),
        debounce_ms: args.debounce_ms,
        median_ms: pct(0.5),
        p95_ms: pct(0.95),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        pings: pings.max(ping_seqs.len() as u64),
        lost,
        duplicated,
    })
}

/// Most events handed to a plugin in one batched call (as the dispatcher).
const BATCH: usize = 64;

/// Time calls into the `hostile` fixture while it blocks `with` (`sleep`:
/// a 2 s WASI sleep; `open`: opening a FIFO nobody writes, in a granted
/// folder): how long past its deadline did the caller get its answer?
async fn measure_blocked(
    hostile: &Path,
    deadline: Duration,
    with: &str,
) -> anyhow::Result<BlockedReport> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    let data = dir.path().join("data");
    std::fs::create_dir_all(plugins.join("hostile"))?;
    std::fs::create_dir_all(&data)?;
    let fifo = data.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    if !made.success() {
        bail!("mkfifo {} failed", fifo.display());
    }
    std::fs::write(
        plugins.join("hostile/plugin.toml"),
        format!(
            "component = {hostile:?}\n[permissions]\n\
             dirs = [{{ host = {data:?}, guest = \"/data\" }}]\n"
        ),
    )?;
    let (tx, _rx) = mpsc::channel(16);
    let mut config = PluginHostConfig::new(&plugins);
    config.limits.deadline = deadline;
    config.max_failures = u32::MAX;
    config.build_missing = false;
    let bus = Bus::open_in_memory(BusConfig::default())?;
    let host = PluginHost::start(config, bus, Arc::new(NoProcesses), tx).await?;
    let plugin = host
        .with_kind(Kind::EventHandler)
        .into_iter()
        .next()
        .context("the hostile fixture did not load")?;
    let mut event = ping(1);
    event.ty = "test.hostile".into();
    event.data = json!({ "do": "block", "with": with, "ms": 2000, "path": "/data/fifo" });
    let mut overshoot = Vec::new();
    let mut all_cut_off = true;
    for _ in 0..5 {
        let t = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(10), plugin.handle(&event)).await;
        let elapsed = t.elapsed();
        overshoot.push((elapsed.as_secs_f64() - deadline.as_secs_f64()) * 1000.0);
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

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Start a plugin host over every fixture component (distinct
/// components, so distinct cache entries): once cold, then five times warm.
async fn measure_startup(fixtures: &Path) -> anyhow::Result<(usize, f64, f64)> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    for entry in std::fs::read_dir(fixtures)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        // bad_kind is meant not to load.
        if name.ends_with(".wasm") && name != "bad_kind.wasm" {
            std::fs::copy(&path, plugins.join(&name))?;
        }
    }
    // The shipped plugins too, when built: more distinct components.
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/target/wasm32-wasip2/release");
    for name in [
        "failure_alert",
        "progress_mapper",
        "api_contract_rule",
        "stall_detector",
    ] {
        let path = shipped.join(format!("{name}.wasm"));
        if path.is_file() {
            std::fs::copy(&path, plugins.join(format!("{name}.wasm")))?;
        }
    }
    let mut times = Vec::new();
    let mut loaded = 0;
    for _ in 0..6 {
        let bus = Bus::open_in_memory(BusConfig::default())?;
        let t = Instant::now();
        let (host, _rx) = plugin_host(&plugins, bus, 100).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        loaded = host.list().len();
        host.shutdown().await;
    }
    let cold = times.remove(0);
    Ok((loaded, cold, median(times)))
}

/// Time a call into a plugin that never returns: how far past its
/// deadline was it cut off?
async fn measure_runaway(spin: &Path, deadline: Duration) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(spin, plugins.join("spin.wasm"))?;
    let (tx, _rx) = mpsc::channel(16);
    let mut config = PluginHostConfig::new(&plugins);
    config.limits.deadline = deadline;
    config.max_failures = u32::MAX;
    config.build_missing = false;
    let bus = Bus::open_in_memory(BusConfig::default())?;
    let host = PluginHost::start(config, bus, Arc::new(NoProcesses), tx).await?;
    let spin = host
        .with_kind(Kind::EventHandler)
        .into_iter()
        .next()
        .context("spin did not load")?;
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
        overshoot.push((t.elapsed().as_secs_f64() - deadline.as_secs_f64()) * 1000.0);
    }
    host.shutdown().await;
    let max = overshoot.iter().copied().fold(f64::MIN, f64::max);
    Ok((median(overshoot), max))
}
