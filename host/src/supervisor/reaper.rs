//! Child subreaper and orphan reaping.
//!
//! With `PR_SET_CHILD_SUBREAPER` every process that a supervised child
//! abandons is re-parented to the host instead of init, so nothing escapes
//! supervision; but the host must then reap those orphans or they linger as
//! zombies. Each runner reaps its own child (by pidfd), so this reaper never
//! calls `waitpid(-1)`: it waits only on zombies it can prove came from a
//! supervised tree (their process group is one we created, or we saw them
//! descend from one), and never on a tracked direct child.
//!
//! The registry is process-wide because the subreaper attribute and the
//! zombies are: two supervisors in one process must not reap each other's
//! children.

use parking_lot::{Mutex, MutexGuard};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;

use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

use super::offload::offload;
use super::stop;

/// Ticks between scans when no `SIGCHLD` arrived.
const IDLE_SCAN_EVERY: u32 = 10;

static SUBREAPER: AtomicBool = AtomicBool::new(false);
static REGISTRY: Mutex<Registry> = Mutex::new(Registry::new());

struct Registry {
    /// Direct children spawned by a supervisor and not yet reaped by their runner.
    tracked: Option<HashSet<i32>>,
    /// Process groups created by a supervisor whose members may still exist.
    groups: Option<HashSet<i32>>,
    /// Processes seen inside a supervised tree but outside its group: pid → start time.
    escapees: Option<HashMap<i32, u64>>,
}

impl Registry {
    const fn new() -> Registry {
        Registry {
            tracked: None,
            groups: None,
            escapees: None,
        }
    }
}

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock()
}

/// Makes this process a child subreaper and enables orphan reaping.
pub(crate) fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)?;
    SUBREAPER.store(true, Ordering::SeqCst);
    Ok(())
}

/// True once [`become_subreaper`] succeeded.
pub(crate) fn is_subreaper() -> bool {
    SUBREAPER.load(Ordering::SeqCst)
}

/// Registers a freshly spawned child, which leads its own group.
pub(crate) fn track_child(pid: i32) {
    let mut reg = registry();
    reg.tracked.get_or_insert_default().insert(pid);
    reg.groups.get_or_insert_default().insert(pid);
}

/// Forgets a direct child once its runner has reaped it.
pub(crate) fn untrack_child(pid: i32) {
    if let Some(tracked) = registry().tracked.as_mut() {
        tracked.remove(&pid);
    }
}

/// Forgets a group once all its members are gone and reaped.
pub(crate) fn forget_group(pgid: i32) {
    if let Some(groups) = registry().groups.as_mut() {
        groups.remove(&pgid);
    }
}

/// Remembers members of a tree that left its group, so they are reaped too.
pub(crate) fn note_escapees(escapees: &[(i32, u64)]) {
    if escapees.is_empty() {
        return;
    }
    let mut reg = registry();
    let map = reg.escapees.get_or_insert_default();
    for (pid, start) in escapees {
        map.insert(*pid, *start);
    }
}

/// Reaps every orphaned zombie from a supervised tree; returns how many.
///
/// Does nothing unless this process is a subreaper: otherwise orphans go to
/// init, which reaps them.
pub(crate) fn reap_orphans() -> usize {
    if !is_subreaper() {
        return 0;
    }
    let me = std::process::id() as i32;
    // Nothing to look for (processes in PID namespaces are never
    // registered: their orphans go to their namespace's init): no scan.
    {
        let reg = registry();
        let none = |set: Option<usize>| set.is_none_or(|n| n == 0);
        if none(reg.groups.as_ref().map(HashSet::len))
            && none(reg.escapees.as_ref().map(HashMap::len))
        {
            return 0;
        }
    }
    // Held across scan and waitpid so a child spawned meanwhile is either
    // already tracked or not yet a member of a known group.
    let mut reg = registry();
    let procs = stop::scan();
    learn_escapees(&mut reg, &procs);
    let mut reaped = 0;
    for p in procs.iter().filter(|p| p.ppid == me && p.is_dead()) {
        if reg.tracked.as_ref().is_some_and(|t| t.contains(&p.pid)) {
            continue;
        }
        let from_group = reg.groups.as_ref().is_some_and(|g| g.contains(&p.pgid));
        let escaped = reg
            .escapees
            .as_ref()
            .is_some_and(|e| e.get(&p.pid) == Some(&p.start_time));
        if !(from_group || escaped) {
            continue;
        }
        if waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG)).is_ok() {
            reaped += 1;
        }
    }
    // Forget escapees that no longer exist (reaped here or by someone else).
    if let Some(map) = reg.escapees.as_mut() {
        map.retain(|pid, start| {
            procs
                .get(*pid)
                .is_some_and(|p| p.start_time == *start && !(p.ppid == me && p.is_dead()))
        });
    }
    reaped
}

