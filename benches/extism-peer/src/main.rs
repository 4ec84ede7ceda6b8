//! `extism-peer --guest GUEST.wasm --calls N`: times plugin calls through
//! the Extism Rust SDK (`Plugin::call`) on one thread and prints one JSON
//! object on stdout; `host bench` reads it (host/src/bench/extism.rs).
//!
//! Three measurements of N calls each, after 1,000 unmeasured ones:
//! - `noop`: a bare call, no input, no output;
//! - `lean`: the event serialised to JSON on the host, copied in by the
//!   guest, nothing out (the shape of the host's lean call);
//! - `echo`: the event serialised to JSON, the guest's echo (decode, one
//!   host-function call for the time, encode the pong), and the pong
//!   decoded on the host and checked (type and sequence), as the host turns
//!   an emit into an action.
//!
//! The events are built before the clock starts, as the host's bench builds
//! its pings; what the host's `event_to_wit` does per call (format the
//! time, write `data` as text) is done here per call too.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use extism::{Function, Plugin, UserData, Val, ValType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Unmeasured calls before each measurement.
const WARM_UP: u64 = 1000;

/// A ping as the host's bench builds it (`bench/common.rs`, `ping`).
struct Ping {
    id: String,
    source: String,
    ty: String,
    subject: Option<String>,
    time: DateTime<Utc>,
    sequence: u64,
    data: Value,
}

/// The ping on the wire: the WIT `event` record's fields as JSON.
#[derive(Serialize)]
struct WireEvent<'a> {
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    ty: &'a str,
    subject: Option<&'a str>,
    time: String,
    sequence: u64,
    data: &'a Value,
}

/// The guest's answer: the WIT `new-event` record's fields.
#[derive(Deserialize)]
struct Pong {
    #[serde(rename = "type")]
    ty: String,
    subject: Option<String>,
    data: Value,
}

/// What the peer prints.
#[derive(Serialize)]
struct Report {
    /// `extism::extism_version()`, without its NUL.
    extism: String,
    /// Calls per measurement.
    calls: u64,
    /// Nanoseconds per bare call.
    noop_ns: f64,
    /// Nanoseconds per lean call.
    lean_ns: f64,
    /// Nanoseconds per echo call.
    echo_ns: f64,
    /// Echo calls per second.
    echo_per_sec: f64,
    /// Mean size of an event's JSON, bytes.
    input_bytes: f64,
    /// Mean size of a pong's JSON, bytes.
    output_bytes: f64,
}

fn ping(sequence: u64) -> Ping {
    // A UUIDv7-shaped id, as long as the host's.
    let id = format!(
        "019ad2f4-{:04x}-7{:03x}-8{:03x}-{:012x}",
        sequence & 0xffff,
        (sequence >> 16) & 0xfff,
        sequence & 0xfff,
        sequence
    );
    Ping {
        id,
        source: "bench".into(),
        ty: "test.ping".into(),
        subject: None,
        time: Utc::now(),
        sequence,
        data: json!({ "n": sequence }),
    }
}

fn wire(p: &Ping) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&WireEvent {
        id: &p.id,
        source: &p.source,
        ty: &p.ty,
        subject: p.subject.as_deref(),
        time: p.time.to_rfc3339(),
        sequence: p.sequence,
        data: &p.data,
    })
}

/// The host function the guest calls for the time (the host's `now-ms`).
fn now_ms() -> Function {
    Function::new(
        "now_ms",
        [],
        [ValType::I64],
        UserData::new(()),
        |_plugin, _inputs, outputs, _data| {
            let ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            outputs[0] = Val::I64(ms);
            Ok(())
        },
    )
}

/// One echo round: serialise, call, decode, check.
fn echo(plugin: &mut Plugin, p: &Ping) -> Result<usize, extism::Error> {
    let input = wire(p)?;
    let out: &[u8] = plugin.call("echo", input.as_slice())?;
    let len = out.len();
    let pong: Pong = serde_json::from_slice(out)?;
    if pong.ty != "test.pong" || pong.data["ping_sequence"].as_u64() != Some(p.sequence) {
        return Err(extism::Error::msg(format!(
            "the guest answered ping {} with {} {:?}",
            p.sequence, pong.ty, pong.data
        )));
    }
    std::hint::black_box((pong.subject, pong.data));
    Ok(len)
}

/// Nanoseconds per call of `f` over `pings`, after a warm-up.
fn time<F>(pings: &[Ping], mut f: F) -> Result<f64, extism::Error>
where
    F: FnMut(&Ping) -> Result<(), extism::Error>,
{
    for p in pings.iter().cycle().take(WARM_UP as usize) {
        f(p)?;
    }
    let t = Instant::now();
    for p in pings {
        f(p)?;
    }
    Ok(t.elapsed().as_nanos() as f64 / pings.len() as f64)
}

fn run(guest: &str, calls: u64) -> Result<Report, extism::Error> {
    let wasm = std::fs::read(guest)
        .map_err(|e| extism::Error::msg(format!("cannot read {guest}: {e}")))?;
    let mut plugin = Plugin::new(&wasm, [now_ms()], false)?;
    let pings: Vec<Ping> = (1..=calls).map(ping).collect();
    let input_bytes = pings
        .iter()
        .map(|p| wire(p).map(|w| w.len()))
        .sum::<Result<usize, _>>()? as f64
        / calls as f64;

    let noop_ns = time(&pings, |_| {
        let out: &[u8] = plugin.call("noop", [0u8; 0].as_slice())?;
        std::hint::black_box(out);
        Ok(())
    })?;
    let lean_ns = time(&pings, |p| {
        let input = wire(p)?;
        let out: &[u8] = plugin.call("lean", input.as_slice())?;
        std::hint::black_box(out);
        Ok(())
    })?;
    let mut output = 0usize;
    let echo_ns = time(&pings, |p| {
        output += echo(&mut plugin, p)?;
        Ok(())
    })?;
    Ok(Report {
        // A C string in the SDK: it ends with a NUL.
        extism: extism::extism_version().trim_end_matches('\0').to_string(),
        calls,
        noop_ns,
        lean_ns,
        echo_ns,
        echo_per_sec: 1e9 / echo_ns,
        input_bytes,
        output_bytes: output as f64 / (calls + WARM_UP) as f64,
    })
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(guest), Some(Ok(calls))) = (flag("--guest"), flag("--calls").map(|c| c.parse()))
    else {
        eprintln!("usage: extism-peer --guest GUEST.wasm --calls N");
        return std::process::ExitCode::from(2);
    };
    if calls == 0 {
        eprintln!("--calls must be at least 1");
        return std::process::ExitCode::from(2);
    }
    match run(&guest, calls).and_then(|r| Ok(serde_json::to_string(&r)?)) {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("extism-peer: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
