//! Resource sampling: memory, CPU and disk I/O of every running tree, as
//! `process.resource` events, and the `memory_limit` check.
//!
//! One task samples every process, so an idle host pays one timer. A tick
//! costs one `/proc` stat scan, which finds the trees (as `stop.rs` does)
//! and also gives each member's CPU time and resident memory; only members
//! whose CPU time moved since the last tick have their `/proc/<pid>/io`
//! read. CPU use is the difference between two ticks, so the sampler keeps
//! each member's figures across ticks; a member it sees for the first time
//! adds the CPU time it used inside the interval (all of it when it started
//! since the last tick), and a tree seen for the first time is measured
//! over its life. So a run's first sample already has a CPU figure, and a
//! child started since the last tick counts what it used before this one.
//! (When the first sample had none, the second published every process
//! again only because the figure appeared: 1,000 events at once on an
//! idle host.)
//!
//! A child that starts and ends between two ticks (a compiler run by
//! `make`, a test binary) is never seen; its time is in what its parent
//! reaped (`cutime` + `cstime`, its whole life and its own children's), and
//! in the namespace init's for an orphan. So a tree's CPU also counts what
//! its members and its init reaped since the last tick, less what was
//! already counted of the members that ended (their figures at the last
//! tick, which their reaper's count holds again).
//!
//! Nothing at all is read while no process runs. The work runs on the
//! blocking pool: it reads `/proc` and the bus writes a journal.
//!
//! (sysinfo did this before: it re-read `stat`, `statm` and `io` of every
//! member each tick, which with 1,000 idle processes was most of an idle
//! host's CPU; the scan already holds those figures.)
//!
//! A sample is published when it says something new: a run's first, one
//! whose figures moved since the last published, one with disk I/O, and
//! otherwise every [`QUIET_SAMPLES`]th (a heartbeat). The table's figures
//! are updated at every sample all the same. At 1,000 idle processes an
//! event per process per tick was 100 events a second: most of the
//! journal's growth, and the in-memory ring held nothing but them.
//!
//! The sampler only notices a limit; the runner that owns the run stops it
//! (`Control::MemoryLimit`), so a stop never races a restart.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::Mutex;
use std::time::Duration;

use serde_json::json;
use tokio::time::MissedTickBehavior;

use super::events::{self, EventType};
use super::pidns;
use super::runner::{Control, ControlSender, OverMemory};
use super::state::ProcessState;
use super::stop::{self, Tree};
use super::table::Inner;

/// An unchanged sample is published at least once in this many samples
/// (60 s at the default 10 s interval), so a consumer still sees a quiet
/// process is sampled.
const QUIET_SAMPLES: u32 = 6;

/// One running process to sample, as read from the table.
pub(super) struct Target {
    name: String,
    /// The leader, which is also the process group id.
    pid: u32,
    limit: Option<u64>,
    control: ControlSender,
}

/// One tree's resource use at one sample.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sample {
    /// Members alive at the sample, ascending.
    pub(super) pids: Vec<u32>,
    /// Summed resident set size.
    pub(super) memory_bytes: u64,
    /// Summed CPU use in percent of one core, since the last sample (over
    /// the tree's life at its first); `None` only when the clock could not
    /// be read.
    pub(super) cpu_percent: Option<f32>,
    /// Bytes read from storage since the last sample.
    pub(super) disk_read_bytes: u64,
    /// Bytes written to storage since the last sample.
    pub(super) disk_written_bytes: u64,
}

/// What survives between samples: the trees followed and what the last
/// sample read of each member.
pub(super) struct Sampler {
    /// Process name → the tree it leads.
    trees: HashMap<String, Followed>,
    /// pid → its figures at the last sample.
    seen: HashMap<i32, Seen>,
    /// Process name → the last sample published for it.
    published: HashMap<String, Published>,
    /// When the last sample's scan was taken.
    at: Option<Instant>,
    /// Clock ticks per second and bytes per page, for `/proc`'s units.
    ticks_per_second: f64,
    page_size: u64,
}

/// One tree the sampler follows.
struct Followed {
    leader: u32,
    tree: Tree,
}

/// The figures of the last `process.resource` of one run, and the
/// samples since.
struct Published {
    /// The run's leader: a new run starts afresh.
    leader: u32,
    pids: Vec<u32>,
    memory_bytes: u64,
    /// As published: hundredths of a percent.
    cpu_percent: Option<f64>,
    unchanged: u32,
}

/// CPU use as `process.resource` carries it: rounded to hundredths.
fn published_cpu(sample: &Sample) -> Option<f64> {
    sample
        .cpu_percent
        .map(|c| (f64::from(c) * 100.0).round() / 100.0)
}

