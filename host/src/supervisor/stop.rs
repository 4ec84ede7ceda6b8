//! Process trees: finding every process a child started, signalling them all,
//! and waiting until they are gone.
//!
//! A child leads its own process group, so `killpg` reaches everything that
//! stayed in the group. Descendants that left it (`setsid`, job-control
//! shells) are found by walking parent links in `/proc`, and are collected
//! *before* signalling: once a parent dies its children are re-parented and
//! the link is lost. Killing freezes the tree with `SIGSTOP` first so nothing
//! can fork between the last scan and the `SIGKILL`.
//!
//! Pids and group ids are recycled, so a number alone never names one of
//! ours: a process is ours only if its pid *and* start time match ones we
//! recorded (a process reusing the pid started later). A group id cannot be
//! reused while any process, zombie included, carries it; so the group is
//! signalled only while a member we know by pid and start time carries it
//! (which is why the runner reaps the leader last), else only verified
//! members are, one by one: a `killpg` after the last member was reaped
//! could reach whatever group got the number next.
//!
//! Everything here reads `/proc` synchronously; async callers run it on the
//! blocking pool (`offload`), one step after another, so the order above is
//! kept.
//!
//! A process that runs in a PID namespace of its own (see `pidns`) is
//! stopped without any of that: [`end_namespace`] signals its init, which
//! forwards the signal to the whole namespace, and a `SIGKILL` of the init
//! makes the kernel end the rest. The walks remain for pause, resume and
//! resource samples, and there they also follow the processes that were
//! re-parented to the namespace's init.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::child::ChildProcess;
use super::offload::offload;
use super::pidns::{self, Init};

/// One line of `/proc/<pid>/stat`, the fields the supervisor needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) pid: i32,
    pub(crate) ppid: i32,
    pub(crate) pgid: i32,
    /// `R`, `S`, `Z`, ...
    pub(crate) state: char,
    /// Clock ticks after boot; with `pid` it identifies a process across pid reuse.
    pub(crate) start_time: u64,
}

impl ProcStat {
    /// True once the process has exited (a zombie is dead, just not reaped).
    pub(crate) fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

impl From<procfs::process::Stat> for ProcStat {
    fn from(s: procfs::process::Stat) -> Self {
        ProcStat {
            pid: s.pid,
            ppid: s.ppid,
            pgid: s.pgrp,
            state: s.state,
            start_time: s.starttime,
        }
    }
}

/// Parses the text of `/proc/<pid>/stat`.
#[cfg(test)]
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    use procfs::FromRead as _;
    procfs::process::Stat::from_read(text.as_bytes())
        .ok()
        .map(ProcStat::from)
}

/// Reads one process's stat; `None` if it no longer exists or `pid` is the
/// id of a thread rather than of a process.
///
/// `/proc/<tid>` answers for every thread id although `/proc` does not list
/// it, and a thread's stat looks like a process's: a recycled leader pid
/// that is now a thread of some process (the host's own, even) must not be
/// taken for a process. A thread's `Tgid` is its process's pid, not its own.
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    let process = procfs::process::Process::new(pid).ok()?;
    if process.status().ok()?.tgid != pid {
        return None;
    }
    process.stat().ok().map(ProcStat::from)
}

/// The stat of `pid`, a child of this host not yet reaped: so a process,
/// not a thread, and not a stranger holding a recycled pid. One read with
/// the scan's parser, where [`read_stat`] must also read and parse
/// `status` to tell a process from a thread (a third of the async workers'
/// time when 1,000 processes start).
pub(crate) fn read_child_stat(pid: i32) -> Option<ProcStat> {
    let mut buf = vec![0u8; 1024];
    let len = std::fs::File::open(format!("/proc/{pid}/stat"))
        .and_then(|f| read_small(f, &mut buf))
        .ok()?;
    parse_stat_line(&buf[..len]).map(|(stat, _)| stat)
}

