//! Turning a spec into a running child: the command line, the process group,
//! the PID namespace or parent-death signal, and the thread that forks.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits,
//! not the process. Forking from a tokio worker would be fragile (a worker
//! that enters `block_in_place` may later retire as a blocking-pool thread)
//! and forking from a `spawn_blocking` thread would kill the child as soon as
//! that idle thread is retired, seconds later. So every child is forked by
//! one dedicated thread that lives as long as the supervisor: if the host
//! dies, every direct child (a namespace's init, or without namespaces the
//! command) gets `SIGKILL`.
//!
//! With PID namespaces (see `pidns`), the same thread also makes each run's
//! namespace and its init before forking the command into it; the command
//! then needs no parent-death signal of its own (the init's death ends the
//! namespace).
//!
//! The fork itself is `child`'s: a clone that copies neither the host's
//! page tables nor its descriptor table, so a spawn costs the same however
//! many processes are running.

use std::io;
use std::sync::mpsc;
use std::thread;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::child::{self, ChildProcess, Forker};
use super::pidns::{Init, Namespaces};
use super::reaper;
use super::spec::ProcessSpec;

struct Request {
    spec: ProcessSpec,
    reply: oneshot::Sender<io::Result<(ChildProcess, Option<Init>)>>,
}

/// The dedicated forking thread; it ends when the supervisor drops this.
pub(crate) struct Spawner {
    requests: mpsc::Sender<Request>,
    /// Whether children run in PID namespaces of their own.
    namespaced: bool,
}

impl Spawner {
    /// Starts the thread, tied to `runtime` so tokio can reap the children.
    /// With `namespaces`, each child gets a PID namespace if the thread can
    /// make one (see `pidns`); otherwise it falls back, and says so in the
    /// log.
    pub(crate) fn start(runtime: Handle, namespaces: bool) -> io::Result<Spawner> {
        let (requests, inbox) = mpsc::channel::<Request>();
        let (probed, probe) = mpsc::channel::<io::Result<bool>>();
        thread::Builder::new()
            .name("supervisor-spawner".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                let ns = namespaces.then(Namespaces::probe).and_then(|probe| {
                    probe
                        .inspect_err(|e| {
                            tracing::warn!(error = %e, "cannot make PID namespaces; falling back to process groups and the child subreaper, so descendants of a process can outlive a kill -9 of the host");
                        })
                        .ok()
                });
                let mut forker = match Forker::new() {
                    Ok(forker) => forker,
                    Err(e) => {
                        let _ = probed.send(Err(e));
                        return;
                    }
                };
                let _ = probed.send(Ok(ns.is_some()));
                while let Ok(Request { spec, reply }) = inbox.recv() {
                    let result = spawn_one(ns.as_ref(), &mut forker, &spec);
                    if let Err(Ok((child, init))) = reply.send(result) {
                        // The caller went away: nobody will supervise this
                        // child, so take its whole tree down now.
                        match init {
                            // Dropping the init kills its namespace.
                            Some(init) => drop(init),
                            None => {
                                if let Some(pid) = child.id() {
                                    let _ = nix::sys::signal::killpg(
                                        nix::unistd::Pid::from_raw(pid as i32),
                                        nix::sys::signal::Signal::SIGKILL,
                                    );
                                    reaper::untrack_child(pid as i32);
                                }
                            }
                        }
                    }
                }
            })?;
        let namespaced = probe.recv().map_err(|_| {
            io::Error::other("the supervisor's spawner thread ended at its start")
        })??;
        Ok(Spawner {
            requests,
            namespaced,
        })
    }

    /// Whether children run in PID namespaces of their own.
    pub(crate) fn namespaced(&self) -> bool {
        self.namespaced
    }

    /// Forks the command of `spec` on the spawner thread; returns the child
    /// and, with namespaces, the init of its namespace.
    pub(crate) async fn spawn(
        &self,
        spec: &ProcessSpec,
    ) -> io::Result<(ChildProcess, Option<Init>)> {
        let (reply, answer) = oneshot::channel();
        let spec = spec.clone();
        self.requests
            .send(Request { spec, reply })
            .map_err(|_| io::Error::other("the supervisor's spawner thread has stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the supervisor's spawner thread has stopped"))?
    }
}

