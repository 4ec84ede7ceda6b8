//! The process verbs: `start`, `stop`, `restart`, `pause`, `resume`, `rm`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::api::{CreateProcess, Operations as _, ProcessStatus, StopOptions};
use crate::supervisor::RestartMode;

use super::client::{ConnectArgs, Failure, block_on};
use super::output;

/// Flags of `host start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// A process of the config (or one created earlier) to start.
    #[arg(value_name = "ID", conflicts_with_all = ["name", "command"])]
    id: Option<String>,
    /// Create a new process with this human-readable name.
    #[arg(long, requires = "command")]
    name: Option<String>,
    /// Its kind (seed 004's jules_session, test_suite, build, server,
    /// analysis, custom, or any other).
    #[arg(long = "type", value_name = "KIND", default_value = "custom")]
    kind: String,
    /// Stop it as `timeout` after this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    timeout: u64,
    /// Restart policy: never, on-failure, always.
    #[arg(long, value_name = "POLICY", default_value = "never", value_parser = restart_mode)]
    restart: RestartMode,
    /// Extra environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// Context as KEY=VALUE (repeatable), kept in its metadata.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = key_value)]
    meta: Vec<(String, String)>,
    /// The command, after `--` (run with /bin/sh -c).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn restart_mode(text: &str) -> Result<RestartMode, String> {
    serde_json::from_value(serde_json::Value::String(text.into()))
        .map_err(|_| format!("`{text}`: use never, on-failure or always"))
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

/// Flags of `host stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The process.
    #[arg(value_name = "ID")]
    id: String,
    /// SIGKILL at once, without the grace period.
    #[arg(long)]
    force: bool,
}

/// Flags of the verbs that take just a process.
#[derive(Debug, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The process.
    #[arg(value_name = "ID")]
    id: String,
}

/// Which verb a [`TargetArgs`] is for.
#[derive(Debug, Clone, Copy)]
pub enum Act {
    /// `host restart`.
    Restart,
    /// `host pause`.
    Pause,
    /// `host resume`.
    Resume,
    /// `host rm`.
    Remove,
}

pub(super) fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = args.connect.connect()?;
        let status = match (args.id, args.name) {
            (Some(id), _) => client.start(&id).await?,
            (None, Some(name)) => {
                let cwd = std::env::current_dir().context("the current folder")?;
                let request = CreateProcess {
                    process_type: args.kind,
                    name,
                    command: shell_words(&args.command),
                    timeout: args.timeout,
                    metadata: args
                        .meta
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect(),
                    // The command runs where it was typed.
                    cwd: Some(cwd.display().to_string()),
                    env: args.env.into_iter().collect::<BTreeMap<_, _>>(),
                    restart: args.restart,
                    start: true,
                    watch_workspace: false,
                };
                let created = client.create(request).await?;
                client.process(&created.process_id).await?
            }
            (None, None) => {
                return Err(Failure::Other(anyhow::anyhow!(
                    "say which process: `host start ID`, or create one with `host start --name NAME [--type KIND] -- COMMAND...`"
                )));
            }
        };
        Ok(show(&status, args.connect.json))
    })
}

/// The words after `--` as one shell command: kept as typed when there is
/// one word (`-- 'npm run dev'`), joined with shell quoting otherwise.
fn shell_words(words: &[String]) -> String {
    if let [one] = words {
        return one.clone();
    }
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = args.connect.connect()?;
        let status = client
            .stop(&args.id, StopOptions { force: args.force })
            .await?;
        Ok(show(&status, args.connect.json))
    })
}

pub(super) fn act(args: TargetArgs, act: Act) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = args.connect.connect()?;
        let status = match act {
            Act::Restart => client.restart(&args.id).await?,
            Act::Pause => client.pause(&args.id).await?,
            Act::Resume => client.resume(&args.id).await?,
            Act::Remove => {
                client.remove(&args.id).await?;
                return Ok(if args.connect.json {
                    output::json(&serde_json::json!({ "removed": args.id }))
                } else {
                    output::line(&format!("removed {}", args.id))
                });
            }
        };
        Ok(show(&status, args.connect.json))
    })
}

/// One line for people: `build_7f3a9c  running  pid 4242`.
fn show(p: &ProcessStatus, json: bool) -> ExitCode {
    if json {
        return output::json(p);
    }
    let mut text = format!("{}  {}", p.process_id, p.state);
    if let Some(pid) = p.pid.filter(|_| p.state.is_active()) {
        text.push_str(&format!("  pid {pid}"));
    }
    if let Some(code) = p.exit_code.filter(|_| p.state.is_terminal()) {
        text.push_str(&format!("  exit {code}"));
    }
    if !p.waiting_for.is_empty() {
        text.push_str(&format!("  waiting for {}", p.waiting_for.join(", ")));
    }
    output::line(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_word_is_kept_and_several_are_quoted_for_the_shell() {
        assert_eq!(shell_words(&["npm run dev".into()]), "npm run dev");
        assert_eq!(
            shell_words(&["echo".into(), "it's".into(), "a b".into(), "x=1".into()]),
            r"echo 'it'\''s' 'a b' x=1"
        );
    }
}
