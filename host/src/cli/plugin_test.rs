//! `host plugin test`: replay recorded events through a plugin and print, compare or check its decisions.

use std::process::ExitCode;

/// Arguments of the verb (being built this session).
#[derive(Debug, clap::Args)]
pub struct TestArgs {}

pub(super) fn run(_args: TestArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
