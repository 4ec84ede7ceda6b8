//! Handler throughput: the same logic (answer `test.ping` with a
//! `test.pong` carrying the ping's sequence) as a WASM event handler (the
//! `echo-v1` fixture, installed as a plugin folder granted `emit =
//! ["test.>"]`) and as a native Rust function.
//!
//! - **Bare calls**: one `handle` at a time from async code; batches of 64
//!   through `handle_each`; and a handler that answers nothing (`hostile`
//!   given a ping), the lean cost of the call machinery. Extism's figures
//!   for the same calls (`extism.rs`, run by `bench.rs` after this
//!   section) are printed beside them.
//! - **Pipeline, in memory**: an in-memory bus, the plugin host's consumer
//!   and dispatcher, and the clock stops when the actions come out of the
//!   action channel (nothing performs them): the plugin side alone.
//! - **Pipeline, journaled**: the real thing. A host in-process (the
//!   [`Runtime`](crate::runtime::Runtime) `host run` starts) on a file
//!   journal, with its real executor; the clock stops when the last pong
//!   is journaled and delivered to a consumer. The native twin runs on a
//!   file journal too: a consumer answers each page of pings with one
//!   `publish_all` of pongs, as the executor commits a round of emits.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::common::{
    ensure_loaded, lift_emit_rate, ping, plugin_host, publish_pings, start_runtime, stop_runtime,
};
use super::fixtures::{ECHO_GRANTS, Fixtures, install_folder};
use crate::bus::{Bus, BusConfig, Consumer, Event, NewEvent, Pattern, StartAt};
use crate::config::HostConfig;
use crate::plugins::{Action, ActionRequest, Kind};

/// Most events handed to a plugin in one batched call (as the dispatcher).
pub(crate) const BATCH: usize = 64;

/// What the section measured.
#[derive(Debug, Serialize)]
pub struct HandlerReport {
    /// Events per measurement.
    pub events: u64,
    /// Bare calls per second, WASM.
    pub call_wasm_per_sec: f64,
    /// Bare calls per second, native.
    pub call_native_per_sec: f64,
    /// Cost of one call inside a batch of 64 (`handle_each`), in µs: the
    /// plugin-side cost of a call, thread hops amortised.
    pub call_wasm_batched_us: f64,
    /// The same for a handler that answers nothing (no action to
    /// validate): the lean cost of a call itself.
    pub call_wasm_lean_us: f64,
    /// In-memory bus, actions counted as they leave the plugin host.
    pub memory: PipelineRun,
    /// File journal, real executor, pongs counted in the journal.
    pub journaled: PipelineRun,
}

/// One pipeline measurement, both handlers.
#[derive(Debug, Serialize)]
pub struct PipelineRun {
    /// Events per second, WASM handler.
    pub wasm_per_sec: f64,
    /// Events per second, native handler.
    pub native_per_sec: f64,
}

/// Runs the section with `n` events per measurement.
pub(crate) async fn measure(fixtures: &Fixtures, n: u64) -> anyhow::Result<HandlerReport> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    install_folder(&plugins, "echo", &fixtures.fixture("echo-v1")?, ECHO_GRANTS)?;
    // `hostile` answers any event but its own with nothing: the lean call.
    install_folder(&plugins, "lean", &fixtures.fixture("hostile")?, "")?;

    let (call_wasm, call_native, call_batched_us, call_lean_us) = bare_calls(&plugins, n).await?;
    let memory = PipelineRun {
        wasm_per_sec: memory_wasm(&plugins, n).await?,
        native_per_sec: memory_native(n).await?,
    };
    let journaled = PipelineRun {
        wasm_per_sec: journaled_wasm(fixtures, n).await?,
        native_per_sec: journaled_native(n).await?,
    };
    Ok(HandlerReport {
        events: n,
        call_wasm_per_sec: call_wasm,
        call_native_per_sec: call_native,
        call_wasm_batched_us: call_batched_us,
        call_wasm_lean_us: call_lean_us,
        memory,
        journaled,
    })
}

