//! `host plugin test`: replay recorded events through a plugin and print, compare or check its decisions.
//!
//! The work is the authoring room's (`authoring::replay`); this file reads
//! the flags, picks what to print and decides the exit status: 0 when the
//! replay ran (and matched `--expect`), 1 when it differs from `--expect`,
//! an error when an input or the plugin cannot be used.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::authoring::replay::{ClockMode, Input, Replay, ReplayOptions, replay};
use crate::authoring::replay_render::{
    compare, mismatches, render, render_comparison, render_mismatches,
};

/// The environment variable that, set to anything but `0`, turns
/// `--expect` into `--bless` (as Spin's and rustc's UI tests do).
const BLESS_ENV: &str = "BLESS";

/// Arguments of the verb.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["events", "tasks"])))]
pub struct TestArgs {
    /// The plugin: a component (FILE.wasm), its plugin.toml, or its folder.
    pub plugin: PathBuf,
    /// Recorded events, one JSON event a line (`host events --json > FILE`),
    /// for event handlers and status mappers.
    #[arg(long, value_name = "FILE.jsonl")]
    pub events: Option<PathBuf>,
    /// Tasks, one JSON task a line, for dependency rules: each is checked
    /// against the tasks before it.
    #[arg(long, value_name = "FILE.jsonl")]
    pub tasks: Option<PathBuf>,
    /// What the plugin's clocks read: the time of each replayed event
    /// (virtual), or the system's (real).
    #[arg(long, value_enum, default_value_t = ClockMode::Virtual)]
    pub clock: ClockMode,
    /// A fixed process snapshot (`host ps --json > FILE`, or
    /// `{"processes": [{"name": ..., "kind": ...}]}`) instead of the one
    /// the replayed events build.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// Replay the same input through another version and show, input by
    /// input, where the two decide differently.
    #[arg(long, value_name = "OLD")]
    pub against: Option<PathBuf>,
    /// Compare the decisions with this snapshot file; exit 1 with the
    /// differences if they differ.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    /// With --expect: write the replay's decisions to the snapshot file
    /// instead of comparing (also with BLESS=1 in the environment).
    #[arg(long, requires = "expect")]
    pub bless: bool,
    /// Hold the plugin to this host.toml's limits and ceilings ([plugins])
    /// instead of the defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let input = match (&args.events, &args.tasks) {
        (Some(events), _) => Input::Events(events.clone()),
        (None, Some(tasks)) => Input::Tasks(tasks.clone()),
        (None, None) => anyhow::bail!("give the input with --events FILE or --tasks FILE"),
    };
    let mut options = ReplayOptions {
        clock: args.clock,
        snapshot: args.snapshot.clone(),
        ..ReplayOptions::default()
    };
    if let Some(file) = &args.config {
        let config = crate::config::HostConfig::load(file)?;
        options.check.defaults = config.plugins.limit_defaults();
        options.check.ceilings = config.plugins.ceilings();
        options.check.plugins_dir = config.plugins.dir.clone();
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let new = runtime.block_on(replay(&args.plugin, &input, &options))?;
    let old = match &args.against {
        Some(path) => Some(runtime.block_on(replay(path, &input, &options))?),
        None => None,
    };
    if let Some(old) = &old {
        let comparison = compare(&new, old);
        if args.json {
            super::output::json(&serde_json::json!({
                "new": new, "old": old, "comparison": comparison,
            }));
        } else {
            print!("{}", render_comparison(&comparison));
        }
        if args.expect.is_none() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    match &args.expect {
        Some(file) => expect(
            &new,
            file,
            args.bless || bless_env(),
            args.json && old.is_none(),
        ),
        None if args.json => Ok(super::output::json(&new)),
        None => {
            print!("{}", render(&new));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Whether `BLESS` asks for snapshots to be written.
fn bless_env() -> bool {
    std::env::var_os(BLESS_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// `--expect FILE`: write the snapshot (bless), or compare with it.
fn expect(new: &Replay, file: &Path, bless: bool, json: bool) -> anyhow::Result<ExitCode> {
    let text = render(new);
    if bless {
        std::fs::write(file, &text)
            .with_context(|| format!("cannot write the snapshot {}", file.display()))?;
        eprintln!("wrote {} ({} inputs)", file.display(), new.steps.len());
        return Ok(ExitCode::SUCCESS);
    }
    let expected = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "{}: no such snapshot; write it with --bless (or BLESS=1)",
            file.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let found = mismatches(&expected, &text);
    if json {
        super::output::json(&serde_json::json!({ "replay": new, "mismatches": found }));
    } else if found.is_empty() {
        print!("{text}");
    } else {
        print!("{}", render_mismatches(&file.display().to_string(), &found));
    }
    match found.first() {
        None => Ok(ExitCode::SUCCESS),
        Some(first) => {
            eprintln!(
                "error: the replay differs from {} at {} ({} differences)",
                file.display(),
                first.input,
                found.len()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
