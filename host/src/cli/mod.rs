//! The command line: one enum of verbs, one file per verb.
//!
//! `host run` is the main job; `events` reads the journal (also while a
//! host runs); `plugin check` inspects a component; `bench` measures.

mod events;
mod plugin;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Default state folder, relative to the working directory.
pub const DEFAULT_STATE_DIR: &str = ".state";

/// A WebAssembly-pluggable host runtime: supervise processes, keep an
/// event log, run sandboxed policy plugins.
#[derive(Debug, Parser)]
#[command(name = "host", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host: load plugins, start processes, until Ctrl-C/SIGTERM.
    Run(run::RunArgs),
    /// Read the event journal (JSON Lines of CloudEvents with --json).
    Events(events::EventsArgs),
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Measure handler throughput (WASM vs native) and reload latency.
    Bench(crate::bench::BenchArgs),
}

/// Run a parsed command line; the exit code on success.
///
/// # Errors
///
/// Whatever the verb failed with, as a chain of context.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Events(args) => events::run(args),
        Command::Plugin(cmd) => plugin::run(cmd),
        Command::Bench(args) => crate::bench::run(args),
    }
}

/// Logging to stderr, filtered by `RUST_LOG` (default `info`).
pub(crate) fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The state folder: the flag, else the config's, else `.state`.
pub(crate) fn state_dir(flag: Option<PathBuf>, config: Option<PathBuf>) -> PathBuf {
    flag.or(config)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
