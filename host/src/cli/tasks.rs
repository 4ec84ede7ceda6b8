//! `host tasks [add ...]` and `host deps`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::Cell;

use crate::api::Operations as _;
use crate::coordination::Task;

use super::client::{ConnectArgs, Failure, block_on};
use super::output;

/// Flags of `host tasks`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    action: Option<TaskAction>,
}

/// What to do with tasks.
#[derive(Debug, Subcommand)]
pub enum TaskAction {
    /// Register a task; the dependency rules are asked about it.
    Add {
        /// Unique id.
        id: String,
        /// Short title.
        #[arg(long)]
        title: String,
        /// Repository the work happens in.
        #[arg(long, default_value = "")]
        repository: String,
        /// Longer description.
        #[arg(long, default_value = "")]
        description: String,
        /// Keyword (repeatable).
        #[arg(long = "keyword", value_name = "WORD")]
        keywords: Vec<String>,
        /// Who works on it.
        #[arg(long)]
        agent: Option<String>,
    },
}

/// Flags of `host deps`.
#[derive(Debug, Args)]
pub struct DepsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(super) fn tasks(args: TasksArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = args.connect.connect()?;
        if let Some(TaskAction::Add {
            id,
            title,
            repository,
            description,
            keywords,
            agent,
        }) = args.action
        {
            let task = Task {
                id,
                repository,
                title,
                description,
                keywords,
                agent,
            };
            let registered = client.register_task(task).await?;
            if args.connect.json {
                return Ok(output::json(&registered));
            }
            let mut text = format!("registered {}", registered.task.id);
            for d in &registered.dependencies {
                text.push_str(&format!(
                    "\n  depends on {} ({}, {:.0}%): {}",
                    d.depends_on,
                    d.relationship,
                    d.confidence * 100.0,
                    d.reason
                ));
            }
            return Ok(output::line(&text));
        }
        let tasks = client.tasks().await?;
        if args.connect.json {
            return Ok(output::json(&tasks));
        }
        let mut table = output::table(&["ID", "REPOSITORY", "AGENT", "KEYWORDS", "TITLE"]);
        for t in &tasks {
            table.add_row(vec![
                Cell::new(&t.id),
                Cell::new(&t.repository),
                Cell::new(output::or_dash(t.agent.as_ref())),
                Cell::new(t.keywords.join(",")),
                Cell::new(&t.title),
            ]);
        }
        Ok::<_, Failure>(output::print(&mut table))
    })
}

pub(super) fn deps(args: DepsArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = args.connect.connect()?;
        let deps = client.dependencies().await?;
        if args.connect.json {
            return Ok(output::json(&deps));
        }
        let mut table = output::table(&[
            "TASK",
            "DEPENDS ON",
            "RELATIONSHIP",
            "CONFIDENCE",
            "RULE",
            "REASON",
        ]);
        for d in &deps {
            table.add_row(vec![
                Cell::new(&d.task),
                Cell::new(&d.depends_on),
                Cell::new(&d.relationship),
                output::num(format!("{:.0}%", d.confidence * 100.0)),
                Cell::new(&d.rule),
                Cell::new(&d.reason),
            ]);
        }
        Ok::<_, Failure>(output::print(&mut table))
    })
}
