//! `host completions SHELL`: a completion script for the shell.

use std::process::ExitCode;

use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

/// Flags of `host completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

pub(super) fn run(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "host", &mut script);
    // Through the one writer that treats a closed pipe (`| head`) as done.
    let script = String::from_utf8_lossy(&script);
    Ok(super::output::line(script.trim_end_matches('\n')))
}
