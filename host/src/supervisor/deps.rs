//! Dependencies between processes: the `depends_on` table, the graph
//! checks made at config time, the start order, and the wait a runner
//! makes before each spawn until its dependencies are satisfied.
//!
//! Conditions use process-compose's vocabulary: `started` (a run has
//! spawned), `healthy` (its readiness probe passes), `log_ready` (its `log`
//! readiness probe matched) and `completed_successfully` (it exited 0 and
//! is done). A dependant waits through a dependency's backoff and restart;
//! it fails, with the reason, only once the dependency has ended for good
//! in a state that can never satisfy the condition, so nothing is left
//! pending forever. Once a dependant runs, its dependencies' readiness no
//! longer concerns it: a brief readiness loss neither stops nor restarts it.
//!
//! The wait looks at the table every [`RECHECK`]: waits are few and short
//! (only processes with `depends_on`, only before a spawn), so a look at a
//! handful of records is cheaper than a notification path through every
//! state change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use super::error::SupervisorError;
use super::runner::Control;
use super::spec::ProcessSpec;
use super::state::ProcessState;
use super::table::{Inner, Record};

/// How often a waiting runner looks at its dependencies again.
const RECHECK: Duration = Duration::from_millis(20);

/// What a dependant waits for in a dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// A run of it has spawned (the default of a plain list).
    #[serde(alias = "process_started")]
    Started,
    /// Its readiness probe passes (it needs a `readiness_probe`).
    #[serde(alias = "process_healthy")]
    Healthy,
    /// Its `log` readiness probe matched a line of the current run.
    #[serde(alias = "process_log_ready")]
    LogReady,
    /// It exited 0 and will not run again.
    #[serde(alias = "process_completed_successfully")]
    CompletedSuccessfully,
}

impl Condition {
    /// The name as written in `host.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::LogReady => "log_ready",
            Condition::CompletedSuccessfully => "completed_successfully",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `depends_on` of a process: dependency name → condition.
///
/// In `host.toml` either a table (`depends_on = { db = "healthy", migrate =
/// "completed_successfully" }`) or a list meaning `started` for each
/// (`depends_on = ["db"]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DependsOn(pub BTreeMap<String, Condition>);

impl DependsOn {
    /// True when the process depends on nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for DependsOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            List(Vec<String>),
            Table(BTreeMap<String, Condition>),
        }
        let shape = Shape::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a list of names or a table of name = \"started\" | \"healthy\" | \"log_ready\" | \"completed_successfully\"",
            )
        })?;
        Ok(DependsOn(match shape {
            Shape::List(names) => names.into_iter().map(|n| (n, Condition::Started)).collect(),
            Shape::Table(table) => table,
        }))
    }
}

/// A problem in the dependency graph, naming the field.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GraphError {
    /// The process whose table holds the problem.
    pub(crate) process: String,
    /// `process.web.depends_on.db: no such process`, ...
    pub(crate) message: String,
}

/// Checks every `depends_on` of `specs`: known names, conditions the
/// dependency can meet, and no cycle.
pub(crate) fn check_graph(specs: &BTreeMap<String, ProcessSpec>) -> Result<(), GraphError> {
    for (name, spec) in specs {
        for (dep, condition) in &spec.depends_on.0 {
            let field = format!("process.{name}.depends_on.{dep}");
            let error = |message: String| GraphError {
                process: name.clone(),
                message: format!("{field}: {message}"),
            };
            let Some(target) = specs.get(dep) else {
                return Err(error("no such process".into()));
            };
            match condition {
                Condition::Healthy if target.readiness_probe.is_none() => {
                    return Err(error(format!(
                        "`healthy` needs a readiness_probe on `{dep}`"
                    )));
                }
                Condition::LogReady
                    if !target.readiness_probe.as_ref().is_some_and(|p| p.is_log()) =>
                {
                    return Err(error(format!(
                        "`log_ready` needs a readiness_probe with `log = \"<regex>\"` on `{dep}`"
                    )));
                }
                _ => {}
            }
        }
    }
    if let Some(cycle) = find_cycle(specs) {
        return Err(GraphError {
            process: cycle[0].clone(),
            message: format!(
                "process.{}.depends_on: dependency cycle {}",
                cycle[0],
                cycle.join(" → ")
            ),
        });
    }
    Ok(())
}