/// Reaps orphans every second, but scans `/proc` only after a `SIGCHLD`
/// (an orphan's death signals us) or every [`IDLE_SCAN_EVERY`] ticks, so
/// an idle host with many children costs next to nothing. The scans run on
/// the blocking pool.
pub(crate) async fn reap_periodically() {
    // Tokio lets any number of listeners share SIGCHLD with its own reaper.
    let mut sigchld = signal(SignalKind::child()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut pending = true;
    let mut idle_ticks = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                idle_ticks += 1;
                if pending || idle_ticks >= IDLE_SCAN_EVERY || sigchld.is_none() {
                    offload(reap_orphans).await;
                    pending = false;
                    idle_ticks = 0;
                }
            }
            Some(()) = async { sigchld.as_mut()?.recv().await } => pending = true,
        }
    }
}

/// Records descendants of supervised groups that have left their group.
fn learn_escapees(reg: &mut Registry, procs: &stop::Procs) {
    let Some(groups) = reg.groups.as_ref() else {
        return;
    };
    let roots = procs
        .iter()
        .filter(|p| groups.contains(&p.pgid))
        .map(|p| p.pid);
    let found: Vec<(i32, u64)> = procs
        .descendants(roots)
        .into_iter()
        .filter_map(|pid| procs.get(pid))
        .filter(|p| !groups.contains(&p.pgid))
        .map(|p| (p.pid, p.start_time))
        .collect();
    let map = reg.escapees.get_or_insert_default();
    for (pid, start) in found {
        map.insert(pid, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt as _;
    use std::process::Command;

    #[test]
    fn an_untracked_orphan_zombie_from_a_known_group_is_reaped() {
        become_subreaper().unwrap();
        // `sh` starts a grandchild in its own group, then exits at once; the
        // grandchild is re-parented to us and, once it exits, is a zombie
        // nobody but the reaper will collect.
        let out = Command::new("/bin/sh")
            .args(["-c", "sh -c 'sleep 0.2' >/dev/null & echo $!"])
            .process_group(0)
            .output()
            .unwrap();
        let grandchild: i32 = std::str::from_utf8(&out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The `sh` itself was reaped by `output()`; claim its group as ours.
        let pgid = stop::read_stat(grandchild).map(|p| p.pgid).unwrap();
        registry().groups.get_or_insert_default().insert(pgid);
        let mut gone = false;
        for _ in 0..500 {
            reap_orphans();
            if stop::read_stat(grandchild).is_none() {
                gone = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        forget_group(pgid);
        assert!(gone, "the orphan {grandchild} was never reaped");
    }

    #[test]
    fn a_tracked_child_zombie_is_left_for_its_owner() {
        become_subreaper().unwrap();
        let mut child = Command::new("/bin/true").process_group(0).spawn().unwrap();
        let pid = child.id() as i32;
        track_child(pid);
        // Wait for it to become a zombie, then reap orphans: it must survive.
        while stop::read_stat(pid).is_some_and(|p| !p.is_dead()) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        reap_orphans();
        assert!(stop::read_stat(pid).is_some_and(|p| p.is_dead()));
        assert!(child.wait().unwrap().success());
        untrack_child(pid);
        forget_group(pid);
    }
}
