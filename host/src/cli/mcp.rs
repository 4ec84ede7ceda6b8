//! `host mcp`: MCP over stdin/stdout, for an AI agent that spawns it.
//!
//! It attaches to the host running on the state folder (each tool call is
//! a request to its API). With `--config` and no host running there, it
//! runs one in-process for the life of the session: an agent that spawns
//! `host mcp --config host.toml` gets a working process manager, which
//! stops (with its processes) when the agent closes the session. Either
//! way, stdout carries only the protocol; logs go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use crate::api::{ApiClient, ApiServer, McpFactory, Operations as _, serve_stdio};
use crate::config::HostConfig;
use crate::runtime::{RunOptions, Runtime};
use crate::supervisor::Supervisor;

/// Flags of `host mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The state folder of the host to attach to (or to run one on)
    /// [default: the config's `state_dir`, else .state].
    #[arg(long, value_name = "DIR", env = "HOST_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// With no host running on the state folder, run one with this config
    /// for the session.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Plugins folder for a host run in-process [default: the config's].
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
}

pub(super) fn run(args: McpArgs) -> anyhow::Result<ExitCode> {
    super::init_logging("warn");
    let config = match &args.config {
        Some(path) => Some(HostConfig::load(path)?),
        None => None,
    };
    let state_dir = super::state_dir(
        args.state_dir.clone(),
        config.as_ref().and_then(|c| c.host.state_dir.clone()),
    );
    // Processes an agent starts run in the folder it started us in.
    let cwd = std::env::current_dir().ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        if let Ok(client) = ApiClient::from_state_dir(&state_dir)
            && client.stats().await.is_ok()
        {
            tracing::info!(api = client.base_url(), "attached to the running host");
            serve_stdio(McpFactory::new(Arc::new(client), cwd)).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let Some(config) = config else {
            eprintln!(
                "error: no host is running on state folder {}: start one with `host run`, or pass --config FILE to run one for this session",
                state_dir.display()
            );
            return Ok(ExitCode::from(super::EXIT_NO_HOST));
        };
        in_process(config, args.plugins, state_dir, cwd).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs a host for the session: MCP on stdio, the HTTP API beside it (so
/// `host ps` works meanwhile), everything stopped when stdin closes.
async fn in_process(
    config: HostConfig,
    plugins: Option<PathBuf>,
    state_dir: PathBuf,
    cwd: Option<PathBuf>,
) -> anyhow::Result<()> {
    let plugins_dir = plugins
        .or(config.plugins.dir.clone())
        .context("no plugins folder: pass --plugins DIR or set [plugins] dir in the config")?;
    if let Err(e) = Supervisor::become_subreaper() {
        tracing::warn!("cannot become a child subreaper ({e}); orphaned grandchildren will escape");
    }
    let options = RunOptions {
        plugins_dir,
        state_dir,
        watch: config.plugins.watch,
        build_missing: config.plugins.build_missing,
        rebuild: false,
    };
    let api_config = config.api.clone();
    let shutdown_timeout = config.host.shutdown_timeout;
    let host = Runtime::start(config, options).await?;
    let control = super::run::control_of(&host);
    let api = if api_config.enabled {
        Some(ApiServer::start(control.clone(), &api_config, host.state_dir.clone()).await?)
    } else {
        None
    };
    tracing::info!("running a host for this MCP session");
    let served = serve_stdio(McpFactory::new(Arc::new(control), cwd)).await;
    if let Some(api) = api {
        api.shutdown().await;
    }
    host.stop(shutdown_timeout, std::future::pending()).await?;
    served
}
