//! `hostile`: one component that misbehaves in whichever way a test asks, so
//! the host's bounds (deadlines, caps, rate limits, quotas) can be tested
//! against a real guest. It is all four plugin kinds (world `full-plugin`).
//!
//! Set in `[config]` (for calls that take no input):
//! - `sleep_in`: comma-separated calls that block before answering:
//!   `subscriptions`, `kinds`, `describe`, `tick`;
//! - `block_with`: how they block: `sleep` (std's `thread::sleep`, i.e.
//!   `pollable.block`), `poll` (`wasi:io/poll.poll` on a clock pollable), or
//!   `open` (open the file at config `path`, e.g. a FIFO nobody writes);
//! - `sleep_ms`: how long (default 30,000);
//! - `subscriptions`: how many patterns `subscriptions` returns (default 1);
//! - `keywords`: how many keywords the rule reports (default 1);
//! - `tick_lines`: lines a tick prints to stdout (default 0);
//! - `react_to`: comma-separated type patterns (`*` one dotted token, `>`
//!   the rest) that `subscriptions` returns besides `test.hostile...`;
//! - `react`: what `handle` does with an event matching `react_to` (other
//!   than `test.hostile`, which keeps the behaviours below): `error`
//!   (returns `err("hostile reacts with an error")`), `emit:TYPE` (emits
//!   TYPE {"cause": sequence}), `restart:NAME` (asks a restart of process
//!   NAME), `emit-bytes:N` (emits `test.hostile-big` {"pad": N bytes of
//!   `x`}); nothing when unset.
//!
//! On `test.hostile`, the event data `{"do": ...}` picks the behaviour:
//! - `block` {`with`, `ms`, `path`}: block as above (defaults from config);
//! - `spin`: loop forever;
//! - `recent-events` {`limit`, `types`}: query, then emit
//!   `test.hostile-result` {"count", "bytes"};
//! - `state-set` {`keys`, `bytes`, `prefix`}: set that many keys, then emit
//!   `test.hostile-result` {"set"};
//! - `print` {`lines`, `stream`}: write lines to `stdout`, `stderr` or the
//!   host `log`;
//! - `actions` {`n`}: return `n` emits of `test.hostile-flood`;
//! - `error` {`bytes`}: return an error string that long;
//! - `status` {`bytes`}: return one `set-status` for process `p` with a
//!   message that long;
//! - anything else: emit `test.hostile-done` {"sequence"}.

use std::io::Write as _;

use exports::host::plugin::background_agent::Guest as BackgroundAgent;
use exports::host::plugin::dependency_rule::Guest as DependencyRule;
use exports::host::plugin::event_handler::Guest as EventHandler;
use exports::host::plugin::status_mapper::Guest as StatusMapper;
use host::plugin::host::{Level, config, log, recent_events, state_set};
use host::plugin::types::{
    Action, AgentInfo, Dependency, Event, EventFilter, NewEvent, ProcessInfo, ProcessStatus,
    RuleInfo, StatusUpdate, Task, TickOutcome,
};
use serde_json::{Value, json};

wit_bindgen::generate!({
    world: "test:hostile/hostile",
    // 0.1 on purpose: this fixture is also the proof that 0.1 guests load.
    path: ["../../../wit/v0.1", "wit"],
    generate_all,
});

struct Hostile;