/// One member's figures at a sample.
#[derive(Clone, Copy, Debug)]
struct Seen {
    /// With the pid, which process this is (pids are recycled).
    start_time: u64,
    /// Its parent then: the likely reaper if it ends.
    parent: i32,
    cpu_ticks: u64,
    /// What it had reaped ([`stop::Usage::reaped_ticks`]).
    reaped_ticks: u64,
    read_bytes: u64,
    written_bytes: u64,
}

/// Samples every `every` until the supervisor is gone or the task is aborted.
pub(super) async fn sample_periodically(inner: Weak<Inner>, every: Duration) {
    let sampler = Arc::new(Mutex::new(Sampler::new()));
    let mut ticker = tokio::time::interval(every);
    // A slow sample must not cause a burst of catch-up samples.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let sampler = sampler.clone();
        let done = tokio::task::spawn_blocking(move || {
            // A panic mid-sample leaves a usable sampler: at worst one CPU
            // figure is computed against a stale baseline.
            let mut sampler = sampler.lock();
            sample_once(&inner, &mut sampler);
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "resource sample failed");
        }
    }
}

/// Whether a process in `state` has a tree worth sampling.
fn sampled(state: ProcessState) -> bool {
    matches!(state, ProcessState::Running | ProcessState::Paused)
}

/// Samples every running process once, records the figures on its
/// record, publishes the events and reports limits to the runners.
fn sample_once(inner: &Inner, sampler: &mut Sampler) {
    let targets: Vec<Target> = inner
        .table()
        .iter()
        .filter(|(_, rec)| sampled(rec.state))
        .filter_map(|(name, rec)| {
            Some(Target {
                name: name.clone(),
                pid: rec.pid?,
                limit: rec.spec.memory_limit,
                control: rec.run.as_ref()?.control.clone(),
            })
        })
        .collect();
    let leaders: Vec<(String, u32)> = targets.iter().map(|t| (t.name.clone(), t.pid)).collect();
    let samples = sampler.sample(&leaders);
    let mut published = Vec::new();
    let mut over = Vec::new();
    {
        let mut table = inner.table();
        for (target, sample) in targets.iter().zip(samples) {
            let Some(sample) = sample else { continue };
            let Some(rec) = table.get_mut(&target.name) else {
                continue;
            };
            if rec.pid != Some(target.pid) || !sampled(rec.state) {
                continue; // it ended or restarted while we sampled
            }
            rec.memory_bytes = Some(sample.memory_bytes);
            rec.cpu_percent = sample.cpu_percent;
            if sampler.worth_publishing(&target.name, target.pid, &sample) {
                published.push(events::new(
                    &target.name,
                    EventType::Resource,
                    json!({
                        "pids": sample.pids,
                        "memory_bytes": sample.memory_bytes,
                        "cpu_percent": published_cpu(&sample),
                        "disk_read_bytes": sample.disk_read_bytes,
                        "disk_written_bytes": sample.disk_written_bytes,
                    }),
                ));
            }
            if let Some(limit) = target.limit.filter(|l| sample.memory_bytes > *l) {
                over.push((target, sample.memory_bytes, limit));
            }
        }
    }
    events::publish(&inner.bus, published);
    for (target, memory_bytes, limit_bytes) in over {
        // A closed channel means the runner already ended: nothing to stop.
        let _ = target
            .control
            .send(Control::MemoryLimit(Box::new(OverMemory {
                pid: target.pid,
                memory_bytes,
                limit_bytes,
            })));
    }
}

impl Sampler {
    pub(super) fn new() -> Sampler {
        Sampler {
            trees: HashMap::new(),
            published: HashMap::new(),
            seen: HashMap::new(),
            at: None,
            ticks_per_second: procfs::ticks_per_second() as f64,
            page_size: procfs::page_size(),
        }
    }

    /// Whether `sample`, of run `leader` of `name`, should be published:
    /// the run's first, a change in what the event would say, disk I/O (its
    /// bytes are since the previous sample, so a skipped one would lose
    /// them), or the heartbeat. Remembers it as published when so.
    fn worth_publishing(&mut self, name: &str, leader: u32, sample: &Sample) -> bool {
        let moved_disk = sample.disk_read_bytes > 0 || sample.disk_written_bytes > 0;
        let cpu_percent = published_cpu(sample);
        if let Some(p) = self.published.get_mut(name)
            && p.leader == leader
            && !moved_disk
            && p.pids == sample.pids
            && p.memory_bytes == sample.memory_bytes
            && p.cpu_percent == cpu_percent
            && p.unchanged + 1 < QUIET_SAMPLES
        {
            p.unchanged += 1;
            return false;
        }
        self.published.insert(
            name.to_string(),
            Published {
                leader,
                pids: sample.pids.clone(),
                memory_bytes: sample.memory_bytes,
                cpu_percent,
                unchanged: 0,
            },
        );
        true
    }

