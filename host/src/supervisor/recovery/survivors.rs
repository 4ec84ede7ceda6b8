//! What survives of an interrupted run: found in `/proc` by the pid and
//! start time the journal recorded, and killed before anything restarts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::trail::Trail;
use crate::supervisor::offload::offload;
use crate::supervisor::stop::{Procs, Tree};

/// How long killed survivors may take to vanish before we report them.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// The members of the previous host's run of a process that are still
/// alive: its leader `pid` (started at `start_time`, in clock ticks after
/// boot) with its tree if it lives, else whatever still carries its group.
///
/// The group id is the leader's pid, and Linux hands out no pid while a
/// group of that number has members: so while the leader is dead but a
/// member lives, nothing else can have taken the number, and every
/// process carrying the group id is the group's own. If instead the pid is
/// held by a process with another start time, the group was empty once
/// and the number reused: nothing is ours. Members must also have started
/// no earlier than the leader. What remains possible is a reused group
/// whose new leader has died too, which needs the pid counter to wrap
/// round between the two hosts. `started_at` (when the journal saw the run
/// start) rules out another boot, where clock ticks mean something else.
///
/// `procs` is one scan of `/proc` shared by every process recovered.
pub(super) fn survivors(
    pid: u32,
    start_time: u64,
    started_at: DateTime<Utc>,
    procs: &Procs,
) -> Option<Tree> {
    let boot = procfs::boot_time_secs().ok()?;
    if started_at.timestamp() < boot as i64 {
        return None; // another boot: nothing of it is alive
    }
    let pid = i32::try_from(pid).ok()?;
    match procs.get(pid) {
        Some(leader) if leader.start_time == start_time && !leader.is_dead() => {
            return Some(Tree::collect(pid, start_time));
        }
        // The pid belongs to another process now: the group id was free
        // once, so nothing carrying it now can be proven ours.
        Some(other) if other.start_time != start_time => return None,
        _ => {}
    }
    let members: Vec<_> = procs
        .group(pid)
        .filter(|p| p.start_time >= start_time && !p.is_dead())
        .collect();
    if members.is_empty() {
        return None;
    }
    let mut tree = Tree::new(pid);
    for member in &members {
        tree.adopt(member);
    }
    tree.extend();
    Some(tree)
}

/// Kills what survives of a run; returns the pids that were alive.
pub(super) async fn kill_survivors(name: &str, trail: &Trail, procs: &Arc<Procs>) -> Vec<i32> {
    let (Some(pid), Some(start_time), Some(started_at)) =
        (trail.pid, trail.start_time, trail.started_at)
    else {
        return Vec::new();
    };
    let procs = procs.clone();
    let found = offload(move || {
        let mut tree = survivors(pid, start_time, started_at, &procs)?;
        let alive = tree.alive();
        if alive.is_empty() {
            return None;
        }
        tree.kill_all();
        Some((tree, alive))
    })
    .await;
    let Some((tree, alive)) = found else {
        return Vec::new();
    };
    if !tree.wait_gone(Some(KILL_WAIT)).await {
        tracing::warn!(process = %name, pids = ?tree.alive(), "processes of the interrupted run survive SIGKILL");
    }
    tracing::info!(process = %name, pids = ?alive, "killed what the previous host left of the run");
    alive
}