/// Forks one command, in a namespace of its own when `ns` is given.
fn spawn_one(
    ns: Option<&Namespaces>,
    forker: &mut Forker,
    spec: &ProcessSpec,
) -> io::Result<(ChildProcess, Option<Init>)> {
    let Some(ns) = ns else {
        let child = child::spawn(spec, forker, true)?;
        if let Some(pid) = child.id() {
            reaper::track_child(pid as i32);
        }
        return Ok((child, None));
    };
    let (child, init) = ns.spawn_in_new(|| child::spawn(spec, forker, false), ChildProcess::id)?;
    Ok((child?, init))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::process::ExitStatus;

    use super::*;

    /// Runs `spec` (with namespaces or not) to its end: its status and stdout.
    async fn run(spec: &ProcessSpec, namespaces: bool) -> (ExitStatus, String) {
        let spawner = Spawner::start(Handle::current(), namespaces).unwrap();
        let (mut child, init) = spawner.spawn(spec).await.unwrap();
        let pid = child.id().unwrap() as i32;
        let stdout = child.stdout.take().unwrap();
        let text = tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            std::fs::File::from(stdout)
                .read_to_string(&mut text)
                .unwrap();
            text
        });
        let status = child.wait().await.unwrap();
        let text = text.await.unwrap();
        if let Some(init) = init {
            init.end();
        }
        reaper::untrack_child(pid);
        reaper::forget_group(pid);
        (status, text)
    }

    #[tokio::test]
    async fn a_child_leads_its_own_group() {
        let spec = ProcessSpec::new("t", "cat /proc/self/stat");
        let spawner = Spawner::start(Handle::current(), false).unwrap();
        let (mut child, _) = spawner.spawn(&spec).await.unwrap();
        let pid = child.id().unwrap() as i32;
        let mut text = String::new();
        std::fs::File::from(child.stdout.take().unwrap())
            .read_to_string(&mut text)
            .unwrap();
        child.wait().await.unwrap();
        reaper::untrack_child(pid);
        reaper::forget_group(pid);
        let stat = super::super::stop::parse_stat(&text).unwrap();
        assert_eq!(stat.pgid, pid, "the child must lead its own process group");
    }

    #[tokio::test]
    async fn env_and_cwd_reach_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = ProcessSpec::new("t", "echo \"$GREETING\"; pwd");
        spec.env.insert("GREETING".into(), "hello there".into());
        spec.cwd = Some(dir.path().to_path_buf());
        let canonical = dir.path().canonicalize().unwrap();
        for namespaces in [false, true] {
            let (status, text) = run(&spec, namespaces).await;
            assert!(status.success());
            assert_eq!(text, format!("hello there\n{}\n", canonical.display()));
        }
    }

    #[tokio::test]
    async fn the_host_environment_is_inherited_and_a_spec_path_is_searched() {
        let home = std::env::var("HOME").unwrap_or_default();
        let bin = tempfile::tempdir().unwrap();
        let tool = bin.path().join("only-here");
        std::fs::write(&tool, "#!/bin/sh\necho found \"$HOME\"\n").unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut spec = ProcessSpec::new("t", "only-here");
        spec.args = Some(vec![]);
        spec.env.insert(
            "PATH".into(),
            format!("/nonexistent:{}", bin.path().display()),
        );
        let (status, text) = run(&spec, false).await;
        assert!(status.success());
        assert_eq!(text, format!("found {home}\n"));
    }

    #[tokio::test]
    async fn a_child_holds_only_its_three_streams_however_many_the_host_has_open() {
        // Descriptors the host opens after the spawner started sit above
        // its slots; none of them may reach the child.
        let spawner = Spawner::start(Handle::current(), true).unwrap();
        let held: Vec<std::fs::File> = (0..200)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let mut spec = ProcessSpec::new("t", "ls");
        spec.args = Some(vec!["/proc/self/fd".into()]);
        let (mut child, init) = spawner.spawn(&spec).await.unwrap();
        let mut text = String::new();
        std::fs::File::from(child.stdout.take().unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert!(child.wait().await.unwrap().success());
        if let Some(init) = init {
            init.end();
        }
        drop(held);
        let fds: Vec<&str> = text.lines().collect();
        // 3 is the directory `ls` is reading.
        assert_eq!(fds, ["0", "1", "2", "3"], "{text}");
    }

    #[tokio::test]
    async fn signals_start_at_their_defaults_and_unblocked() {
        // A Rust host ignores SIGPIPE; a child must not (`yes | head` must
        // end). What the host inherited as ignored stays ignored, as with
        // `Command`.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let ignored = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:\t"))
            .map(|hex| u64::from_str_radix(hex, 16).unwrap())
            .unwrap();
        let sigpipe = 1u64 << (nix::libc::SIGPIPE - 1);
        assert_ne!(ignored & sigpipe, 0, "the test host ignores SIGPIPE");
        let spec = ProcessSpec::new("t", "grep -E '^Sig(Blk|Ign)' /proc/self/status");
        for namespaces in [false, true] {
            let (_, text) = run(&spec, namespaces).await;
            assert_eq!(
                text,
                format!(
                    "SigBlk:\t0000000000000000\nSigIgn:\t{:016x}\n",
                    ignored & !sigpipe
                ),
                "namespaces: {namespaces}"
            );
        }
    }

    #[tokio::test]
    async fn exit_codes_and_signals_come_back_as_the_status() {
        use std::os::unix::process::ExitStatusExt as _;
        for namespaces in [false, true] {
            let (status, _) = run(&ProcessSpec::new("t", "exit 3"), namespaces).await;
            assert_eq!(status.code(), Some(3));
            let (status, _) = run(&ProcessSpec::new("t", "kill -TERM $$"), namespaces).await;
            assert_eq!(status.signal(), Some(15));
        }
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        for namespaces in [false, true] {
            let spawner = Spawner::start(Handle::current(), namespaces).unwrap();
            let mut spec = ProcessSpec::new("t", "/nonexistent/program");
            spec.args = Some(vec![]);
            let err = spawner.spawn(&spec).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
            spec.command = "no-such-program-anywhere".into();
            let err = spawner.spawn(&spec).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        }
    }

    #[tokio::test]
    async fn a_missing_working_directory_is_a_spawn_error_that_names_it() {
        let spawner = Spawner::start(Handle::current(), false).unwrap();
        let mut spec = ProcessSpec::new("t", "true");
        spec.cwd = Some("/nonexistent/dir".into());
        let err = spawner.spawn(&spec).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("/nonexistent/dir"), "{err}");
    }

    #[tokio::test]
    async fn a_dropped_child_is_killed_and_reaped() {
        let spawner = Spawner::start(Handle::current(), false).unwrap();
        let mut spec = ProcessSpec::new("t", "sleep");
        spec.args = Some(vec!["300".into()]);
        let (child, _) = spawner.spawn(&spec).await.unwrap();
        let pid = child.id().unwrap() as i32;
        drop(child);
        let gone = async {
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), gone)
            .await
            .expect("a dropped child must be killed and reaped, not left a zombie");
        reaper::untrack_child(pid);
        reaper::forget_group(pid);
    }
}
