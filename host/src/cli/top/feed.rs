//! Where `host top`'s data comes from: one task that finds the host,
//! takes a snapshot through [`ApiClient`] (processes, plugins, agents,
//! sessions), then follows the SSE stream with the CLI's own client
//! (`ApiClient::follow`, as `host events -f` does), taking a fresh snapshot
//! every interval and whenever the model asks for one.
//!
//! When the host goes away the task says so and keeps retrying, reading
//! the state folder afresh each time (a restarted host has a new address
//! and token). It resumes the stream after the last event it delivered,
//! so nothing published while it reconnects is skipped (as far as journal
//! retention keeps it).
//!
//! The actions (stop, restart, ...) and output reads run as tasks of their
//! own with the client of the current connection, so a stop that waits for
//! a process tree to exit never freezes the screen.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::api::{
    ApiClient, ApiError, ClientError, EventsQuery, Operations as _, OutputLineView, OutputQuery,
    ProcessFilter, SessionsQuery, StopOptions,
};
use crate::bus::Event;
use crate::coordination::{SessionStatus, SessionSummary};

use super::super::client::{ConnectArgs, Failure};
use super::model::{OUTPUT_LINES, Pending, SessionRow, Snapshot, Verb};

/// How long to wait between attempts to reach a host that is gone.
const RETRY: Duration = Duration::from_secs(1);

/// The event families the screen shows; output of every process is
/// included so the selected one's tail follows live.
const TYPES: [&str; 5] = ["process.>", "plugin.>", "agent.>", "session.>", "host.>"];

/// The client of the current connection, if there is one.
pub type Slot = Arc<Mutex<Option<ApiClient>>>;

/// What the feed and the action tasks tell the screen.
#[derive(Debug)]
pub enum Msg {
    /// Connected to the host at this address.
    Up(String),
    /// The host does not answer; why.
    Gone(String),
    /// A fresh snapshot.
    Snapshot(Snapshot),
    /// An event of the stream.
    Event(Box<Event>),
    /// Output lines of a process, and the offset to continue from.
    Output {
        /// Whose.
        id: String,
        /// The lines, oldest first (empty on failure).
        lines: Vec<OutputLineView>,
        /// The next offset, `None` when the read failed.
        next: Option<u64>,
    },
    /// An action ended: what to tell the person.
    Done(Result<String, String>),
}

