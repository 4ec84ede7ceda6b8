//! Stopping and pausing whole process trees, including descendants that
//! left the group and processes a child leaves behind.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn stop_kills_the_whole_tree_including_background_children() {
    Supervisor::become_subreaper().unwrap();
    let (sup, bus, _dir) = setup();
    sup.add(spec("tree", &format!("{} & sleep 100", sleeper(100, ""))))
        .unwrap();
    sup.start("tree").await.unwrap();
    let (grandchild, start) = first_line_pid(&sup, "tree").await;
    sup.stop("tree", false).await.unwrap();
    assert!(
        vanished(grandchild, start),
        "grandchild {grandchild} survived the stop"
    );
    assert_eq!(sup.get("tree").unwrap().state, ProcessState::Cancelled);
    assert_eq!(
        lifecycle(&bus, "tree")[3..],
        ["process.stopping", "process.exited", "process.cancelled"]
    );
}

#[tokio::test]
async fn stop_reaches_descendants_that_left_the_group() {
    Supervisor::become_subreaper().unwrap();
    let (sup, _bus, _dir) = setup();
    sup.add(spec(
        "escape",
        &format!("setsid {} & sleep 100", sleeper(100, "")),
    ))
    .unwrap();
    sup.start("escape").await.unwrap();
    let (escapee, start) = first_line_pid(&sup, "escape").await;
    let leader = sup.get("escape").unwrap().pid.unwrap() as i32;
    wait_until("setsid to take effect", || {
        read_stat(escapee).is_some_and(|p| p.pgid != leader)
    })
    .await;
    sup.stop("escape", false).await.unwrap();
    assert!(
        vanished(escapee, start),
        "escaped process {escapee} survived the stop"
    );
}

#[tokio::test]
async fn what_a_process_leaves_behind_when_it_exits_is_cleaned_up() {
    Supervisor::become_subreaper().unwrap();
    let (sup, _bus, dir) = setup();
    // The leader waits for a file so the test can note the grandchild first.
    let go = dir.path().join("go");
    let command = format!(
        "{} & while [ ! -e '{}' ]; do sleep 0.01; done",
        sleeper(100, ">/dev/null"),
        go.display()
    );
    sup.add(spec("leaver", &command)).unwrap();
    sup.start("leaver").await.unwrap();
    let (grandchild, start) = first_line_pid(&sup, "leaver").await;
    std::fs::write(&go, "").unwrap();
    wait_state(&sup, "leaver", ProcessState::Completed).await;
    wait_until("the leftover to be reaped", || vanished(grandchild, start)).await;
}

#[tokio::test]
async fn a_child_ignoring_the_stop_signal_is_killed_after_the_grace() {
    let (sup, bus, _dir) = setup();
    let mut s = spec(
        "stubborn",
        "trap '' TERM; echo ready; while :; do sleep 1; done",
    );
    s.stop_timeout = Duration::from_millis(200);
    sup.add(s).unwrap();
    sup.start("stubborn").await.unwrap();
    wait_until("ready", || !sup.output("stubborn", 1).unwrap().is_empty()).await;
    sup.stop("stubborn", false).await.unwrap();
    let info = sup.get("stubborn").unwrap();
    assert_eq!(info.state, ProcessState::Cancelled);
    assert_eq!(info.signal, Some(9), "the leader died of SIGKILL");
    assert_eq!(of_type(&bus, "stubborn", "process.exited")[0]["signal"], 9);
}

#[tokio::test]
async fn a_forced_stop_kills_at_once() {
    let (sup, bus, _dir) = setup();
    let mut s = spec("forced", "trap '' TERM; while :; do sleep 1; done");
    s.stop_timeout = Duration::from_secs(3600);
    sup.add(s).unwrap();
    sup.start("forced").await.unwrap();
    sup.stop("forced", true).await.unwrap();
    assert_eq!(sup.get("forced").unwrap().signal, Some(9));
    let stopping = &of_type(&bus, "forced", "process.stopping")[0];
    assert_eq!(
        (stopping["force"].as_bool(), stopping["signal"].as_str()),
        (Some(true), Some("SIGKILL"))
    );
}

// Multi-threaded, as the host runs: the /proc walk of pause and resume
// then runs in `block_in_place`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_signal_the_group_and_change_state() {
    let (sup, bus, _dir) = setup();
    // Once the child's pid is printed the leader only waits, so the pause
    // cannot land inside a fork. A shell looping over foreground commands
    // would not do: dash runs them with vfork, and a SIGSTOP that stops the
    // child before its exec leaves the parent blocked in vfork (`D`, never
    // `T`) until the resume; frozen all the same, but not visibly stopped.
    sup.add(spec("nap", &format!("{} & wait", sleeper(100, ""))))
        .unwrap();
    sup.start("nap").await.unwrap();
    let leader = sup.get("nap").unwrap().pid.unwrap() as i32;
    let (child, _) = first_line_pid(&sup, "nap").await;
    let stopped = |pid| read_stat(pid).is_some_and(|p| p.state == 'T');
    let running = |pid| read_stat(pid).is_some_and(|p| p.state != 'T' && !p.is_dead());
    assert!(matches!(
        sup.resume("nap"),
        Err(SupervisorError::InvalidState { .. })
    ));
    sup.pause("nap").unwrap();
    assert_eq!(sup.get("nap").unwrap().state, ProcessState::Paused);
    wait_until("the leader and its child to be stopped", || {
        stopped(leader) && stopped(child)
    })
    .await;
    assert!(matches!(
        sup.pause("nap"),
        Err(SupervisorError::InvalidState { .. })
    ));
    sup.resume("nap").unwrap();
    assert_eq!(sup.get("nap").unwrap().state, ProcessState::Running);
    wait_until("the leader and its child to run again", || {
        running(leader) && running(child)
    })
    .await;
    sup.pause("nap").unwrap();
    // A paused tree is continued so that it can act on the stop signal.
    sup.stop("nap", false).await.unwrap();
    let info = sup.get("nap").unwrap();
    assert_eq!(info.state, ProcessState::Cancelled);
    assert_eq!(info.signal, Some(15));
    let paused = &of_type(&bus, "nap", "process.paused")[0];
    assert_eq!(
        (paused["from"].as_str(), paused["to"].as_str()),
        (Some("running"), Some("paused"))
    );
    assert_eq!(of_type(&bus, "nap", "process.resumed").len(), 1);
}
