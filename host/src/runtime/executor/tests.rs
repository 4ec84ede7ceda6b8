//! The executor's checks, each against a real bus and supervisor: reserved
//! types, grants, stale causes, rates, order, and bounded reporting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::{Executor, RateLimits};
use crate::bus::{Bus, BusConfig, EventQuery, NewEvent, Pattern};
use crate::coordination::{CoordinationConfig, Coordinator};
use crate::plugins::{
    Action, ActionRequest, Cause, Kind, Permissions, PluginHost, PluginHostConfig,
};
use crate::runtime::reserved;
use crate::supervisor::{ProcessSpec, ProcessState, Supervisor, SupervisorConfig};

struct Setup {
    bus: Bus,
    supervisor: Supervisor,
    executor: Executor,
    _dir: tempfile::TempDir,
}

async fn setup(grants: &str, rates: RateLimits) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    let supervisor = Supervisor::new(bus.clone(), SupervisorConfig::new(dir.path().join("logs")));
    let (tx, _rx) = mpsc::channel(16);
    let plugins = PluginHost::start(
        PluginHostConfig::new(dir.path()),
        bus.clone(),
        Arc::new(supervisor.clone()),
        tx,
    )
    .await
    .unwrap();
    let coordinator = Coordinator::new(bus.clone(), plugins, CoordinationConfig::default());
    let permissions: Permissions = toml::from_str(grants).unwrap();
    let executor = Executor {
        bus: bus.clone(),
        supervisor: supervisor.clone(),
        coordinator,
        grants: Arc::new(move |name: &str| {
            if name == "p" {
                permissions.clone()
            } else {
                Permissions::default()
            }
        }),
        rates,
        rate_overrides: BTreeMap::new(),
    };
    Setup {
        bus,
        supervisor,
        executor,
        _dir: dir,
    }
}

fn emit(ty: &str) -> Action {
    Action::Emit {
        ty: ty.into(),
        subject: None,
        data: json!({}),
    }
}

fn request(kind: Kind, cause: Option<Cause>, actions: Vec<Action>) -> ActionRequest {
    ActionRequest {
        plugin: "p".into(),
        kind,
        cause,
        actions,
    }
}

/// Runs the executor over `requests` until they are all performed.
async fn run(s: &Setup, requests: Vec<ActionRequest>) {
    let (tx, rx) = mpsc::channel(requests.len().max(1));
    for r in requests {
        tx.send(r).await.unwrap();
    }
    drop(tx);
    let (_stop, stopped) = watch::channel(false);
    tokio::time::timeout(Duration::from_secs(60), s.executor.clone().run(rx, stopped))
        .await
        .expect("the executor finishes what was queued");
    s.bus.flush().unwrap();
}

fn all(bus: &Bus, pattern: &str) -> Vec<crate::bus::Event> {
    bus.query(&EventQuery {
        types: vec![Pattern::parse(pattern).unwrap()],
        after_sequence: Some(0),
        ..Default::default()
    })
    .unwrap()
}

fn refused(bus: &Bus) -> Vec<Value> {
    all(bus, "plugin.actions_refused")
        .into_iter()
        .map(|e| e.data.into_value())
        .collect()
}

#[tokio::test]
async fn reserved_and_ungranted_emits_are_refused_and_the_rest_published_one_deeper() {
    let s = setup(
        "emit = [\"a.>\", \"process.failed\"]",
        RateLimits::default(),
    )
    .await;
    let cause = s
        .bus
        .publish(NewEvent::new("host/test", "test.cause", json!({})))
        .unwrap();
    let actions = vec![
        emit("a.ok"),
        emit("process.failed"),
        emit("b.no"),
        emit("a.too"),
    ];
    run(
        &s,
        vec![request(
            Kind::EventHandler,
            Some(Cause::of(&cause)),
            actions,
        )],
    )
    .await;
    let published = all(&s.bus, "a.*");
    assert_eq!(published.len(), 2);
    assert!(
        published
            .iter()
            .all(|e| e.cause == Some(cause.sequence) && e.depth == 1 && e.source == "plugin/p")
    );
    assert!(
        all(&s.bus, "process.failed").is_empty(),
        "reserved, whatever the grant"
    );
    let report = &refused(&s.bus)[0];
    assert_eq!(report["refused"]["reserved"], 1);
    assert_eq!(report["refused"]["not_granted"], 1);
    let examples = report["examples"].to_string();
    assert!(
        examples.contains("b.no") && examples.contains("[permissions] emit"),
        "{examples}"
    );
}

