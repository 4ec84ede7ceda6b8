//! What a replay reads and what the replayed plugin sees: recorded events
//! (an export of `host events --json`, one event a line), tasks (one a
//! line, for dependency rules), the process snapshot, and the event log
//! the `recent-events` / `history` / `stats` imports read.
//!
//! Every line is checked field by field, so a bad one is named by file,
//! line and field instead of a serde message about column 80.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use parking_lot::RwLock;
use serde_json::{Map, Value, json};

use crate::bus::{
    BusError, Event, EventQuery, JsonContentType, MinuteCount, SpecVersion, StatsBreakdown,
};
use crate::coordination::Task;
use crate::plugins::{EventLog, ProcessView};
use crate::supervisor::ProcessInfo;

/// What went wrong reading a replay's input, naming the file and where.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not what it should be.
    #[error("{}:{line}: {field}: {reason}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The field at fault (`line` for the line as a whole).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The snapshot file is not a process snapshot.
    #[error("{}: {field}: {reason}", path.display())]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// The field at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn read(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The lines of `text` that hold something, with their 1-based numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
}

/// Read recorded events: one JSON event a line, as `host events --json`
/// prints them, in increasing sequence. Blank lines are skipped.
///
/// # Errors
///
/// The file and line of the first line that is not JSON, lacks a field or
/// has one of the wrong type, or whose sequence does not follow the one
/// before.
pub fn read_events(path: &Path) -> Result<Vec<Event>, InputError> {
    let text = read(path)?;
    let mut events: Vec<Event> = Vec::new();
    for (line, raw) in lines(&text) {
        let bad = |field: &str, reason: String| InputError::Line {
            path: path.to_path_buf(),
            line,
            field: field.to_string(),
            reason,
        };
        let value: Value = serde_json::from_str(raw).map_err(|e| {
            bad(
                "line",
                format!("not a JSON event ({e}); record events with `host events --json`"),
            )
        })?;
        let event = event_of(&value).map_err(|(field, reason)| bad(field, reason))?;
        if let Some(last) = events.last()
            && event.sequence <= last.sequence
        {
            return Err(bad(
                "sequence",
                format!(
                    "{} does not follow {} of the line before; events must be in the order they were recorded",
                    event.sequence, last.sequence
                ),
            ));
        }
        events.push(event);
    }
    Ok(events)
}

/// One event from its JSON, field by field: `(field, reason)` on a fault.
fn event_of(value: &Value) -> Result<Event, (&'static str, String)> {
    let Some(obj) = value.as_object() else {
        return Err(("line", format!("expected a JSON object, found {value}")));
    };
    let text = |field: &'static str| -> Result<String, (&'static str, String)> {
        match obj.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err((field, "must not be empty".into())),
            Some(other) => Err((field, format!("expected a string, found {other}"))),
            None => Err((field, "missing".into())),
        }
    };
    let id = text("id")?;
    let source = text("source")?;
    let ty = text("type")?;
    let time = text("time")?;
    let time = DateTime::parse_from_rfc3339(&time)
        .map_err(|e| ("time", format!("`{time}` is not an RFC 3339 time: {e}")))?
        .with_timezone(&Utc);
    let sequence = match obj.get("sequence") {
        Some(v) => v.as_u64().filter(|s| *s > 0).ok_or((
            "sequence",
            format!("expected a positive integer, found {v}"),
        ))?,
        None => return Err(("sequence", "missing".into())),
    };
    let subject = match obj.get("subject") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(("subject", format!("expected a string, found {other}"))),
    };
    let data = obj.get("data").cloned().ok_or(("data", "missing".into()))?;
    let cause = match obj.get("causesequence") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or(("causesequence", format!("expected an integer, found {v}")))?,
        ),
    };
    let depth = match obj.get("causedepth") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
            .ok_or(("causedepth", format!("expected an integer, found {v}")))?,
    };
    Ok(Event {
        specversion: SpecVersion,
        id,
        source,
        ty,
        subject,
        time,
        sequence,
        cause,
        depth,
        datacontenttype: JsonContentType,
        data: data.into(),
    })
}

/// Read tasks for a dependency rule: one task a line, as `host.toml`'s
/// `[[task]]` tables or `POST /v1/tasks` take them.
///
/// # Errors
///
/// The file and line of the first line that is not a task, naming the
/// field serde names.
pub fn read_tasks(path: &Path) -> Result<Vec<Task>, InputError> {
    let text = read(path)?;
    let mut tasks: Vec<Task> = Vec::new();
    for (line, raw) in lines(&text) {
        let task: Task = serde_json::from_str(raw).map_err(|e| InputError::Line {
            path: path.to_path_buf(),
            line,
            field: "task".into(),
            reason: format!("not a task: {e}"),
        })?;
        if task.id.trim().is_empty() {
            return Err(InputError::Line {
                path: path.to_path_buf(),
                line,
                field: "id".into(),
                reason: "must not be empty".into(),
            });
        }
        tasks.push(task);
    }
    Ok(tasks)
}