/// Reads every process visible in `/proc` (which lists processes, not
/// threads).
///
/// Each `stat` file is read by path into one reused buffer: one open per
/// process, where `procfs::process::all_processes` opens each process's
/// folder and then its `stat` (twice the system calls, for every process
/// on the machine, every resource sample).
///
/// The namespaces' inits of this host are listed without their `stat`:
/// nothing needs it (an init is never a member of a tree; its orphans are
/// found by their parent link to it), and at 1,000 processes they are half
/// the files of a scan.
pub(crate) fn scan() -> Procs {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Procs::new(Vec::new());
    };
    let inits = pidns::init_pids();
    let mut usage = HashMap::new();
    let mut list = Vec::new();
    let mut buf = vec![0u8; 1024];
    let mut path = String::with_capacity(32);
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if inits.contains(&pid) {
            continue;
        }
        path.clear();
        let _ = std::fmt::Write::write_fmt(&mut path, format_args!("/proc/{pid}/stat"));
        // Gone since the listing (it exited and was reaped): not an error.
        let Ok(len) = std::fs::File::open(&path).and_then(|f| read_small(f, &mut buf)) else {
            continue;
        };
        let Some((stat, used)) = parse_stat_line(&buf[..len]) else {
            continue;
        };
        usage.insert(stat.pid, used);
        list.push(stat);
    }
    Procs {
        usage,
        ..Procs::new(list)
    }
}

