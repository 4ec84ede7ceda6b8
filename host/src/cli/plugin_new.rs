//! `host plugin new`: a ready plugin project in Rust, JavaScript or Python.

use std::process::ExitCode;

/// Arguments of the verb (being built this session).
#[derive(Debug, clap::Args)]
pub struct NewArgs {}

pub(super) fn run(_args: NewArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
