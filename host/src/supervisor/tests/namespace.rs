//! PID namespaces (issue 8): each process runs as PID 2 of a namespace of
//! its own whose init is ours; stopping it, or its exit, ends the whole
//! namespace, `setsid`'d and double-forked descendants included; the host
//! shows real pids; and the fallback without namespaces still works.
//!
//! These need a host that may make namespaces (root here); where it may
//! not, the namespace tests say so and check the fallback instead.

use super::*;

/// Whether this test process can make PID namespaces (root can).
fn namespaces_possible() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The tree: a `setsid`'d grandchild, a double-forked one and a
/// foreground child, each printing its real pid first.
fn three_descendants() -> String {
    format!(
        "setsid {} & ({} &); {}",
        sleeper(300, ""),
        sleeper(301, ""),
        sleeper(302, "")
    )
}

/// The pids (with start times) of the first `n` lines of `name`'s output.
async fn printed(sup: &Supervisor, name: &str, n: usize) -> Vec<(i32, u64)> {
    wait_until("the pids to be printed", || {
        sup.output(name, n).unwrap().len() >= n
    })
    .await;
    sup.output(name, n)
        .unwrap()
        .iter()
        .map(|l| {
            let pid: i32 = l.line.trim().parse().unwrap();
            let start = read_stat(pid).expect("a printed pid runs").start_time;
            (pid, start)
        })
        .collect()
}

/// The last field of `NSpid` in `/proc/<pid>/status`: the pid the process
/// sees for itself.
fn inner_pid(pid: u32) -> i32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    line.split_whitespace().last().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_process_is_pid_2_of_a_namespace_of_its_own_and_the_host_shows_its_real_pid() {
    let (sup, _bus, _dir) = setup();
    assert_eq!(sup.pid_namespaces().unwrap(), namespaces_possible());
    sup.add(spec("me", "echo $$; exec sleep 100")).unwrap();
    sup.start("me").await.unwrap();
    let pid = sup.get("me").unwrap().pid.unwrap();
    wait_until("the pid line", || !sup.output("me", 1).unwrap().is_empty()).await;
    let seen: i32 = sup.output("me", 1).unwrap()[0].line.trim().parse().unwrap();
    if namespaces_possible() {
        assert_eq!(seen, 2, "the command is PID 2, after our init");
        assert_eq!(inner_pid(pid), 2, "the host's pid {pid} names that process");
    } else {
        assert_eq!(seen, pid as i32);
    }
    sup.stop("me", false).await.unwrap();
    assert_eq!(sup.get("me").unwrap().signal, Some(15));
}

#[tokio::test]
async fn without_namespaces_a_process_sees_its_real_pid() {
    let (sup, _bus, _dir) = setup_with(|c| c.pid_namespaces = false);
    assert!(!sup.pid_namespaces().unwrap());
    sup.add(spec("me", "echo $$; exec sleep 100")).unwrap();
    sup.start("me").await.unwrap();
    let pid = sup.get("me").unwrap().pid.unwrap();
    wait_until("the pid line", || !sup.output("me", 1).unwrap().is_empty()).await;
    let seen: u32 = sup.output("me", 1).unwrap()[0].line.trim().parse().unwrap();
    assert_eq!(seen, pid);
    assert_eq!(inner_pid(pid), pid as i32);
    sup.stop("me", true).await.unwrap();
}

#[tokio::test]
async fn a_stop_ends_setsid_and_double_forked_descendants_with_and_without_namespaces() {
    Supervisor::become_subreaper().unwrap();
    for namespaces in [true, false] {
        let (sup, bus, _dir) = setup_with(|c| c.pid_namespaces = namespaces);
        sup.add(spec("three", &three_descendants())).unwrap();
        sup.start("three").await.unwrap();
        let leader = sup.get("three").unwrap().pid.unwrap() as i32;
        let pids = printed(&sup, "three", 3).await;
        assert!(pids.iter().all(|(p, _)| *p != leader));
        sup.stop("three", false).await.unwrap();
        // Gone by the time the stop returns, not some time later.
        for (pid, start) in &pids {
            assert!(
                vanished(*pid, *start),
                "{pid} survived the stop (namespaces: {namespaces})"
            );
        }
        assert_eq!(
            lifecycle(&bus, "three")[3..],
            ["process.stopping", "process.exited", "process.cancelled"]
        );
    }
}

#[tokio::test]
async fn what_an_exited_leader_left_running_is_gone_when_its_exit_is_reported() {
    if !namespaces_possible() {
        eprintln!("skipped: this host cannot make PID namespaces");
        return;
    }
    let (sup, bus, _dir) = setup();
    // The leader starts two daemons (one in a session of its own, one
    // double-forked) and exits 0 at once.
    sup.add(spec(
        "leaver",
        &format!(
            "setsid {} & ({} &); sleep 0.2",
            sleeper(300, ""),
            sleeper(301, "")
        ),
    ))
    .unwrap();
    sup.start("leaver").await.unwrap();
    let pids = printed(&sup, "leaver", 2).await;
    wait_state(&sup, "leaver", ProcessState::Completed).await;
    // The exit is reported after the namespace ended: nothing is left.
    for (pid, start) in &pids {
        assert!(vanished(*pid, *start), "daemon {pid} outlived its leader");
    }
    let exited = &of_type(&bus, "leaver", "process.exited")[0];
    assert_eq!(exited["exit_code"], 0, "{exited}");
}

