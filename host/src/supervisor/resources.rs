//! Resource sampling: memory, CPU and disk I/O of every running tree, as
//! `process.resource` events, and the `memory_limit` check.
//!
//! One task samples every process, so an idle host pays one timer. A tick
//! costs one `/proc` stat scan (to find the trees, as `stop.rs` does) plus a
//! sysinfo refresh of only the pids in those trees, never a full system
//! refresh, and nothing at all while no process runs. sysinfo computes CPU
//! from the difference between two refreshes, so one `System` lives across
//! samples. The work runs on the blocking pool: it reads `/proc` and the bus
//! writes a journal.
//!
//! The sampler only notices a limit; the runner that owns the run stops it
//! (`Control::MemoryLimit`), so a stop never races a restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use std::time::Duration;

use serde_json::json;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::events::{self, EventType};
use super::runner::Control;
use super::state::ProcessState;
use super::stop::{self, Tree};
use super::table::Inner;

/// One running process to sample, as read from the table.
pub(super) struct Target {
    name: String,
    /// The leader, which is also the process group id.
    pid: u32,
    limit: Option<u64>,
    control: mpsc::UnboundedSender<Control>,
}

/// One tree's resource use at one sample.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sample {
    /// Members alive at the sample, ascending.
    pub(super) pids: Vec<u32>,
    /// Summed resident set size.
    pub(super) memory_bytes: u64,
    /// Summed CPU use in percent of one core; `None` while no member has
    /// been refreshed before (sysinfo needs two refreshes).
    pub(super) cpu_percent: Option<f32>,
    /// Bytes read from storage since the last sample.
    pub(super) disk_read_bytes: u64,
    /// Bytes written to storage since the last sample.
    pub(super) disk_written_bytes: u64,
}

/// What survives between samples: the sysinfo state and the trees followed.
pub(super) struct Sampler {
    system: System,
    /// Process name → (leader pid, its tree).
    trees: HashMap<String, (u32, Tree)>,
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
            let cpu = sample
                .cpu_percent
                .map(|c| (f64::from(c) * 100.0).round() / 100.0);
            published.push(events::new(
                &target.name,
                EventType::Resource,
                json!({
                    "pids": sample.pids,
                    "memory_bytes": sample.memory_bytes,
                    "cpu_percent": cpu,
                    "disk_read_bytes": sample.disk_read_bytes,
                    "disk_written_bytes": sample.disk_written_bytes,
                }),
            ));
            if let Some(limit) = target.limit.filter(|l| sample.memory_bytes > *l) {
                over.push((target, sample.memory_bytes, limit));
            }
        }
    }
    events::publish(&inner.bus, published);
    for (target, memory_bytes, limit_bytes) in over {
        // A closed channel means the runner already ended: nothing to stop.
        let _ = target.control.send(Control::MemoryLimit {
            pid: target.pid,
            memory_bytes,
            limit_bytes,
        });
    }
}

impl Sampler {
    pub(super) fn new() -> Sampler {
        // sysinfo would keep each sampled process's `/proc/<pid>/stat`
        // open between refreshes: 1,000 descriptors at 1,000 processes, to
        // save an open every 10 s. Reopened at each sample instead.
        sysinfo::set_open_files_limit(0);
        Sampler {
            system: System::new(),
            trees: HashMap::new(),
        }
    }

    /// Samples the trees led by `leaders` (name, pid); one entry per leader,
    /// `None` when its tree is already gone.
    pub(super) fn sample(&mut self, leaders: &[(String, u32)]) -> Vec<Option<Sample>> {
        self.trees
            .retain(|name, (leader, _)| leaders.iter().any(|(n, pid)| n == name && pid == leader));
        if leaders.is_empty() {
            // Nothing to watch: let go of what sysinfo holds (open stat files too).
            if !self.system.processes().is_empty() {
                self.system = System::new();
            }
            return Vec::new();
        }
        let procs = stop::scan();
        let members: Vec<Vec<i32>> = leaders
            .iter()
            .map(|(name, pid)| {
                let (_, tree) = self.trees.entry(name.clone()).or_insert_with(|| {
                    let mut tree = Tree::new(*pid as i32);
                    if let Some(leader) = procs.get(*pid as i32) {
                        tree.adopt(leader);
                    }
                    (*pid, tree)
                });
                tree.observe(&procs)
            })
            .collect();
        let known: HashSet<Pid> = self.system.processes().keys().copied().collect();
        // Pids refreshed last time are refreshed again so that sysinfo drops
        // the dead ones; nothing else on the host is read.
        let mut wanted: Vec<Pid> = members
            .iter()
            .flatten()
            .map(|pid| Pid::from_u32(*pid as u32))
            .chain(known.iter().copied())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let kind = ProcessRefreshKind::nothing()
            .with_memory()
            .with_cpu()
            .with_disk_usage()
            .without_tasks();
        self.system
            .refresh_processes_specifics(ProcessesToUpdate::Some(&wanted), true, kind);
        members.iter().map(|pids| self.sum(pids, &known)).collect()
    }

    /// Adds up the members sysinfo could read; `None` if it read none.
    fn sum(&self, pids: &[i32], known: &HashSet<Pid>) -> Option<Sample> {
        let mut sample = Sample {
            pids: Vec::new(),
            memory_bytes: 0,
            cpu_percent: None,
            disk_read_bytes: 0,
            disk_written_bytes: 0,
        };
        let mut cpu = 0.0;
        let mut baseline = false;
        for pid in pids {
            let pid = Pid::from_u32(*pid as u32);
            let Some(process) = self.system.process(pid) else {
                continue;
            };
            sample.pids.push(pid.as_u32());
            sample.memory_bytes += process.memory();
            // A member seen for the first time reports 0 %, which is right
            // for the sum as long as another member has a baseline.
            cpu += process.cpu_usage();
            baseline |= known.contains(&pid);
            let disk = process.disk_usage();
            sample.disk_read_bytes += disk.read_bytes;
            sample.disk_written_bytes += disk.written_bytes;
        }
        if sample.pids.is_empty() {
            return None;
        }
        sample.pids.sort_unstable();
        sample.cpu_percent = baseline.then_some(cpu);
        Some(sample)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;
    use std::process::{Child, Command};

    use super::*;

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
    fn a_tree_is_sampled_whole_and_cpu_needs_a_second_refresh() {
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
    fn a_first_sample_has_no_cpu_figure_and_a_gone_tree_none_at_all() {
        let child = spawn_tree();
        let leader = child.id();
        let mut sampler = Sampler::new();
        let first = sampler.sample(&[("t".to_string(), child.id())])[0]
            .clone()
            .unwrap();
        assert_eq!(first.cpu_percent, None);
        kill_tree(child);
        for _ in 0..1000 {
            if sampler.sample(&[("t".to_string(), leader)])[0].is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(sampler.sample(&[("t".to_string(), leader)]), [None]);
        assert!(sampler.sample(&[]).is_empty());
        assert!(sampler.system.processes().is_empty());
    }
}