#[tokio::test]
async fn lifecycle_actions_need_a_grant_for_the_process_or_its_kind() {
    let s = setup("start = [\"kind:worker\"]", RateLimits::default()).await;
    let mut worker = ProcessSpec::new("w", "sleep 100");
    worker.kind = "worker".into();
    s.supervisor.add(worker).unwrap();
    s.supervisor
        .add(ProcessSpec::new("web", "sleep 100"))
        .unwrap();
    let actions = vec![
        Action::Start { name: "w".into() },
        Action::Start { name: "web".into() },
    ];
    run(&s, vec![request(Kind::EventHandler, None, actions)]).await;
    assert_eq!(s.supervisor.get("w").unwrap().state, ProcessState::Running);
    assert_eq!(
        s.supervisor.get("web").unwrap().state,
        ProcessState::Pending
    );
    let report = &refused(&s.bus)[0];
    assert_eq!(report["refused"]["not_granted"], 1);
    assert!(
        report["examples"][0]
            .as_str()
            .unwrap()
            .contains("start web")
    );
    let actions = all(&s.bus, "plugin.action");
    assert_eq!(actions.len(), 1, "only what was performed is recorded");
    assert_eq!(actions[0].data["ok"], true);
    s.supervisor.shutdown(true).await;
}

#[tokio::test]
async fn actions_caused_by_events_of_an_earlier_run_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let old = {
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        bus.publish(NewEvent::new("host/test", "process.failed", json!({})))
            .unwrap()
    };
    let mut s = setup(
        "restart = [\"*\"]\nstatus = [\"*\"]\nemit = [\"x.>\"]",
        RateLimits::default(),
    )
    .await;
    // The same journal, opened again: the old event is from before this run.
    s.bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
    s.executor.bus = s.bus.clone();
    s.supervisor = Supervisor::new(
        s.bus.clone(),
        SupervisorConfig::new(dir.path().join("logs")),
    );
    s.executor.supervisor = s.supervisor.clone();
    s.supervisor.add(ProcessSpec::new("svc", "true")).unwrap();
    let actions = vec![
        Action::Restart { name: "svc".into() },
        Action::SetStatus {
            name: "svc".into(),
            update: Default::default(),
        },
        emit("x.note"),
    ];
    run(
        &s,
        vec![request(Kind::EventHandler, Some(Cause::of(&old)), actions)],
    )
    .await;
    assert_eq!(
        s.supervisor.get("svc").unwrap().state,
        ProcessState::Pending
    );
    let report = &refused(&s.bus)[0];
    assert_eq!(report["refused"]["stale_cause"], 2, "{report}");
    assert_eq!(
        all(&s.bus, "x.note").len(),
        1,
        "an emit is not a lifecycle action"
    );
}

#[tokio::test]
async fn rates_cut_a_flood_and_the_refusals_are_reported_not_replayed() {
    let rates = RateLimits {
        emits_per_sec: 1.0,
        emit_burst: 10.0,
        actions_per_sec: 1.0,
        action_burst: 2.0,
    };
    let s = setup("emit = [\">\"]\npause = [\"*\"]", rates).await;
    let flood: Vec<ActionRequest> = (0..100)
        .map(|_| request(Kind::EventHandler, None, vec![emit("flood.x")]))
        .collect();
    run(&s, flood).await;
    let got = all(&s.bus, "flood.x").len();
    assert!(
        (10..=12).contains(&got),
        "the burst, and at most a token or two more: {got}"
    );
    let reports = refused(&s.bus);
    let counted: u64 = reports
        .iter()
        .map(|r| r["refused"]["rate_limited"].as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, 100 - got, "every refusal counted");
    assert!(
        reports.len() <= 2,
        "reported once a second, not once per refusal: {reports:?}"
    );
}

