//! `host bench`: the numbers of the design card and of the control
//! surfaces, measured in one run, each section through the code a user
//! runs. One file per section under `bench/`; this one keeps the flags,
//! the report and the runner.
//!
//! | section | file | what runs |
//! |---|---|---|
//! | handler throughput | `handlers.rs`, `extism.rs` | plugin host calls; pipeline in memory, and a host in-process on a file journal with the real executor; the same calls through Extism's SDK (a child of its own) |
//! | reload | `reload.rs` | a host in-process, watcher on, component swapped under pings |
//! | deadlines | `deadlines.rs` | the plugin host's `handle` into looping and blocked guests |
//! | start-up | `startup.rs` | `PluginHost::start` over the fixtures and the shipped plugins |
//! | dependencies | `dependencies.rs` | a host in-process, tasks registered through the coordinator |
//! | idle processes | `idle.rs`, `supervisord.rs` | a `host run` child over many sleeping processes; supervisord over the same |
//! | control surfaces | `api.rs` | `GET /v1/processes` and MCP on the idle host; SSE fan-out on a host of its own |
//! | bus | `bus.rs` | the event bus on a file journal |
//! | output | `output.rs`, `output_peer.rs` | a C writer's 1 GiB burst through a `host run` child and through supervisord; exit → `process.exited` |
//!
//! Shared pieces: `fixtures.rs` builds every component first (a fresh
//! clone has none) and installs plugin folders; `child.rs` is a `host run`
//! child; `common.rs` the in-process host, percentiles and /proc readers.

mod api;
mod bus;
mod child;
mod common;
mod deadlines;
mod dependencies;
mod extism;
mod fixtures;
mod handlers;
mod idle;
mod output;
mod output_peer;
mod reload;
mod startup;
mod supervisord;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde::Serialize;

pub use api::{ControlReport, McpRun, SseReport};
pub use bus::{BusBenchArgs, BusReport};
pub use common::Spread;
pub use deadlines::{BlockedReport, DeadlineReport};
pub use dependencies::DependencyReport;
pub use extism::{ExtismOutcome, ExtismReport};
pub use handlers::{HandlerReport, PipelineRun};
pub use idle::IdleReport;
pub use output::{BurstFigures, FloodFigures, OutputReport};
pub use reload::ReloadReport;
pub use startup::StartupReport;
pub use supervisord::PeerOutcome;

/// A section of `host bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// Handler throughput: bare calls and pipelines.
    Handlers,
    /// Hot reload under pings.
    Reload,
    /// Runaway and blocked plugins.
    Deadlines,
    /// Plugin host start-up, cold and warm.
    Startup,
    /// Dependency detection against 10,000 tasks.
    Dependencies,
    /// A `host run` over many idle processes, and supervisord.
    Idle,
    /// `GET /v1/processes` and MCP (on the idle host), SSE fan-out.
    Api,
    /// The event bus.
    Bus,
    /// A 1 GiB stdout burst (host and supervisord), and exit → event.
    Output,
}

/// Flags of `host bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Run only these sections (comma-separated) [default: all].
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Section>,
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
    /// Supervised idle processes for the footprint measurement and the
    /// API listing (0 skips both).
    #[arg(long, default_value_t = 1000)]
    pub idle_processes: usize,
    /// Timed requests per API measurement (listing, MCP calls).
    #[arg(long, default_value_t = 300)]
    pub api_requests: usize,
    /// Concurrent SSE clients.
    #[arg(long, default_value_t = 10)]
    pub sse_clients: usize,
    /// Events each SSE client replays (0 skips the SSE measurement).
    #[arg(long, default_value_t = 100_000)]
    pub sse_events: u64,
    /// Do not run peers (Extism in the handler section, supervisord in
    /// the idle section).
    #[arg(long)]
    pub no_peers: bool,
    /// Where peers are installed once (a Python venv for supervisord, the
    /// Extism peer's cargo builds).
    #[arg(long, default_value = "/tmp/host-bench-cache")]
    pub cache: PathBuf,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// The event bus section.
    #[command(flatten)]
    pub bus: bus::BusBenchArgs,
}

