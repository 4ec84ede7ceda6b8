//! The `host` binary: parse flags, run, turn the error into an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before anything opens a descriptor: see the function's doc. Without
    // the early slots the supervisor reserves its own, so a failure here
    // costs speed, not function.
    let _ = host::supervisor::reserve_spawn_slots();
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