fn config_u64(key: &str, default: u64) -> u64 {
    config(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Block in `call` if the config says so.
fn maybe_block(call: &str) {
    let listed = config("sleep_in").unwrap_or_default();
    if listed.split(',').any(|c| c.trim() == call) {
        let with = config("block_with").unwrap_or_else(|| "sleep".into());
        block(&with, config_u64("sleep_ms", 30_000), config("path"));
    }
}

/// Block for `ms` milliseconds in the way `with` names.
fn block(with: &str, ms: u64, path: Option<String>) {
    match with {
        "poll" => {
            let p = wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000);
            wasi::io::poll::poll(&[&p]);
        }
        "open" => {
            // Opening a FIFO for reading blocks until a writer appears.
            let path = path.unwrap_or_else(|| "/data/fifo".into());
            let _ = std::fs::read(path);
        }
        _ => std::thread::sleep(std::time::Duration::from_millis(ms)),
    }
}

/// The patterns of config `react_to`.
fn react_to() -> Vec<String> {
    config("react_to")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `ty` matches `pattern` (`*` one dotted token, `>` the rest), as
/// the host matches subscriptions.
fn matches(pattern: &str, ty: &str) -> bool {
    let mut types = ty.split('.');
    for token in pattern.split('.') {
        match (token, types.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(t)) if p == t => {}
            _ => return false,
        }
    }
    types.next().is_none()
}

/// What config `react` says to do with `e`.
fn react(e: &Event) -> Result<Vec<Action>, String> {
    let how = config("react").unwrap_or_default();
    let (verb, arg) = how.split_once(':').unwrap_or((how.as_str(), ""));
    match verb.trim() {
        "error" => Err("hostile reacts with an error".to_string()),
        "emit" => Ok(vec![emit(arg.trim(), json!({ "cause": e.sequence }))]),
        "restart" => Ok(vec![Action::Restart(arg.trim().to_string())]),
        "emit-bytes" => {
            let n = arg.trim().parse().unwrap_or(0);
            Ok(vec![emit(
                "test.hostile-big",
                json!({ "pad": "x".repeat(n) }),
            )])
        }
        _ => Ok(Vec::new()),
    }
}

fn emit(ty: &str, data: Value) -> Action {
    Action::Emit(NewEvent {
        type_: ty.to_string(),
        subject: None,
        data: data.to_string(),
    })
}

impl EventHandler for Hostile {
    fn subscriptions() -> Vec<String> {
        maybe_block("subscriptions");
        let n = config_u64("subscriptions", 1);
        let mut subs = vec!["test.hostile".to_string()];
        subs.extend((1..n).map(|i| format!("test.hostile{i}")));
        subs.extend(react_to());
        subs
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        if e.type_ != "test.hostile" {
            if react_to().iter().any(|p| matches(p, &e.type_)) {
                return react(&e);
            }
            return Ok(Vec::new());
        }
        let data: Value = serde_json::from_str(&e.data).unwrap_or_default();
        let num = |key: &str, default: u64| data[key].as_u64().unwrap_or(default);
        match data["do"].as_str().unwrap_or_default() {
            "block" => {
                let with = data["with"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| config("block_with"))
                    .unwrap_or_else(|| "sleep".into());
                let path = data["path"].as_str().map(str::to_string).or(config("path"));
                block(&with, num("ms", config_u64("sleep_ms", 30_000)), path);
                Ok(vec![emit("test.hostile-woke", json!({}))])
            }
            "spin" => {
                let mut spins: u64 = 0;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            "recent-events" => {
                let types = data["types"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let events = recent_events(&EventFilter {
                    types,
                    subject: None,
                    after_sequence: None,
                    limit: num("limit", 1000) as u32,
                });
                let bytes: usize = events.iter().map(|e| e.data.len()).sum();
                Ok(vec![emit(
                    "test.hostile-result",
                    json!({ "count": events.len(), "bytes": bytes }),
                )])
            }
            "state-set" => {
                let keys = num("keys", 1);
                let value = vec![b'v'; num("bytes", 1) as usize];
                let prefix = data["prefix"].as_str().unwrap_or("k");
                for i in 0..keys {
                    state_set(&format!("{prefix}{i}"), &value);
                }
                Ok(vec![emit("test.hostile-result", json!({ "set": keys }))])
            }
            "print" => {
                let lines = num("lines", 1);
                let stream = data["stream"].as_str().unwrap_or("stdout");
                for i in 0..lines {
                    match stream {
                        "stderr" => {
                            let _ = writeln!(std::io::stderr(), "hostile line {i}");
                        }
                        "log" => log(Level::Info, &format!("hostile line {i}")),
                        _ => {
                            let _ = writeln!(std::io::stdout(), "hostile line {i}");
                        }
                    }
                }
                Ok(vec![emit(
                    "test.hostile-result",
                    json!({ "printed": lines }),
                )])
            }
            "actions" => Ok((0..num("n", 1))
                .map(|i| emit("test.hostile-flood", json!({ "i": i })))
                .collect()),
            "error" => Err("e".repeat(num("bytes", 1) as usize)),
            "status" => Ok(vec![Action::SetStatus(ProcessStatus {
                name: "p".to_string(),
                update: StatusUpdate {
                    state: None,
                    progress: None,
                    message: Some("m".repeat(num("bytes", 1) as usize)),
                },
            })]),
            _ => Ok(vec![emit(
                "test.hostile-done",
                json!({ "sequence": e.sequence }),
            )]),
        }
    }
}

impl StatusMapper for Hostile {
    fn kinds() -> Vec<String> {
        maybe_block("kinds");
        vec!["hostile".to_string()]
    }

    fn map_status(_p: ProcessInfo, _reported: String) -> Option<StatusUpdate> {
        None
    }

    fn map_output(_p: ProcessInfo, _line: String) -> Option<StatusUpdate> {
        None
    }
}

impl DependencyRule for Hostile {
    fn describe() -> RuleInfo {
        maybe_block("describe");
        RuleInfo {
            name: "hostile".to_string(),
            description: "Never finds a dependency".to_string(),
            keywords: (0..config_u64("keywords", 1))
                .map(|i| format!("kw{i}"))
                .collect(),
        }
    }

    fn check(_a: Task, _b: Task) -> Option<Dependency> {
        None
    }
}

impl BackgroundAgent for Hostile {
    fn describe() -> AgentInfo {
        maybe_block("describe");
        AgentInfo {
            name: "hostile".to_string(),
            description: "Ticks as its config says".to_string(),
            interval_ms: config_u64("interval_ms", 50),
        }
    }

    fn tick() -> Result<TickOutcome, String> {
        maybe_block("tick");
        for i in 0..config_u64("tick_lines", 0) {
            println!("tick line {i}");
        }
        Ok(TickOutcome {
            activity: "ticking".to_string(),
            actions: Vec::new(),
        })
    }
}

export!(Hostile);
