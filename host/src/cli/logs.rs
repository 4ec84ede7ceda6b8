//! `host logs ID [-f] [-n N]`: a process's output, as it printed it.
//!
//! Lines come from the process's ring by offset, so following is a cursor
//! too: each read asks for the lines after the last one printed, and no
//! line is shown twice or skipped (unless the ring overflowed between two
//! reads, which is said). stdout lines go to stdout, stderr lines to
//! stderr, as the process wrote them. `-n` beyond what the ring holds
//! reads the end of the log file (every rotated generation) instead.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::api::{Operations as _, OutputLineView, OutputQuery};

use super::client::{ConnectArgs, Failure, block_on};
use super::output;

/// How often `-f` asks for new lines.
const POLL: Duration = Duration::from_millis(250);

/// Flags of `host logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The process.
    #[arg(value_name = "ID")]
    id: String,
    /// Keep printing new lines until the process ends (Ctrl-C to leave).
    #[arg(short = 'f', long)]
    follow: bool,
    /// How many of the last lines to print first.
    #[arg(short = 'n', long, default_value_t = 100)]
    lines: usize,
    /// The whole log file (every rotated generation), not the last lines.
    #[arg(long, conflicts_with_all = ["follow", "lines"])]
    file: bool,
    /// Only lines matching this regular expression.
    #[arg(long, value_name = "REGEX")]
    grep: Option<String>,
}

pub(super) fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = args.connect.connect()?;
        if args.file {
            let text = client.log(&args.id).await?;
            let mut out = std::io::stdout().lock();
            return Ok(match out.write_all(text.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(Failure::Other(e.into()));
                }
                _ => ExitCode::SUCCESS,
            });
        }
        let first = client
            .output(
                &args.id,
                OutputQuery {
                    tail: Some(args.lines),
                    regex: args.grep.clone(),
                    ..OutputQuery::default()
                },
            )
            .await?;
        // More lines asked for than the ring still holds: the last ones come
        // from the log file, across its rotated generations.
        let from_file = first.first_offset > 0 && first.lines.len() < args.lines;
        let printed = if from_file && !args.connect.json {
            let text = client.log(&args.id).await?;
            print_tail(&text, args.lines, args.grep.as_deref())
                .map_err(|e| Failure::Other(e.into()))?
        } else {
            print(&first.lines, args.connect.json)
        };
        if !printed {
            return Ok(ExitCode::SUCCESS);
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        let mut next = first.next_offset;
        loop {
            let page = client
                .output(
                    &args.id,
                    OutputQuery {
                        after: Some(next),
                        regex: args.grep.clone(),
                        ..OutputQuery::default()
                    },
                )
                .await?;
            if page.first_offset > next {
                eprintln!(
                    "[{} lines went by faster than they could be read; see `host logs {} --file`]",
                    page.first_offset - next,
                    args.id
                );
            }
            if !print(&page.lines, args.connect.json) {
                return Ok(ExitCode::SUCCESS);
            }
            let drained = page.next_offset == next;
            next = page.next_offset;
            if drained {
                // Nothing new: has it ended for good?
                if client.process(&args.id).await?.completed_at.is_some() {
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::time::sleep(POLL).await;
            }
        }
    })
}

/// Prints the last `n` lines of `text` (matching `grep`, if given) to
/// stdout; false once stdout is closed. The log file does not say which
/// stream a line came from, so all go to stdout.
fn print_tail(text: &str, n: usize, grep: Option<&str>) -> Result<bool, regex::Error> {
    let regex = grep.map(regex::Regex::new).transpose()?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| regex.as_ref().is_none_or(|r| r.is_match(l)))
        .collect();
    let mut out = std::io::stdout().lock();
    for line in &lines[lines.len().saturating_sub(n)..] {
        if writeln!(out, "{line}").is_err() {
            return Ok(false);
        }
    }
    Ok(out.flush().is_ok())
}

/// Prints lines; false once stdout is closed (`| head`).
fn print(lines: &[OutputLineView], json: bool) -> bool {
    for l in lines {
        let written = if json {
            let text = serde_json::to_string(l).unwrap_or_default();
            output::line(&text) == ExitCode::SUCCESS
        } else if l.stream == "stderr" {
            writeln!(std::io::stderr(), "{}", l.line).is_ok()
        } else {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", l.line)
                .and_then(|()| out.flush())
                .is_ok()
        };
        if !written {
            return false;
        }
    }
    true
}
