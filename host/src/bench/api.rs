//! The control surfaces (issue 5), measured against a real `host run`
//! child through its API, found as a user finds it (`api.addr`,
//! `api.token` in the state folder):
//!
//! 1. **Listing**: `GET /v1/processes` with every process of the idle
//!    section's host (1,000 by default) supervised, through [`ApiClient`]
//!    (what `host ps` does: request, answer parsed), a few hundred times
//!    after a warm-up on one kept-alive connection.
//! 2. **MCP**: a `tools/call` of `get_process_status` over Streamable HTTP
//!    at `/mcp`, with rmcp's own client, in both protocol revisions the
//!    host serves (2025-11-25 with a session, 2026-07-28 without).
//! 3. **SSE fan-out**: a host of its own whose journal was filled first
//!    (`Bus::open` + `submit`) with `--sse-events` events; `--sse-clients`
//!    clients open `GET /v1/events/stream?after=0` at once and read until
//!    the last of them. The clients only split the stream into messages
//!    (counting `id:` lines, checking the last id), they do not parse the
//!    JSON: on a shared 2-core machine every cycle a client spends is one
//!    the server does not get.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt as _, ServiceExt as _};
use serde::Serialize;
use serde_json::json;

use super::child::HostChild;
use super::common::Spread;
use super::fixtures::write;
use crate::api::{ApiClient, Operations as _, ProcessFilter};
use crate::bus::{Bus, BusConfig, NewEvent};

/// Requests before the clock runs.
const WARM_UP: usize = 20;

/// Listing and MCP, against the idle host.
#[derive(Debug, Serialize)]
pub struct ControlReport {
    /// Processes the host supervised (and every listing returned).
    pub processes: usize,
    /// `GET /v1/processes` round trips, in ms.
    pub list_ms: Spread,
    /// MCP `tools/call` of `get_process_status`, per protocol revision.
    pub mcp: Vec<McpRun>,
}

/// MCP round trips in one protocol revision.
#[derive(Debug, Serialize)]
pub struct McpRun {
    /// The revision the session negotiated.
    pub revision: String,
    /// Round trips, in ms.
    pub call_ms: Spread,
}

/// Events streamed to many SSE clients at once.
#[derive(Debug, Serialize)]
pub struct SseReport {
    /// Concurrent clients.
    pub clients: usize,
    /// Events each client read (replayed from `after=0`).
    pub events_per_client: u64,
    /// From the requests to the last client's last event, in seconds.
    pub seconds: f64,
    /// Events delivered per second, all clients together.
    pub per_sec_total: f64,
    /// Events per second of the slowest client.
    pub per_sec_slowest_client: f64,
    /// CPU the host used meanwhile, in percent of one core.
    pub host_cpu_percent: f64,
}

/// Lists the host's processes and calls MCP `requests` times each.
pub(crate) async fn control(
    host: &mut HostChild,
    processes: usize,
    requests: usize,
) -> anyhow::Result<ControlReport> {
    let (client, token) = host.api().await?;
    let mut list = Vec::new();
    for i in 0..WARM_UP + requests {
        let t = Instant::now();
        let answer = client.processes(ProcessFilter::default()).await?;
        let took = t.elapsed().as_secs_f64() * 1000.0;
        if answer.len() != processes {
            bail!(
                "GET /v1/processes listed {} processes, not {processes}",
                answer.len()
            );
        }
        if i >= WARM_UP {
            list.push(took);
        }
    }
    let mut mcp = Vec::new();
    for modern in [false, true] {
        mcp.push(mcp_round_trips(&client, &token, modern, requests).await?);
    }
    Ok(ControlReport {
        processes,
        list_ms: Spread::of(list),
        mcp,
    })
}

/// `requests` calls of `get_process_status` over one MCP session.
async fn mcp_round_trips(
    client: &ApiClient,
    token: &str,
    modern: bool,
    requests: usize,
) -> anyhow::Result<McpRun> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", client.base_url()))
            .auth_header(token.to_string())
            .custom_headers(HashMap::new());
    let transport = StreamableHttpClientTransport::from_config(config);
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("host-bench", "1.0"),
    )
    .with_protocol_version(ProtocolVersion::V_2025_11_25);
    let session = if modern {
        info.serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
    } else {
        info.serve(transport).await
    }
    .context("cannot open an MCP session at /mcp")?;
    let revision = session
        .peer_info()
        .map(|p| p.protocol_version.to_string())
        .unwrap_or_default();
    let arguments = serde_json::from_value(json!({ "process_id": "idle0" }))?;
    let mut times = Vec::new();
    for i in 0..WARM_UP + requests {
        let params = CallToolRequestParams::new("get_process_status")
            .with_arguments(serde_json::Map::clone(&arguments));
        let t = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(30), session.call_tool(params))
            .await
            .context("get_process_status did not answer within 30 s")?
            .context("get_process_status over MCP")?;
        let took = t.elapsed().as_secs_f64() * 1000.0;
        if result.is_error == Some(true) {
            bail!("get_process_status failed: {:?}", result.content);
        }
        if i >= WARM_UP {
            times.push(took);
        }
    }
    let _ = session.cancel().await;
    Ok(McpRun {
        revision,
        call_ms: Spread::of(times),
    })
}