/// Bare calls: WASM one at a time, native, WASM batched, lean batched.
async fn bare_calls(plugins: &Path, n: u64) -> anyhow::Result<(f64, f64, f64, f64)> {
    let bus = Bus::open_in_memory(BusConfig::default())?;
    let (host, _rx) = plugin_host(plugins, bus, 100).await?;
    let handler = |name: &str| {
        host.with_kind(Kind::EventHandler)
            .into_iter()
            .find(|p| p.name() == name)
            .with_context(|| format!("the {name} fixture did not load as an event handler"))
    };
    let (echo, lean) = (handler("echo")?, handler("lean")?);
    let events: Vec<Event> = (1..=n).map(ping).collect();
    for e in events.iter().take(1000) {
        echo.handle(e).await?;
    }
    let t = Instant::now();
    for e in &events {
        std::hint::black_box(echo.handle(e).await?);
    }
    let call_wasm = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for e in &events {
        std::hint::black_box(native_echo(e));
    }
    let call_native = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for chunk in events.chunks(BATCH) {
        for r in echo.handle_each(chunk).await {
            std::hint::black_box(r?);
        }
    }
    let call_batched_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    for chunk in events.chunks(BATCH).take(20) {
        lean.handle_each(chunk).await;
    }
    let t = Instant::now();
    for chunk in events.chunks(BATCH) {
        for r in lean.handle_each(chunk).await {
            std::hint::black_box(r?);
        }
    }
    let call_lean_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    host.shutdown().await;
    Ok((call_wasm, call_native, call_batched_us, call_lean_us))
}