    /// Samples the trees led by `leaders` (name, pid); one entry per leader,
    /// `None` when its tree is already gone.
    ///
    /// CPU and memory come from the scan that finds the trees (the same
    /// `/proc/<pid>/stat` line); only a member whose CPU time moved since
    /// the last sample can have read or written anything, so only its
    /// `/proc/<pid>/io` is read. A thousand idle processes cost one scan.
    pub(super) fn sample(&mut self, leaders: &[(String, u32)]) -> Vec<Option<Sample>> {
        // A lookup, not a scan of `leaders` per tree: that was a million
        // name comparisons a sample at 1,000 processes.
        let current: HashMap<&str, u32> =
            leaders.iter().map(|(n, pid)| (n.as_str(), *pid)).collect();
        self.trees
            .retain(|name, f| current.get(name.as_str()) == Some(&f.leader));
        self.published
            .retain(|name, p| current.get(name.as_str()) == Some(&p.leader));
        if leaders.is_empty() {
            self.seen.clear();
            self.at = None;
            return Vec::new();
        }
        let procs = stop::scan();
        let now = Instant::now();
        let clock = Clock {
            elapsed: self
                .at
                .map(|at| now.duration_since(at).as_secs_f64())
                .filter(|secs| *secs > 0.0),
            since_boot: since_boot(),
        };
        let mut seen = HashMap::new();
        let samples = leaders
            .iter()
            .map(|(name, pid)| {
                let followed = self.trees.entry(name.clone()).or_insert_with(|| {
                    let mut tree = Tree::new(*pid as i32);
                    if let Some(leader) = procs.get(*pid as i32) {
                        tree.adopt(leader);
                    }
                    Followed { leader: *pid, tree }
                });
                // Before the scan updates it, the tree holds the members
                // alive at the last sample.
                let last = followed.tree.known();
                let mut members = followed.tree.observe(&procs);
                members.sort_unstable();
                let tree = TreeNow {
                    members: &members,
                    last: &last,
                    init: pidns::init_of(*pid as i32),
                };
                self.sum(&procs, &tree, &clock, &mut seen)
            })
            .collect();
        self.seen = seen;
        self.at = Some(now);
        samples
    }