/// The fields of one `/proc/<pid>/stat` line the scan needs, parsed in
/// place. procfs parses all 52 fields into an owned structure (a lossy
/// UTF-8 copy, a vector of the fields, a string for the name): for the
/// ~2,000 lines of every resource sample at 1,000 processes that was half
/// the CPU of an idle host. Tested against procfs on every process of the
/// machine.
fn parse_stat_line(line: &[u8]) -> Option<(ProcStat, Usage)> {
    // `pid (comm) state ppid ...`: the name may hold spaces and `)`, so
    // the fields start after the last `)`.
    let open = memchr::memchr(b'(', line)?;
    let close = memchr::memrchr(b')', line)?;
    let pid = std::str::from_utf8(&line[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut fields = line
        .get(close + 1..)?
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let mut next = || fields.next();
    let number = |f: Option<&[u8]>| -> Option<i64> { std::str::from_utf8(f?).ok()?.parse().ok() };
    let state = *next()?.first()? as char;
    let ppid = number(next())? as i32;
    let pgid = number(next())? as i32;
    // session, tty_nr, tpgid, flags, minflt, cminflt, majflt, cmajflt
    for _ in 0..8 {
        next()?;
    }
    let utime = number(next())? as u64;
    let stime = number(next())? as u64;
    let cutime = number(next())?.max(0) as u64;
    let cstime = number(next())?.max(0) as u64;
    // priority, nice, num_threads, itrealvalue
    for _ in 0..4 {
        next()?;
    }
    let start_time = number(next())? as u64;
    next()?; // vsize
    let rss = number(next())?.max(0) as u64;
    Some((
        ProcStat {
            pid,
            ppid,
            pgid,
            state,
            start_time,
        },
        Usage {
            cpu_ticks: utime + stime,
            reaped_ticks: cutime + cstime,
            rss_pages: rss,
        },
    ))
}

/// Reads all of a small file into `buf` (grown if it fills), with plain
/// reads: `read_to_end` first asks the file's size and position, two more
/// system calls per `/proc` file, which report nothing useful there.
fn read_small(mut file: std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    use std::io::Read as _;
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What the same line of `/proc/<pid>/stat` says of a process's use of
/// the machine: the resource sampler needs no other read for an idle one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Usage {
    /// User plus system CPU time, in clock ticks.
    pub(crate) cpu_ticks: u64,
    /// The same of the children it waited for, and of theirs (`cutime`
    /// plus `cstime`): a child that ended between two scans is only here.
    pub(crate) reaped_ticks: u64,
    /// Resident set size, in pages.
    pub(crate) rss_pages: u64,
}

/// One scan of `/proc`, indexed by pid, by parent and by group.
///
/// The resource sampler follows every tree through one scan; with a
/// linear search per member and per link, 1,000 trees over ~3,000
/// processes cost millions of comparisons every sample (most of an idle
/// host's CPU). Indexed, each tree costs its own size.
#[derive(Debug, Default)]
pub(crate) struct Procs {
    list: Vec<ProcStat>,
    /// pid → index in `list`.
    by_pid: HashMap<i32, usize>,
    /// parent pid → indexes of its children.
    children: HashMap<i32, Vec<usize>>,
    /// group id → indexes of its members.
    groups: HashMap<i32, Vec<usize>>,
    /// pid → its use of the machine (from [`scan`]; empty for a list
    /// given to [`Procs::new`]).
    usage: HashMap<i32, Usage>,
}

impl Procs {
    /// Indexes `list`.
    pub(crate) fn new(list: Vec<ProcStat>) -> Procs {
        let mut procs = Procs {
            by_pid: HashMap::with_capacity(list.len()),
            ..Procs::default()
        };
        for (i, p) in list.iter().enumerate() {
            procs.by_pid.insert(p.pid, i);
            procs.children.entry(p.ppid).or_default().push(i);
            procs.groups.entry(p.pgid).or_default().push(i);
        }
        procs.list = list;
        procs
    }

    /// The process `pid`, if the scan saw it.
    pub(crate) fn get(&self, pid: i32) -> Option<&ProcStat> {
        self.by_pid.get(&pid).map(|&i| &self.list[i])
    }

    /// The CPU time and memory `pid` had at the scan.
    pub(crate) fn usage(&self, pid: i32) -> Option<Usage> {
        self.usage.get(&pid).copied()
    }

    /// Whether `pid` is the process that started at `start` and has not exited.
    fn is_alive(&self, pid: i32, start: u64) -> bool {
        self.get(pid)
            .is_some_and(|p| p.start_time == start && !p.is_dead())
    }

    fn indexed<'a>(&'a self, at: Option<&'a Vec<usize>>) -> impl Iterator<Item = &'a ProcStat> {
        at.into_iter().flatten().map(|&i| &self.list[i])
    }

    /// The members of group `pgid`.
    pub(crate) fn group(&self, pgid: i32) -> impl Iterator<Item = &ProcStat> {
        self.indexed(self.groups.get(&pgid))
    }

    /// Every pid reachable from `roots` through parent links, `roots`
    /// included (those the scan saw or not), each once.
    pub(crate) fn descendants(&self, roots: impl IntoIterator<Item = i32>) -> Vec<i32> {
        let mut seen = std::collections::HashSet::new();
        let mut order = Vec::new();
        let mut queue: VecDeque<i32> = roots.into_iter().collect();
        while let Some(pid) = queue.pop_front() {
            if !seen.insert(pid) {
                continue;
            }
            order.push(pid);
            queue.extend(self.indexed(self.children.get(&pid)).map(|p| p.pid));
        }
        order
    }

    /// Gives `pid` the use `usage`, as a scan would have read it.
    #[cfg(test)]
    pub(crate) fn with_usage(mut self, pid: i32, usage: Usage) -> Procs {
        self.usage.insert(pid, usage);
        self
    }
}

impl std::ops::Deref for Procs {
    type Target = [ProcStat];

    fn deref(&self) -> &[ProcStat] {
        &self.list
    }
}

/// A scan of `/proc` that began no earlier than `since`: a scan another
/// caller started after `since` serves this one too.
///
/// Stopping 1,000 trees at once (a shutdown) had each tree walk `/proc`
/// on its own, ~2,000 processes a walk: seconds of CPU for every round of
/// signals. Any scan that began after the caller's moment sees everything
/// a scan of its own would (a process that existed then and was not yet
/// reaped is listed), so sharing it loses nothing: callers that arrive
/// while a scan runs wait for the next one, and all of them share it.
pub(crate) fn scan_since(since: std::time::Instant) -> std::sync::Arc<Procs> {
    static SHARED: SharedScans = SharedScans::new();
    SHARED.since(since, scan)
}

/// Scans shared between callers: the newest finished one, and whether one
/// is under way. One static instance serves the host; tests make their own
/// so parallel tests cannot replace each other's scans.
struct SharedScans {
    state: parking_lot::Mutex<ScanState>,
    done: parking_lot::Condvar,
}

struct ScanState {
    /// The newest finished scan and when it began.
    latest: Option<(std::time::Instant, std::sync::Arc<Procs>)>,
    /// Whether a scan is under way.
    running: bool,
}

impl SharedScans {
    const fn new() -> Self {
        Self {
            state: parking_lot::Mutex::new(ScanState {
                latest: None,
                running: false,
            }),
            done: parking_lot::Condvar::new(),
        }
    }

    /// A scan made by `scan` that began no earlier than `since`.
    fn since(
        &self,
        since: std::time::Instant,
        scan: impl FnOnce() -> Procs,
    ) -> std::sync::Arc<Procs> {
        let mut shared = self.state.lock();
        loop {
            if let Some((began, procs)) = &shared.latest
                && *began >= since
            {
                return procs.clone();
            }
            if shared.running {
                // Whether it began in time or not, its end is when to look again.
                self.done.wait(&mut shared);
                continue;
            }
            shared.running = true;
            let began = std::time::Instant::now();
            drop(shared);
            let procs = std::sync::Arc::new(scan());
            let mut done = self.state.lock();
            done.running = false;
            done.latest = Some((began, procs.clone()));
            self.done.notify_all();
            return procs;
        }
    }
}

/// The processes of one supervised child: its group plus descendants that left it.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pgid: i32,
    /// pid → start time, so a recycled pid is never signalled.
    members: BTreeMap<i32, u64>,
}

impl Tree {
    /// The tree of group `pgid`, with no members known yet; until one is
    /// adopted the group is not known to be ours and is left alone.
    pub(crate) fn new(pgid: i32) -> Tree {
        Tree {
            pgid,
            members: BTreeMap::new(),
        }
    }

    /// Makes `stat` a member, e.g. a leader that is not (yet) in the group.
    pub(crate) fn adopt(&mut self, stat: &ProcStat) {
        self.members.insert(stat.pid, stat.start_time);
    }

    /// Collects the tree led by `leader`, whose start time `leader_start` was
    /// read when it was spawned: its group and every descendant.
    ///
    /// The start time comes from the spawn, not from `/proc` now, because by
    /// now the leader may be reaped and its pid given to someone else.
    pub(crate) fn collect(leader: i32, leader_start: u64) -> Tree {
        let mut tree = Tree::new(leader);
        tree.members.insert(leader, leader_start);
        tree.extend();
        tree
    }

    /// Adds group members and descendants of living members that appeared since.
    pub(crate) fn extend(&mut self) {
        self.extend_from(&scan_since(std::time::Instant::now()));
    }

    /// [`Tree::extend`] from a scan already taken, then forgets members that
    /// died or were recycled; returns the living members.
    ///
    /// For observers that follow a tree for its whole life (the resource
    /// sampler), so the member list does not grow with every short-lived
    /// child, and one scan serves every tree.
    pub(crate) fn observe(&mut self, procs: &Procs) -> Vec<i32> {
        self.extend_from(procs);
        self.members
            .retain(|pid, start| procs.is_alive(*pid, *start));
        self.members.keys().copied().collect()
    }

    fn extend_from(&mut self, procs: &Procs) {
        let me = std::process::id() as i32;
        // Strangers carrying our group id are adopted only while the id is
        // pinned by a member we know: otherwise it may be a recycled group.
        let ours = self.members.iter().any(|(pid, start)| {
            procs
                .get(*pid)
                .is_some_and(|p| p.start_time == *start && p.pgid == self.pgid)
        });
        // Orphans of a namespaced tree are re-parented to its init (which
        // is not a member: it is ours, not the command's).
        let init = pidns::init_of(self.pgid);
        let group = procs.group(self.pgid).filter(|_| ours);
        let orphans = init
            .into_iter()
            .flat_map(|init| procs.descendants([init]).into_iter().skip(1));
        let living = self
            .members
            .iter()
            .filter(|(pid, start)| procs.is_alive(**pid, **start))
            .map(|(pid, _)| *pid);
        let roots: Vec<i32> = group.map(|p| p.pid).chain(living).collect();
        let found: Vec<i32> = procs
            .descendants(roots)
            .into_iter()
            .chain(orphans)
            .collect();
        for pid in found {
            if pid == me {
                continue;
            }
            if let Some(p) = procs.get(pid) {
                self.members.entry(pid).or_insert(p.start_time);
            }
        }
    }

    /// The members known now, ascending, as no scan checked them: for an
    /// observer, those alive at its last [`Tree::observe`].
    pub(crate) fn known(&self) -> Vec<i32> {
        self.members.keys().copied().collect()
    }

    /// The process group id.
    pub(crate) fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Members outside the group, with start times (for the orphan reaper).
    pub(crate) fn escapees(&self) -> Vec<(i32, u64)> {
        self.members
            .iter()
            .filter(|(pid, start)| {
                read_stat(**pid).is_some_and(|p| p.start_time == **start && p.pgid != self.pgid)
            })
            .map(|(pid, start)| (*pid, *start))
            .collect()
    }

    /// Members still alive (not exited, not recycled).
    pub(crate) fn alive(&self) -> Vec<i32> {
        self.members
            .iter()
            .filter(|(pid, start)| {
                read_stat(**pid).is_some_and(|p| p.start_time == **start && !p.is_dead())
            })
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// True if a member we know by pid and start time carries the group id
    /// right now (a zombie counts: it pins the id until it is reaped).
    fn owns_group(&self) -> bool {
        self.members.iter().any(|(pid, start)| {
            read_stat(*pid).is_some_and(|p| p.start_time == *start && p.pgid == self.pgid)
        })
    }

    /// Sends `signal` to the group, if it is still ours, and to each living
    /// member the group signal did not reach.
    ///
    /// A group that no longer exists is not an error: the tree may simply be
    /// gone already.
    pub(crate) fn signal(&self, signal: Signal) -> Result<(), Errno> {
        // Checked right before the killpg. The group can only be recycled
        // after the member just seen is reaped *and* the pid counter wraps
        // round to the number, which takes far longer than the few
        // microseconds between the check and the killpg.
        let group = self.owns_group();
        if group {
            match killpg(Pid::from_raw(self.pgid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(e),
            }
        }
        for (pid, start) in &self.members {
            // Checked right before the kill so a recycled pid is left alone;
            // the remaining window is a few microseconds.
            let Some(stat) = read_stat(*pid) else {
                continue;
            };
            let reached = group && stat.pgid == self.pgid;
            if stat.start_time != *start || reached || stat.is_dead() {
                continue;
            }
            match kill(Pid::from_raw(*pid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Freezes the whole tree, collects stragglers, then `SIGKILL`s it all.
    pub(crate) fn kill_all(&mut self) {
        // Stopped processes cannot fork, so a few rounds reach a fixed point.
        for _ in 0..8 {
            let before = self.members.len();
            let _ = self.signal(Signal::SIGSTOP);
            self.extend();
            if self.members.len() == before {
                break;
            }
        }
        if let Err(e) = self.signal(Signal::SIGKILL) {
            tracing::warn!(pgid = self.pgid, error = %e, "could not SIGKILL process tree");
        }
    }

    /// Waits until every member is dead, or `limit` passes; true if all are gone.
    ///
    /// Each look at `/proc` runs on the blocking pool; dropping the future
    /// between looks (a timeout) leaves nothing behind but a finished read.
    pub(crate) async fn wait_gone(&self, limit: Option<Duration>) -> bool {
        let deadline = limit.map(|l| tokio::time::Instant::now() + l);
        let mut pause = Duration::from_millis(2);
        loop {
            let tree = self.clone();
            if offload(move || tree.alive().is_empty()).await {
                return true;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return false;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// Ends a run whose command runs in a PID namespace of its own; returns
/// the command's exit status.
///
/// With a `grace`, `signal` (then `SIGCONT`, so a paused tree can act on
/// it) goes to every process of the namespace through its init, and the
/// namespace has until the grace runs out, or `force` resolves, to empty:
/// the command has exited and the init has no child left. Then the init is
/// killed, and the kernel kills whatever else is left. The command is
/// reaped before the init, whose exit waits for it.
pub(crate) async fn end_namespace(
    child: &mut ChildProcess,
    init: Init,
    signal: Signal,
    grace: Option<Duration>,
    force: impl Future<Output = ()>,
) -> Option<std::process::ExitStatus> {
    if let Some(grace) = grace.filter(|_| signal != Signal::SIGKILL) {
        let _ = init.signal(signal);
        let _ = init.signal(Signal::SIGCONT);
        tokio::select! {
            _ = tokio::time::timeout(grace, namespace_empty(child, &init)) => {}
            _ = force => {}
        }
    }
    if let Err(e) = init.signal(Signal::SIGKILL) {
        tracing::warn!(init = init.pid(), error = %e, "could not SIGKILL a namespace init");
    }
    let status = child.wait().await.ok();
    offload(move || init.end()).await;
    status
}

/// Resolves once the command has exited and its namespace's init has no
/// child left. Each look reads one small `/proc` file, not a walk.
async fn namespace_empty(child: &mut ChildProcess, init: &Init) {
    let _ = child.wait().await;
    let mut pause = Duration::from_millis(1);
    while !init.childless() {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;

    use super::*;

    #[test]
    fn the_scan_reads_every_stat_line_of_the_machine_as_procfs_does() {
        use procfs::FromRead as _;
        let mut compared = 0;
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name();
            if name.to_str().and_then(|n| n.parse::<i32>().ok()).is_none() {
                continue;
            }
            let Ok(bytes) = std::fs::read(entry.path().join("stat")) else {
                continue;
            };
            let theirs = procfs::process::Stat::from_read(&bytes[..]).unwrap();
            let (stat, usage) = parse_stat_line(&bytes).unwrap();
            assert_eq!(stat, ProcStat::from(theirs.clone()));
            assert_eq!(usage.cpu_ticks, theirs.utime + theirs.stime);
            assert_eq!(usage.reaped_ticks, (theirs.cutime + theirs.cstime) as u64);
            assert_eq!(usage.rss_pages, theirs.rss);
            compared += 1;
        }
        assert!(compared > 1, "the machine has processes");
        // A name with spaces and parentheses, and lines cut short.
        let real = std::fs::read_to_string("/proc/self/stat").unwrap();
        let rest = &real[real.rfind(')').unwrap() + 1..];
        let odd = format!("{} (we ird) (x)){rest}", std::process::id());
        let (stat, _) = parse_stat_line(odd.as_bytes()).unwrap();
        assert_eq!(stat, parse_stat(&odd).unwrap());
        let fields = odd.rfind(')').unwrap() + 1;
        for cut in [0, 5, fields + 4] {
            assert!(parse_stat_line(&odd.as_bytes()[..cut]).is_none(), "{cut}");
        }
    }

    #[test]
    fn stat_lines_parse_even_with_odd_command_names() {
        // A real line of ours, with a command name holding `) (` and spaces.
        let real = std::fs::read_to_string("/proc/self/stat").unwrap();
        let rest = &real[real.rfind(')').unwrap() + 1..];
        let line = format!("{} (we ird) (x)){rest}", std::process::id());
        let stat = parse_stat(&line).unwrap();
        let me = read_stat(std::process::id() as i32).unwrap();
        // The state may have changed between the two reads; the rest not.
        assert_eq!(
            (stat.pid, stat.ppid, stat.pgid, stat.start_time),
            (me.pid, me.ppid, me.pgid, me.start_time)
        );
        assert!(!stat.is_dead());
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn a_childs_stat_reads_the_same_either_way() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // A running child's state flips between R and S as it pleases, so it
        // is stopped first: a stopped child's stat holds still between reads.
        kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while read_stat(pid).unwrap().state != 'T' {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never stopped"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let quick = read_child_stat(pid).unwrap();
        let full = read_stat(pid).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(quick, full);
        assert_eq!(quick.ppid, std::process::id() as i32);
        assert!(read_child_stat(pid).is_none(), "a reaped child has no stat");
    }

    #[test]
    fn our_own_stat_is_readable() {
        let me = read_stat(std::process::id() as i32).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(scan().iter().any(|p| p.pid == me.pid));
    }

    #[test]
    fn an_observed_tree_follows_new_children_and_forgets_dead_ones() {
        let p = |pid, ppid, pgid, state| ProcStat {
            pid,
            ppid,
            pgid,
            state,
            start_time: 1,
        };
        let mut tree = Tree::new(100);
        let first = Procs::new(vec![
            p(100, 1, 100, 'S'),
            p(101, 100, 100, 'S'),
            p(7, 1, 7, 'S'),
        ]);
        tree.adopt(&first[0]);
        assert_eq!(tree.observe(&first), [100, 101]);
        // 102 left the group (setsid) under 101, then 101 died.
        let second = Procs::new(vec![
            p(100, 1, 100, 'S'),
            p(101, 100, 100, 'Z'),
            p(102, 101, 102, 'S'),
        ]);
        assert_eq!(tree.observe(&second), [100, 102]);
        // 102 was re-parented when 101 was reaped; it is still followed.
        let third = Procs::new(vec![p(100, 1, 100, 'S'), p(102, 1, 102, 'S')]);
        assert_eq!(tree.observe(&third), [100, 102]);
        assert!(tree.observe(&Procs::new(Vec::new())).is_empty());
    }

    #[test]
    fn a_shared_scan_never_predates_the_moment_asked_for() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let shared = SharedScans::new();
        let scans = AtomicUsize::new(0);
        let counted = || {
            scans.fetch_add(1, Ordering::SeqCst);
            scan()
        };
        let before = std::time::Instant::now();
        let first = shared.since(before, counted);
        // Asked again for the same moment: the same scan serves.
        assert!(std::sync::Arc::ptr_eq(
            &first,
            &shared.since(before, counted)
        ));
        assert_eq!(scans.load(Ordering::SeqCst), 1);
        // A process born after that scan is seen by a scan asked for later.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let later = shared.since(std::time::Instant::now(), counted);
        assert!(!std::sync::Arc::ptr_eq(&first, &later));
        assert!(
            later.iter().any(|p| p.pid == pid),
            "the new child is listed"
        );
        // Many callers at once all get an answer that includes it, and
        // share scans rather than each making one.
        let now = std::time::Instant::now();
        let before_many = scans.load(Ordering::SeqCst);
        let seen: Vec<bool> = std::thread::scope(|threads| {
            let handles: Vec<_> = (0..8)
                .map(|_| threads.spawn(|| shared.since(now, counted).iter().any(|p| p.pid == pid)))
                .collect();
            handles.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(seen.iter().all(|s| *s), "{seen:?}");
        // Every scan begun after `now` serves all of them: exactly one.
        assert_eq!(scans.load(Ordering::SeqCst) - before_many, 1);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn descendants_follow_parent_links_transitively() {
        let p = |pid, ppid| ProcStat {
            pid,
            ppid,
            pgid: pid,
            state: 'S',
            start_time: 1,
        };
        let procs = Procs::new(vec![p(1, 0), p(10, 1), p(11, 10), p(12, 11), p(20, 1)]);
        let mut found = procs.descendants([10]);
        found.sort();
        assert_eq!(found, [10, 11, 12]);
    }

    #[test]
    fn descendants_name_each_pid_once_even_from_overlapping_roots() {
        let p = |pid, ppid| ProcStat {
            pid,
            ppid,
            pgid: 10,
            state: 'S',
            start_time: 1,
        };
        let procs = Procs::new(vec![p(10, 1), p(11, 10), p(12, 11)]);
        let mut found = procs.descendants([10, 11, 12, 11]);
        found.sort();
        assert_eq!(found, [10, 11, 12]);
        assert_eq!(procs.group(10).count(), 3);
        assert_eq!(procs.group(99).count(), 0);
        assert_eq!(procs.get(12).map(|p| p.ppid), Some(11));
        assert!(procs.get(13).is_none());
    }

    #[test]
    fn a_tree_of_a_thousand_groups_sees_only_its_own() {
        // One scan, many trees: each tree's members are its group and its
        // descendants, whatever the others hold.
        let mut list = Vec::new();
        for g in 0..1000 {
            let leader = 1000 + g * 3;
            let p = |pid, ppid, pgid| ProcStat {
                pid,
                ppid,
                pgid,
                state: 'S',
                start_time: 7,
            };
            list.push(p(leader, 1, leader));
            list.push(p(leader + 1, leader, leader));
            // Left the group with setsid, still a descendant.
            list.push(p(leader + 2, leader + 1, leader + 2));
        }
        let procs = Procs::new(list);
        for g in [0, 499, 999] {
            let leader = 1000 + g * 3;
            let mut tree = Tree::new(leader);
            tree.adopt(procs.get(leader).unwrap());
            assert_eq!(tree.observe(&procs), [leader, leader + 1, leader + 2]);
        }
    }

    #[test]
    fn a_group_no_known_member_carries_is_not_adopted() {
        let p = |pid, ppid, pgid, start_time| ProcStat {
            pid,
            ppid,
            pgid,
            state: 'S',
            start_time,
        };
        // Pid 100 was reused by a later process (start 9) that leads a new
        // group 100 with a child: none of it is ours.
        let mut tree = Tree::new(100);
        tree.adopt(&p(100, 1, 100, 1));
        assert!(
            tree.observe(&Procs::new(vec![p(100, 1, 100, 9), p(101, 100, 100, 9)]))
                .is_empty()
        );
        // An escapee we know keeps being followed, but does not vouch for
        // the group it left.
        let mut tree = Tree::new(100);
        tree.adopt(&p(102, 1, 102, 1));
        assert_eq!(
            tree.observe(&Procs::new(vec![p(102, 1, 102, 1), p(101, 1, 100, 9)])),
            [102]
        );
    }

    #[test]
    fn a_thread_id_is_not_read_as_a_process() {
        // The thread parks until it has been looked at, so its id is live.
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let parked = std::thread::spawn(move || {
            let link = std::fs::read_link("/proc/thread-self").unwrap();
            let tid: i32 = link.file_name().unwrap().to_str().unwrap().parse().unwrap();
            tx.send(tid).unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap();
        assert_ne!(tid, std::process::id() as i32);
        // /proc answers for the thread id, but it names no process.
        assert!(procfs::process::Process::new(tid).unwrap().stat().is_ok());
        assert!(read_stat(tid).is_none());
        done_tx.send(()).unwrap();
        parked.join().unwrap();
    }

    /// A `sleep` leading its own group, with its start time.
    fn group_leader() -> (std::process::Child, i32, u64) {
        let child = std::process::Command::new("sleep")
            .arg("100")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = read_stat(pid).unwrap().start_time;
        (child, pid, start)
    }

    /// Ends `child` with `SIGTERM`; returns 9 if a `SIGKILL` got there first.
    fn death_signal(mut child: std::process::Child) -> i32 {
        use std::os::unix::process::ExitStatusExt as _;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        child.wait().unwrap().signal().unwrap()
    }

    #[test]
    fn a_leader_whose_start_time_does_not_match_is_not_signalled() {
        let (child, pid, start) = group_leader();
        // As if `pid` had been reaped and reused since the spawn.
        let mut tree = Tree::collect(pid, start + 1);
        assert!(tree.alive().is_empty());
        tree.signal(Signal::SIGKILL).unwrap();
        tree.kill_all();
        assert_eq!(death_signal(child), 15, "a stranger was killed");
    }

    #[test]
    fn a_group_is_left_alone_once_only_escapees_of_it_are_known() {
        let (group, _, _) = group_leader();
        let (escapee, escapee_pid, escapee_start) = group_leader();
        // The tree knows one member, which is outside the group.
        let mut tree = Tree::new(group.id() as i32);
        tree.members.insert(escapee_pid, escapee_start);
        tree.signal(Signal::SIGKILL).unwrap();
        assert_eq!(death_signal(escapee), 9, "the known member was spared");
        assert_eq!(death_signal(group), 15, "an unverified group was killed");
    }

    #[test]
    fn a_verified_tree_is_killed_whole_even_after_its_leader_exited() {
        // The leader exits at once, leaving a `sleep` in the group; unreaped,
        // the leader still pins the group id and vouches for it.
        let mut leader = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 100 >/dev/null & echo $!"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = leader.id() as i32;
        let start = read_stat(pid).unwrap().start_time;
        let mut out = String::new();
        std::io::Read::read_to_string(leader.stdout.as_mut().unwrap(), &mut out).unwrap();
        let left: i32 = out.trim().parse().unwrap();
        let left_start = read_stat(left).unwrap().start_time;
        let mut tree = Tree::collect(pid, start);
        assert!(tree.alive().contains(&left));
        tree.kill_all();
        let gone = || read_stat(left).is_none_or(|p| p.start_time != left_start || p.is_dead());
        for _ in 0..6000 {
            if gone() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(gone(), "the process left behind survived");
        leader.wait().unwrap();
    }
}
