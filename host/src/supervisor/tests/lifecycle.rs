//! Lifecycle through the verbs: completion, failure and restart policy,
//! timeouts, spawn errors, refusals, status reports, restart and shutdown.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn a_process_that_exits_zero_completes_with_events_in_order() {
    let (sup, bus, _dir) = setup();
    sup.add(spec("ok", "echo hello")).unwrap();
    assert_eq!(sup.get("ok").unwrap().state, ProcessState::Pending);
    sup.start("ok").await.unwrap();
    wait_state(&sup, "ok", ProcessState::Completed).await;
    assert_eq!(
        lifecycle(&bus, "ok"),
        [
            "process.created",
            "process.starting",
            "process.started",
            "process.exited",
            "process.completed"
        ]
    );
    let all = events(&bus, "ok");
    let output_at = all.iter().position(|e| e.ty == "process.output").unwrap();
    let exited_at = all.iter().position(|e| e.ty == "process.exited").unwrap();
    assert!(output_at < exited_at, "output is published before the exit");
    let exited = &of_type(&bus, "ok", "process.exited")[0];
    assert_eq!(
        (exited["from"].as_str(), exited["to"].as_str()),
        (Some("running"), Some("completed"))
    );
    assert_eq!(exited["exit_code"], 0);
    let started = &of_type(&bus, "ok", "process.started")[0];
    let info = sup.get("ok").unwrap();
    assert_eq!(started["pid"].as_u64(), info.pid.map(u64::from));
    assert_eq!(info.exit_code, Some(0));
    assert!(all.iter().all(|e| e.subject.as_deref() == Some("ok")));
}

#[tokio::test]
async fn a_failing_process_restarts_with_backoff_then_gives_up() {
    let (sup, bus, _dir) = setup();
    let mut s = spec("flaky", "exit 3");
    s.restart = RestartMode::OnFailure;
    s.max_restarts = 2;
    s.backoff = Duration::from_millis(1);
    s.backoff_max = Duration::from_millis(4);
    sup.add(s).unwrap();
    sup.start("flaky").await.unwrap();
    wait_until("gave_up", || {
        !of_type(&bus, "flaky", "process.gave_up").is_empty()
    })
    .await;
    wait_state(&sup, "flaky", ProcessState::Failed).await;
    assert_eq!(of_type(&bus, "flaky", "process.started").len(), 3);
    let attempts: Vec<_> = of_type(&bus, "flaky", "process.backoff")
        .iter()
        .map(|d| d["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2]);
    let failed = of_type(&bus, "flaky", "process.failed");
    assert_eq!(failed.len(), 3);
    assert_eq!(failed[0]["exit_code"], 3);
    assert_eq!(failed[0]["reason"], "exited with code 3");
    let gave_up = &of_type(&bus, "flaky", "process.gave_up")[0];
    assert_eq!(gave_up["restarts"], 2);
    assert_eq!(gave_up["window_ms"], 60_000);
    assert_eq!(sup.get("flaky").unwrap().restarts, 2);
    // The last event is the give-up; nothing restarts afterwards.
    assert_eq!(
        lifecycle(&bus, "flaky").last().map(String::as_str),
        Some("process.gave_up")
    );
}

#[tokio::test]
async fn a_process_past_its_timeout_is_stopped_as_timeout() {
    let (sup, bus, _dir) = setup();
    let mut s = spec("slow", "sleep 100");
    s.timeout = Some(Duration::from_millis(50));
    sup.add(s).unwrap();
    sup.start("slow").await.unwrap();
    wait_state(&sup, "slow", ProcessState::Timeout).await;
    let stopping = &of_type(&bus, "slow", "process.stopping")[0];
    assert_eq!(stopping["reason"], "timeout");
    assert_eq!(stopping["signal"], "SIGTERM");
    assert_eq!(
        of_type(&bus, "slow", "process.timeout")[0]["timeout_ms"],
        50
    );
    assert_eq!(
        lifecycle(&bus, "slow")[3..],
        ["process.stopping", "process.exited", "process.timeout"]
    );
}

#[tokio::test]
async fn a_program_that_cannot_be_spawned_fails_with_an_event() {
    let (sup, bus, _dir) = setup();
    let mut s = spec("ghost", "/nonexistent/program");
    s.args = Some(vec![]);
    s.restart = RestartMode::Always;
    sup.add(s).unwrap();
    let err = sup.start("ghost").await.unwrap_err();
    assert!(matches!(err, SupervisorError::Spawn { .. }), "{err}");
    wait_state(&sup, "ghost", ProcessState::Failed).await;
    let failed = &of_type(&bus, "ghost", "process.failed")[0];
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("could not start"),
        "{failed}"
    );
    assert!(
        of_type(&bus, "ghost", "process.backoff").is_empty(),
        "an explicit start is not retried"
    );
}

#[tokio::test]
async fn verbs_reject_unknown_names_duplicates_and_wrong_states() {
    let (sup, _bus, _dir) = setup();
    sup.add(spec("one", "sleep 100")).unwrap();
    assert!(matches!(
        sup.add(spec("one", "true")),
        Err(SupervisorError::AlreadyExists { .. })
    ));
    assert!(matches!(
        sup.add(spec("bad name", "true")),
        Err(SupervisorError::InvalidSpec { .. })
    ));
    assert!(matches!(
        sup.start("nope").await,
        Err(SupervisorError::UnknownProcess { .. })
    ));
    assert!(matches!(
        sup.stop("one", false).await,
        Err(SupervisorError::InvalidState { .. })
    ));
    assert!(matches!(
        sup.pause("one"),
        Err(SupervisorError::InvalidState { .. })
    ));
    sup.start("one").await.unwrap();
    let err = sup.start("one").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot start process `one` while it is running"
    );
    assert!(matches!(
        sup.remove("one"),
        Err(SupervisorError::InvalidState { .. })
    ));
    sup.stop("one", true).await.unwrap();
    assert_eq!(sup.remove("one").unwrap().command, "sleep 100");
    assert!(sup.get("one").is_none());
}

