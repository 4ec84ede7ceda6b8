//! The wait before a spawn: judging a `depends_on` against the process
//! table, starting dependencies nobody started, and failing with the
//! reason once a dependency can never meet its condition; and the
//! dependants-first order of a graceful shutdown.
//!
//! The wait looks at the table every [`RECHECK`]: waits are few and short
//! (only processes with `depends_on`, only before a spawn), so a look at a
//! handful of records is cheaper than a notification path through every
//! state change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::{Condition, DependsOn};
use crate::supervisor::error::SupervisorError;
use crate::supervisor::runner::{Control, ControlReceiver, ControlSender};
use crate::supervisor::spec::ProcessSpec;
use crate::supervisor::state::ProcessState;
use crate::supervisor::table::{Inner, Record};

/// How often a waiting runner looks at its dependencies again.
const RECHECK: Duration = Duration::from_millis(20);

/// What the table says about one process's dependencies right now.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::supervisor) enum Verdict {
    /// Every condition holds.
    Satisfied,
    /// Some condition may still come to hold: `unmet` are the dependencies
    /// whose condition does not hold yet; `to_start` those of them pending
    /// (never started), which should be started.
    Waiting {
        unmet: Vec<String>,
        to_start: Vec<String>,
    },
    /// `dependency` can never satisfy its condition.
    Failed { dependency: String, reason: String },
}

/// Judges `depends_on` against the table.
pub(in crate::supervisor) fn judge(
    table: &BTreeMap<String, Record>,
    depends_on: &DependsOn,
) -> Verdict {
    let mut to_start = Vec::new();
    let mut unmet = Vec::new();
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
            // A run that ended (even by a signal) had started.
            Condition::Started => {
                matches!(
                    rec.state,
                    ProcessState::Running | ProcessState::Paused | ProcessState::Stopping
                ) || (rec.state.is_terminal() && rec.started_at.is_some())
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
            unmet.push(dep.clone());
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
        unmet.push(dep.clone());
    }
    if unmet.is_empty() {
        Verdict::Satisfied
    } else {
        Verdict::Waiting { unmet, to_start }
    }
}

/// How a runner's wait for its dependencies ended.
pub(in crate::supervisor) enum Waited {
    /// Every condition holds: spawn.
    Ready,
    /// A stop was asked for (or the supervisor is going away).
    Stopped,
    /// A dependency can never satisfy its condition.
    Failed { dependency: String, reason: String },
}

/// Waits until `spec`'s dependencies are satisfied, starting the ones
/// never started; answers `Stop` requests meanwhile, and keeps `Restart`
/// callers waiting with the spawn. While it waits, the record's
/// `waiting_for` names the dependencies not yet satisfied, and `accepted`
/// (a start that answers when the wait begins) is told at once.
pub(in crate::supervisor) async fn wait(
    inner: &std::sync::Arc<Inner>,
    spec: &ProcessSpec,
    control: &mut ControlReceiver,
    waiting: &mut Vec<oneshot::Sender<Result<(), SupervisorError>>>,
    accepted: &mut Option<oneshot::Sender<()>>,
) -> Waited {
    if spec.depends_on.is_empty() {
        return Waited::Ready;
    }
    let waited = wait_for_each(inner, spec, control, waiting, accepted).await;
    if let Some(rec) = inner.table().get_mut(&spec.name) {
        rec.waiting_for.clear();
    }
    waited
}

