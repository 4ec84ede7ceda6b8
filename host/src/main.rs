//! The `host` binary: parse flags, run, turn the error into an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = host::cli::Cli::parse();
    match host::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // The whole chain: "cannot start the plugin host: plugins
            // folder ./plugins: No such file or directory".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