/// Follows the host on `connect` until the screen goes away (`tx`
/// closed): snapshots every `every` and when `refresh` is notified.
pub async fn run(
    connect: ConnectArgs,
    tx: mpsc::Sender<Msg>,
    refresh: Arc<Notify>,
    slot: Slot,
    every: Duration,
) {
    let mut cursor = None;
    loop {
        let reason = match follow(&connect, &tx, &refresh, &slot, every, &mut cursor).await {
            Ok(()) => return,
            Err(reason) => reason,
        };
        *slot.lock() = None;
        if tx.send(Msg::Gone(reason)).await.is_err() {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// One connection: `Ok` when the screen is gone, `Err` with the reason
/// when the host is.
async fn follow(
    connect: &ConnectArgs,
    tx: &mpsc::Sender<Msg>,
    refresh: &Notify,
    slot: &Slot,
    every: Duration,
    cursor: &mut Option<u64>,
) -> Result<(), String> {
    let client = connect.connect().map_err(|f| match f {
        Failure::Client(e) => e.to_string(),
        Failure::Other(e) => format!("{e:#}"),
    })?;
    let head = client
        .events(EventsQuery {
            limit: Some(1),
            ..EventsQuery::default()
        })
        .await
        .map_err(|e| e.error)?
        .next_after;
    // A cursor past the head belongs to another journal (a new state
    // folder): start at this one's head; the snapshot covers the rest.
    let after = cursor.filter(|c| *c <= head).unwrap_or(head);
    *cursor = Some(after);
    let first = snapshot(&client).await.map_err(|e| e.error)?;
    let query = EventsQuery {
        types: TYPES.iter().map(|t| t.to_string()).collect(),
        ..EventsQuery::default()
    };
    let stream = client
        .follow(&query, Some(after))
        .await
        .map_err(|e| ApiError::from(e).error)?;
    futures::pin_mut!(stream);
    *slot.lock() = Some(client.clone());
    let addr = client.base_url().trim_start_matches("http://").to_string();
    if tx.send(Msg::Up(addr)).await.is_err() || tx.send(Msg::Snapshot(first)).await.is_err() {
        return Ok(());
    }
    let mut tick = tokio::time::interval(every);
    tick.reset();
    loop {
        let again = tokio::select! {
            item = stream.next() => match item {
                Some(Ok(event)) => {
                    *cursor = Some(event.sequence);
                    if tx.send(Msg::Event(Box::new(event))).await.is_err() {
                        return Ok(());
                    }
                    false
                }
                Some(Err(ClientError::Api(e))) => {
                    // A journal read failed; the stream goes on.
                    if tx.send(Msg::Done(Err(e.error))).await.is_err() {
                        return Ok(());
                    }
                    false
                }
                Some(Err(ClientError::Unreachable(reason))) => return Err(reason),
                None => return Err("the host closed the event stream".into()),
            },
            _ = tick.tick() => true,
            () = refresh.notified() => true,
        };
        if again {
            let snap = snapshot(&client).await.map_err(|e| e.error)?;
            if tx.send(Msg::Snapshot(snap)).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// Everything the screen lists, read at once.
async fn snapshot(client: &ApiClient) -> Result<Snapshot, ApiError> {
    let (processes, plugins, agents) = tokio::join!(
        client.processes(ProcessFilter::default()),
        client.plugins(),
        client.agents()
    );
    Ok(Snapshot {
        processes: processes?,
        plugins: plugins?,
        agents: agents?,
        sessions: sessions(client).await,
    })
}

/// Open coordination sessions (`GET /v1/sessions?status=active`), or why
/// they cannot be listed (a host from before sessions answers 404), so the
/// panel says that instead of "no sessions".
async fn sessions(client: &ApiClient) -> Result<Vec<SessionRow>, String> {
    let query = SessionsQuery {
        status: Some(SessionStatus::Active),
    };
    let list = client.sessions(query).await.map_err(|e| e.error)?;
    Ok(list.into_iter().map(row).collect())
}

/// A session as the panel lists it.
fn row(s: SessionSummary) -> SessionRow {
    // The kinds and statuses are serde's lowercase words.
    let word = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
    SessionRow {
        id: s.id,
        kind: word(serde_json::to_value(s.kind).unwrap_or_default()),
        status: word(serde_json::to_value(s.status).unwrap_or_default()),
        participants: s.participants,
        messages: s.messages,
        last_activity: Some(s.last_activity),
    }
}

/// Output lines of `id`: the last ones, or those after `next`.
pub async fn output(client: ApiClient, id: String, next: Option<u64>) -> Msg {
    let query = match next {
        Some(after) => OutputQuery {
            after: Some(after),
            ..OutputQuery::default()
        },
        None => OutputQuery {
            tail: Some(OUTPUT_LINES),
            ..OutputQuery::default()
        },
    };
    match client.output(&id, query).await {
        Ok(page) => Msg::Output {
            id,
            lines: page.lines,
            next: Some(page.next_offset),
        },
        Err(_) => Msg::Output {
            id,
            lines: Vec::new(),
            next: None,
        },
    }
}

/// Carries out an action; the sentence to show.
pub async fn act(client: ApiClient, p: Pending) -> Msg {
    let id = p.target.as_str();
    let process = |s: crate::api::ProcessStatus| format!("{} {}", s.process_id, s.state.as_str());
    let agent = |a: crate::api::AgentStatusView| format!("agent {} {}", a.plugin, a.status);
    let done = match p.verb {
        Verb::Stop => client.stop(id, StopOptions::default()).await.map(process),
        Verb::Restart => client.restart(id).await.map(process),
        Verb::Pause => client.pause(id).await.map(process),
        Verb::Resume => client.resume(id).await.map(process),
        Verb::ReloadPlugin => client
            .reload_plugin(id)
            .await
            .map(|s| format!("reloaded {} ({})", s.name, s.state)),
        Verb::PauseAgent => client.pause_agent(id).await.map(agent),
        Verb::ResumeAgent => client.resume_agent(id).await.map(agent),
    };
    Msg::Done(done.map_err(|e| format!("{} {id}: {}", p.verb.word(), e.error)))
}
