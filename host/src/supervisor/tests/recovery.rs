//! Crash-only recovery through the verbs: a first supervisor runs real
//! children on a tokio runtime of its own, which is then dropped mid-run,
//! so its runners vanish without a word as when the host is killed (each
//! leader is killed as its handle drops, as the parent-death signal does;
//! what it started lives on in its group). A second supervisor on the same
//! journal recovers. Golden traces use the shared harness (`probes::trace`, through
//! `crashloop::trace` and `expect`).

use std::future::Future;
use std::time::Duration;

use super::crashloop::{expect, trace};
use super::*;

/// Runs `script` with a supervisor of `bus` on a runtime of its own, then
/// drops the runtime with every runner in it: the "host" is killed.
/// `namespaces` picks PID namespaces or the group fallback.
fn crashed_host<F>(
    bus: &Bus,
    dir: &std::path::Path,
    namespaces: bool,
    script: impl FnOnce(Supervisor) -> F + Send + 'static,
) where
    F: Future<Output = ()>,
{
    let first = bus.clone();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = SupervisorConfig::new(dir);
        config.resource_interval = None;
        config.pid_namespaces = namespaces;
        let sup = Supervisor::new(first, config);
        rt.block_on(script(sup));
        rt.shutdown_background();
    })
    .join()
    .expect("the first host's script");
    bus.flush().unwrap();
}

/// The next host on `bus`: a supervisor with `config` processes added, as
/// the runtime does before it recovers.
fn next_host(bus: &Bus, dir: &std::path::Path, config: &[ProcessSpec]) -> Supervisor {
    let mut c = SupervisorConfig::new(dir);
    c.resource_interval = None;
    let sup = Supervisor::new(bus.clone(), c);
    for spec in config {
        sup.add(spec.clone()).unwrap();
    }
    sup
}

/// The last sequence in the journal, as a new host finds it (everything
/// the last one handed over is committed).
fn head(bus: &Bus) -> u64 {
    bus.flush().unwrap();
    bus.head()
}

fn always(name: &str, command: &str) -> ProcessSpec {
    let mut s = spec(name, command);
    s.restart = RestartMode::Always;
    s
}

fn manual(name: &str, command: &str) -> ProcessSpec {
    let mut s = spec(name, command);
    s.autostart = false;
    s
}

fn pid_of(bus: &Bus, name: &str, run: usize) -> u32 {
    of_type(bus, name, "process.started")[run]["pid"]
        .as_u64()
        .unwrap() as u32
}

#[tokio::test]
async fn runs_under_way_when_the_host_died_are_interrupted_and_restarted_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    let config = [
        always("web", "sleep 1000"),
        manual("batch", "sleep 1000"),
        manual("idle", "sleep 1000"),
    ];
    let specs = config.clone();
    crashed_host(&bus, dir.path(), true, move |sup| async move {
        for s in specs {
            sup.add(s).unwrap();
        }
        sup.start("web").await.unwrap();
        sup.start("batch").await.unwrap();
    });
    let up_to = head(&bus);
    let sup = next_host(&bus, dir.path(), &config);
    let report = sup.recover(up_to).await.unwrap();
    assert_eq!(report.interrupted, ["batch", "web"]);
    assert_eq!(report.restarting, ["web"]);
    assert!(
        report.restored.is_empty(),
        "config processes are not restored: {report:?}"
    );
    assert_eq!(sup.get("batch").unwrap().state, ProcessState::Interrupted);
    assert_eq!(
        sup.get("batch").unwrap().pid,
        Some(pid_of(&bus, "batch", 0))
    );
    assert_eq!(sup.get("idle").unwrap().state, ProcessState::Pending);
    sup.start_recovered(&report).await;
    sup.start_autostart().await;
    assert_eq!(sup.get("web").unwrap().state, ProcessState::Running);
    assert_ne!(sup.get("web").unwrap().pid, Some(pid_of(&bus, "web", 0)));
    let before = ["starting pending->starting", "started starting->running"];
    let mut web: Vec<&str> = before.to_vec();
    web.extend([
        "interrupted running->interrupted",
        "starting interrupted->starting",
        "started starting->running",
    ]);
    assert_eq!(trace(&bus, "web"), expect("web", &web));
    let mut batch: Vec<&str> = before.to_vec();
    batch.push("interrupted running->interrupted");
    assert_eq!(trace(&bus, "batch"), expect("batch", &batch));
    assert!(trace(&bus, "idle").is_empty(), "idle never ran");
    let interrupted = &of_type(&bus, "web", "process.interrupted")[0];
    assert_eq!(
        interrupted["pid"].as_u64(),
        Some(u64::from(pid_of(&bus, "web", 0)))
    );
    assert_eq!(interrupted["last_event"], "process.started");
    sup.shutdown(true).await;
}