/// Everything `host bench` measured; a section not run is `null`.
#[derive(Debug, Default, Serialize)]
pub struct BenchReport {
    /// The machine while the bench ran.
    pub machine: Machine,
    /// Handler throughput.
    pub handlers: Option<HandlerReport>,
    /// Extism's calls for the same work.
    pub extism: Option<ExtismOutcome>,
    /// Reload latency.
    pub reload: Option<ReloadReport>,
    /// Deadlines.
    pub deadlines: Option<DeadlineReport>,
    /// Plugin host start-up.
    pub startup: Option<StartupReport>,
    /// Registering one task against 10,000 with 4 rule plugins.
    pub dependencies: Option<DependencyReport>,
    /// A `host run` child over many idle processes.
    pub idle: Option<IdleReport>,
    /// supervisord over the same processes.
    pub supervisord: Option<PeerOutcome>,
    /// Listing and MCP round trips on the idle host.
    pub control: Option<ControlReport>,
    /// SSE fan-out.
    pub sse: Option<SseReport>,
    /// The event bus section.
    pub bus: Option<BusReport>,
    /// The 1 GiB output burst and exit → event.
    pub output: Option<OutputReport>,
    /// Sections or parts skipped, and why.
    pub skipped: Vec<String>,
}

/// The machine the figures come from.
#[derive(Debug, Default, Serialize)]
pub struct Machine {
    /// Cores available to this process.
    pub cores: usize,
    /// The CPU's model name, as the kernel reports it.
    pub cpu: String,
    /// Total and available memory when the bench started, MiB.
    pub memory_total_mib: u64,
    /// ...
    pub memory_available_mib: u64,
    /// `/proc/loadavg` (1, 5, 15 min) when the bench started.
    pub load_before: Vec<f64>,
    /// The same when it ended.
    pub load_after: Vec<f64>,
}

/// The machine as sysinfo describes it: CPU model and memory, so figures
/// taken on different machines (or beside other work) can be told apart.
fn describe_machine() -> Machine {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    system.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu: system
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .unwrap_or_default(),
        memory_total_mib: system.total_memory() / (1024 * 1024),
        memory_available_mib: system.available_memory() / (1024 * 1024),
        load_before: load_average(),
        load_after: Vec::new(),
    }
}

fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect()
}

