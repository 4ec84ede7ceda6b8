//! `host ps`: the processes of the running host.

use std::process::ExitCode;

use clap::Args;

use crate::api::{Operations as _, ProcessFilter};
use crate::supervisor::ProcessState;

use super::client::{ConnectArgs, Failure, block_on};
use super::output;

/// Flags of `host ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Only these states (repeatable): running, failed, completed, ...
    #[arg(long, value_name = "STATE")]
    state: Vec<ProcessState>,
    /// Only this kind.
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
}

pub(super) fn run(args: PsArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = args.connect.connect()?;
        let filter = ProcessFilter {
            state: args.state,
            kind: args.kind,
        };
        let processes = client.processes(filter).await?;
        if args.connect.json {
            return Ok(output::json(&processes));
        }
        let mut table = output::table(&[
            "ID",
            "KIND",
            "STATE",
            "READY",
            "PID",
            "TIME",
            "RESTARTS",
            "PROGRESS",
            "CPU",
            "MEM",
            "NAME / MESSAGE",
        ]);
        for p in &processes {
            let waiting = (!p.waiting_for.is_empty())
                .then(|| format!("waiting for {}", p.waiting_for.join(", ")));
            let note = match (
                p.message.as_ref().or(waiting.as_ref()),
                p.name != p.process_id,
            ) {
                (Some(m), true) => format!("{} — {m}", p.name),
                (Some(m), false) => m.clone(),
                (None, true) => p.name.clone(),
                (None, false) => String::new(),
            };
            table.add_row(vec![
                comfy_table::Cell::new(&p.process_id),
                comfy_table::Cell::new(&p.process_type),
                output::state(p.state),
                // "-": no readiness probe.
                comfy_table::Cell::new(p.ready.map_or("-", |r| if r { "yes" } else { "no" })),
                output::num(output::or_dash(p.pid)),
                output::num(p.duration.map_or("-".into(), output::duration)),
                output::num(p.restarts),
                output::num(
                    p.progress
                        .map_or("-".into(), |x| format!("{:.0}%", x * 100.0)),
                ),
                output::num(p.cpu_percent.map_or("-".into(), |c| format!("{c:.1}%"))),
                output::num(p.memory_bytes.map_or("-".into(), output::bytes)),
                comfy_table::Cell::new(note),
            ]);
        }
        Ok::<_, Failure>(output::print(&mut table))
    })
}