/// Pre-publish `n` pings to an in-memory bus; time until `n` actions left
/// the plugin host.
async fn memory_wasm(plugins: &Path, n: u64) -> anyhow::Result<f64> {
    let bus = Bus::open_in_memory(BusConfig::default())?;
    let (host, mut rx) = plugin_host(plugins, bus.clone(), 100).await?;
    let t = Instant::now();
    publish_pings(&bus, n).await?;
    let mut seen = 0;
    while seen < n {
        let r = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .context("the echo handler stopped answering (60 s without an action)")?
            .context("the plugin host closed its action channel")?;
        seen += r.actions.len() as u64;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    host.shutdown().await;
    Ok(rate)
}

/// The native twin of [`memory_wasm`]: a consumer, the function, the channel.
async fn memory_native(n: u64) -> anyhow::Result<f64> {
    let bus = Bus::open_in_memory(BusConfig::default())?;
    let (tx, mut rx) = mpsc::channel::<ActionRequest>(1024);
    let mut consumer = bus.consumer(
        "native",
        vec![Pattern::parse("test.ping")?],
        StartAt::After(bus.head()),
    );
    let worker = tokio::spawn(async move {
        while let Ok(e) = consumer.next().await {
            let request = ActionRequest {
                plugin: "native".into(),
                kind: Kind::EventHandler,
                cause: Some(crate::plugins::Cause::of(&e)),
                actions: native_echo(&e),
            };
            if tx.send(request).await.is_err() {
                break;
            }
        }
    });
    let t = Instant::now();
    publish_pings(&bus, n).await?;
    let mut seen = 0;
    while seen < n {
        let r = rx.recv().await.context("the native handler stopped")?;
        seen += r.actions.len() as u64;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    worker.abort();
    Ok(rate)
}

/// A host in-process on a file journal, echo installed with its grants:
/// time from the first ping published to the `n`th pong delivered.
async fn journaled_wasm(fixtures: &Fixtures, n: u64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    install_folder(&plugins, "echo", &fixtures.fixture("echo-v1")?, ECHO_GRANTS)?;
    let mut config = HostConfig::default();
    lift_emit_rate(&mut config, "echo");
    let runtime = start_runtime(&plugins, &dir.path().join("state"), config, false).await?;
    ensure_loaded(&runtime.plugins, "echo")?;
    let mut pongs = runtime.bus.consumer(
        "bench-pongs",
        vec![Pattern::parse("test.pong")?],
        StartAt::Head,
    );
    let t = Instant::now();
    publish_pings(&runtime.bus, n).await?;
    let counted = count(&mut pongs, n).await;
    let elapsed = t.elapsed();
    stop_runtime(runtime).await?;
    counted.context("the host in-process stopped answering pings")?;
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// The native twin of [`journaled_wasm`], on a file journal.
async fn journaled_native(n: u64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let bus = Bus::open(dir.path(), BusConfig::default())?;
    let mut pings = bus.consumer("native", vec![Pattern::parse("test.ping")?], StartAt::Head);
    let mut pongs = bus.consumer(
        "bench-pongs",
        vec![Pattern::parse("test.pong")?],
        StartAt::Head,
    );
    let worker_bus = bus.clone();
    let worker = tokio::spawn(async move {
        while let Ok(first) = pings.next().await {
            let mut page = vec![first];
            while page.len() < BATCH {
                match pings.try_next() {
                    Ok(Some(e)) => page.push(e),
                    _ => break,
                }
            }
            let pongs: Vec<NewEvent> = page
                .iter()
                .flat_map(native_echo)
                .filter_map(|a| match a {
                    Action::Emit { ty, data, .. } => Some(NewEvent::new("native", ty, data)),
                    _ => None,
                })
                .collect();
            if worker_bus.publish_all_async(pongs).await.is_err() {
                break;
            }
        }
    });
    let t = Instant::now();
    publish_pings(&bus, n).await?;
    count(&mut pongs, n).await?;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    worker.abort();
    Ok(rate)
}

/// Reads `n` events from `consumer`; fails after 60 s without one.
pub(crate) async fn count(consumer: &mut Consumer, n: u64) -> anyhow::Result<()> {
    let mut seen = 0;
    while seen < n {
        while seen < n && consumer.try_next()?.is_some() {
            seen += 1;
        }
        if seen < n {
            tokio::time::timeout(Duration::from_secs(60), consumer.next())
                .await
                .with_context(|| format!("{seen} of {n} events after 60 s without a new one"))??;
            seen += 1;
        }
    }
    Ok(())
}

/// The echo logic, native (the guest's, `echo-shared/echo.rs`, in Rust).
pub(crate) fn native_echo(event: &Event) -> Vec<Action> {
    if event.data.get("fail").and_then(|f| f.as_bool()) == Some(true) {
        // The guest answers `err("asked to fail")`: no action.
        return Vec::new();
    }
    vec![Action::Emit {
        ty: "test.pong".into(),
        subject: None,
        data: json!({ "version": 0, "ping_sequence": event.sequence }),
    }]
}

/// Prints the section.
pub(crate) fn print(
    r: &HandlerReport,
    bus: Option<&super::bus::BusReport>,
    extism: Option<&super::extism::ExtismOutcome>,
) {
    println!(
        "handler throughput, {} events (same logic, one handler):",
        r.events
    );
    println!(
        "  bare call    wasm {:>10.0}/s   native {:>10.0}/s   ratio {:.2}",
        r.call_wasm_per_sec,
        r.call_native_per_sec,
        r.call_wasm_per_sec / r.call_native_per_sec
    );
    println!(
        "  batched call wasm {:>8.2} µs per call (batches of {BATCH}); lean (no actions) {:.2} µs",
        r.call_wasm_batched_us, r.call_wasm_lean_us
    );
    super::extism::print(extism, r);
    for (what, p) in [
        (
            "pipeline, in-memory bus, actions leaving the plugin host",
            &r.memory,
        ),
        (
            "pipeline, file journal, real executor, pongs journaled",
            &r.journaled,
        ),
    ] {
        println!(
            "  {what}: wasm {:.0}/s, native {:.0}/s, ratio {:.2}",
            p.wasm_per_sec,
            p.native_per_sec,
            p.wasm_per_sec / p.native_per_sec
        );
    }
    match bus.and_then(super::bus::Summary::of) {
        Some(s) => println!(
            "  the bus alone (bus section, best run): {:.0}/s journaled ({}), {:.0}/s delivered to one consumer ({})",
            s.journaled_per_sec, s.journaled_run, s.delivered_per_sec, s.delivered_run
        ),
        None => println!("  the bus alone: not measured in this run (bus section skipped)"),
    }
}