/// A cycle as `[a, b, c, a]`, if the graph has one (depth-first, in name
/// order, so the same config always names the same cycle).
fn find_cycle(specs: &BTreeMap<String, ProcessSpec>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        name: &str,
        specs: &BTreeMap<String, ProcessSpec>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(name) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == name).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(name.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(name.to_string(), Mark::Open);
        path.push(name.to_string());
        for dep in specs
            .get(name)
            .into_iter()
            .flat_map(|s| s.depends_on.0.keys())
        {
            if let Some(cycle) = visit(dep, specs, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(name.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    specs
        .keys()
        .find_map(|name| visit(name, specs, &mut marks, &mut Vec::new()))
}

/// `names` ordered so every process comes after the ones it depends on
/// (dependencies outside `names` are ignored; a cycle, refused at config
/// time, is broken arbitrarily rather than looping).
pub(super) fn start_order(
    names: &[String],
    depends_on: impl Fn(&str) -> Vec<String>,
) -> Vec<String> {
    let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let mut placed = BTreeSet::new();
    let mut order = Vec::with_capacity(names.len());
    fn place<'a>(
        name: &'a str,
        wanted: &BTreeSet<&'a str>,
        depends_on: &impl Fn(&str) -> Vec<String>,
        placed: &mut BTreeSet<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) {
        if placed.contains(name) || depth > wanted.len() {
            return;
        }
        for dep in depends_on(name) {
            if let Some(dep) = wanted.get(dep.as_str()) {
                place(dep, wanted, depends_on, placed, order, depth + 1);
            }
        }
        if placed.insert(name.to_string()) {
            order.push(name.to_string());
        }
    }
    for name in names {
        place(name, &wanted, &depends_on, &mut placed, &mut order, 0);
    }
    order
}

/// What the table says about one process's dependencies right now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Every condition holds.
    Satisfied,
    /// Some condition may still come to hold; these dependencies are
    /// pending (never started) and should be started.
    Waiting { to_start: Vec<String> },
    /// `dependency` can never satisfy its condition.
    Failed { dependency: String, reason: String },
}

/// Judges `depends_on` against the table.
pub(super) fn judge(table: &BTreeMap<String, Record>, depends_on: &DependsOn) -> Verdict {
    let mut to_start = Vec::new();
    let mut waiting = false;
    for (dep, &condition) in &depends_on.0 {
        let Some(rec) = table.get(dep) else {
            return Verdict::Failed {
                dependency: dep.clone(),
                reason: format!("its dependency `{dep}` does not exist"),
            };
        };
        // Ended for good: no runner left to change its state.
        let over =
            rec.run.is_none() && (rec.state.is_terminal() || rec.state == ProcessState::Pending);
        let holds = match condition {
            Condition::Started => {
                matches!(rec.state, ProcessState::Running | ProcessState::Paused)
                    || (rec.state.is_terminal()
                        && rec.started_at.is_some()
                        && rec.exit_code.is_some())
            }
            Condition::Healthy | Condition::LogReady => rec.ready == Some(true),
            Condition::CompletedSuccessfully => {
                rec.state == ProcessState::Completed && rec.run.is_none()
            }
        };
        if holds {
            continue;
        }
        if rec.run.is_none() && rec.state == ProcessState::Pending {
            to_start.push(dep.clone());
            waiting = true;
            continue;
        }
        if over {
            let how = match (rec.exit_code, rec.signal) {
                (Some(code), _) => format!(" (exit code {code})"),
                (None, Some(signal)) => format!(" (signal {signal})"),
                (None, None) => String::new(),
            };
            return Verdict::Failed {
                dependency: dep.clone(),
                reason: format!(
                    "its dependency `{dep}` ended {}{how} and will not run again, so it can never be {condition}",
                    rec.state
                ),
            };
        }
        waiting = true;
    }
    if waiting {
        Verdict::Waiting { to_start }
    } else {
        Verdict::Satisfied
    }
}

/// How a runner's wait for its dependencies ended.
pub(super) enum Waited {
    /// Every condition holds: spawn.
    Ready,
    /// A stop was asked for (or the supervisor is going away).
    Stopped,
    /// A dependency can never satisfy its condition.
    Failed { dependency: String, reason: String },
}

/// Waits until `spec`'s dependencies are satisfied, starting the ones
/// never started; answers `Stop` requests meanwhile, and keeps `Restart`
/// callers waiting with the spawn.
pub(super) async fn wait(
    inner: &std::sync::Arc<Inner>,
    spec: &ProcessSpec,
    control: &mut mpsc::UnboundedReceiver<Control>,
    waiting: &mut Vec<oneshot::Sender<Result<(), SupervisorError>>>,
) -> Waited {
    if spec.depends_on.is_empty() {
        return Waited::Ready;
    }
    let mut asked = BTreeSet::new();
    loop {
        let verdict = judge(&inner.table(), &spec.depends_on);
        match verdict {
            Verdict::Satisfied => return Waited::Ready,
            Verdict::Failed { dependency, reason } => return Waited::Failed { dependency, reason },
            Verdict::Waiting { to_start } => {
                for dep in to_start {
                    if asked.insert(dep.clone()) {
                        tokio::spawn(start_in_background(inner.clone(), dep));
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECHECK) => {}
            request = control.recv() => match request {
                Some(Control::Restart { reply }) => waiting.push(reply),
                Some(Control::Stop { .. }) | None => return Waited::Stopped,
                Some(_) => {}
            }
        }
    }
}

/// Starts `name` without waiting for its spawn (a dependency nobody
/// started, or an autostart that waits for its own dependencies). Boxed: a
/// start launches a runner that may start dependencies in turn, and the
/// future type would otherwise contain itself.
pub(super) fn start_in_background(
    inner: std::sync::Arc<Inner>,
    name: String,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        // A start that fails leaves the process failed (and says why in
        // its events), which a waiting dependant's next look reports.
        if let Err(e) = (super::Supervisor { inner }).start(&name).await {
            tracing::info!(process = %name, error = %e, "start failed");
        }
    })
}

/// The `done` signals of the runners of `name`'s dependants: a graceful
/// shutdown stops `name` only once they are over (dependants first).
pub(super) fn dependants_running(
    table: &BTreeMap<String, Record>,
    name: &str,
) -> Vec<watch::Receiver<bool>> {
    table
        .values()
        .filter(|r| r.spec.depends_on.0.contains_key(name))
        .filter_map(|r| r.run.as_ref().map(|run| run.done.clone()))
        .collect()
}

/// Sends `Stop` once every runner in `after` is over.
pub(super) async fn stop_after(
    control: mpsc::UnboundedSender<Control>,
    after: Vec<watch::Receiver<bool>>,
) {
    for mut done in after {
        let _ = done.wait_for(|d| *d).await;
    }
    let _ = control.send(Control::Stop { force: false });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(text: &str) -> BTreeMap<String, ProcessSpec> {
        #[derive(Deserialize)]
        struct File {
            process: BTreeMap<String, ProcessSpec>,
        }
        let mut file: File = toml::from_str(text).unwrap();
        for (name, spec) in &mut file.process {
            spec.name = name.clone();
        }
        file.process
    }

    #[test]
    fn a_list_means_started_and_a_table_names_each_condition() {
        let s = specs(
            r#"
            [process.db]
            command = "db"
            readiness_probe = { tcp = "127.0.0.1:5432" }
            [process.migrate]
            command = "migrate"
            depends_on = ["db"]
            [process.web]
            command = "web"
            depends_on = { db = "healthy", migrate = "process_completed_successfully" }
            "#,
        );
        assert_eq!(s["migrate"].depends_on.0["db"], Condition::Started);
        assert_eq!(s["web"].depends_on.0["db"], Condition::Healthy);
        assert_eq!(
            s["web"].depends_on.0["migrate"],
            Condition::CompletedSuccessfully
        );
        assert_eq!(check_graph(&s), Ok(()));
    }

    #[test]
    fn an_unknown_dependency_is_named_with_its_field() {
        let s = specs("[process.web]\ncommand = \"x\"\ndepends_on = [\"db\"]\n");
        let err = check_graph(&s).unwrap_err();
        assert_eq!(err.message, "process.web.depends_on.db: no such process");
    }

    #[test]
    fn an_unknown_condition_is_refused_at_parse_time() {
        let err = toml::from_str::<ProcessSpec>("command = \"x\"\ndepends_on = { db = \"up\" }")
            .unwrap_err();
        assert!(err.to_string().contains("completed_successfully"), "{err}");
    }

    #[test]
    fn a_cycle_is_refused_naming_every_process_on_it() {
        let s = specs(
            "[process.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n\
             [process.b]\ncommand = \"x\"\ndepends_on = [\"c\"]\n\
             [process.c]\ncommand = \"x\"\ndepends_on = [\"a\"]\n\
             [process.d]\ncommand = \"x\"\ndepends_on = [\"a\"]\n",
        );
        let err = check_graph(&s).unwrap_err();
        assert_eq!(
            err.message,
            "process.a.depends_on: dependency cycle a → b → c → a"
        );
        let own = specs("[process.a]\ncommand = \"x\"\ndepends_on = [\"a\"]\n");
        assert!(check_graph(&own).unwrap_err().message.contains("a → a"));
    }

    #[test]
    fn a_condition_the_dependency_cannot_meet_is_refused() {
        let s = specs(
            "[process.db]\ncommand = \"x\"\nreadiness_probe = { tcp = \"127.0.0.1:1\" }\n\
             [process.web]\ncommand = \"x\"\ndepends_on = { db = \"log_ready\" }\n",
        );
        assert!(check_graph(&s).unwrap_err().message.contains("log = "));
        let s = specs(
            "[process.db]\ncommand = \"x\"\n\
             [process.web]\ncommand = \"x\"\ndepends_on = { db = \"healthy\" }\n",
        );
        assert_eq!(
            check_graph(&s).unwrap_err().message,
            "process.web.depends_on.db: `healthy` needs a readiness_probe on `db`"
        );
    }

    #[test]
    fn the_start_order_puts_every_dependency_first() {
        let graph: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec![]),
            ("d", vec!["c", "a"]),
        ]);
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let order = start_order(&names, |n| graph[n].iter().map(|s| s.to_string()).collect());
        assert_eq!(order, ["c", "b", "a", "d"]);
    }
}