#[tokio::test]
async fn a_mappers_status_for_its_process_needs_no_grant_and_no_action_budget() {
    let rates = RateLimits {
        actions_per_sec: 1.0,
        action_burst: 1.0,
        ..RateLimits::default()
    };
    let s = setup("", rates).await;
    s.supervisor.add(ProcessSpec::new("job", "true")).unwrap();
    let update = |n: f32| Action::SetStatus {
        name: "job".into(),
        update: crate::supervisor::StatusUpdate {
            progress: Some(n),
            ..Default::default()
        },
    };
    let requests = (1..=5)
        .map(|n| request(Kind::StatusMapper, None, vec![update(n as f32 / 10.0)]))
        .collect();
    run(&s, requests).await;
    assert_eq!(s.supervisor.get("job").unwrap().progress, Some(0.5));
    // The same from a handler needs `status`.
    run(
        &s,
        vec![request(Kind::EventHandler, None, vec![update(0.9)])],
    )
    .await;
    assert_eq!(s.supervisor.get("job").unwrap().progress, Some(0.5));
}

#[tokio::test]
async fn the_actions_of_one_decision_run_in_order() {
    let s = setup("stop = [\"*\"]\nstart = [\"*\"]", RateLimits::default()).await;
    let mut spec = ProcessSpec::new("svc", "sleep 100");
    spec.stop_timeout = Duration::from_secs(20);
    s.supervisor.add(spec).unwrap();
    s.supervisor.start("svc").await.unwrap();
    let first = s.supervisor.get("svc").unwrap().pid;
    // A stop (with a grace period) then a start of the same process: the
    // start must not run before the stop is over.
    let actions = vec![
        Action::Stop {
            name: "svc".into(),
            force: false,
        },
        Action::Start { name: "svc".into() },
    ];
    run(&s, vec![request(Kind::EventHandler, None, actions)]).await;
    let info = s.supervisor.get("svc").unwrap();
    assert_eq!(info.state, ProcessState::Running);
    assert_ne!(info.pid, first);
    let results: Vec<(String, bool)> = all(&s.bus, "plugin.action")
        .iter()
        .map(|e| {
            (
                e.data["action"].as_str().unwrap().to_string(),
                e.data["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [("stop".to_string(), true), ("start".to_string(), true)]
    );
    s.supervisor.shutdown(true).await;
}

#[test]
fn plugins_cannot_forge_host_or_lifecycle_events_but_may_report_statuses() {
    for ty in [
        "host.started",
        "plugin.loaded",
        "process.failed",
        "process.output",
        "process.created",
        "task.registered",
        "session.opened",
        "session.resolved",
    ] {
        assert!(reserved(ty).is_some(), "{ty}");
    }
    for ty in [
        "process.reported",
        "process.stalled",
        "alert.process_failures",
        "heal.restarted",
        "session.judged",
        "session.plan",
    ] {
        assert!(reserved(ty).is_none(), "{ty}");
    }
}

#[tokio::test]
async fn reports_are_caused_like_the_decisions_they_are_about() {
    let s = setup("emit = [\"a.>\"]", RateLimits::default()).await;
    let publish = |depth: u32| {
        let mut event = NewEvent::new("host/test", "test.cause", json!({}));
        if depth > 0 {
            event = event.with_cause(1, depth);
        }
        s.bus.publish(event).unwrap()
    };
    let (shallow, deep, big_cause) = (publish(0), publish(3), publish(1));
    let cause = |e: &crate::bus::Event| {
        Some(Cause {
            sequence: e.sequence,
            depth: e.depth,
        })
    };
    let too_big = Action::Emit {
        ty: "a.big".into(),
        subject: None,
        data: json!({ "pad": "x".repeat(2 << 20) }),
    };
    run(
        &s,
        vec![
            request(Kind::EventHandler, cause(&deep), vec![emit("b.no")]),
            request(Kind::EventHandler, cause(&shallow), vec![emit("b.no")]),
            request(Kind::EventHandler, cause(&big_cause), vec![too_big]),
        ],
    )
    .await;
    // The refusal report is one deeper than the deepest refused decision:
    // a plugin reacting to it continues that chain, which is cut in time.
    let reports = all(&s.bus, "plugin.actions_refused");
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (reports[0].cause, reports[0].depth),
        (Some(deep.sequence), 4)
    );
    // An emit the bus refuses (too large) is reported as the emit would
    // have been published: caused by the event that led to it.
    let failed = all(&s.bus, "plugin.action");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].data["ok"], false);
    assert!(
        failed[0].data["error"]
            .as_str()
            .unwrap()
            .contains("max_event_bytes"),
        "{:?}",
        failed[0].data
    );
    assert_eq!(failed[0].data["cause_sequence"], big_cause.sequence);
    assert_eq!(
        (failed[0].cause, failed[0].depth),
        (Some(big_cause.sequence), 2)
    );
}
