//! The wait before a spawn: judging a `depends_on` against the process
//! table, starting dependencies nobody started, and failing with the
//! reason once a dependency can never meet its condition; and the
//! dependants-first order of a graceful shutdown.
//!
//! The wait looks at the table every [`RECHECK`]: waits are few and short
//! (only processes with `depends_on`, only before a spawn), so a look at a
//! handful of records is cheaper than a notification path through every
//! state change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::{Condition, DependsOn};
use crate::supervisor::error::SupervisorError;
use crate::supervisor::runner::Control;
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
    control: &mut mpsc::UnboundedReceiver<Control>,
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
    control: &mut mpsc::UnboundedReceiver<Control>,
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

/// The `done` signals of the runners of `name`'s dependants: a graceful
/// shutdown stops `name` only once they are over (dependants first).
pub(in crate::supervisor) fn dependants_running(
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
pub(in crate::supervisor) async fn stop_after(
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