#[tokio::test]
async fn what_survives_of_an_interrupted_tree_is_killed_before_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    let config = [always("tree", "sleep 1000 & echo $!; wait")];
    let specs = config.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    crashed_host(&bus, dir.path(), false, move |sup| async move {
        for s in specs {
            sup.add(s).unwrap();
        }
        sup.start("tree").await.unwrap();
        tx.send(first_line_pid(&sup, "tree").await).unwrap();
    });
    let (sleeper, start) = rx.recv().unwrap();
    // The leader died with the host; its child lives on in the group.
    assert!(
        !vanished(sleeper, start),
        "the grandchild should outlive the leader"
    );
    let up_to = head(&bus);
    let sup = next_host(&bus, dir.path(), &config);
    let report = sup.recover(up_to).await.unwrap();
    assert_eq!(
        report.killed.get("tree"),
        Some(&vec![sleeper]),
        "{report:?}"
    );
    wait_until("the survivor to be gone", || vanished(sleeper, start)).await;
    let interrupted = &of_type(&bus, "tree", "process.interrupted")[0];
    assert_eq!(interrupted["killed"], serde_json::json!([sleeper]));
    sup.start_recovered(&report).await;
    assert_eq!(
        of_type(&bus, "tree", "process.started").len(),
        2,
        "one new run"
    );
    sup.shutdown(true).await;
}

#[tokio::test]
async fn runtime_processes_come_back_under_their_ids_and_removed_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    crashed_host(&bus, dir.path(), true, move |sup| async move {
        let mut server = always("x", "sleep 1000");
        server.kind = "server".into();
        let server = sup.create(server).unwrap();
        sup.start(&server).await.unwrap();
        let mut build = spec("x", "sleep 1000");
        build.kind = "build".into();
        let build = sup.create(build).unwrap();
        sup.start(&build).await.unwrap();
        let done = sup.create(spec("x", "true")).unwrap();
        sup.start(&done).await.unwrap();
        wait_state(&sup, &done, ProcessState::Completed).await;
        let gone = sup.create(spec("x", "true")).unwrap();
        sup.start(&gone).await.unwrap();
        wait_state(&sup, &gone, ProcessState::Completed).await;
        wait_until("the runner to end", || sup.remove(&gone).is_ok()).await;
        tx.send([server, build, done, gone]).unwrap();
    });
    let [server, build, done, gone] = rx.recv().unwrap();
    let up_to = head(&bus);
    let sup = next_host(&bus, dir.path(), &[]);
    let report = sup.recover(up_to).await.unwrap();
    let mut restored = vec![server.clone(), build.clone(), done.clone()];
    restored.sort();
    assert_eq!(report.restored, restored);
    assert_eq!(report.restarting, std::slice::from_ref(&server));
    assert!(sup.get(&gone).is_none(), "a removed process stays removed");
    let b = sup.get(&build).unwrap();
    assert_eq!(
        (b.state, b.origin, b.kind.as_str()),
        (ProcessState::Interrupted, Origin::Runtime, "build")
    );
    assert_eq!(sup.get(&done).unwrap().state, ProcessState::Completed);
    assert_eq!(sup.get(&done).unwrap().exit_code, Some(0));
    sup.start_recovered(&report).await;
    let s = sup.get(&server).unwrap();
    assert_eq!(
        (s.state, s.kind.as_str()),
        (ProcessState::Running, "server")
    );
    assert_eq!(
        trace(&bus, &server),
        expect(
            &server,
            &[
                "starting pending->starting",
                "started starting->running",
                "interrupted running->interrupted",
                "starting interrupted->starting",
                "started starting->running",
            ]
        )
    );
    assert_eq!(
        trace(&bus, &build),
        expect(
            &build,
            &[
                "starting pending->starting",
                "started starting->running",
                "interrupted running->interrupted",
            ]
        )
    );
    sup.shutdown(true).await;
}