pub(crate) fn run(mut args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.bus.bus_open_probe {
        return bus::probe_open(dir);
    }
    crate::cli::init_logging("warn");
    if args.bus.bus_only {
        args.only = vec![Section::Bus];
    }
    let runs = |s: Section| args.only.is_empty() || args.only.contains(&s);
    let mut report = BenchReport {
        machine: describe_machine(),
        ..BenchReport::default()
    };
    let needs_plugins = [
        Section::Handlers,
        Section::Reload,
        Section::Deadlines,
        Section::Startup,
        Section::Dependencies,
    ]
    .into_iter()
    .any(runs);
    let fixtures = if needs_plugins {
        Some(fixtures::Fixtures::build(
            args.echo_v1.clone(),
            args.echo_v2.clone(),
        )?)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if let Some(fx) = &fixtures {
            if runs(Section::Handlers) {
                report.handlers = Some(handlers::measure(fx, args.events).await?);
                if args.no_peers {
                    report.skipped.push("Extism: --no-peers".into());
                } else {
                    let peer = extism::measure(&args.cache, args.events).await;
                    if let ExtismOutcome::Skipped { reason } = &peer {
                        report.skipped.push(format!("Extism: {reason}"));
                    }
                    report.extism = Some(peer);
                }
            }
            if runs(Section::Reload) {
                report.reload =
                    Some(reload::measure(fx, args.reloads, args.rate, args.debounce_ms).await?);
            }
            if runs(Section::Deadlines) {
                report.deadlines = Some(deadlines::measure(fx).await?);
            }
            if runs(Section::Startup) {
                report.startup = Some(startup::measure(fx).await?);
            }
            if runs(Section::Dependencies) {
                report.dependencies = Some(dependencies::measure(fx, 10_000, 4).await?);
            }
        }
        if runs(Section::Idle) || runs(Section::Api) {
            let n = args.idle_processes;
            if n == 0 {
                report
                    .skipped
                    .push("idle processes and GET /v1/processes: --idle-processes 0".into());
            } else {
                let list = runs(Section::Api);
                let requests = args.api_requests;
                let (idle, control) = idle::measure(n, async |host| {
                    if list {
                        api::control(host, n, requests).await.map(Some)
                    } else {
                        Ok(None)
                    }
                })
                .await?;
                report.idle = Some(idle);
                report.control = control;
                if args.no_peers {
                    report.skipped.push("supervisord: --no-peers".into());
                } else {
                    let peer = supervisord::measure(&args.cache, n).await?;
                    if let PeerOutcome::Skipped { reason } = &peer {
                        report.skipped.push(format!("supervisord: {reason}"));
                    }
                    report.supervisord = Some(peer);
                }
            }
        }
        if runs(Section::Api) {
            if args.sse_events == 0 || args.sse_clients == 0 {
                report
                    .skipped
                    .push("SSE fan-out: --sse-events or --sse-clients is 0".into());
            } else {
                report.sse = Some(api::sse(args.sse_clients, args.sse_events).await?);
            }
        }
        if runs(Section::Output) {
            match output::measure(&args.cache, !args.no_peers).await {
                Ok(o) => report.output = Some(o),
                Err(e) if format!("{e}").contains("output section skipped") => {
                    report.skipped.push(format!("{e:#}"));
                }
                Err(e) => return Err(e),
            }
        }
        anyhow::Ok(())
    })?;
    drop(runtime);
    if runs(Section::Bus) {
        report.bus = Some(bus::measure(&args.bus)?);
    }
    report.machine.load_after = load_average();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints every section that ran, in the order of the design card.
fn print(r: &BenchReport) {
    let load = |l: &[f64]| {
        l.iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "machine: {} cores ({}), {} MiB of memory ({} MiB available), load average {} at the start, {} at the end",
        r.machine.cores,
        r.machine.cpu,
        r.machine.memory_total_mib,
        r.machine.memory_available_mib,
        load(&r.machine.load_before),
        load(&r.machine.load_after)
    );
    if let Some(h) = &r.handlers {
        handlers::print(h, r.bus.as_ref(), r.extism.as_ref());
    }
    if let Some(l) = &r.reload {
        reload::print(l);
    }
    if let Some(d) = &r.deadlines {
        deadlines::print(d);
    }
    if let Some(s) = &r.startup {
        startup::print(s);
    }
    if let Some(d) = &r.dependencies {
        dependencies::print(d);
    }
    if let Some(i) = &r.idle {
        println!(
            "{} idle supervised processes (sleep), same run:",
            i.processes
        );
        idle::print("host run", i);
        match &r.supervisord {
            Some(PeerOutcome::Measured {
                version,
                idle: peer,
            }) => idle::print(&format!("supervisord {version}"), peer),
            Some(PeerOutcome::Skipped { reason }) => println!("  supervisord  skipped: {reason}"),
            None => println!("  supervisord  not run (--no-peers)"),
        }
    }
    if r.control.is_some() || r.sse.is_some() {
        println!("control surfaces, against a `host run` child:");
        if let Some(c) = &r.control {
            api::print_control(c);
        }
        if let Some(s) = &r.sse {
            api::print_sse(s);
        }
    }
    if let Some(b) = &r.bus {
        bus::print(b);
    }
    if let Some(o) = &r.output {
        output::print(o);
    }
    for s in &r.skipped {
        println!("skipped: {s}");
    }
}
