//! Dependency scenarios as golden traces: chains, a migration gate,
//! dependencies that can never be ready, restarts and readiness flaps
//! waited through, a stop while waiting, and the dependants-first stop.

use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_healthy_dependencies_starts_one_after_another() {
    let (sup, bus, _dir) = setup();
    // Added dependants first: the order of the table must not matter.
    let mut a = spec("a", "echo up; exec sleep 60");
    depends(&mut a, &[("b", Condition::Healthy)]);
    a.readiness_probe = log_ready("^up$");
    let mut b = spec("b", "sleep 0.2; echo up; exec sleep 60");
    depends(&mut b, &[("c", Condition::Healthy)]);
    b.readiness_probe = log_ready("^up$");
    let mut c = spec("c", "sleep 0.2; echo up; exec sleep 60");
    c.readiness_probe = log_ready("^up$");
    for s in [a, b, c] {
        sup.add(s).unwrap();
    }
    sup.start_autostart().await;
    wait_ready(&sup, "a", true).await;
    assert_trace(
        trace_of(&bus, &["a", "b", "c"], &["started", "ready"]),
        &[
            "c: started starting→running",
            "c: ready",
            "b: started starting→running",
            "b: ready",
            "a: started starting→running",
            "a: ready",
        ],
    );
    assert_trace(
        trace(&bus, &["a"]),
        &[
            "a: starting pending→starting",
            "a: started starting→running",
            "a: ready",
        ],
    );
    sup.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_starts_only_after_its_migration_completed_successfully() {
    let (sup, bus, _dir) = setup();
    let mut server = spec("server", "exec sleep 60");
    depends(
        &mut server,
        &[("migrate", Condition::CompletedSuccessfully)],
    );
    sup.add(server).unwrap();
    sup.add(spec("migrate", "sleep 0.3")).unwrap();
    sup.start_autostart().await;
    wait_state(&sup, "server", ProcessState::Running).await;
    assert_trace(
        trace(&bus, &["migrate", "server"])
            .into_iter()
            .filter(|s| !s.starts_with("server: starting"))
            .collect(),
        &[
            "migrate: starting pending→starting",
            "migrate: started starting→running",
            "migrate: exited running→completed",
            "migrate: completed running→completed",
            "server: started starting→running",
        ],
    );
    sup.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_that_fails_for_good_fails_its_dependants_with_the_reason() {
    let (sup, bus, _dir) = setup();
    let mut db = spec("db", "exit 3");
    db.readiness_probe = log_ready("ready");
    let mut web = spec("web", "exec sleep 60");
    depends(&mut web, &[("db", Condition::Healthy)]);
    let mut api = spec("api", "exec sleep 60");
    depends(&mut api, &["web"].map(|n| (n, Condition::Started)));
    for s in [db, web, api] {
        sup.add(s).unwrap();
    }
    // Starting the last one starts what it needs, and learns why it cannot run.
    let err = sup.start("api").await.unwrap_err();
    assert!(err.to_string().contains("`web` ended failed"), "{err}");
    wait_state(&sup, "web", ProcessState::Failed).await;
    assert_trace(
        trace(&bus, &["web"]),
        &[
            "web: starting pending→starting",
            "web: failed starting→failed",
        ],
    );
    assert_trace(
        trace(&bus, &["api"]),
        &[
            "api: starting pending→starting",
            "api: failed starting→failed",
        ],
    );
    let reason = failed_reason(&bus, "web");
    assert!(
        reason.contains("`db` ended failed (exit code 3) and will not run again"),
        "{reason}"
    );
    assert_eq!(
        of_type(&bus, "web", "process.failed")[0]["dependency"],
        "db"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_that_gave_up_or_completed_can_never_be_healthy() {
    let (sup, bus, _dir) = setup();
    let mut flaky = spec("flaky", "exit 1");
    flaky.restart = RestartMode::OnFailure;
    flaky.max_restarts = 1;
    flaky.backoff = Duration::from_millis(10);
    flaky.readiness_probe = log_ready("ready");
    let mut brief = spec("brief", "true");
    brief.readiness_probe = log_ready("ready");
    let mut web = spec("web", "exec sleep 60");
    depends(&mut web, &[("flaky", Condition::Healthy)]);
    let mut site = spec("site", "exec sleep 60");
    depends(&mut site, &[("brief", Condition::Healthy)]);
    for s in [flaky, brief, web, site] {
        sup.add(s).unwrap();
    }
    sup.start_autostart().await;
    wait_state(&sup, "web", ProcessState::Failed).await;
    wait_state(&sup, "site", ProcessState::Failed).await;
    // The dependant waited through the restart, and failed only at the end.
    assert_trace(
        trace_of(&bus, &["flaky", "web"], &["started", "gave_up", "failed"]),
        &[
            "flaky: started starting→running",
            "flaky: failed running→failed",
            "flaky: started starting→running",
            "flaky: failed running→failed",
            "flaky: gave_up",
            "web: failed starting→failed",
        ],
    );
    let reason = failed_reason(&bus, "site");
    assert!(
        reason.contains("`brief` ended completed (exit code 0) and will not run again, so it can never be healthy"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependants_wait_through_a_dependencys_restart() {
    let (sup, bus, dir) = setup();
    // The first run fails before it is ready; the second becomes ready.
    let marker = dir.path().join("ran-once");
    let mut db = spec(
        "db",
        &format!(
            "if [ -f {m} ]; then echo ready; exec sleep 60; else touch {m}; exit 1; fi",
            m = marker.display()
        ),
    );
    db.restart = RestartMode::OnFailure;
    db.backoff = Duration::from_millis(10);
    db.readiness_probe = log_ready("^ready$");
    let mut web = spec("web", "exec sleep 60");
    depends(&mut web, &[("db", Condition::Healthy)]);
    sup.add(db).unwrap();
    sup.add(web).unwrap();
    sup.start_autostart().await;
    wait_state(&sup, "web", ProcessState::Running).await;
    assert_trace(
        trace_of(&bus, &["db", "web"], &["started", "failed", "ready"]),
        &[
            "db: started starting→running",
            "db: failed running→failed",
            "db: started starting→running",
            "db: ready",
            "web: started starting→running",
        ],
    );
    sup.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_lost_and_regained_neither_restarts_nor_skips_the_dependant() {
    let (sup, bus, dir) = setup();
    let flag = dir.path().join("healthy");
    std::fs::write(&flag, "").unwrap();
    let mut db = spec("db", "exec sleep 60");
    db.readiness_probe = Some(quick(
        ProbeCheck::Exec(format!("test -f {}", flag.display())),
        2,
    ));
    let mut web = spec("web", "exec sleep 60");
    depends(&mut web, &[("db", Condition::Healthy)]);
    sup.add(db).unwrap();
    sup.add(web).unwrap();
    sup.start_autostart().await;
    wait_state(&sup, "web", ProcessState::Running).await;
    std::fs::remove_file(&flag).unwrap();
    wait_ready(&sup, "db", false).await;
    std::fs::write(&flag, "").unwrap();
    wait_ready(&sup, "db", true).await;
    assert_trace(
        trace(&bus, &["db"]),
        &[
            "db: starting pending→starting",
            "db: started starting→running",
            "db: ready",
            "db: unready",
            "db: ready",
        ],
    );
    assert_trace(
        trace(&bus, &["web"]),
        &[
            "web: starting pending→starting",
            "web: started starting→running",
        ],
    );
    let unready = of_type(&bus, "db", "process.unready");
    assert_eq!(unready[0]["failures"], 2);
    assert!(unready[0]["reason"].as_str().unwrap().contains("exited"));
    sup.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_waiting_for_a_dependency_cancels_the_start() {
    let (sup, bus, _dir) = setup();
    let mut db = spec("db", "exec sleep 60");
    db.readiness_probe = Some(quick(ProbeCheck::Exec("false".into()), 1));
    let mut web = spec("web", "exec sleep 60");
    depends(&mut web, &[("db", Condition::Healthy)]);
    sup.add(db).unwrap();
    sup.add(web).unwrap();
    let starter = {
        let sup = sup.clone();
        tokio::spawn(async move { sup.start("web").await })
    };
    // The dependant's start started its dependency, which never gets ready.
    wait_state(&sup, "db", ProcessState::Running).await;
    wait_state(&sup, "web", ProcessState::Starting).await;
    sup.stop("web", false).await.unwrap();
    let err = starter.await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("waiting for its dependencies"),
        "{err}"
    );
    assert_trace(
        trace(&bus, &["web"]),
        &[
            "web: starting pending→starting",
            "web: cancelled starting→cancelled",
        ],
    );
    assert_eq!(sup.get("db").unwrap().state, ProcessState::Running);
    sup.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_stops_dependants_before_their_dependencies() {
    let (sup, bus, _dir) = setup();
    let mut api = spec("api", "exec sleep 60");
    depends(&mut api, &[("db", Condition::Started)]);
    let mut web = spec("web", "exec sleep 60");
    depends(&mut web, &[("api", Condition::Started)]);
    for s in [spec("db", "exec sleep 60"), api, web] {
        sup.add(s).unwrap();
    }
    sup.start_autostart().await;
    wait_state(&sup, "web", ProcessState::Running).await;
    sup.shutdown(false).await;
    assert_trace(
        trace_of(&bus, &["db", "api", "web"], &["stopping", "cancelled"]),
        &[
            "web: stopping running→stopping",
            "web: cancelled stopping→cancelled",
            "api: stopping running→stopping",
            "api: cancelled stopping→cancelled",
            "db: stopping running→stopping",
            "db: cancelled stopping→cancelled",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_readiness_probe_gates_a_dependant_on_a_real_server() {
    let (sup, bus, _dir) = setup();
    let port = free_port();
    // The server listens only after a while: the probe fails first.
    let mut web = spec(
        "web",
        &format!("sleep 0.3; exec python3 -m http.server {port} --bind 127.0.0.1"),
    );
    web.readiness_probe = Some(quick(
        ProbeCheck::HttpGet(format!("http://127.0.0.1:{port}/")),
        1,
    ));
    let mut client = spec("client", "exec sleep 60");
    depends(&mut client, &[("web", Condition::Healthy)]);
    sup.add(web).unwrap();
    sup.add(client).unwrap();
    sup.start_autostart().await;
    wait_state(&sup, "client", ProcessState::Running).await;
    assert_trace(
        trace_of(&bus, &["web", "client"], &["started", "ready"]),
        &[
            "web: started starting→running",
            "web: ready",
            "client: started starting→running",
        ],
    );
    assert_eq!(
        of_type(&bus, "web", "process.ready")[0]["probe"],
        "http_get"
    );
    assert_eq!(sup.get("web").unwrap().ready, Some(true));
    assert_eq!(sup.get("client").unwrap().ready, None);
    sup.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_start_answers_when_the_wait_begins_and_says_what_it_waits_for() {
    let (sup, bus, dir) = setup();
    let flag = dir.path().join("healthy");
    let mut db = spec("db", "exec sleep 60");
    db.readiness_probe = Some(quick(
        ProbeCheck::Exec(format!("test -f {}", flag.display())),
        1,
    ));
    let mut web = spec("web", "exec sleep 60");
    depends(&mut web, &[("db", Condition::Healthy)]);
    let mut api = spec("api", "exec sleep 60");
    depends(&mut api, &[("gone", Condition::CompletedSuccessfully)]);
    let gone = spec("gone", "exit 4");
    for s in [db, web, api, gone] {
        sup.add(s).unwrap();
    }
    // db runs but is not ready, and may never be: a plain start would wait
    // for as long as that takes. The prompt one answers once web waits.
    tokio::time::timeout(Duration::from_secs(10), sup.start_promptly("web"))
        .await
        .expect("start_promptly answered while the dependency was not ready")
        .unwrap();
    let web = sup.get("web").unwrap();
    assert_eq!(web.state, ProcessState::Starting);
    assert_eq!(web.waiting_for, ["db"]);
    wait_state(&sup, "db", ProcessState::Running).await;
    std::fs::write(&flag, "").unwrap();
    wait_state(&sup, "web", ProcessState::Running).await;
    assert!(sup.get("web").unwrap().waiting_for.is_empty());
    // A dependency that fails for good: the answer came before, the
    // failure with its reason is in the process's story.
    sup.start_promptly("api").await.unwrap();
    wait_state(&sup, "api", ProcessState::Failed).await;
    assert!(sup.get("api").unwrap().waiting_for.is_empty());
    assert!(
        failed_reason(&bus, "api").contains("`gone` ended failed (exit code 4)"),
        "{}",
        failed_reason(&bus, "api")
    );
    // Nothing to wait for: it answers once spawned, as a plain start.
    sup.stop("web", false).await.unwrap();
    sup.start_promptly("web").await.unwrap();
    assert_eq!(sup.get("web").unwrap().state, ProcessState::Running);
    sup.shutdown(false).await;
}