    /// Adds up the members the scan saw; `None` if it saw none. Records
    /// each member's figures (and the init's) in `seen` for the next sample.
    fn sum(
        &self,
        procs: &stop::Procs,
        tree: &TreeNow,
        clock: &Clock,
        seen: &mut HashMap<i32, Seen>,
    ) -> Option<Sample> {
        let pids = tree.members;
        let mut sample = Sample {
            pids: Vec::new(),
            memory_bytes: 0,
            cpu_percent: None,
            disk_read_bytes: 0,
            disk_written_bytes: 0,
        };
        // CPU ticks since the last sample, of members seen then (their own
        // and what they reaped).
        let mut ticks = 0.0;
        // Members seen for the first time: (ticks so far, age in seconds).
        let mut newcomers = Vec::new();
        let mut baseline = false;
        for &pid in pids {
            let (Some(stat), Some(usage)) = (procs.get(pid), procs.usage(pid)) else {
                continue;
            };
            sample.pids.push(pid as u32);
            sample.memory_bytes += usage.rss_pages * self.page_size;
            let before = self
                .seen
                .get(&pid)
                .filter(|s| s.start_time == stat.start_time);
            let (read_bytes, written_bytes) = match before {
                Some(b) if b.cpu_ticks == usage.cpu_ticks => (b.read_bytes, b.written_bytes),
                _ => read_io(pid)
                    .unwrap_or_else(|| before.map_or((0, 0), |b| (b.read_bytes, b.written_bytes))),
            };
            let used = usage.cpu_ticks + usage.reaped_ticks;
            match before {
                Some(b) => {
                    baseline = true;
                    ticks += used.saturating_sub(b.cpu_ticks + b.reaped_ticks) as f64;
                }
                None => {
                    if let Some(now) = clock.since_boot {
                        let started = stat.start_time as f64 / self.ticks_per_second;
                        newcomers.push((used as f64, now - started));
                    }
                }
            }
            // A member seen for the first time adds all its I/O so far.
            let (read_before, written_before) =
                before.map_or((0, 0), |b| (b.read_bytes, b.written_bytes));
            sample.disk_read_bytes += read_bytes.saturating_sub(read_before);
            sample.disk_written_bytes += written_bytes.saturating_sub(written_before);
            seen.insert(
                pid,
                Seen {
                    start_time: stat.start_time,
                    parent: stat.ppid,
                    cpu_ticks: usage.cpu_ticks,
                    reaped_ticks: usage.reaped_ticks,
                    read_bytes,
                    written_bytes,
                },
            );
        }
        if sample.pids.is_empty() {
            return None;
        }
        // The init is ours, not the command's: only the orphans it reaped
        // count.
        if let Some(init) = tree.init
            && let (Some(stat), Some(usage)) = (procs.get(init), procs.usage(init))
        {
            match self
                .seen
                .get(&init)
                .filter(|s| s.start_time == stat.start_time)
            {
                Some(b) => ticks += usage.reaped_ticks.saturating_sub(b.reaped_ticks) as f64,
                None => {
                    if let Some(now) = clock.since_boot {
                        let started = stat.start_time as f64 / self.ticks_per_second;
                        newcomers.push((usage.reaped_ticks as f64, now - started));
                    }
                }
            }
            seen.insert(
                init,
                Seen {
                    start_time: stat.start_time,
                    parent: stat.ppid,
                    cpu_ticks: 0,
                    reaped_ticks: usage.reaped_ticks,
                    read_bytes: 0,
                    written_bytes: 0,
                },
            );
        }
        // Members that ended since: their reaper's count holds their whole
        // life, of which the last sample's figures were counted already.
        ticks -= tree
            .ended(procs, &self.seen)
            .filter(|&pid| tree.reaped_inside(pid, procs, &self.seen))
            .filter_map(|pid| self.seen.get(&pid))
            .map(|s| (s.cpu_ticks + s.reaped_ticks) as f64)
            .sum::<f64>();
        // (Not below nothing: a reaper outside the tree, which the walk
        // above cannot always tell, never gave those ticks back.)
        ticks = ticks.max(0.0);
        sample.pids.sort_unstable();
        // The window: since the last sample for a tree it saw, otherwise
        // the tree's life (its oldest member's age). Never shorter than a
        // clock tick, the unit of `/proc`'s start times.
        let tick = 1.0 / self.ticks_per_second;
        let window = match clock.elapsed.filter(|_| baseline) {
            Some(secs) => Some(secs),
            None => newcomers.iter().map(|&(_, age)| age).reduce(f64::max),
        }
        .map(|secs| secs.max(tick));
        let Some(window) = window else {
            return Some(sample);
        };
        // A newcomer's ticks fall in the window in proportion to how much
        // of its life does (all of them when it started inside it).
        ticks += newcomers
            .iter()
            .map(|&(used, age)| used * (window / age.max(tick)).min(1.0))
            .sum::<f64>();
        sample.cpu_percent = Some((ticks / self.ticks_per_second / window * 100.0) as f32);
        Some(sample)
    }
}

/// One tree as a sample sees it.
struct TreeNow<'a> {
    /// Members alive at this scan, ascending.
    members: &'a [i32],
    /// Members at the last sample, ascending.
    last: &'a [i32],
    /// The init of its PID namespace, if it has one: the reaper of its
    /// orphans.
    init: Option<i32>,
}

impl TreeNow<'_> {
    /// Whether `pid`, as `seen` knew it, is alive now as a member.
    fn is_member_now(&self, pid: i32, procs: &stop::Procs, seen: &HashMap<i32, Seen>) -> bool {
        let same = |s: &Seen| procs.get(pid).is_some_and(|p| p.start_time == s.start_time);
        self.members.binary_search(&pid).is_ok() && seen.get(&pid).is_some_and(same)
    }

    /// The members the last sample measured that are gone (ended, or
    /// their pid recycled).
    fn ended<'s>(
        &'s self,
        procs: &'s stop::Procs,
        seen: &'s HashMap<i32, Seen>,
    ) -> impl Iterator<Item = i32> + 's {
        self.last
            .iter()
            .copied()
            .filter(move |&pid| seen.contains_key(&pid) && !self.is_member_now(pid, procs, seen))
    }

    /// Whether ended member `pid` was reaped inside the tree, so that its
    /// life shows in what a member or the init reaped: its parent is the
    /// init, or a member alive now, or an ended member reaped inside in
    /// turn (a parent that ended first left it to the init, inside too
    /// when there is one). The leader's reaper is the host: never inside.
    fn reaped_inside(&self, pid: i32, procs: &stop::Procs, seen: &HashMap<i32, Seen>) -> bool {
        let mut at = pid;
        // A chain of parents ended since the last sample, each once.
        for _ in 0..self.last.len() {
            let Some(parent) = seen.get(&at).map(|s| s.parent) else {
                return false;
            };
            if Some(parent) == self.init || self.is_member_now(parent, procs, seen) {
                return true;
            }
            if self.last.binary_search(&parent).is_err() {
                return false;
            }
            at = parent;
        }
        false
    }
}

