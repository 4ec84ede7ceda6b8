//! `host events`: read the journal, also while a host is running (or
//! after it stopped); `-f` follows the running host's log live.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt as _;

use chrono::Utc;

use crate::api::{EventStats, EventsQuery, MAX_STATS_SCAN, StatsQuery};
use crate::bus::{Event, Journal, MinuteCount, journal_path};

/// Flags of `host events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    connect: super::client::ConnectArgs,
    /// Keep printing events as the running host publishes them.
    #[arg(short = 'f', long, conflicts_with = "stats")]
    pub follow: bool,
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
    /// Print statistics instead of events: totals of the journal by type
    /// and source and events per minute of the last hour; with `--since`
    /// and/or `--until`, the same counts for that window and its mean rate.
    #[arg(long, conflicts_with_all = ["types", "subject", "source", "after"])]
    pub stats: bool,
}

pub(super) fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let query = EventsQuery {
        types: args.types.clone(),
        subject: args.subject.clone(),
        source: args.source.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
        after: args.after,
        limit: Some(args.limit),
    };
    if args.follow {
        return follow(&args, &query);
    }
    let state = args.connect.state_dir()?;
    let path = journal_path(&state);
    let journal = Journal::open_read_only(&path).with_context(|| {
        format!(
            "cannot read the journal {} (has a host run with this --state-dir?)",
            path.display()
        )
    })?;
    if args.stats {
        if args.since.is_some() || args.until.is_some() {
            return print_window_stats(&journal, &args);
        }
        return print_stats(&journal, args.connect.json);
    }
    let bus_query = query
        .to_bus_query(args.limit)
        .map_err(|e| anyhow::anyhow!("bad flag: {}", e.error))?;
    let events = journal.query(&bus_query)?;
    for e in &events {
        if !print_event(e, args.connect.json) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `-f`: the newest matches, then every new one as the running host
/// publishes it (server-sent events), until Ctrl-C or the host stops.
fn follow(args: &EventsArgs, query: &EventsQuery) -> anyhow::Result<ExitCode> {
    let connect = args.connect.clone();
    let query = query.clone();
    super::client::block_on(async move {
        let client = connect.connect()?;
        let stream = client.follow(&query, query.after).await?;
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if !print_event(&event?, connect.json) {
                break;
            }
        }
        Ok::<_, super::client::Failure>(ExitCode::SUCCESS)
    })
}

/// Prints one event; false once stdout is closed (`host events | head`).
fn print_event(e: &Event, json: bool) -> bool {
    let mut out = std::io::stdout().lock();
    let written = if json {
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
    match written.and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => false,
        Err(e) => {
            eprintln!("error: cannot write: {e}");
            false
        }
    }
}

fn print_stats(journal: &Journal, json: bool) -> anyhow::Result<ExitCode> {
    let stats = journal.stats()?;
    if json {
        return Ok(super::output::json(&stats));
    }
    let mut text = format!(
        "events      {} (head sequence {})\n",
        stats.total, stats.head
    );
    text.push_str(&format!("last minute {}\n", stats.events_per_minute));
    if let Some(t) = stats.last_event_time {
        text.push_str(&format!("newest      {}\n", t.to_rfc3339()));
    }
    text.push_str("by type\n");
    for (ty, n) in &stats.by_type {
        text.push_str(&format!("  {n:>8}  {ty}\n"));
    }
    text.push_str("by source");
    for (source, n) in &stats.by_source {
        text.push_str(&format!("\n  {n:>8}  {source}"));
    }
    let hour = journal.stats_by(Some(Utc::now() - chrono::Duration::hours(1)), None, None)?;
    text.push_str("\nper minute (last hour)");
    push_minutes(&mut text, &hour.per_minute);
    // A closed pipe (`| head`) ends the output quietly.
    Ok(super::output::line(&text))
}

/// `--stats --since/--until`: the window's counts, as `GET /v1/events/stats` gives them.
fn print_window_stats(journal: &Journal, args: &EventsArgs) -> anyhow::Result<ExitCode> {
    let query = StatsQuery {
        since: args.since.clone(),
        until: args.until.clone(),
    };
    let (since, until) = query
        .window()
        .map_err(|e| anyhow::anyhow!("bad flag --{}: {}", e.field.unwrap_or_default(), e.error))?;
    let counts = journal.stats_by(since, Some(until), Some(MAX_STATS_SCAN))?;
    let stats = EventStats::new(since, until, counts);
    if args.connect.json {
        return Ok(super::output::json(&stats));
    }
    let from = since.map_or_else(|| "the oldest event".to_string(), |s| s.to_rfc3339());
    let mut text = format!("window      {from} to {}\n", stats.until.to_rfc3339());
    text.push_str(&format!(
        "events      {}{}\n",
        stats.total,
        if stats.complete {
            ""
        } else {
            " (only the newest 200,000 counted)"
        }
    ));
    text.push_str(&format!(
        "per minute  {:.1} (mean)\n",
        stats.events_per_minute
    ));
    text.push_str("by type\n");
    for (ty, n) in &stats.by_type {
        text.push_str(&format!("  {n:>8}  {ty}\n"));
    }
    text.push_str("by source\n");
    for (source, n) in &stats.by_source {
        text.push_str(&format!("  {n:>8}  {source}\n"));
    }
    text.push_str("per minute");
    push_minutes(&mut text, &stats.per_minute);
    Ok(super::output::line(&text))
}

/// One line per minute with events: its start and the count.
fn push_minutes(text: &mut String, minutes: &[MinuteCount]) {
    for m in minutes {
        text.push_str(&format!(
            "\n  {:>8}  {}",
            m.events,
            m.minute.format("%Y-%m-%dT%H:%MZ")
        ));
    }
}
