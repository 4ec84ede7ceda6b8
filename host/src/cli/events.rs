//! `host events`: read the journal, also while a host is running (or
//! after it stopped); `-f` follows the running host's log live.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt as _;

use crate::api::EventsQuery;
use crate::bus::{Event, Journal, journal_path};

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
    /// Print statistics of the journal (totals by type and source, events
    /// in the last minute) instead of events.
    #[arg(long, conflicts_with_all = ["types", "subject", "source", "since", "until", "after"])]
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
    // A closed pipe (`| head`) ends the output quietly.
    Ok(super::output::line(&text))
}