/// What a sample's CPU figures are measured against.
struct Clock {
    /// Seconds since the previous sample, if there was one.
    elapsed: Option<f64>,
    /// Seconds since boot, on the clock `/proc`'s start times count on.
    since_boot: Option<f64>,
}

/// Seconds since boot on `CLOCK_BOOTTIME`, which `/proc/<pid>/stat`'s start
/// times are taken from.
fn since_boot() -> Option<f64> {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .ok()
        .map(|t| std::time::Duration::from(t).as_secs_f64())
}

/// Bytes `pid` has read from and written to storage, from `/proc/<pid>/io`.
fn read_io(pid: i32) -> Option<(u64, u64)> {
    let io = procfs::process::Process::new(pid).ok()?.io().ok()?;
    Some((io.read_bytes, io.write_bytes))
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;
    use std::process::{Child, Command};

    use super::*;
    use crate::supervisor::stop::ProcStat;

    /// A `sh` leading its own group with one `sleep` child.
    fn spawn_tree() -> Child {
        Command::new("/bin/sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn kill_tree(mut child: Child) {
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
    }

    fn sample_until_two(sampler: &mut Sampler, leader: u32) -> Sample {
        let leaders = [("t".to_string(), leader)];
        for _ in 0..1000 {
            let sample = sampler.sample(&leaders)[0].clone().unwrap();
            if sample.pids.len() == 2 {
                return sample;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the sleep child never appeared");
    }

    #[test]
    fn a_tree_is_sampled_whole_and_measured_again_at_the_next_sample() {
        let child = spawn_tree();
        let mut sampler = Sampler::new();
        let first = sample_until_two(&mut sampler, child.id());
        assert!(first.pids.contains(&child.id()));
        assert!(first.memory_bytes > 0);
        let second = sampler.sample(&[("t".to_string(), child.id())])[0]
            .clone()
            .unwrap();
        assert!(second.cpu_percent.is_some_and(|c| c >= 0.0));
        assert_eq!(second.pids, first.pids);
        kill_tree(child);
    }

    #[test]
    fn a_first_sample_has_a_cpu_figure_and_a_gone_tree_none_at_all() {
        let child = spawn_tree();
        let leader = child.id();
        let mut sampler = Sampler::new();
        let first = sampler.sample(&[("t".to_string(), child.id())])[0]
            .clone()
            .unwrap();
        assert!(first.cpu_percent.is_some_and(|c| c >= 0.0), "{first:?}");
        kill_tree(child);
        for _ in 0..1000 {
            if sampler.sample(&[("t".to_string(), leader)])[0].is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(sampler.sample(&[("t".to_string(), leader)]), [None]);
        assert!(sampler.sample(&[]).is_empty());
        assert!(sampler.seen.is_empty());
    }

    /// A process `pid` of group 10 that started `start` ticks after boot.
    fn member(pid: i32, start: u64) -> ProcStat {
        ProcStat {
            pid,
            ppid: 10,
            pgid: 10,
            state: 'S',
            start_time: start,
        }
    }

    /// Process `pid`, child of `parent`, started `start` ticks after boot.
    fn child_of(pid: i32, parent: i32, start: u64) -> ProcStat {
        ProcStat {
            ppid: parent,
            ..member(pid, start)
        }
    }

    /// `procs` with `ticks` of CPU time for each pid.
    fn used(procs: Vec<ProcStat>, ticks: &[(i32, u64)]) -> stop::Procs {
        let with_reaped: Vec<_> = ticks.iter().map(|&(pid, cpu)| (pid, cpu, 0)).collect();
        used_and_reaped(procs, &with_reaped)
    }

    /// `procs` with (own, reaped) CPU ticks for each pid.
    fn used_and_reaped(procs: Vec<ProcStat>, ticks: &[(i32, u64, u64)]) -> stop::Procs {
        ticks.iter().fold(
            stop::Procs::new(procs),
            |procs, &(pid, cpu_ticks, reaped_ticks)| {
                procs.with_usage(
                    pid,
                    stop::Usage {
                        cpu_ticks,
                        reaped_ticks,
                        rss_pages: 1,
                    },
                )
            },
        )
    }

    /// A tree of `members` (ascending) without a namespace, first seen.
    fn first_sight(members: &[i32]) -> TreeNow<'_> {
        TreeNow {
            members,
            last: &[],
            init: None,
        }
    }

    /// What `sampler` makes of `procs` at `clock`, its figures kept for the
    /// next call.
    fn sum_at(sampler: &mut Sampler, procs: &stop::Procs, tree: &TreeNow, clock: Clock) -> f32 {
        let mut seen = HashMap::new();
        let sample = sampler.sum(procs, tree, &clock, &mut seen).unwrap();
        sampler.seen = seen;
        sample.cpu_percent.unwrap()
    }

    /// A sampler counting 100 ticks a second.
    fn sampler_at_100_hz() -> Sampler {
        let mut sampler = Sampler::new();
        sampler.ticks_per_second = 100.0;
        sampler
    }

    /// 10 s after a sample at 30 s after boot.
    const TEN_LATER: Clock = Clock {
        elapsed: Some(10.0),
        since_boot: Some(40.0),
    };
    const AT_30: Clock = Clock {
        elapsed: None,
        since_boot: Some(30.0),
    };

    #[test]
    fn a_child_that_ended_between_two_samples_counts_through_its_reaper() {
        let mut sampler = sampler_at_100_hz();
        // A leader (started at 10 s) and its child (25 s, used 0.5 s).
        let procs = used(
            vec![member(10, 1_000), child_of(11, 10, 2_500)],
            &[(10, 0), (11, 50)],
        );
        sum_at(&mut sampler, &procs, &first_sight(&[10, 11]), AT_30);
        // 10 s later the child is gone: the leader reaped its 0.8 s, and
        // 0.3 s of one that started and ended in between, never seen.
        let procs = used_and_reaped(vec![member(10, 1_000)], &[(10, 0, 80 + 30)]);
        let tree = TreeNow {
            members: &[10],
            last: &[10, 11],
            init: None,
        };
        let cpu = sum_at(&mut sampler, &procs, &tree, TEN_LATER);
        assert!(
            (cpu - 6.0).abs() < 1e-4,
            "0.3 s more of the child, 0.3 s of the unseen: {cpu}"
        );
    }

    #[test]
    fn an_orphan_reaped_by_the_namespace_init_counts_once() {
        let mut sampler = sampler_at_100_hz();
        // The init (pid 9, its own CPU not the command's), the leader, its
        // child 11 (0.5 s) and grandchild 12 (0.2 s).
        let procs = used(
            vec![
                child_of(9, 1, 1_000),
                member(10, 1_000),
                child_of(11, 10, 2_000),
                child_of(12, 11, 2_500),
            ],
            &[(9, 40), (10, 0), (11, 50), (12, 20)],
        );
        let tree = TreeNow {
            members: &[10, 11, 12],
            last: &[],
            init: Some(9),
        };
        sum_at(&mut sampler, &procs, &tree, AT_30);
        // 11 ended first (0.6 s, reaped by the leader); 12, orphaned, ended
        // at 0.25 s and the init reaped it. The init's own 0.4 s more is
        // not the command's.
        let procs = used_and_reaped(
            vec![child_of(9, 1, 1_000), member(10, 1_000)],
            &[(9, 80, 25), (10, 0, 60)],
        );
        let tree = TreeNow {
            members: &[10],
            last: &[10, 11, 12],
            init: Some(9),
        };
        let cpu = sum_at(&mut sampler, &procs, &tree, TEN_LATER);
        assert!((cpu - 1.5).abs() < 1e-4, "0.1 s + 0.05 s in 10 s: {cpu}");
    }

    #[test]
    fn cpu_is_measured_over_the_interval_and_a_newcomer_over_its_share_of_it() {
        let mut sampler = sampler_at_100_hz();
        // First sight, 30 s after boot: a leader started at 10 s that used
        // nothing, a child started at 25 s that used 0.5 s. The window is
        // the tree's life (20 s): 2.5%.
        let procs = used(
            vec![member(10, 1_000), member(11, 2_500)],
            &[(10, 0), (11, 50)],
        );
        let cpu = sum_at(&mut sampler, &procs, &first_sight(&[10, 11]), AT_30);
        assert!((cpu - 2.5).abs() < 1e-4, "0.5 s in 20 s: {cpu}");
        // 10 s later: the child used 0.1 s more; a grandchild born at 35 s
        // used 0.3 s, all inside the interval; one found late, born at 5 s,
        // used 0.7 s over 35 s of life, 10 of them in the interval (0.2 s).
        let procs = used(
            vec![
                member(10, 1_000),
                member(11, 2_500),
                member(12, 3_500),
                member(13, 500),
            ],
            &[(10, 0), (11, 60), (12, 30), (13, 70)],
        );
        let tree = TreeNow {
            members: &[10, 11, 12, 13],
            last: &[10, 11],
            init: None,
        };
        let cpu = sum_at(&mut sampler, &procs, &tree, TEN_LATER);
        assert!((cpu - 6.0).abs() < 1e-4, "0.1 + 0.3 + 0.2 s in 10 s: {cpu}");
    }

    #[test]
    fn an_idle_trees_second_sample_says_nothing_new() {
        let mut sampler = Sampler::new();
        sampler.ticks_per_second = 100.0;
        let procs = used(vec![member(10, 1_000)], &[(10, 0)]);
        let samples = [(None, 30.0), (Some(10.0), 40.0)].map(|(elapsed, since_boot)| {
            let clock = Clock {
                elapsed,
                since_boot: Some(since_boot),
            };
            let mut seen = HashMap::new();
            let sample = sampler
                .sum(&procs, &first_sight(&[10]), &clock, &mut seen)
                .unwrap();
            sampler.seen = seen;
            sample
        });
        assert_eq!(samples[0].cpu_percent, Some(0.0), "known from the first");
        assert!(sampler.worth_publishing("p", 10, &samples[0]));
        assert!(
            !sampler.worth_publishing("p", 10, &samples[1]),
            "nothing moved: not published again"
        );
        // Just started: the window is at least one clock tick.
        let just_started = sampler
            .sum(
                &used(vec![member(20, 4_000)], &[(20, 1)]),
                &first_sight(&[20]),
                &Clock {
                    elapsed: Some(10.0),
                    since_boot: Some(40.0),
                },
                &mut HashMap::new(),
            )
            .unwrap();
        assert_eq!(just_started.cpu_percent, Some(100.0));
    }

    #[test]
    fn a_child_started_between_two_samples_counts_the_cpu_it_used() {
        // `sh` waits for a line, then starts a child that spins.
        let mut t = sample_then_go("read go; sh -c 'while :; do :; done' & wait");
        // Until the spinners (born after the first sample) used 0.5 s.
        let spun = |procs: &stop::Procs| {
            procs
                .group(t.leader as i32)
                .filter(|p| p.pid != t.leader as i32)
                .filter_map(|p| procs.usage(p.pid))
                .map(|u| u.cpu_ticks as f64 / t.sampler.ticks_per_second)
                .sum::<f64>()
        };
        scan_until("the spinners used 0.5 s", |procs| {
            (spun(procs) >= 0.5).then_some(())
        });
        let second = t.sampler.sample(&t.leaders)[0].clone().unwrap();
        let window = t.since_first.elapsed().as_secs_f64();
        let cpu = f64::from(second.cpu_percent.unwrap());
        // At least 0.5 s over a window no longer than the test's, and a
        // clock tick: a newcomer's age comes from its start time, which
        // `/proc` gives in whole ticks, so its share can lose one.
        let tick = 1.0 / t.sampler.ticks_per_second;
        assert!(
            cpu >= 0.5 / (window + tick) * 100.0 * 0.99,
            "{cpu}% over at most {window} s: {second:?}"
        );
    }

    #[test]
    fn a_real_child_that_came_and_went_between_two_samples_is_counted() {
        // `sh` waits for a line, then runs a child that counts to 300,000
        // (a fixed amount of work) and ends, and waits for another line.
        let mut t = sample_then_go(
            "read go; sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'; read never",
        );
        // Until the leader reaped the counter: what it used is then only
        // in the leader's figures for its children.
        let reaped = scan_until("the counter ended", |procs| {
            let usage = procs.usage(t.leader as i32).unwrap();
            (usage.reaped_ticks > 0 && procs.group(t.leader as i32).count() == 1)
                .then(|| usage.reaped_ticks as f64 / t.sampler.ticks_per_second)
        });
        let second = t.sampler.sample(&t.leaders)[0].clone().unwrap();
        let window = t.since_first.elapsed().as_secs_f64();
        assert_eq!(second.pids, [t.leader], "the counter was never seen");
        let cpu = f64::from(second.cpu_percent.unwrap());
        assert!(
            cpu >= reaped / window * 100.0 * 0.99,
            "{reaped} s reaped, {cpu}% over at most {window} s"
        );
    }

    /// A test's `sh` leading its own group, waiting for a line on stdin.
    /// Kills its tree however the test ends: a failed assertion must not
    /// leave a child burning a core.
    struct KillOnDrop(Option<Child>);

    impl KillOnDrop {
        /// Sends the line the script waits for.
        fn go(&self) {
            let child = self.0.as_ref().unwrap();
            let stdin = child.stdin.as_ref().unwrap();
            std::io::Write::write_all(&mut &*stdin, b"go\n").unwrap();
        }
    }

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(child) = self.0.take() {
                kill_tree(child);
            }
        }
    }

    /// Scans `/proc` every 20 ms until `found` finds what it looks for
    /// (`what`, for the failure after a minute).
    fn scan_until<T>(what: &str, mut found: impl FnMut(&stop::Procs) -> Option<T>) -> T {
        let since = Instant::now();
        loop {
            if let Some(t) = found(&stop::scan()) {
                return t;
            }
            assert!(since.elapsed() < Duration::from_secs(60), "never: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A tree sampled once before its script got its line.
    struct Started {
        _tree: KillOnDrop,
        leader: u32,
        leaders: [(String, u32); 1],
        sampler: Sampler,
        /// When the first sample was taken.
        since_first: Instant,
    }

    /// Starts `sh -c script` (which reads a line first), samples it once
    /// (only the leader, as no child started yet), then sends the line.
    fn sample_then_go(script: &str) -> Started {
        let child = Command::new("/bin/sh")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let leader = child.id();
        let tree = KillOnDrop(Some(child));
        let leaders = [("t".to_string(), leader)];
        let mut sampler = Sampler::new();
        let since_first = Instant::now();
        let first = sampler.sample(&leaders)[0].clone().unwrap();
        assert_eq!(first.pids, [leader], "no child before the line");
        tree.go();
        Started {
            _tree: tree,
            leader,
            leaders,
            sampler,
            since_first,
        }
    }

    #[test]
    fn a_sample_is_published_when_it_says_something_new_or_as_a_heartbeat() {
        let mut sampler = Sampler::new();
        let idle = Sample {
            pids: vec![7],
            memory_bytes: 4096,
            cpu_percent: Some(0.0),
            disk_read_bytes: 0,
            disk_written_bytes: 0,
        };
        let published: Vec<bool> = (0..2 * QUIET_SAMPLES)
            .map(|_| sampler.worth_publishing("p", 7, &idle))
            .collect();
        let heartbeat = |i: usize| i.is_multiple_of(QUIET_SAMPLES as usize);
        assert_eq!(
            published,
            (0..2 * QUIET_SAMPLES as usize)
                .map(heartbeat)
                .collect::<Vec<_>>(),
            "the first, then one in {QUIET_SAMPLES} while nothing moves"
        );
        let grown = Sample {
            memory_bytes: 8192,
            ..idle.clone()
        };
        assert!(sampler.worth_publishing("p", 7, &grown), "a change");
        assert!(!sampler.worth_publishing("p", 7, &grown));
        let jitter = Sample {
            cpu_percent: Some(0.001),
            ..grown.clone()
        };
        assert!(
            !sampler.worth_publishing("p", 7, &jitter),
            "below what the event shows (hundredths) is no change"
        );
        let busy = Sample {
            cpu_percent: Some(3.0),
            ..grown.clone()
        };
        assert!(sampler.worth_publishing("p", 7, &busy), "CPU moved");
        let writing = Sample {
            disk_written_bytes: 512,
            ..busy.clone()
        };
        assert!(sampler.worth_publishing("p", 7, &writing));
        assert!(
            sampler.worth_publishing("p", 7, &writing),
            "disk bytes are per sample: the same amount again is more I/O"
        );
        assert!(sampler.worth_publishing("p", 8, &busy), "a new run");
        assert!(sampler.worth_publishing("q", 8, &busy), "another process");
    }

    #[test]
    fn a_restart_under_the_same_name_gets_a_new_tree_and_an_unlisted_name_is_forgotten() {
        let (old, new, other) = (spawn_tree(), spawn_tree(), spawn_tree());
        let mut sampler = Sampler::new();
        let leaders = |t: u32| [("t".to_string(), t), ("u".to_string(), other.id())];
        sample_until_two(&mut sampler, old.id());
        sampler.sample(&leaders(old.id()));
        assert_eq!(sampler.trees["t"].leader, old.id());
        assert!(sampler.trees.contains_key("u"));
        let any = Sample {
            pids: vec![other.id()],
            memory_bytes: 1,
            cpu_percent: None,
            disk_read_bytes: 0,
            disk_written_bytes: 0,
        };
        assert!(sampler.worth_publishing("u", other.id(), &any));
        // `t` runs again with another leader, `u` is no longer listed.
        let sample = sampler.sample(&[("t".to_string(), new.id())])[0]
            .clone()
            .unwrap();
        assert_eq!(sampler.trees["t"].leader, new.id());
        assert!(sample.pids.contains(&new.id()) && !sample.pids.contains(&old.id()));
        assert!(!sampler.trees.contains_key("u"));
        assert!(!sampler.published.contains_key("u"));
        for child in [old, new, other] {
            kill_tree(child);
        }
    }
}
