//! `host events`: read the journal, also while a host is running.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;

use crate::bus::{EventQuery, Journal, Pattern, journal_path};

/// Flags of `host events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The state folder of the host [default: .state].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Only these types (`*` = one token, `>` = the rest); repeatable.
    #[arg(long = "type", value_name = "PATTERN")]
    pub types: Vec<String>,
    /// Only this subject (e.g. a process name).
    #[arg(long)]
    pub subject: Option<String>,
    /// Only this source (e.g. `host/supervisor`).
    #[arg(long)]
    pub source: Option<String>,
    /// Only events at or after: RFC 3339, or an age like `10m`, `2h`.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only events before: RFC 3339, or an age like `1m`.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only events after this sequence number.
    #[arg(long, value_name = "SEQ")]
    pub after: Option<u64>,
    /// At most this many (the newest, or the first after --after).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// JSON Lines of CloudEvents instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print statistics of the journal (totals by type and source, events
    /// in the last minute) instead of events.
    #[arg(long, conflicts_with_all = ["types", "subject", "source", "since", "until", "after"])]
    pub stats: bool,
}

pub(super) fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let state = super::state_dir(args.state_dir.clone(), None);
    let path = journal_path(&state);
    let journal = Journal::open_read_only(&path).with_context(|| {
        format!(
            "cannot read the journal {} (has a host run with this --state-dir?)",
            path.display()
        )
    })?;
    if args.stats {
        return print_stats(&journal, args.json);
    }
    let types = args
        .types
        .iter()
        .map(|t| Pattern::parse(t).with_context(|| format!("--type {t}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let query = EventQuery {
        types,
        subject: args.subject.clone(),
        source: args.source.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| when(s).context("--since"))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| when(s).context("--until"))
            .transpose()?,
        after_sequence: args.after,
        limit: Some(args.limit),
        ..EventQuery::default()
    };
    let events = journal.query(&query)?;
    let mut out = std::io::stdout().lock();
    for e in &events {
        let written = if args.json {
            serde_json::to_writer(&mut out, e)
                .map_err(std::io::Error::other)
                .and_then(|_| writeln!(out))
        } else {
            writeln!(
                out,
                "{:>8}  {}  {:<28} {:<20} {:<18} {}",
                e.sequence,
                e.time.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                e.ty,
                e.subject.as_deref().unwrap_or("-"),
                e.source,
                e.data
            )
        };
        match written {
            Ok(()) => {}
            // `host events | head` is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_stats(journal: &Journal, json: bool) -> anyhow::Result<ExitCode> {
    let stats = journal.stats()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("events      {} (head sequence {})", stats.total, stats.head);
    println!("last minute {}", stats.events_per_minute);
    if let Some(t) = stats.last_event_time {
        println!("newest      {}", t.to_rfc3339());
    }
    println!("by type");
    for (ty, n) in &stats.by_type {
        println!("  {n:>8}  {ty}");
    }
    println!("by source");
    for (source, n) in &stats.by_source {
        println!("  {n:>8}  {source}");
    }
    Ok(ExitCode::SUCCESS)
}

/// An RFC 3339 time, or an age (`90s`, `10m`, `2h`, `1d`) before now.
fn when(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = number
        .parse()
        .with_context(|| format!("`{text}` is neither an RFC 3339 time nor an age like 10m"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => anyhow::bail!("`{text}`: unknown unit `{unit}` (use s, m, h or d)"),
    };
    Ok(Utc::now() - chrono::Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_timestamps_are_accepted_and_nonsense_is_named() {
        let t = when("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        let ten = when("10m").unwrap();
        let age = Utc::now() - ten;
        assert!(age.num_seconds() >= 599 && age.num_seconds() <= 660);
        assert!(when("soon").unwrap_err().to_string().contains("soon"));
        assert!(when("5y").unwrap_err().to_string().contains("unit"));
    }
}