/// The processes the plugin sees: fixed from a snapshot file, or built
/// from the replayed events as the supervisor would have them when each
/// was published.
#[derive(Clone, Debug, Default)]
pub struct Processes {
    table: Arc<RwLock<BTreeMap<String, ProcessInfo>>>,
    /// From a snapshot: the replayed events do not change it.
    fixed: bool,
}

impl Processes {
    /// A fixed snapshot from `path`: a JSON array of processes (what
    /// `host ps --json` prints) or `{"processes": [...]}`; each process
    /// needs a `name`, every other field of `host ps --json` is optional.
    ///
    /// # Errors
    ///
    /// The file and the field at fault.
    pub fn from_snapshot(path: &Path) -> Result<Self, InputError> {
        let text = read(path)?;
        let bad = |field: String, reason: String| InputError::Snapshot {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| bad("file".into(), format!("not JSON: {e}")))?;
        let list = match &value {
            Value::Array(list) => list.clone(),
            Value::Object(o) => match o.get("processes") {
                Some(Value::Array(list)) => list.clone(),
                _ => {
                    return Err(bad(
                        "processes".into(),
                        "expected an array of processes".into(),
                    ));
                }
            },
            _ => return Err(bad("file".into(), "expected an array of processes".into())),
        };
        let mut table = BTreeMap::new();
        for (i, entry) in list.iter().enumerate() {
            let Some(fields) = entry.as_object() else {
                return Err(bad(format!("processes[{i}]"), "expected an object".into()));
            };
            let Some(name) = fields.get("name").and_then(Value::as_str) else {
                return Err(bad(format!("processes[{i}].name"), "missing".into()));
            };
            let info = process_with(name, fields).map_err(|e| bad(format!("processes[{i}]"), e))?;
            table.insert(name.to_string(), info);
        }
        Ok(Self {
            table: Arc::new(RwLock::new(table)),
            fixed: true,
        })
    }

    /// Bring the table up to date with `event` (unless it is a fixed
    /// snapshot): `process.created` adds a process with its kind, a
    /// transition sets its state, `process.started` its pid and start,
    /// an exit its code, `process.output` its last output time,
    /// `process.removed` takes it out.
    pub fn apply(&self, event: &Event) {
        if self.fixed || !event.ty.starts_with("process.") {
            return;
        }
        let Some(name) = event.subject.as_deref() else {
            return;
        };
        let mut table = self.table.write();
        if event.ty == "process.removed" {
            table.remove(name);
            return;
        }
        let info = table.entry(name.to_string()).or_insert_with(|| {
            process_with(name, &Map::new()).expect("the defaults make a process")
        });
        let data = &event.data;
        if event.ty == "process.created" {
            if let Some(kind) = data.get("kind").and_then(Value::as_str) {
                info.kind = kind.to_string();
            }
            info.label = data.get("label").and_then(Value::as_str).map(String::from);
            info.created_at = event.time;
        }
        if let Some(to) = data.get("to")
            && let Ok(state) = serde_json::from_value(to.clone())
        {
            info.state = state;
        }
        if event.ty == "process.started" {
            info.pid = data.get("pid").and_then(Value::as_u64).map(|p| p as u32);
            info.started_at = Some(event.time);
            info.exit_code = None;
        }
        if let Some(code) = data.get("exit_code").and_then(Value::as_i64) {
            info.exit_code = Some(code as i32);
        }
        if event.ty == "process.backoff" {
            info.restarts = info.restarts.saturating_add(1);
        }
        if event.ty == "process.output" {
            info.last_output_at = Some(event.time);
        }
    }

    /// Whether the table is a fixed snapshot.
    pub fn is_fixed(&self) -> bool {
        self.fixed
    }
}

impl ProcessView for Processes {
    fn list(&self) -> Vec<ProcessInfo> {
        self.table.read().values().cloned().collect()
    }
    fn get(&self, name: &str) -> Option<ProcessInfo> {
        self.table.read().get(name).cloned()
    }
}