#[tokio::test]
async fn a_status_update_is_stored_and_published_without_touching_the_lifecycle() {
    let (sup, bus, _dir) = setup();
    sup.add(spec("job", "true")).unwrap();
    let update = StatusUpdate {
        state: Some(ProcessState::Running),
        progress: Some(0.5),
        message: Some("halfway".into()),
    };
    sup.set_status("job", update, None).unwrap();
    let info = sup.get("job").unwrap();
    assert_eq!(info.state, ProcessState::Pending);
    assert_eq!(info.reported_state, Some(ProcessState::Running));
    assert_eq!(
        (info.progress, info.message.as_deref()),
        (Some(0.5), Some("halfway"))
    );
    let status = &of_type(&bus, "job", "process.status")[0];
    assert_eq!(
        (status["state"].as_str(), status["progress"].as_f64()),
        (Some("running"), Some(0.5))
    );
    let bad = StatusUpdate {
        progress: Some(f32::NAN),
        ..Default::default()
    };
    assert!(matches!(
        sup.set_status("job", bad, None),
        Err(SupervisorError::InvalidStatus { .. })
    ));
}

#[tokio::test]
async fn stopping_during_backoff_cancels_the_restart() {
    let (sup, bus, _dir) = setup();
    let mut s = spec("later", "exit 1");
    s.restart = RestartMode::Always;
    s.backoff = Duration::from_secs(3600);
    s.backoff_max = Duration::from_secs(3600);
    sup.add(s).unwrap();
    sup.start("later").await.unwrap();
    wait_state(&sup, "later", ProcessState::Backoff).await;
    sup.stop("later", false).await.unwrap();
    assert_eq!(sup.get("later").unwrap().state, ProcessState::Cancelled);
    let cancelled = &of_type(&bus, "later", "process.cancelled")[0];
    assert_eq!(cancelled["from"], "backoff");
}

#[tokio::test]
async fn restart_stops_and_starts_again() {
    let (sup, bus, _dir) = setup();
    sup.add(spec("svc", "sleep 100")).unwrap();
    sup.start("svc").await.unwrap();
    let first = sup.get("svc").unwrap().pid;
    sup.restart("svc").await.unwrap();
    let info = sup.get("svc").unwrap();
    assert_eq!(info.state, ProcessState::Running);
    assert_ne!(info.pid, first);
    assert_eq!(of_type(&bus, "svc", "process.cancelled").len(), 1);
    sup.stop("svc", true).await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_everything_and_refuses_new_starts() {
    let (sup, _bus, _dir) = setup();
    for name in ["a", "b"] {
        sup.add(spec(name, "sleep 100")).unwrap();
    }
    let mut lazy = spec("c", "sleep 100");
    lazy.autostart = false;
    sup.add(lazy).unwrap();
    sup.start_autostart().await;
    assert_eq!(sup.get("c").unwrap().state, ProcessState::Pending);
    sup.shutdown(false).await;
    for name in ["a", "b"] {
        assert_eq!(sup.get(name).unwrap().state, ProcessState::Cancelled);
    }
    assert!(matches!(
        sup.start("c").await,
        Err(SupervisorError::ShuttingDown { .. })
    ));
}
