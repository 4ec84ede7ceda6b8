//! Processes created at runtime (ids, retention, removal, output offsets)
//! and restarts asked from outside, which go through the same accounting
//! as the supervisor's own.

use std::time::Duration;

use super::*;

fn runtime_spec(kind: &str, command: &str) -> ProcessSpec {
    let mut spec = spec("ignored", command);
    spec.kind = kind.into();
    spec.label = Some(format!("a {kind} run"));
    spec
}

#[tokio::test]
async fn a_runtime_process_gets_an_id_from_its_kind_and_a_created_event() {
    let (sup, bus, _dir) = setup();
    let mut s = runtime_spec("test_suite", "echo ok");
    s.metadata
        .insert("test_file".into(), "tests/test_login.py".into());
    let id = sup.create(s).unwrap();
    let (kind, hex) = id.rsplit_once('_').unwrap();
    assert_eq!(kind, "test_suite");
    assert_eq!(hex.len(), 6);
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    let info = sup.get(&id).unwrap();
    assert_eq!(info.origin, Origin::Runtime);
    assert_eq!(info.label.as_deref(), Some("a test_suite run"));
    assert_eq!(info.state, ProcessState::Pending);
    let created = &of_type(&bus, &id, "process.created")[0];
    assert_eq!(created["origin"], "runtime");
    assert_eq!(created["spec"]["command"], "echo ok");
    assert_eq!(
        created["spec"]["metadata"]["test_file"],
        "tests/test_login.py"
    );
    sup.start(&id).await.unwrap();
    wait_state(&sup, &id, ProcessState::Completed).await;
    let info = sup.get(&id).unwrap();
    assert!(info.completed_at.is_some() && info.duration_ms.is_some());
}

#[tokio::test]
async fn a_bad_kind_is_refused_as_the_kind() {
    let (sup, _bus, _dir) = setup();
    let err = sup.create(runtime_spec("no spaces", "true")).unwrap_err();
    assert!(
        matches!(&err, SupervisorError::InvalidSpec { field, .. } if field == "kind"),
        "{err}"
    );
}

#[tokio::test]
async fn finished_runtime_processes_beyond_the_limit_are_removed_oldest_first() {
    let (sup, bus, _dir) = setup_with(|c| c.retain_finished = 2);
    sup.add(spec("configured", "true")).unwrap();
    sup.start("configured").await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = sup.create(runtime_spec("build", "true")).unwrap();
        sup.start(&id).await.unwrap();
        wait_until("the run to be over", || {
            sup.get(&id).is_none_or(|p| p.completed_at.is_some())
        })
        .await;
        ids.push(id);
    }
    // The two oldest went, the configured process stays whatever the limit.
    assert!(sup.get(&ids[0]).is_none() && sup.get(&ids[1]).is_none());
    assert!(sup.get(&ids[2]).is_some() && sup.get(&ids[3]).is_some());
    assert!(sup.get("configured").is_some());
    let removed = &of_type(&bus, &ids[0], "process.removed")[0];
    assert_eq!(removed["reason"], "retention");
    assert_eq!(removed["state"], "completed");
}

#[tokio::test]
async fn removing_a_finished_process_is_an_event_and_a_running_one_is_refused() {
    let (sup, bus, _dir) = setup();
    let id = sup.create(runtime_spec("server", "sleep 100")).unwrap();
    sup.start(&id).await.unwrap();
    assert!(matches!(
        sup.remove(&id),
        Err(SupervisorError::InvalidState { .. })
    ));
    sup.stop(&id, true).await.unwrap();
    sup.remove(&id).unwrap();
    assert!(sup.get(&id).is_none());
    assert_eq!(
        of_type(&bus, &id, "process.removed")[0]["reason"],
        "requested"
    );
}

#[tokio::test]
async fn output_offsets_let_a_reader_resume_without_gaps_or_repeats() {
    let (sup, _bus, _dir) = setup();
    sup.add(spec("counter", "for i in 1 2 3 4 5; do echo $i; done"))
        .unwrap();
    sup.start("counter").await.unwrap();
    wait_state(&sup, "counter", ProcessState::Completed).await;
    let first = sup.output_after("counter", 0, 2).unwrap();
    let second = sup.output_after("counter", first.next_offset, 10).unwrap();
    let lines: Vec<String> = first
        .lines
        .iter()
        .chain(&second.lines)
        .map(|l| l.line.clone())
        .collect();
    assert_eq!(lines, ["1", "2", "3", "4", "5"]);
    assert_eq!(second.next_offset, 5);
    let files = sup.log_files("counter").unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        std::fs::read_to_string(&files[0]).unwrap(),
        "1\n2\n3\n4\n5\n"
    );
}

