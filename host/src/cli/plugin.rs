//! `host plugin check`: what a component is and what it would be granted,
//! and (`--conformance`) whether it keeps the contract of its kinds.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

/// Plugin verbs.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load a component (FILE.wasm, a plugin.toml, or its folder) the way
    /// the host would, and print its kinds, imports and grants.
    Check {
        /// The component, manifest or plugin folder.
        path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Hold the plugin to this host.toml's limits and ceilings
        /// ([plugins]) instead of the defaults.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The plugins folder it would load from [default: the folder
        /// holding the plugin, or the config's [plugins] dir].
        #[arg(long, value_name = "DIR")]
        plugins: Option<PathBuf>,
        /// Run the kind-level contract check instead: exports, describe
        /// within the deadline, well-formed subscriptions, valid and granted
        /// actions on synthetic inputs, a rule's batch answer in range.
        /// Exits non-zero when a check fails.
        #[arg(long)]
        conformance: bool,
    },
    /// Create a plugin project (manifest, source, build script, a test)
    /// that builds and loads as it is.
    New(super::plugin_new::NewArgs),
    /// Replay recorded events through a plugin, without a running host,
    /// and print (or compare) its decisions.
    Test(super::plugin_test::TestArgs),
}

pub(super) fn run(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    // A replay reports each failed call with its event; the plugin room's
    // own lines about them would say it twice, with timestamps.
    super::init_logging(if matches!(cmd, PluginCommand::Test(_)) {
        "warn,host::plugins::slot=off"
    } else {
        "warn"
    });
    let (path, json, config, plugins, conformance) = match cmd {
        PluginCommand::Check {
            path,
            json,
            config,
            plugins,
            conformance,
        } => (path, json, config, plugins, conformance),
        PluginCommand::New(args) => return super::plugin_new::run(args),
        PluginCommand::Test(args) => return super::plugin_test::run(args),
    };
    let mut options = crate::plugins::CheckOptions::default();
    if let Some(file) = &config {
        let config = crate::config::HostConfig::load(file)?;
        options.defaults = config.plugins.limit_defaults();
        options.ceilings = config.plugins.ceilings();
        options.plugins_dir = config.plugins.dir.clone();
    }
    if let Some(dir) = plugins {
        options.plugins_dir = Some(
            std::fs::canonicalize(&dir)
                .with_context(|| format!("plugins folder {}", dir.display()))?,
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    if conformance {
        let report = runtime.block_on(crate::authoring::conformance(&path, &options))?;
        return print_conformance(&report, json);
    }
    let report = runtime.block_on(crate::plugins::check(&path, &options))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("plugin     {}", report.name);
    println!("component  {}", report.component.display());
    if let Some(m) = &report.manifest {
        println!("manifest   {}", m.display());
    }
    println!("digest     {}", report.digest);
    let kinds: Vec<String> = report.kinds.iter().map(|k| k.to_string()).collect();
    println!("kinds      {}", kinds.join(", "));
    let d = &report.description;
    if !d.subscriptions.is_empty() {
        println!("subscribes {}", d.subscriptions.join(", "));
    }
    if !d.mapper_kinds.is_empty() {
        println!("maps kinds {}", d.mapper_kinds.join(", "));
    }
    if let Some(r) = &d.rule {
        println!(
            "rule       {} — {} (keywords: {})",
            r.name,
            r.description,
            r.keywords.join(", ")
        );
    }
    if let Some(a) = &d.agent {
        println!(
            "agent      {} — {} (every {} ms)",
            a.name,
            a.description,
            a.interval.as_millis()
        );
    }
    println!("imports");
    for i in &report.imports {
        println!("  {i}");
    }
    println!("grants");
    if report.grants_described.is_empty() {
        println!(
            "  nothing: no files, no environment, no network, no arguments, \
             no emits, no lifecycle actions"
        );
    }
    for grant in &report.grants_described {
        println!("  {grant}");
    }
    println!(
        "limits     {} ms per call, {} MiB memory",
        report.deadline_ms, report.memory_mib
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints a conformance report (each check with its sentence, or JSON);
/// the exit code fails when any check did.
fn print_conformance(
    report: &crate::authoring::ConformanceReport,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        let kinds: Vec<String> = report.kinds.iter().map(|k| k.to_string()).collect();
        println!("plugin {} ({})", report.plugin, report.path.display());
        if !kinds.is_empty() {
            println!("kinds  {}", kinds.join(", "));
        }
        for c in &report.checks {
            let verdict = if c.passed { "passed" } else { "FAILED" };
            println!("  {verdict:<6} {:<13} {}", c.check, c.detail);
        }
        let failed = report.checks.iter().filter(|c| !c.passed).count();
        if failed == 0 {
            println!("conformance: all {} checks passed", report.checks.len());
        } else {
            println!(
                "conformance: {failed} of {} checks failed",
                report.checks.len()
            );
        }
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
