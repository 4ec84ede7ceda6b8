//! `host run`: the main job.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

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
}

pub(super) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    super::init_logging("info");
    let config = match &args.config {
        Some(path) => HostConfig::load(path)?,
        None => HostConfig::default(),
    };
    let plugins_dir = args
        .plugins
        .clone()
        .or(config.plugins.dir.clone())
        .context("no plugins folder: pass --plugins DIR or set [plugins] dir in the config")?;
    let options = RunOptions {
        plugins_dir,
        state_dir: super::state_dir(args.state_dir.clone(), config.host.state_dir.clone()),
        watch: !args.no_watch && config.plugins.watch,
        build_missing: !args.no_build && config.plugins.build_missing,
    };
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
        let host = Runtime::start(config, options).await?;
        for p in host.plugins.list() {
            let kinds: Vec<String> = p.kinds.iter().map(|k| k.to_string()).collect();
            println!(
                "plugin {} {} [{}]",
                p.name,
                p.version.as_deref().unwrap_or("-"),
                kinds.join(", ")
            );
        }
        println!(
            "host running: {} plugins, {} processes (Ctrl-C to stop)",
            host.plugins.list().len(),
            host.supervisor.list().len()
        );
        host.run_until(shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("interrupted"),
        _ = term.recv() => tracing::info!("terminated"),
    }
}