/// A small event, as the bus section writes.
fn event(i: u64) -> NewEvent {
    NewEvent::new(
        "host/bench",
        "process.output",
        json!({"pid": 4242, "line": "some output line of moderate length"}),
    )
    .with_subject(format!("p{}", i % 16))
}

/// A host of its own, its journal filled with `events` first; `clients`
/// read them all at once.
pub(crate) async fn sse(clients: usize, events: u64) -> anyhow::Result<SseReport> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::create_dir_all(&state)?;
    {
        let bus = Bus::open(&state, BusConfig::default())?;
        let mut i = 0;
        while i < events {
            let k = (events - i).min(1000);
            bus.submit((i..i + k).map(event).collect())?;
            i += k;
        }
        bus.flush()?;
        anyhow::ensure!(
            bus.head() == events,
            "the journal holds {} events, not {events}",
            bus.head()
        );
    }
    let config = dir.path().join("host.toml");
    write(&config, "")?;
    let mut host = HostChild::spawn(dir.path(), &plugins, &config, &state)?;
    let (client, token) = host.api().await?;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/events/stream?after=0", client.base_url());
    let cpu_before = super::common::cpu_secs(host.pid)?;
    let start = Instant::now();
    let readers: Vec<_> = (0..clients)
        .map(|_| {
            let request = http.get(&url).bearer_auth(&token);
            tokio::spawn(async move { read_stream(request, events).await })
        })
        .collect();
    let mut slowest: f64 = 0.0;
    let mut failure = None;
    for reader in readers {
        match reader.await? {
            Ok(took) => slowest = slowest.max(took.as_secs_f64()),
            Err(e) => failure = Some(e),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = super::common::cpu_secs(host.pid)? - cpu_before;
    host.terminate(Duration::from_secs(60)).await?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(SseReport {
        clients,
        events_per_client: events,
        seconds,
        per_sec_total: (clients as u64 * events) as f64 / seconds,
        per_sec_slowest_client: events as f64 / slowest,
        host_cpu_percent: cpu / seconds * 100.0,
    })
}

/// Reads the stream until the message with id `last`; checks that it saw
/// exactly `last` messages (ids 1..=last) on the way.
async fn read_stream(request: reqwest::RequestBuilder, last: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let response = request.send().await.context("GET /v1/events/stream")?;
    if !response.status().is_success() {
        bail!("GET /v1/events/stream answered {}", response.status());
    }
    let mut body = response.bytes_stream();
    let mut partial: Vec<u8> = Vec::new();
    let mut seen = 0u64;
    while let Some(chunk) = body.next().await {
        partial.extend_from_slice(&chunk.context("the event stream broke")?);
        let mut consumed = 0;
        while let Some(end) = partial[consumed..].iter().position(|&b| b == b'\n') {
            let line = &partial[consumed..consumed + end];
            consumed += end + 1;
            if let Some(id) = line.strip_prefix(b"id:") {
                seen += 1;
                let id: u64 = std::str::from_utf8(id)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .context("an `id:` line that is not a sequence")?;
                if id >= last {
                    if seen != last || id != last {
                        bail!(
                            "a client read {seen} messages up to id {id}, expected ids 1 to {last}"
                        );
                    }
                    return Ok(start.elapsed());
                }
            }
        }
        partial.drain(..consumed);
    }
    bail!("the event stream ended after {seen} of {last} messages")
}

/// Prints the listing and MCP figures.
pub(crate) fn print_control(c: &ControlReport) {
    println!(
        "  GET /v1/processes ({} processes), {} requests: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        c.processes, c.list_ms.samples, c.list_ms.median, c.list_ms.p99, c.list_ms.max
    );
    for m in &c.mcp {
        println!(
            "  MCP tools/call get_process_status over /mcp ({}), {} calls: p50 {:.2} ms, p99 {:.2} ms",
            m.revision, m.call_ms.samples, m.call_ms.median, m.call_ms.p99
        );
    }
}

/// Prints the SSE figures.
pub(crate) fn print_sse(s: &SseReport) {
    println!(
        "  SSE: {} clients each replaying {} events from after=0: {:.0} events/s in total ({:.2} s), slowest client {:.0}/s; host CPU {:.0}% of a core",
        s.clients,
        s.events_per_client,
        s.per_sec_total,
        s.seconds,
        s.per_sec_slowest_client,
        s.host_cpu_percent
    );
}
