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
//! namespace), so it is spawned without a `pre_exec` hook, which lets the
//! standard library use `posix_spawn` (a `vfork`) instead of copying the
//! host's page tables with `fork`.

use std::io;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;

use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::pidns::{Init, Namespaces};
use super::reaper;
use super::spec::ProcessSpec;

/// Builds the command for `spec`: shell or direct exec, env, cwd, pipes,
/// group, and with `parent_death` the parent-death signal.
pub(crate) fn build_command(spec: &ProcessSpec, parent_death: bool) -> Command {
    let mut cmd = match &spec.args {
        None => {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(&spec.command);
            cmd
        }
        Some(args) => {
            let mut cmd = Command::new(&spec.command);
            cmd.args(args);
            cmd
        }
    };
    cmd.envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Leader of a new group: stop and pause reach the whole tree, and the
        // terminal's Ctrl-C goes to the host, which stops children in order.
        .process_group(0)
        // Last resort if the Child handle is dropped without our cleanup.
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    if !parent_death {
        return cmd;
    }
    // SAFETY: the closure runs between fork and exec and only makes the
    // async-signal-safe `prctl` system call; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let rc = nix::libc::prctl(
                nix::libc::PR_SET_PDEATHSIG,
                nix::libc::SIGKILL as nix::libc::c_ulong,
                0,
                0,
                0,
            );
            if rc == -1 {
                return Err(io::Error::last_os_error());
            }
            // No getppid() race check is needed: std keeps the forking thread
            // blocked until exec succeeds, so it cannot have exited yet.
            Ok(())
        });
    }
    cmd
}

struct Request {
    spec: ProcessSpec,
    reply: oneshot::Sender<io::Result<(Child, Option<Init>)>>,
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
        let (probed, probe) = mpsc::channel::<bool>();
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
                let _ = probed.send(ns.is_some());
                while let Ok(Request { spec, reply }) = inbox.recv() {
                    let result = spawn_one(ns.as_ref(), &spec);
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
        let namespaced = probe
            .recv()
            .map_err(|_| io::Error::other("the supervisor's spawner thread ended at its start"))?;
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
    pub(crate) async fn spawn(&self, spec: &ProcessSpec) -> io::Result<(Child, Option<Init>)> {
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
fn spawn_one(ns: Option<&Namespaces>, spec: &ProcessSpec) -> io::Result<(Child, Option<Init>)> {
    let Some(ns) = ns else {
        let child = build_command(spec, true).spawn()?;
        if let Some(pid) = child.id() {
            reaper::track_child(pid as i32);
        }
        return Ok((child, None));
    };
    let mut command = build_command(spec, false);
    let (child, init) = ns.spawn_in_new(|| command.spawn(), Child::id)?;
    Ok((child?, init))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_leads_its_own_group() {
        let spawner = Spawner::start(Handle::current(), false).unwrap();
        let spec = ProcessSpec::new("t", "cat /proc/self/stat");
        let (child, _) = spawner.spawn(&spec).await.unwrap();
        let pid = child.id().unwrap() as i32;
        let out = child.wait_with_output().await.unwrap();
        reaper::untrack_child(pid);
        reaper::forget_group(pid);
        let stat = super::super::stop::parse_stat(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(stat.pgid, pid, "the child must lead its own process group");
    }

    #[tokio::test]
    async fn env_and_cwd_reach_the_child() {
        let spawner = Spawner::start(Handle::current(), false).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut spec = ProcessSpec::new("t", "echo \"$GREETING\"; pwd");
        spec.env.insert("GREETING".into(), "hello there".into());
        spec.cwd = Some(dir.path().to_path_buf());
        let (child, _) = spawner.spawn(&spec).await.unwrap();
        let pid = child.id().unwrap() as i32;
        let out = child.wait_with_output().await.unwrap();
        reaper::untrack_child(pid);
        reaper::forget_group(pid);
        let text = String::from_utf8(out.stdout).unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(text, format!("hello there\n{}\n", canonical.display()));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        for namespaces in [false, true] {
            let spawner = Spawner::start(Handle::current(), namespaces).unwrap();
            let mut spec = ProcessSpec::new("t", "/nonexistent/program");
            spec.args = Some(vec![]);
            let err = spawner.spawn(&spec).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        }
    }
}
