//! `host plugins [reload|approve NAME]` and `host agents [pause|resume NAME]`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::Cell;

use crate::api::Operations as _;

use super::client::{ConnectArgs, Failure, block_on};
use super::output;

/// Flags of `host plugins`.
#[derive(Debug, Args)]
pub struct PluginsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    action: Option<PluginAction>,
}

/// What to do to a plugin.
#[derive(Debug, Subcommand)]
pub enum PluginAction {
    /// Reload a plugin from disk even if unchanged (lifts a quarantine).
    Reload {
        /// The plugin.
        name: String,
    },
    /// Approve the new grants of a version refused on reload
    /// (`plugin.reload_refused`) and swap it in.
    Approve {
        /// The plugin.
        name: String,
    },
}

/// Flags of `host agents`.
#[derive(Debug, Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    action: Option<AgentAction>,
}

/// What to do to an agent.
#[derive(Debug, Subcommand)]
pub enum AgentAction {
    /// Skip the agent's ticks until resumed.
    Pause {
        /// The agent (its plugin's name).
        name: String,
    },
    /// Resume the agent's ticks.
    Resume {
        /// The agent (its plugin's name).
        name: String,
    },
}

pub(super) fn plugins(args: PluginsArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = args.connect.connect()?;
        let changed = match args.action {
            Some(PluginAction::Reload { name }) => {
                Some(("reloaded", client.reload_plugin(&name).await?))
            }
            Some(PluginAction::Approve { name }) => {
                Some(("approved", client.approve_plugin(&name).await?))
            }
            None => None,
        };
        if let Some((done, plugin)) = changed {
            return Ok(if args.connect.json {
                output::json(&plugin)
            } else {
                output::line(&format!("{done} {} ({})", plugin.name, plugin.state))
            });
        }
        let plugins = client.plugins().await?;
        if args.connect.json {
            return Ok(output::json(&plugins));
        }
        let mut table = output::table(&[
            "NAME",
            "VERSION",
            "KINDS",
            "STATE",
            "CALLS",
            "FAILURES",
            "ERRORS",
            "LAG",
            "LAST ERROR",
        ]);
        for p in &plugins {
            let state = if p.quarantined {
                Cell::new(&p.state).fg(comfy_table::Color::Red)
            } else {
                Cell::new(&p.state)
            };
            let lag: u64 = p.lag.values().copied().max().unwrap_or(0);
            table.add_row(vec![
                Cell::new(&p.name),
                Cell::new(output::or_dash(p.version.as_ref())),
                Cell::new(p.kinds.join(",")),
                state,
                output::num(p.calls),
                output::num(p.failures),
                output::num(p.errors),
                output::num(lag),
                Cell::new(p.last_error.as_deref().map_or("-".to_string(), first_line)),
            ]);
        }
        let printed = output::print(&mut table);
        for p in plugins.iter().filter(|p| !p.awaiting_approval.is_empty()) {
            output::line(&format!(
                "{}: a new version awaits approval of: {}; `host plugins approve {}` swaps it in",
                p.name,
                p.awaiting_approval.join(", "),
                p.name
            ));
        }
        Ok::<_, Failure>(printed)
    })
}

pub(super) fn agents(args: AgentsArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = args.connect.connect()?;
        let changed = match args.action {
            Some(AgentAction::Pause { name }) => Some(client.pause_agent(&name).await?),
            Some(AgentAction::Resume { name }) => Some(client.resume_agent(&name).await?),
            None => None,
        };
        if let Some(agent) = changed {
            return Ok(if args.connect.json {
                output::json(&agent)
            } else {
                output::line(&format!("{}  {}", agent.plugin, agent.status))
            });
        }
        let agents = client.agents().await?;
        if args.connect.json {
            return Ok(output::json(&agents));
        }
        let mut table = output::table(&[
            "AGENT",
            "STATUS",
            "EVERY",
            "CYCLES",
            "LAST ACTIVE",
            "ACTIVITY",
        ]);
        for a in &agents {
            table.add_row(vec![
                Cell::new(&a.plugin),
                Cell::new(&a.status),
                output::num(output::duration(a.interval_ms as f64 / 1000.0)),
                output::num(a.cycles),
                Cell::new(
                    a.last_active
                        .map_or("-".into(), |t| t.format("%H:%M:%S").to_string()),
                ),
                Cell::new(match &a.last_error {
                    Some(e) if a.status == "error" => format!("error: {}", first_line(e)),
                    _ => a.activity.clone(),
                }),
            ]);
        }
        Ok::<_, Failure>(output::print(&mut table))
    })
}

/// The first line of a message, for a table cell.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line.to_string()
    }
}