#[tokio::test]
async fn the_exit_status_is_the_commands_own() {
    let (sup, bus, _dir) = setup();
    sup.add(spec("three", "exit 3")).unwrap();
    sup.add(spec("termed", "kill -TERM $$; sleep 5")).unwrap();
    sup.start("three").await.unwrap();
    sup.start("termed").await.unwrap();
    wait_state(&sup, "three", ProcessState::Failed).await;
    wait_state(&sup, "termed", ProcessState::Failed).await;
    assert_eq!(of_type(&bus, "three", "process.exited")[0]["exit_code"], 3);
    let termed = &of_type(&bus, "termed", "process.exited")[0];
    assert_eq!(
        (termed["exit_code"].clone(), termed["signal"].clone()),
        (Value::Null, 15.into())
    );
}

// Multi-threaded, as the host runs (the walks of pause run in place).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_reach_a_daemon_re_parented_to_the_init() {
    if !namespaces_possible() {
        eprintln!("skipped: this host cannot make PID namespaces");
        return;
    }
    let (sup, _bus, _dir) = setup();
    // The double-forked sleep's parent exits at once: it is re-parented
    // to the namespace's init, outside the leader's descendants, and
    // `setsid` takes it out of the leader's group.
    sup.add(spec(
        "orphan",
        &format!("(setsid {} &); exec sleep 100", sleeper(300, "")),
    ))
    .unwrap();
    sup.start("orphan").await.unwrap();
    let (daemon, _) = printed(&sup, "orphan", 1).await[0];
    let leader = sup.get("orphan").unwrap().pid.unwrap() as i32;
    wait_until("the daemon to be re-parented", || {
        read_stat(daemon).is_some_and(|p| p.ppid != leader && inner_ppid(daemon) == 1)
    })
    .await;
    let state = |pid| read_stat(pid).map(|p| p.state);
    sup.pause("orphan").unwrap();
    wait_until("both to be stopped", || {
        state(daemon) == Some('T') && state(leader) == Some('T')
    })
    .await;
    sup.resume("orphan").unwrap();
    wait_until("both to run again", || {
        state(daemon) != Some('T') && state(leader) != Some('T')
    })
    .await;
    sup.stop("orphan", false).await.unwrap();
}

/// The parent pid a process sees (1 once it was re-parented to the init).
fn inner_ppid(pid: i32) -> i32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let Some(line) = status.lines().find(|l| l.starts_with("PPid:")) else {
        return -1;
    };
    // The host's /proc shows the parent as the host sees it: the init's
    // real pid. Inside, that is 1; compare with the init's NSpid.
    let ppid: u32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    inner_pid(ppid)
}

#[tokio::test]
async fn a_scan_skips_the_inits_and_still_finds_every_descendant_of_a_namespaced_tree() {
    if !namespaces_possible() {
        return;
    }
    let (sup, _bus, _dir) = setup();
    sup.add(spec("three", &three_descendants())).unwrap();
    sup.start("three").await.unwrap();
    let leader = sup.get("three").unwrap().pid.unwrap() as i32;
    let pids = printed(&sup, "three", 3).await;
    let init = super::super::pidns::init_of(leader).expect("a namespace of its own");
    let procs = super::super::stop::scan();
    assert!(procs.get(init).is_none(), "the init's stat is not read");
    assert!(procs.get(leader).is_some());
    let mut tree = super::super::stop::Tree::new(leader);
    tree.adopt(procs.get(leader).unwrap());
    let members = tree.observe(&procs);
    for (pid, _) in &pids {
        // The double-forked one's parent is the init: found through it.
        assert!(members.contains(pid), "{pid} missing from {members:?}");
    }
    assert!(!members.contains(&init));
    sup.stop("three", true).await.unwrap();
}

#[tokio::test]
async fn an_init_that_forwarded_a_stop_and_reaped_orphans_used_under_half_its_stack() {
    if !namespaces_possible() {
        return; // no init runs without namespaces
    }
    Supervisor::become_subreaper().unwrap();
    let (sup, _bus, _dir) = setup();
    sup.add(spec("three", &three_descendants())).unwrap();
    sup.start("three").await.unwrap();
    printed(&sup, "three", 3).await;
    // The init forwards the SIGTERM and reaps the two daemons re-parented
    // to it: every path of its loop.
    sup.stop("three", false).await.unwrap();
    wait_until("an init's stack to be given back", || {
        crate::supervisor::pidns_init::highest_stack_use().0 > 0
    })
    .await;
    let (used, slot) = crate::supervisor::pidns_init::highest_stack_use();
    assert!(
        used <= slot / 2,
        "an init used {used} of its {slot} bytes of stack: too little margin"
    );
}