/// A process named `name`: `fields` over defaults for everything else
/// (kind `default`, state `pending`, created at the epoch).
fn process_with(name: &str, fields: &Map<String, Value>) -> Result<ProcessInfo, String> {
    let mut value = json!({
        "name": name, "label": null, "kind": "default", "origin": "config",
        "command": "", "state": "pending", "reported_state": null, "pid": null,
        "exit_code": null, "signal": null, "restarts": 0, "progress": null,
        "message": null, "created_at": "1970-01-01T00:00:00Z", "started_at": null,
        "completed_at": null, "duration_ms": null, "timeout_ms": null,
        "last_output_at": null, "run_output_offset": 0, "memory_bytes": null,
        "cpu_percent": null, "metadata": {},
    });
    if let Value::Object(base) = &mut value {
        for (k, v) in fields {
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// The log the query imports read during a replay: the replayed events up
/// to and including the one being replayed, never a later one.
#[derive(Clone, Debug, Default)]
pub struct ReplayLog {
    events: Arc<RwLock<Vec<Event>>>,
}

impl ReplayLog {
    /// Add the event about to be replayed.
    pub fn push(&self, event: Event) {
        self.events.write().push(event);
    }
}

impl EventLog for ReplayLog {
    fn query(&self, query: &EventQuery) -> Result<Vec<Event>, BusError> {
        let events = self.events.read();
        let limit = query.limit.unwrap_or(usize::MAX);
        let matching = events.iter().filter(|e| query.matches(e));
        let mut out: Vec<Event> = if query.after_sequence.is_some() {
            matching.take(limit).cloned().collect()
        } else {
            matching.rev().take(limit).cloned().collect()
        };
        if query.after_sequence.is_none() {
            out.reverse();
        }
        Ok(out)
    }

    fn stats_by(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        max_scan: Option<usize>,
    ) -> Result<StatsBreakdown, BusError> {
        let events = self.events.read();
        let window: Vec<&Event> = events
            .iter()
            .filter(|e| since.is_none_or(|s| e.time >= s) && until.is_none_or(|u| e.time < u))
            .collect();
        let scan = max_scan.unwrap_or(usize::MAX);
        let counted = &window[window.len().saturating_sub(scan)..];
        let mut by_type = BTreeMap::new();
        let mut by_source = BTreeMap::new();
        let mut per_minute: BTreeMap<DateTime<Utc>, u64> = BTreeMap::new();
        for e in counted {
            *by_type.entry(e.ty.clone()).or_insert(0) += 1;
            *by_source.entry(e.source.clone()).or_insert(0) += 1;
            let minute = e
                .time
                .with_second(0)
                .and_then(|t| t.with_nanosecond(0))
                .unwrap_or(e.time);
            *per_minute.entry(minute).or_insert(0) += 1;
        }
        Ok(StatsBreakdown {
            total: counted.len() as u64,
            by_type,
            by_source,
            per_minute: per_minute
                .into_iter()
                .map(|(minute, events)| MinuteCount { minute, events })
                .collect(),
            first_sequence: counted.first().map(|e| e.sequence),
            last_sequence: counted.last().map(|e| e.sequence),
            complete: counted.len() == window.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::NewEvent;

    fn event(seq: u64, ty: &str, subject: &str, data: Value) -> Event {
        NewEvent::new("host/supervisor", ty, data)
            .with_subject(subject)
            .into_event(
                seq,
                DateTime::from_timestamp(1_700_000_000 + seq as i64 * 60, 0).unwrap(),
                format!("id{seq}"),
            )
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn events_printed_by_host_events_json_are_read_back_as_they_were() {
        let mut caused = event(8, "alert.fired", "web", json!({"n": 1}));
        caused.cause = Some(7);
        caused.depth = 1;
        let events = [
            event(7, "process.failed", "web", json!({"exit_code": 3})),
            caused,
        ];
        // `host events --json` writes `serde_json::to_writer(event)` + newline.
        let text: String = events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        let f = file(&format!("\n{text}\n"));
        assert_eq!(read_events(f.path()).unwrap(), events);
    }

    #[test]
    fn a_line_that_is_not_an_event_is_named_by_file_line_and_field() {
        let good = serde_json::to_string(&event(1, "x.y", "a", json!({}))).unwrap();
        let cases = [
            ("       1  2026-01-01T00:00:00Z  process.failed", "line"),
            (
                r#"{"id":"a","source":"s","time":"2026-01-01T00:00:00Z","sequence":2,"data":{}}"#,
                "type",
            ),
            (
                r#"{"id":"a","source":"s","type":"x.y","time":"yesterday","sequence":2,"data":{}}"#,
                "time",
            ),
            (
                r#"{"id":"a","source":"s","type":"x.y","time":"2026-01-01T00:00:00Z","sequence":"2","data":{}}"#,
                "sequence",
            ),
            (
                r#"{"id":"a","source":"s","type":"x.y","time":"2026-01-01T00:00:00Z","sequence":2}"#,
                "data",
            ),
            (
                r#"{"id":"a","source":"s","type":"x.y","time":"2026-01-01T00:00:00Z","sequence":1,"data":{}}"#,
                "sequence",
            ),
            ("[1, 2]", "line"),
        ];
        for (bad, field) in cases {
            let f = file(&format!("{good}\n\n{bad}\n"));
            let err = read_events(f.path()).unwrap_err();
            match &err {
                InputError::Line {
                    line, field: f2, ..
                } => {
                    assert_eq!((*line, f2.as_str()), (3, field), "{err}")
                }
                other => panic!("{other}"),
            }
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("{}:3: {field}:", f.path().display())),
                "{text}"
            );
        }
    }

    #[test]
    fn a_snapshot_takes_host_ps_json_or_a_few_fields_and_names_the_bad_one() {
        let f = file(r#"{"processes": [{"name": "web", "kind": "ai-coder", "state": "running"}]}"#);
        let p = Processes::from_snapshot(f.path()).unwrap();
        let web = ProcessView::get(&p, "web").unwrap();
        assert_eq!(web.kind, "ai-coder");
        assert_eq!(web.state, crate::supervisor::ProcessState::Running);
        assert!(p.is_fixed());
        // What `host ps --json` prints: a list of full processes.
        let full = serde_json::to_string(&vec![web]).unwrap();
        let f = file(&full);
        assert_eq!(Processes::from_snapshot(f.path()).unwrap().list().len(), 1);
        let f = file(r#"[{"name": "web", "state": "sleepy"}]"#);
        let err = Processes::from_snapshot(f.path()).unwrap_err().to_string();
        assert!(
            err.contains("processes[0]") && err.contains("sleepy"),
            "{err}"
        );
        let f = file(r#"[{"kind": "x"}]"#);
        let err = Processes::from_snapshot(f.path()).unwrap_err().to_string();
        assert!(err.contains("processes[0].name: missing"), "{err}");
    }

    #[test]
    fn the_process_table_follows_the_replayed_events_unless_it_is_a_fixed_snapshot() {
        let p = Processes::default();
        p.apply(&event(
            1,
            "process.created",
            "web",
            json!({"kind": "build"}),
        ));
        p.apply(&event(
            2,
            "process.started",
            "web",
            json!({"pid": 42, "from": "starting", "to": "running"}),
        ));
        let web = ProcessView::get(&p, "web").unwrap();
        assert_eq!(
            (web.kind.as_str(), web.pid, web.state),
            ("build", Some(42), crate::supervisor::ProcessState::Running)
        );
        p.apply(&event(
            3,
            "process.failed",
            "web",
            json!({"exit_code": 3, "from": "running", "to": "failed"}),
        ));
        let web = ProcessView::get(&p, "web").unwrap();
        assert_eq!(
            (web.exit_code, web.state),
            (Some(3), crate::supervisor::ProcessState::Failed)
        );
        p.apply(&event(4, "process.removed", "web", json!({})));
        assert!(p.list().is_empty());

        let f = file(r#"[{"name": "db"}]"#);
        let fixed = Processes::from_snapshot(f.path()).unwrap();
        fixed.apply(&event(5, "process.created", "web", json!({})));
        assert_eq!(fixed.list().len(), 1, "a snapshot is fixed");
    }

    #[test]
    fn the_replay_log_answers_only_from_events_replayed_so_far() {
        let log = ReplayLog::default();
        for seq in 1..=5 {
            log.push(event(
                seq,
                if seq % 2 == 0 { "b.x" } else { "a.x" },
                "s",
                json!({}),
            ));
        }
        let seqs = |q: EventQuery| -> Vec<u64> {
            log.query(&q).unwrap().iter().map(|e| e.sequence).collect()
        };
        assert_eq!(
            seqs(EventQuery {
                limit: Some(2),
                ..Default::default()
            }),
            [4, 5]
        );
        assert_eq!(
            seqs(EventQuery {
                after_sequence: Some(1),
                limit: Some(2),
                ..Default::default()
            }),
            [2, 3]
        );
        let a = crate::bus::Pattern::parse("a.*").unwrap();
        assert_eq!(
            seqs(EventQuery {
                types: vec![a],
                ..Default::default()
            }),
            [1, 3, 5]
        );
        let stats = log.stats_by(None, None, Some(3)).unwrap();
        assert_eq!((stats.total, stats.complete), (3, false));
        assert_eq!(stats.by_type["a.x"], 2);
        assert_eq!(stats.per_minute.len(), 3, "events a minute apart");
    }

    #[test]
    fn tasks_are_read_one_a_line_and_a_bad_one_is_named() {
        let f = file(
            "{\"id\": \"a\", \"repository\": \"r\", \"title\": \"t\", \"description\": \"d\", \"keywords\": []}\n{\"id\": \"b\"}\n",
        );
        let err = read_tasks(f.path()).unwrap_err().to_string();
        assert!(err.contains(":2: task: not a task"), "{err}");
    }
}