#[tokio::test]
async fn a_host_killed_again_during_recovery_neither_loses_nor_repeats_anything() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    let config = [always("web", "sleep 1000")];
    let specs = config.clone();
    crashed_host(&bus, dir.path(), true, move |sup| async move {
        for s in specs {
            sup.add(s).unwrap();
        }
        sup.start("web").await.unwrap();
    });
    // Host 2 dies after adding its config, before it recovered anything.
    drop(next_host(&bus, dir.path(), &config));
    // Host 3 dies after recovering, before it restarted anything.
    let up_to = head(&bus);
    let sup = next_host(&bus, dir.path(), &config);
    assert_eq!(sup.recover(up_to).await.unwrap().interrupted, ["web"]);
    drop(sup);
    // Host 4 finds the run already ended, and restarts it once.
    let up_to = head(&bus);
    let sup = next_host(&bus, dir.path(), &config);
    let report = sup.recover(up_to).await.unwrap();
    assert!(report.interrupted.is_empty(), "{report:?}");
    assert_eq!(report.restarting, ["web"]);
    assert_eq!(report.processes[0].action, "restarting");
    sup.start_recovered(&report).await;
    sup.start_autostart().await;
    assert_eq!(
        trace(&bus, "web"),
        expect(
            "web",
            &[
                "starting pending->starting",
                "started starting->running",
                "interrupted running->interrupted",
                "starting interrupted->starting",
                "started starting->running",
            ]
        )
    );
    sup.shutdown(true).await;
}

#[tokio::test]
async fn a_run_whose_stop_was_asked_is_interrupted_and_not_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    crashed_host(&bus, dir.path(), false, move |sup| async move {
        let mut stubborn = always("x", "trap '' TERM; sleep 1000 & echo $!; wait");
        stubborn.kind = "server".into();
        stubborn.stop_timeout = Duration::from_secs(300);
        let id = sup.create(stubborn).unwrap();
        sup.start(&id).await.unwrap();
        let sleeper = first_line_pid(&sup, &id).await;
        let stopping = {
            let (sup, id) = (sup.clone(), id.clone());
            tokio::spawn(async move { sup.stop(&id, false).await })
        };
        wait_state(&sup, &id, ProcessState::Stopping).await;
        tx.send((id, sleeper)).unwrap();
        drop(stopping);
    });
    let (id, (sleeper, start)) = rx.recv().unwrap();
    let up_to = head(&bus);
    let sup = next_host(&bus, dir.path(), &[]);
    let report = sup.recover(up_to).await.unwrap();
    assert_eq!(report.interrupted, std::slice::from_ref(&id));
    assert!(report.restarting.is_empty(), "{report:?}");
    assert!(report.killed[&id].contains(&sleeper), "{report:?}");
    wait_until("the stubborn survivor to go", || vanished(sleeper, start)).await;
    assert_eq!(sup.get(&id).unwrap().state, ProcessState::Interrupted);
    assert_eq!(
        trace(&bus, &id)[2..],
        expect(
            &id,
            &[
                "stopping running->stopping",
                "interrupted stopping->interrupted"
            ]
        )
    );
    assert_eq!(
        of_type(&bus, &id, "process.interrupted")[0]["stop_reason"],
        "requested"
    );
}

#[tokio::test]
async fn after_a_clean_stop_nothing_is_interrupted_and_autostart_alone_starts() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    let config = [always("web", "sleep 1000"), manual("batch", "sleep 1000")];
    let specs = config.clone();
    crashed_host(&bus, dir.path(), true, move |sup| async move {
        for s in specs {
            sup.add(s).unwrap();
        }
        sup.start("web").await.unwrap();
        sup.start("batch").await.unwrap();
        sup.shutdown(false).await;
    });
    let up_to = head(&bus);
    let sup = next_host(&bus, dir.path(), &config);
    let report = sup.recover(up_to).await.unwrap();
    assert!(report.is_empty(), "{report:?}");
    sup.start_recovered(&report).await;
    sup.start_autostart().await;
    assert_eq!(sup.get("web").unwrap().state, ProcessState::Running);
    assert_eq!(sup.get("batch").unwrap().state, ProcessState::Pending);
    assert!(of_type(&bus, "web", "process.interrupted").is_empty());
    sup.shutdown(true).await;
}
