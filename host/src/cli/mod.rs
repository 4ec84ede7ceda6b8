//! The command line: one enum of verbs, one file per verb (or per family).
//!
//! `host run` is the main job. The client verbs (`ps`, `logs`, `start`,
//! `stop`, ..., `plugins`, `agents`, `tasks`, `deps`) drive a running host
//! through its HTTP API, found through the state folder; `host mcp` serves
//! MCP on stdio; `events` reads the journal (also with no host running);
//! `plugin check` inspects a component; `wit` prints the plugin contract;
//! `bench` measures.
//!
//! Exit codes: 0 success; 1 the host refused or failed the request; 2 bad
//! command line; 3 no such process, plugin or agent; 4 no host running on
//! the state folder (or it does not answer).

mod client;
mod completions;
mod events;
mod logs;
mod mcp;
mod output;
mod plugin;
mod plugin_new;
mod plugin_test;
mod plugins;
mod process;
mod ps;
mod run;
mod sessions;
mod tasks;
mod top;
mod wit;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Default state folder, relative to the working directory.
pub const DEFAULT_STATE_DIR: &str = ".state";

/// Exit code: the host refused or failed the request.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: no such process, plugin or agent.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code: no host running on the state folder.
pub const EXIT_NO_HOST: u8 = 4;

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
    /// Run the host: load plugins, start processes, serve the API, until
    /// Ctrl-C/SIGTERM.
    Run(run::RunArgs),
    /// List the processes of the running host.
    Ps(ps::PsArgs),
    /// Print a process's output; -f follows it.
    Logs(logs::LogsArgs),
    /// Start a process: one of the config (`host start NAME`), or a new
    /// one (`host start --name N --type T -- COMMAND...`).
    Start(process::StartArgs),
    /// Stop a process and its whole tree.
    Stop(process::StopArgs),
    /// Restart a process (through its restart limit and backoff).
    Restart(process::TargetArgs),
    /// Pause a running process (SIGSTOP to its tree).
    Pause(process::TargetArgs),
    /// Resume a paused process.
    Resume(process::TargetArgs),
    /// Remove a process that is not running.
    Rm(process::TargetArgs),
    /// Read the event journal; -f follows the running host's log.
    Events(events::EventsArgs),
    /// List plugins, or reload one.
    Plugins(plugins::PluginsArgs),
    /// List background agents, or pause / resume one.
    Agents(plugins::AgentsArgs),
    /// List tasks, or add one.
    Tasks(tasks::TasksArgs),
    /// List the dependencies found between tasks.
    Deps(tasks::DepsArgs),
    /// List coordination sessions, or show, post to or escalate one.
    Sessions(sessions::SessionsArgs),
    /// A live terminal view of the running host: processes, output,
    /// plugins, agents, sessions; keys to stop, restart, pause, resume.
    Top(top::TopArgs),
    /// Serve MCP on stdin/stdout for an AI agent: attached to the host
    /// running on the state folder, or (with --config) running one.
    Mcp(mcp::McpArgs),
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Print the plugin contract (WIT) this host loads, or write it out
    /// with --out DIR.
    Wit(wit::WitArgs),
    /// Measure handler throughput (WASM vs native), reload latency and more.
    Bench(crate::bench::BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
}

/// Run a parsed command line; the exit code on success.
///
/// # Errors
///
/// Whatever the verb failed with, as a chain of context.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Ps(args) => ps::run(args),
        Command::Logs(args) => logs::run(args),
        Command::Start(args) => process::start(args),
        Command::Stop(args) => process::stop(args),
        Command::Restart(args) => process::act(args, process::Act::Restart),
        Command::Pause(args) => process::act(args, process::Act::Pause),
        Command::Resume(args) => process::act(args, process::Act::Resume),
        Command::Rm(args) => process::act(args, process::Act::Remove),
        Command::Events(args) => events::run(args),
        Command::Plugins(args) => plugins::plugins(args),
        Command::Agents(args) => plugins::agents(args),
        Command::Tasks(args) => tasks::tasks(args),
        Command::Deps(args) => tasks::deps(args),
        Command::Sessions(args) => sessions::sessions(args),
        Command::Top(args) => top::run(args),
        Command::Mcp(args) => mcp::run(args),
        Command::Plugin(cmd) => plugin::run(cmd),
        Command::Wit(args) => wit::run(args),
        Command::Bench(args) => crate::bench::run(args),
        Command::Completions(args) => completions::run(args),
    }
}

/// Logging to stderr, filtered by `RUST_LOG` (default `default`); colour
/// only when stderr is a terminal, so a log file gets plain text.
pub(crate) fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
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
