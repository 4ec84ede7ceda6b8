//! `host run`: the main job.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use crate::api::{ApiServer, Control};
use crate::config::HostConfig;
use crate::runtime::{RunOptions, Runtime};
use crate::supervisor::Supervisor;

/// Flags of `host run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Folder of plugins (`*.wasm`, or folders with a plugin.toml).
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// The host.toml to use.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the journal, logs, compile cache and plugin state live
    /// [default: the config's `state_dir`, else .state].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Do not reload plugins when their files change.
    #[arg(long)]
    pub no_watch: bool,
    /// Do not run `[build] command` for plugins whose component is missing.
    #[arg(long)]
    pub no_build: bool,
    /// Rebuild a plugin when a file its `[build] watch` globs match
    /// changes: its `[build] command` runs and the rebuilt component is
    /// reloaded; a failed build keeps the old version serving and is
    /// published as `plugin.build_failed` with the compiler's output.
    #[arg(long, conflicts_with = "no_watch")]
    pub watch: bool,
    /// Address of the HTTP API and MCP endpoint [default: 127.0.0.1 with a
    /// free port; see `api.addr` in the state folder].
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<String>,
    /// Allow a --listen address other machines can reach (the token is
    /// still required).
    #[arg(long)]
    pub allow_remote: bool,
    /// Serve no API (no client verbs, no MCP over HTTP, no metrics).
    #[arg(long, conflicts_with_all = ["listen", "allow_remote"])]
    pub no_api: bool,
}

pub(super) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    super::init_logging("info");
    let mut config = match &args.config {
        Some(path) => HostConfig::load(path)?,
        None => HostConfig::default(),
    };
    if let Some(listen) = &args.listen {
        config.api.listen = Some(listen.clone());
    }
    config.api.allow_remote |= args.allow_remote;
    config.api.enabled &= !args.no_api;
    let plugins_dir = args
        .plugins
        .clone()
        .or(config.plugins.dir.clone())
        .context("no plugins folder: pass --plugins DIR or set [plugins] dir in the config")?;
    let options = RunOptions {
        plugins_dir,
        state_dir: super::state_dir(args.state_dir.clone(), config.host.state_dir.clone()),
        watch: args.watch || (!args.no_watch && config.plugins.watch),
        build_missing: !args.no_build && config.plugins.build_missing,
        rebuild: args.watch,
    };
    // Refuse a bad address before anything starts.
    config.api.bind_addr()?;
    // Orphaned grandchildren of our processes re-parent to us rather than
    // to init, so stopping a process can reap its whole tree.
    if let Err(e) = Supervisor::become_subreaper() {
        tracing::warn!("cannot become a child subreaper ({e}); orphaned grandchildren will escape");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Listen before anything starts, so no signal is missed.
        let mut signals = Signals::new()?;
        // The runtime takes the config whole (its processes move into the
        // supervisor's table: a thousand specs are a megabyte, kept once).
        let api_config = config.api.clone();
        let shutdown_timeout = config.host.shutdown_timeout;
        let host = Runtime::start(config, options).await?;
        let api = if api_config.enabled {
            Some(ApiServer::start(control_of(&host), &api_config, host.state_dir.clone()).await?)
        } else {
            None
        };
        // Processes run already; say what loaded once it has.
        let mut loaded = host.plugins_loaded.clone();
        let stop_now = tokio::select! {
            _ = loaded.wait_for(|done| *done) => false,
            _ = signals.next() => true,
        };
        if !stop_now {
            announce(&host, api.as_ref());
            signals.next().await;
        }
        if let Some(api) = api {
            api.shutdown().await;
        }
        host.stop(shutdown_timeout, signals.next()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The API's handle on a running host.
pub(super) fn control_of(host: &Runtime) -> Control {
    Control {
        bus: host.bus.clone(),
        supervisor: host.supervisor.clone(),
        plugins: host.plugins.clone(),
        agents: host.agents.clone(),
        coordinator: host.coordinator.clone(),
        sessions: host.sessions.clone(),
        started_at: chrono::Utc::now(),
        state_dir: host.state_dir.clone(),
        plugins_loaded: host.plugins_loaded.clone(),
    }
}

/// What a person starting the host wants to know: which plugins loaded,
/// which did not and what to do about it, and where the API is.
fn announce(host: &Runtime, api: Option<&ApiServer>) {
    let plugins = host.plugins.list();
    for p in &plugins {
        let kinds: Vec<String> = p.kinds.iter().map(|k| k.to_string()).collect();
        println!(
            "plugin {} {} [{}]",
            p.name,
            p.version.as_deref().unwrap_or("-"),
            kinds.join(", ")
        );
    }
    let failed = host.plugins.failures();
    for (path, error) in &failed {
        // Most load errors name their file already; say it once.
        let error_line = first_line(error);
        let file = path.display().to_string();
        if error_line.contains(&file) {
            println!("plugin NOT loaded: {error_line}");
        } else {
            println!("plugin NOT loaded: {file}: {error_line}");
        }
        if let Some(hint) = hint(error) {
            println!("  → {hint}");
        }
    }
    let processes = host.supervisor.list().len();
    if failed.is_empty() {
        println!(
            "host running: {} plugins, {processes} processes (Ctrl-C to stop)",
            plugins.len()
        );
    } else {
        println!(
            "host running WITHOUT {} of its plugins: {} loaded, {processes} processes (Ctrl-C to stop)",
            failed.len(),
            plugins.len()
        );
    }
    if let Some(api) = api {
        println!(
            "api on http://{} (bearer token in {}); try `host ps --state-dir {}`",
            api.addr(),
            host.state_dir.join(crate::api::TOKEN_FILE).display(),
            host.state_dir.display()
        );
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// One line saying what to do about a load failure we recognise.
fn hint(error: &str) -> Option<&'static str> {
    if error.contains("wasm32-wasip2") && error.contains("target may not be installed")
        || error.contains("can't find crate for `core`")
    {
        return Some(
            "the Rust target is missing: run `rustup target add wasm32-wasip2`, then restart (or touch the plugin's plugin.toml)",
        );
    }
    if error.contains("No such file or directory") && error.contains("cargo") {
        return Some("cargo is not on PATH: install Rust with rustup (https://rustup.rs)");
    }
    None
}

/// Ctrl-C and SIGTERM, as one stream: the first asks for a stop, the
/// second forces it.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("interrupted"),
            _ = self.terminate.recv() => tracing::info!("terminated"),
        }
    }
}
