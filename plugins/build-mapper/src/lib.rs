//! `build-mapper`: builds of kind `build` read into a structured list of
//! compiler errors (rustc, gcc/clang, tsc: file, line, column, message).
//!
//! One component, two exports (two worlds merged, see `mapper_wit`), as
//! `test-suite-mapper`:
//! - **status mapper**: each output line goes through the process's live
//!   [`Build`], kept per process in plugin state; the message reads
//!   `2 errors (src/main.rs:3)` and step counters (`[3/10]`, `[ 40%]`)
//!   give progress;
//! - **event handler**: when a run ends it emits `build.finished` with the
//!   error list, read back from the run's own output in the log
//!   ([`runlog`], shared with test-suite-mapper), since the end of a run may
//!   reach the handler before the mapper has seen its last lines.
//!
//! This file is the WIT glue; the reading lives in [`errors`].

mod errors;
#[path = "../../test-suite-mapper/src/runlog.rs"]
mod runlog;

use std::cell::RefCell;
use std::collections::HashMap;

use errors::Build;
use handler_wit::exports::host::plugin::event_handler::Guest as Handler;
use handler_wit::host::plugin::host::processes;
use handler_wit::host::plugin::types::{Action, Event, NewEvent};
use mapper_wit::exports::host::plugin::status_mapper::Guest as Mapper;
use mapper_wit::host::plugin::host::{config, state_get, state_set};
use mapper_wit::host::plugin::types::{ProcessInfo, StatusUpdate};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Bindings of the mapper world. A component may export several
/// interfaces: this one and [`handler_wit`] generate two worlds of the
/// package, whose exports `wasm-component-ld` merges into one component
/// (no world of our own, so no package version to name and keep in step).
mod mapper_wit {
    wit_bindgen::generate!({
        world: "status-mapper-plugin",
        path: "../../wit",
        export_macro_name: "export_mapper",
    });
}

/// Bindings of the event-handler world (see [`mapper_wit`]).
mod handler_wit {
    wit_bindgen::generate!({
        world: "event-handler-plugin",
        path: "../../wit",
        export_macro_name: "export_handler",
    });
}

/// The event type emitted at the end of a run.
const FINISHED: &str = "build.finished";

/// Errors the live view keeps: the message names the first one only.
const LIVE_ERRORS: usize = 1;

/// A process's live build and the run it belongs to.
#[derive(Serialize, Deserialize)]
struct Live {
    run: String,
    build: Build,
}

thread_local! {
    /// Live builds by process, so a line costs no `state-get`; the state
    /// is read only after a (re)load of the plugin.
    static LIVE: RefCell<HashMap<String, Live>> = RefCell::new(HashMap::new());
}

/// What tells one run of a process from the next.
fn run_of(p: &ProcessInfo) -> String {
    format!("{}/{}", p.started_at_ms.unwrap_or(0), p.restarts)
}

/// The event after which a process's live view is dropped.
const REMOVED: &str = "process.removed";

fn state_key(process: &str) -> String {
    format!("live/{process}")
}

/// A `[config]` number, or `default` when unset or not a number.
fn config_number(key: &str, default: u64) -> u64 {
    config(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn kinds() -> Vec<String> {
    runlog::parse_kinds(config("kinds").as_deref(), "build")
}

struct BuildMapper;

impl Mapper for BuildMapper {
    fn kinds() -> Vec<String> {
        kinds()
    }

    fn map_status(_p: ProcessInfo, _reported: String) -> Option<StatusUpdate> {
        // Compilers report through their output, not a status word.
        None
    }

    fn map_output(p: ProcessInfo, line: String) -> Option<StatusUpdate> {
        let run = run_of(&p);
        LIVE.with_borrow_mut(|live| {
            let entry = live.entry(p.name.clone()).or_insert_with(|| {
                state_get(&state_key(&p.name))
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .unwrap_or_else(|| Live {
                        run: String::new(),
                        build: Build::new(LIVE_ERRORS),
                    })
            });
            if entry.run != run {
                // A new run (a restart): errors start again.
                *entry = Live {
                    run,
                    build: Build::new(LIVE_ERRORS),
                };
            }
            if !entry.build.feed(&line) {
                return None;
            }
            if let Ok(bytes) = serde_json::to_vec(&*entry) {
                state_set(&state_key(&p.name), &bytes);
            }
            let reading = entry.build.reading();
            Some(StatusUpdate {
                state: None,
                progress: reading.progress,
                message: reading.message,
            })
        })
    }
}

impl Handler for BuildMapper {
    fn subscriptions() -> Vec<String> {
        let mut types: Vec<String> = runlog::END_EVENTS.iter().map(|t| t.to_string()).collect();
        types.push(REMOVED.to_string());
        types
    }

    fn handle(e: Event) -> Result<Vec<Action>, String> {
        let Some(name) = e.subject.clone() else {
            return Ok(Vec::new());
        };
        if e.type_ == REMOVED {
            // A removed process writes no more lines: forget its live view
            // (not at the end of a run, whose last lines the mapper may
            // still be given after this handler has run).
            LIVE.with_borrow_mut(|live| live.remove(&name));
            state_set(&state_key(&name), &[]);
            return Ok(Vec::new());
        }
        let Some(process) = processes().into_iter().find(|p| p.name == name) else {
            return Ok(Vec::new());
        };
        if !kinds().iter().any(|k| k == "*" || *k == process.kind) {
            return Ok(Vec::new());
        }
        let max_errors = config_number("max_errors", 200) as usize;
        let budget = config_number("max_output_mib", 32).saturating_mul(1 << 20);
        let mut build = Build::new(max_errors);
        let read = runlog::read_run(&name, e.sequence, budget, |line| {
            build.feed(line);
        });
        let end: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
        let data = json!({
            "process": name,
            "kind": process.kind,
            "outcome": e.type_.strip_prefix("process.").unwrap_or(&e.type_),
            "exit_code": end.get("exit_code").cloned().unwrap_or_default(),
            "error_count": build.count(),
            "errors": build.errors(),
            "errors_left_out": build.left_out(),
            "lines": read.lines,
            "complete": read.complete,
        });
        Ok(vec![Action::Emit(NewEvent {
            type_: FINISHED.to_string(),
            subject: Some(name),
            data: data.to_string(),
        })])
    }
}

mapper_wit::export_mapper!(BuildMapper with_types_in mapper_wit);
handler_wit::export_handler!(BuildMapper with_types_in handler_wit);
