//! `gatherer`: seed 002's gatherer as a background agent. It scans a folder
//! granted read-only in its manifest for TODO / FIXME / HACK and publishes
//! `gatherer.findings` per file whose findings changed since the last scan,
//! then `gatherer.scan_completed` with the counts.
//!
//! A scan resumes across ticks ([`walk`]): each tick does a bounded amount
//! of work within its deadline, and the scan in progress lives in the
//! plugin's long-lived instance. What was published lives in host state
//! (`file/<path>`: a fingerprint of the file's findings; `index`: files
//! with findings), so a reload or a rescan repeats nothing that did not
//! change. Without the grant the folder does not exist in the sandbox: the
//! tick fails naming the folder and the grant (`agent.error`).

mod tags;
mod walk;

use std::cell::RefCell;
use std::collections::BTreeSet;

use exports::host::plugin::background_agent::Guest;
use host::plugin::host::{config, log, now_ms, state_get, state_set};
use host::plugin::types::{Action, AgentInfo, Level, NewEvent, TickOutcome};
use walk::{Budget, FileDone, Limits, Scan};

wit_bindgen::generate!({ world: "background-agent-plugin", path: "../../wit" });

const DEFAULT_INTERVAL_MS: u64 = 2_000;
/// Files with findings remembered between scans, to report them resolved.
const MAX_INDEX: usize = 10_000;

struct Gatherer;

/// A scan in progress and the files with findings it has seen so far.
struct Running {
    scan: Scan,
    seen: BTreeSet<String>,
    changed: u64,
}

thread_local! {
    static RUNNING: RefCell<Option<Running>> = const { RefCell::new(None) };
}

fn setting(key: &str, default: u64) -> Result<u64, String> {
    match config(key).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("config `{key}` = {text:?} is not a whole number")),
    }
}

fn emit(ty: &str, subject: Option<String>, data: serde_json::Value) -> Action {
    Action::Emit(NewEvent {
        type_: ty.to_string(),
        subject,
        data: data.to_string(),
    })
}

fn stored(key: &str) -> Option<String> {
    state_get(key)
        .filter(|b| !b.is_empty())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

impl Guest for Gatherer {
    fn describe() -> AgentInfo {
        let interval_ms = setting("interval_ms", DEFAULT_INTERVAL_MS).unwrap_or_else(|reason| {
            log(
                Level::Warn,
                &format!("{reason}; using {DEFAULT_INTERVAL_MS}"),
            );
            DEFAULT_INTERVAL_MS
        });
        AgentInfo {
            name: "gatherer".to_string(),
            description: "Gathers TODO / FIXME / HACK from a folder granted read-only".to_string(),
            interval_ms,
        }
    }

    fn tick() -> Result<TickOutcome, String> {
        let root = config("root").unwrap_or_else(|| "/data".to_string());
        let rescan_ms = setting("rescan_secs", 300)?.saturating_mul(1000);
        let tick_ms = setting("tick_budget_ms", 40)?;
        // Findings and resolved files each up to this, plus the summary,
        // stay under the host's 256 actions per call.
        let events_per_tick = (setting("events_per_tick", 20)? as usize).min(100);
        let limits = Limits {
            max_file_bytes: setting("max_file_mib", 16)?.saturating_mul(1 << 20),
            skip: config("skip")
                .unwrap_or_else(|| ".git,target,node_modules".to_string())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        };
        let now = now_ms();
        let budget = Budget {
            entries: setting("entries_per_tick", 2_000)? as usize,
            bytes: setting("bytes_per_tick", 4 << 20)?,
            events: events_per_tick,
            until_ms: now.saturating_add(tick_ms),
        };

        let idle = RUNNING.with(|r| r.borrow().is_none());
        if idle {
            let last_end = stored("last_scan_end_ms").and_then(|s| s.parse::<u64>().ok());
            if let Some(end) = last_end.filter(|&end| end <= now && now - end < rescan_ms) {
                let next = (end + rescan_ms - now) / 1000;
                let summary = stored("last_summary").unwrap_or_default();
                return Ok(TickOutcome {
                    activity: format!("idle; {summary}; next scan of {root} in {next} s"),
                    actions: Vec::new(),
                });
            }
            let scan = Scan::start(&root, now)?;
            RUNNING.with(|r| {
                *r.borrow_mut() = Some(Running {
                    scan,
                    seen: BTreeSet::new(),
                    changed: 0,
                })
            });
        }

        let mut actions = Vec::new();
        let outcome = RUNNING.with(|cell| {
            let mut guard = cell.borrow_mut();
            let running = guard.as_mut().expect("a scan was started above");
            let Running {
                scan,
                seen,
                changed,
            } = running;
            let finished = scan.advance(budget, &limits, &mut now_ms, &mut |done: FileDone| {
                let key = format!("file/{}", done.path);
                let before = stored(&key);
                let after = (done.total > 0).then(|| tags::fingerprint(&done.findings, done.total));
                if done.total > 0 {
                    seen.insert(done.path.clone());
                }
                if before == after {
                    return false;
                }
                state_set(&key, after.as_deref().unwrap_or("").as_bytes());
                *changed += 1;
                actions.push(emit(
                    "gatherer.findings",
                    Some(done.path.clone()),
                    tags::findings_event(&done.path, &done.findings, done.total, done.partial),
                ));
                true
            });
            if !finished {
                let activity = format!(
                    "scanning {root}: {} files, {} findings so far",
                    scan.stats.files, scan.stats.findings
                );
                return activity;
            }
            // Files that had findings and were not seen with any now:
            // resolved or gone. Said once each (the first few as events).
            let old: Vec<String> = stored("index")
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            let mut resolved = 0u64;
            for path in old.iter().filter(|p| !seen.contains(*p)) {
                resolved += 1;
                state_set(&format!("file/{path}"), b"");
                if (resolved as usize) <= events_per_tick {
                    actions.push(emit(
                        "gatherer.findings",
                        Some(path.clone()),
                        tags::findings_event(path, &[], 0, false),
                    ));
                }
            }
            let index: Vec<&String> = seen.iter().take(MAX_INDEX).collect();
            state_set("index", serde_json::json!(index).to_string().as_bytes());
            let end = now_ms();
            let s = scan.stats;
            let summary = format!(
                "last scan: {} files, {} findings in {} files",
                s.files,
                s.findings,
                seen.len()
            );
            actions.push(emit(
                "gatherer.scan_completed",
                None,
                serde_json::json!({
                    "root": root,
                    "files": s.files,
                    "binary": s.binary,
                    "bytes": s.bytes,
                    "unreadable": s.unreadable,
                    "findings": s.findings,
                    "files_with_findings": seen.len(),
                    "changed": *changed,
                    "resolved": resolved,
                    "duration_ms": end.saturating_sub(scan.started_ms),
                }),
            ));
            state_set("last_scan_end_ms", end.to_string().as_bytes());
            state_set("last_summary", summary.as_bytes());
            *guard = None;
            summary
        });
        Ok(TickOutcome {
            activity: outcome,
            actions,
        })
    }
}

export!(Gatherer);