async fn wait_for_each(
    inner: &std::sync::Arc<Inner>,
    spec: &ProcessSpec,
    control: &mut ControlReceiver,
    waiting: &mut Vec<oneshot::Sender<Result<(), SupervisorError>>>,
    accepted: &mut Option<oneshot::Sender<()>>,
) -> Waited {
    let mut asked = BTreeSet::new();
    loop {
        let verdict = {
            let mut table = inner.table();
            let verdict = judge(&table, &spec.depends_on);
            if let (Verdict::Waiting { unmet, .. }, Some(rec)) =
                (&verdict, table.get_mut(&spec.name))
                && rec.waiting_for != *unmet
            {
                rec.waiting_for.clone_from(unmet);
            }
            verdict
        };
        match verdict {
            Verdict::Satisfied => return Waited::Ready,
            Verdict::Failed { dependency, reason } => return Waited::Failed { dependency, reason },
            Verdict::Waiting { to_start, .. } => {
                if let Some(accepted) = accepted.take() {
                    let _ = accepted.send(());
                }
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
pub(in crate::supervisor) fn start_in_background(
    inner: std::sync::Arc<Inner>,
    name: String,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        // A start that fails leaves the process failed (and says why in
        // its events), which a waiting dependant's next look reports.
        if let Err(e) = (crate::supervisor::Supervisor { inner }).start(&name).await {
            tracing::info!(process = %name, error = %e, "start failed");
        }
    })
}

/// For each process, the `done` signals of the runners of its dependants:
/// a graceful shutdown stops a process only once they are over
/// (dependants first). One pass over the table, made under its lock:
/// asking it per process walked the whole table once for each, a million
/// steps at 1,000 processes while every runner waited for the lock.
pub(in crate::supervisor) fn running_dependants(
    table: &BTreeMap<String, Record>,
) -> HashMap<&str, Vec<watch::Receiver<bool>>> {
    let mut dependants: HashMap<&str, Vec<watch::Receiver<bool>>> = HashMap::new();
    for record in table.values() {
        let Some(run) = record.run.as_ref() else {
            continue;
        };
        for dependency in record.spec.depends_on.0.keys() {
            dependants
                .entry(dependency.as_str())
                .or_default()
                .push(run.done.clone());
        }
    }
    dependants
}

/// Sends `Stop` once every runner in `after` is over.
pub(in crate::supervisor) async fn stop_after(
    control: ControlSender,
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

    /// A table holding `dep` in `state` after one run, no runner left.
    fn ended(
        state: ProcessState,
        exit_code: Option<i32>,
        signal: Option<i32>,
    ) -> BTreeMap<String, Record> {
        let mut rec = Record::new(
            ProcessSpec::new("dep", "x"),
            crate::supervisor::Origin::Config,
            10,
        );
        rec.state = state;
        rec.started_at = Some(chrono::Utc::now());
        rec.exit_code = exit_code;
        rec.signal = signal;
        BTreeMap::from([("dep".to_string(), rec)])
    }

    #[test]
    fn each_process_learns_the_running_dependants_it_must_outlast() {
        let record = |name: &str, deps: &[&str], running: bool| {
            let mut spec = ProcessSpec::new(name, "x");
            spec.depends_on = DependsOn(
                deps.iter()
                    .map(|d| (d.to_string(), Condition::Started))
                    .collect(),
            );
            let mut rec = Record::new(spec, crate::supervisor::Origin::Config, 10);
            if running {
                let (control, _) = crate::supervisor::runner::control_queue();
                let (_, done) = watch::channel(false);
                rec.run = Some(crate::supervisor::table::RunHandle { control, done });
            }
            (name.to_string(), rec)
        };
        let table = BTreeMap::from([
            record("db", &[], true),
            record("api", &["db"], true),
            record("worker", &["db", "api"], true),
            record("report", &["db"], false),
        ]);
        let dependants = running_dependants(&table);
        let count = |name: &str| dependants.get(name).map_or(0, Vec::len);
        // `report` has no runner: nothing to wait for.
        assert_eq!((count("db"), count("api"), count("worker")), (2, 1, 0));
    }

    fn on(condition: Condition) -> DependsOn {
        DependsOn(BTreeMap::from([("dep".to_string(), condition)]))
    }

    #[test]
    fn a_dependency_killed_by_a_signal_had_started_but_can_never_complete() {
        let table = ended(ProcessState::Failed, None, Some(9));
        assert_eq!(judge(&table, &on(Condition::Started)), Verdict::Satisfied);
        match judge(&table, &on(Condition::CompletedSuccessfully)) {
            Verdict::Failed { dependency, reason } => {
                assert_eq!(dependency, "dep");
                assert!(reason.contains("ended failed (signal 9)"), "{reason}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_or_never_started_dependency_is_told_apart() {
        let mut table = ended(ProcessState::Pending, None, None);
        assert_eq!(
            judge(&table, &on(Condition::Healthy)),
            Verdict::Waiting {
                unmet: vec!["dep".into()],
                to_start: vec!["dep".into()]
            }
        );
        table.clear();
        assert!(matches!(
            judge(&table, &on(Condition::Started)),
            Verdict::Failed { reason, .. } if reason.contains("does not exist")
        ));
    }
}