#[tokio::test]
async fn asked_restarts_of_a_running_process_count_back_off_and_are_refused_at_the_limit() {
    let (sup, bus, _dir) = setup();
    let mut s = spec("svc", "sleep 100");
    s.max_restarts = 2;
    s.backoff = Duration::from_millis(10);
    s.backoff_max = Duration::from_millis(40);
    sup.add(s).unwrap();
    sup.start("svc").await.unwrap();
    sup.restart("svc").await.unwrap();
    sup.restart("svc").await.unwrap();
    assert_eq!(sup.get("svc").unwrap().restarts, 2);
    let backoffs = of_type(&bus, "svc", "process.backoff");
    let attempts: Vec<u64> = backoffs
        .iter()
        .map(|b| b["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(
        attempts,
        [1, 2],
        "each asked restart is recorded in the window"
    );
    // The window is full: the third asked restart is refused before
    // anything is stopped; the process carries on.
    let pid = sup.get("svc").unwrap().pid;
    let err = sup.restart("svc").await.unwrap_err();
    assert!(matches!(err, SupervisorError::NotRestarted { .. }), "{err}");
    assert!(err.to_string().contains("restart limit"), "{err}");
    let info = sup.get("svc").unwrap();
    assert_eq!((info.state, info.pid), (ProcessState::Running, pid));
    let stops = of_type(&bus, "svc", "process.stopping");
    assert_eq!(stops.len(), 2, "only the two allowed restarts stopped it");
    assert!(stops.iter().all(|s| s["reason"] == "restart"), "{stops:?}");
    assert!(
        of_type(&bus, "svc", "process.gave_up").is_empty(),
        "a running process is not given up"
    );
    sup.stop("svc", true).await.unwrap();
    // An explicit start begins afresh.
    sup.start("svc").await.unwrap();
    assert_eq!(sup.get("svc").unwrap().restarts, 0);
    sup.stop("svc", true).await.unwrap();
}

#[tokio::test]
async fn an_asked_restart_of_a_finished_process_past_its_limit_ends_in_gave_up() {
    // A plugin restarting a `restart = "never"` process on each of its
    // failures: the process's own limit stops it as it stops a crash loop.
    let (sup, bus, _dir) = setup();
    let mut s = spec("job", "exit 3");
    s.max_restarts = 1;
    s.backoff = Duration::from_millis(10);
    sup.add(s).unwrap();
    sup.start("job").await.unwrap();
    wait_state(&sup, "job", ProcessState::Failed).await;
    sup.restart("job").await.unwrap();
    wait_state(&sup, "job", ProcessState::Failed).await;
    assert!(of_type(&bus, "job", "process.gave_up").is_empty());

    let err = sup.restart("job").await.unwrap_err();
    assert!(matches!(err, SupervisorError::NotRestarted { .. }), "{err}");
    assert!(err.to_string().contains("restart limit"), "{err}");
    let gave_up = of_type(&bus, "job", "process.gave_up");
    assert_eq!(gave_up.len(), 1, "{gave_up:?}");
    assert_eq!(gave_up[0]["restarts"], 1);
    assert_eq!(gave_up[0]["max_restarts"], 1);
    assert_eq!(gave_up[0]["state"], "failed");
    let info = sup.get("job").unwrap();
    assert_eq!((info.state, info.restarts), (ProcessState::Failed, 1));
    assert_eq!(of_type(&bus, "job", "process.failed").len(), 2);
}

#[tokio::test]
async fn a_plugins_start_of_a_finished_process_counts_as_a_restart_and_cannot_reset_the_limit() {
    let (sup, bus, _dir) = setup();
    let mut s = spec("job", "exit 3");
    s.max_restarts = 1;
    s.backoff = Duration::from_millis(10);
    sup.add(s).unwrap();
    // Pending: a counted start is a plain first start.
    sup.start_counted("job").await.unwrap();
    wait_state(&sup, "job", ProcessState::Failed).await;
    let err = sup.start_counted("job").await;
    assert!(err.is_ok(), "one restart is allowed: {err:?}");
    wait_state(&sup, "job", ProcessState::Failed).await;
    assert_eq!(sup.get("job").unwrap().restarts, 1, "counted");

    let err = sup.start_counted("job").await.unwrap_err();
    assert!(matches!(err, SupervisorError::NotRestarted { .. }), "{err}");
    assert_eq!(of_type(&bus, "job", "process.gave_up").len(), 1);
    // A person's start still begins afresh.
    sup.start("job").await.unwrap();
    assert_eq!(sup.get("job").unwrap().restarts, 0);
}

#[tokio::test]
async fn a_counted_start_of_a_running_process_is_refused_and_leaves_it_running() {
    let (sup, bus, _dir) = setup();
    sup.add(spec("svc", "sleep 100")).unwrap();
    sup.start("svc").await.unwrap();
    let pid = sup.get("svc").unwrap().pid;
    let err = sup.start_counted("svc").await.unwrap_err();
    assert!(matches!(err, SupervisorError::InvalidState { .. }), "{err}");
    let info = sup.get("svc").unwrap();
    assert_eq!((info.state, info.pid), (ProcessState::Running, pid));
    assert!(of_type(&bus, "svc", "process.stopping").is_empty());
    sup.stop("svc", true).await.unwrap();
}

#[tokio::test]
async fn restarting_a_finished_process_goes_through_the_backoff_too() {
    let (sup, bus, _dir) = setup();
    let mut s = spec("job", "true");
    s.backoff = Duration::from_millis(10);
    sup.add(s).unwrap();
    sup.start("job").await.unwrap();
    wait_state(&sup, "job", ProcessState::Completed).await;
    sup.restart("job").await.unwrap();
    wait_state(&sup, "job", ProcessState::Completed).await;
    assert_eq!(sup.get("job").unwrap().restarts, 1);
    let backoff = &of_type(&bus, "job", "process.backoff")[0];
    assert_eq!(
        (backoff["from"].as_str(), backoff["attempt"].as_u64()),
        (Some("completed"), Some(1))
    );
}

#[tokio::test]
async fn a_stop_during_an_asked_restart_wins() {
    let (sup, _bus, _dir) = setup();
    let mut s = spec("svc", "sleep 100");
    s.backoff = Duration::from_secs(3600);
    s.backoff_max = Duration::from_secs(3600);
    sup.add(s).unwrap();
    sup.start("svc").await.unwrap();
    let restarting = {
        let sup = sup.clone();
        tokio::spawn(async move { sup.restart("svc").await })
    };
    wait_state(&sup, "svc", ProcessState::Backoff).await;
    sup.stop("svc", false).await.unwrap();
    let err = restarting.await.unwrap().unwrap_err();
    assert!(matches!(err, SupervisorError::NotRestarted { .. }), "{err}");
    assert_eq!(sup.get("svc").unwrap().state, ProcessState::Cancelled);
}

#[tokio::test]
async fn each_run_knows_the_offset_of_its_first_output_line() {
    let (sup, _bus, _dir) = setup();
    let mut s = spec("twice", "echo a; echo b");
    s.restart = RestartMode::Always;
    s.max_restarts = 1;
    s.backoff = Duration::from_millis(10);
    sup.add(s).unwrap();
    sup.start("twice").await.unwrap();
    assert_eq!(sup.get("twice").unwrap().run_output_offset, 0);
    wait_until("the second run's lines", || {
        sup.output("twice", 10).unwrap().len() == 4
    })
    .await;
    // The second run starts after the first run's two lines, whatever the
    // lines' read times say (the first ones of a run can be read before its
    // start is recorded).
    let info = sup.get("twice").unwrap();
    assert_eq!(info.run_output_offset, 2);
    let page = sup
        .output_after("twice", info.run_output_offset, 10)
        .unwrap();
    let texts: Vec<String> = page.lines.into_iter().map(|l| l.line).collect();
    assert_eq!(texts, ["a", "b"]);
}
